// End to end: the real demo binary (//tools:demo) serving real HTTP requests on 127.0.0.1, its
// segments sent over real UDP to a FakeDaemon, and its shutdown on SIGTERM; with either
// framework.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/testing/schema_validator.h"
#include "integration_tests/fake_daemon.h"
#include "rapidjson/document.h"
#include "tools/local_daemon/trace.h"
#include "tools/testing/child_process.h"

namespace xraysink::tools {
namespace {

using integration_tests::FakeDaemon;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// How long each step may take: generous, for the sanitizer builds; passing runs take far less.
constexpr absl::Duration kStepTimeout = absl::Seconds(20);
// The segment name the demo is started with (--name).
constexpr char kName[] = "demo-under-test";

std::string Runfile(const std::string& path) {
  return (std::filesystem::path(std::getenv("TEST_SRCDIR")) / std::getenv("TEST_WORKSPACE") / path)
      .string();
}

// A plain (untraced) client of the demo on `port`, as patient as each step may be.
httplib::Client Client(uint16_t port) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(absl::ToChronoSeconds(kStepTimeout));
  client.set_read_timeout(absl::ToChronoSeconds(kStepTimeout));
  return client;
}

// The demo binary as a child process. Its environment is the test's without any AWS_XRAY_
// variable (a developer's AWS_XRAY_TRACING_NAME would rename every segment), plus
// AWS_XRAY_DAEMON_ADDRESS=`daemon_address`.
class DemoProcess : public testing::ChildProcess {
 public:
  DemoProcess(std::vector<std::string> args, const std::string& daemon_address)
      : ChildProcess(Argv(std::move(args)), Env(daemon_address)) {}

 private:
  static std::vector<std::string> Argv(std::vector<std::string> args) {
    args.insert(args.begin(), Runfile("tools/demo"));
    return args;
  }

  // Under TSan: the demo hands the exception /throw raises from the io_context's thread to the
  // HTTP thread through a std::future, and the exception object is freed by whichever thread
  // lets go of it last. Debian's libstdc++ is not built with TSan, so the atomic reference count
  // that orders the free after the other thread's reads is invisible to it, and it reports a
  // race between ~runtime_error and the middleware reading what(). Reports through a future's
  // result are suppressed; everything else stays checked.
  static Environment Env(const std::string& daemon_address) {
    Environment env = testing::WithoutVariables("AWS_XRAY_");
    env["AWS_XRAY_DAEMON_ADDRESS"] = daemon_address;
    if (const char* tmp = std::getenv("TEST_TMPDIR"); tmp != nullptr) {
      const std::string suppressions =
          (std::filesystem::path(tmp) / "future_exception_tsan.supp").string();
      std::ofstream(suppressions) << "race:std::__future_base::_Result\n";
      const char* options = std::getenv("TSAN_OPTIONS");
      env["TSAN_OPTIONS"] =
          absl::StrCat(options == nullptr ? "" : options, ":suppressions=", suppressions);
    }
    return env;
  }
};

// Waits until `done()` holds for what `daemon` has received, or `deadline`.
bool AwaitReceived(FakeDaemon& daemon, absl::Time deadline, const std::function<bool()>& done) {
  for (;;) {
    // Counted before the check: whatever arrives after it ends the wait below.
    const size_t received = daemon.datagrams().size();
    if (done()) return true;
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    daemon.WaitForDatagrams(received + 1, left);
  }
}

const rapidjson::Value* Member(const rapidjson::Value& object, std::string_view name) {
  if (!object.IsObject()) return nullptr;
  const auto member = object.FindMember(
      rapidjson::StringRef(name.data(), static_cast<rapidjson::SizeType>(name.size())));
  return member == object.MemberEnd() ? nullptr : &member->value;
}

std::string String(const rapidjson::Value* value) {
  return value != nullptr && value->IsString() ? value->GetString() : "<not a string>";
}

// An error flag as the document states it: absent is false.
bool Flag(const rapidjson::Value& entity, const char* name) {
  const rapidjson::Value* flag = Member(entity, name);
  if (flag == nullptr) return false;
  EXPECT_TRUE(flag->IsBool()) << name;
  return flag->IsBool() && flag->GetBool();
}

// What the demo answers on a route and records in its segment.
struct Route {
  const char* path;
  int status;
  bool error;
  bool throttle;
  bool fault;
  bool cause;  // the handler threw: the exception is recorded as the cause
};

constexpr Route kRoutes[] = {
    {"/hello", 200, false, false, false, false}, {"/limited", 429, true, true, false, false},
    {"/fail", 500, false, false, true, false},   {"/throw", 500, false, false, true, true},
    {"/nope", 404, true, false, false, false},
};

// The trace id in an X-Amzn-Trace-Id response header ("Root=ID" or "Root=ID;...").
std::string RootOf(const std::string& header) {
  const std::string root = header.substr(0, header.find(';'));
  return absl::StartsWith(root, "Root=") ? root.substr(5) : "";
}

// The request's trace holds exactly its segment, ended, as `route` says.
void ExpectRequestTrace(const Trace& trace, const Route& route, uint16_t port) {
  SCOPED_TRACE(route.path);
  ASSERT_EQ(trace.roots().size(), 1u);
  const TraceNode& root = trace.roots()[0];
  const ReceivedEntity& segment = *root.entity;
  EXPECT_TRUE(segment.is_segment);
  EXPECT_TRUE(segment.ended());
  EXPECT_EQ(segment.name, kName);
  EXPECT_TRUE(root.children.empty()) << "no subsegments on these routes";
  const rapidjson::Value& json = *segment.json;
  const rapidjson::Value* http = Member(json, "http");
  ASSERT_NE(http, nullptr);
  const rapidjson::Value* request = Member(*http, "request");
  ASSERT_NE(request, nullptr);
  EXPECT_EQ(String(Member(*request, "method")), "GET");
  EXPECT_EQ(String(Member(*request, "url")), absl::StrCat("http://127.0.0.1:", port, route.path));
  const rapidjson::Value* response = Member(*http, "response");
  ASSERT_NE(response, nullptr);
  const rapidjson::Value* status = Member(*response, "status");
  ASSERT_TRUE(status != nullptr && status->IsInt());
  EXPECT_EQ(status->GetInt(), route.status);
  EXPECT_EQ(Flag(json, "error"), route.error);
  EXPECT_EQ(Flag(json, "throttle"), route.throttle);
  EXPECT_EQ(Flag(json, "fault"), route.fault);
  const rapidjson::Value* cause = Member(json, "cause");
  if (!route.cause) {
    EXPECT_EQ(cause, nullptr);
    return;
  }
  ASSERT_NE(cause, nullptr);
  const rapidjson::Value* exceptions = Member(*cause, "exceptions");
  ASSERT_TRUE(exceptions != nullptr && exceptions->IsArray() && !exceptions->Empty());
  const rapidjson::Value& exception = (*exceptions)[0];
  EXPECT_EQ(String(Member(exception, "type")), "std::runtime_error");
  EXPECT_EQ(String(Member(exception, "message")), "the /throw handler threw on purpose");
}

// The job the demo runs at start-up, outside any request: a trace of its own.
void ExpectStartUpTrace(const Trace& trace) {
  ASSERT_EQ(trace.roots().size(), 1u);
  const TraceNode& root = trace.roots()[0];
  EXPECT_TRUE(root.entity->is_segment);
  EXPECT_EQ(root.entity->name, kName);
  const rapidjson::Value* http = Member(*root.entity->json, "http");
  ASSERT_NE(http, nullptr);
  const rapidjson::Value* request = Member(*http, "request");
  ASSERT_NE(request, nullptr);
  EXPECT_EQ(String(Member(*request, "url")), "task://localhost/warm-cache");
  std::vector<std::string> children;
  for (const TraceNode& child : root.children) children.push_back(child.entity->name);
  EXPECT_THAT(children, ElementsAre("render-report", "upload-report"));
}

class DemoTest : public ::testing::TestWithParam<std::string> {
 protected:
  // A demo serving on a free port with the framework under test, named `name`, sampling every
  // request by local rules; then `extra`.
  static std::vector<std::string> ServeArgs(const std::string& name,
                                            std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--framework",
                                     GetParam(),
                                     "--port",
                                     "0",
                                     "--name",
                                     name,
                                     "--local-sampling-only",
                                     "--sampling-rules",
                                     Runfile("tools/testdata/sample_everything.json")};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  // Every test's demos send to a fake daemon of its own.
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<FakeDaemon>> started = FakeDaemon::Start();
    ASSERT_TRUE(started.ok()) << started.status();
    daemon_ = *std::move(started);
  }

  std::unique_ptr<FakeDaemon> daemon_;
};

TEST_P(DemoTest, TracesEachRouteAndReportsItsCountersOnSigterm) {
  FakeDaemon& daemon = *daemon_;
  DemoProcess demo(ServeArgs(kName), daemon.address());
  const uint16_t port = demo.ListeningPort(absl::Now() + kStepTimeout);
  ASSERT_NE(port, 0);

  httplib::Client client = Client(port);
  std::map<std::string, std::string> trace_ids;  // by path
  for (const Route& route : kRoutes) {
    SCOPED_TRACE(route.path);
    const httplib::Result result = client.Get(route.path);
    ASSERT_TRUE(result) << httplib::to_string(result.error()) << "\nstderr: " << demo.err();
    EXPECT_EQ(result->status, route.status);
    if (route.status == 200) {
      EXPECT_EQ(result->body, "hello\n");
    }
    const std::string header = result->get_header_value("X-Amzn-Trace-Id");
    ASSERT_THAT(header, StartsWith("Root=1-"));
    trace_ids[route.path] = RootOf(header);
  }

  // Each request's segment and the start-up job's trace, all ended.
  const auto all_in = [&] {
    for (const auto& [path, id] : trace_ids) {
      const std::optional<Trace> trace = daemon.trace(id);
      if (!trace || !trace->complete()) return false;
    }
    const std::optional<Trace> start_up = daemon.TraceWithEntity("upload-report");
    return start_up && start_up->complete();
  };
  ASSERT_TRUE(AwaitReceived(daemon, absl::Now() + kStepTimeout, all_in))
      << daemon.trace_ids().size() << " traces received\nstderr: " << demo.err();
  for (const Route& route : kRoutes) {
    ExpectRequestTrace(*daemon.trace(trace_ids[route.path]), route, port);
  }
  ExpectStartUpTrace(*daemon.TraceWithEntity("upload-report"));
  EXPECT_EQ(daemon.trace_ids().size(), std::size(kRoutes) + 1) << "no other trace";
  for (const ReceivedDocument& document : daemon.documents()) {
    const absl::Status valid = core::testing::ValidateSegmentDocument(document.CompactJson());
    EXPECT_TRUE(valid.ok()) << valid.message() << "\n" << document.CompactJson();
  }

  demo.Signal(SIGTERM);
  ASSERT_EQ(demo.Wait(absl::Now() + kStepTimeout), 0) << demo.err();
  EXPECT_EQ(demo.out(), absl::StrCat("listening on ", port, "\n"));
  // Its last words: what it sent, and that nothing was dropped.
  const std::string err = demo.err();
  ASSERT_TRUE(absl::EndsWith(err, "\n")) << err;
  const std::string last_line = err.substr(err.rfind('\n', err.size() - 2) + 1);
  size_t segments = 0, sent = 0;
  ASSERT_EQ(std::sscanf(last_line.c_str(), "demo: %zu segments sent, %zu datagrams sent", &segments,
                        &sent),
            2)
      << err;
  EXPECT_EQ(last_line, absl::StrCat("demo: ", segments, " segments sent, ", sent,
                                    " datagrams sent, dropped: 0 queue full, 0 send errors, "
                                    "0 too big, 0 after close\n"));
  EXPECT_EQ(segments, std::size(kRoutes) + 1) << "segments: the requests and the start-up job";
  EXPECT_GE(sent, segments) << "at least one datagram a segment";
  // Every datagram it counted reached the daemon, and no other.
  EXPECT_TRUE(daemon.WaitForDatagrams(sent, kStepTimeout));
  EXPECT_EQ(daemon.datagrams().size(), sent);
  EXPECT_EQ(daemon.malformed_count(), 0u);
}

// Both frameworks route alike, as httplib does: on the path without the query or fragment and
// with %XX decoded, GET (and HEAD, which httplib serves with the GET handlers) only; POST, PUT,
// DELETE, OPTIONS and PATCH get an empty 404 (not 405), other methods an empty 400. The segment
// records the query.
TEST_P(DemoTest, RoutesOnThePathAndOnlyGetLikeHttplib) {
  FakeDaemon& daemon = *daemon_;
  DemoProcess demo(ServeArgs(kName), daemon.address());
  const uint16_t port = demo.ListeningPort(absl::Now() + kStepTimeout);
  ASSERT_NE(port, 0);

  struct Case {
    const char* method;
    const char* target;
    int status;
    const char* body;
  };
  const Case cases[] = {
      {"GET", "/hello?x=1", 200, "hello\n"},
      {"GET", "/hello?x=1#part", 200, "hello\n"},
      {"GET", "/hello#part", 200, "hello\n"},
      {"GET", "/nope?hello", 404, "no such route\n"},
      {"GET", "/hel%6Co", 200, "hello\n"},
      {"GET", "/hello%", 404, "no such route\n"},
      {"HEAD", "/hello?x=1", 200, ""},
      {"POST", "/hello", 404, ""},
      {"PUT", "/hello", 404, ""},
      {"DELETE", "/hello", 404, ""},
      {"OPTIONS", "/hello", 404, ""},
      {"PATCH", "/hello?x=1", 404, ""},
      {"TRACE", "/hello", 400, ""},
  };
  httplib::Client client = Client(port);
  std::vector<std::string> trace_ids;  // by case
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat(c.method, " ", c.target));
    httplib::Request request;
    request.method = c.method;
    request.path = c.target;
    const httplib::Result result = client.send(request);
    ASSERT_TRUE(result) << httplib::to_string(result.error()) << "\nstderr: " << demo.err();
    EXPECT_EQ(result->status, c.status);
    EXPECT_EQ(result->body, c.body);
    if (std::string_view(c.method) == "HEAD") {
      EXPECT_EQ(result->get_header_value("Content-Length"), "6") << "the GET's length";
    }
    const std::string header = result->get_header_value("X-Amzn-Trace-Id");
    ASSERT_THAT(header, StartsWith("Root=1-"));
    trace_ids.push_back(RootOf(header));
  }

  const auto all_in = [&] {
    for (const std::string& id : trace_ids) {
      const std::optional<Trace> trace = daemon.trace(id);
      if (!trace || !trace->complete()) return false;
    }
    return true;
  };
  ASSERT_TRUE(AwaitReceived(daemon, absl::Now() + kStepTimeout, all_in))
      << daemon.trace_ids().size() << " traces received\nstderr: " << demo.err();
  for (size_t i = 0; i < std::size(cases); ++i) {
    const Case& c = cases[i];
    SCOPED_TRACE(absl::StrCat(c.method, " ", c.target));
    const Trace trace = *daemon.trace(trace_ids[i]);
    ASSERT_EQ(trace.roots().size(), 1u);
    const rapidjson::Value* http = Member(*trace.roots()[0].entity->json, "http");
    ASSERT_NE(http, nullptr);
    const rapidjson::Value* request = Member(*http, "request");
    ASSERT_NE(request, nullptr);
    EXPECT_EQ(String(Member(*request, "method")), c.method);
    // The query kept, a fragment (which browsers do not send) dropped.
    const std::string target = c.target;
    EXPECT_EQ(String(Member(*request, "url")),
              absl::StrCat("http://127.0.0.1:", port, target.substr(0, target.find('#'))));
    const rapidjson::Value* response = Member(*http, "response");
    ASSERT_NE(response, nullptr);
    const rapidjson::Value* status = Member(*response, "status");
    ASSERT_TRUE(status != nullptr && status->IsInt());
    EXPECT_EQ(status->GetInt(), c.status);
  }

  demo.Signal(SIGTERM);
  EXPECT_EQ(demo.Wait(absl::Now() + kStepTimeout), 0) << demo.err();
}

// The README's main job: two chained demos. /downstream on the front one calls the back one with
// the traced client, so both services' segments make one trace, linked through the call's
// remote subsegment; /work records a subsegment and starts a traced background task, whose
// segment joins the request's trace.
TEST_P(DemoTest, ChainedDemosMakeOneTraceAndWorkStartsATask) {
  FakeDaemon& daemon = *daemon_;
  DemoProcess back(ServeArgs("demo-back"), daemon.address());
  const uint16_t back_port = back.ListeningPort(absl::Now() + kStepTimeout);
  ASSERT_NE(back_port, 0);
  DemoProcess front(
      ServeArgs(kName, {"--downstream", absl::StrCat("http://127.0.0.1:", back_port)}),
      daemon.address());
  const uint16_t port = front.ListeningPort(absl::Now() + kStepTimeout);
  ASSERT_NE(port, 0);

  httplib::Client client = Client(port);
  const httplib::Result downstream = client.Get("/downstream");
  ASSERT_TRUE(downstream) << httplib::to_string(downstream.error()) << "\nfront: " << front.err();
  EXPECT_EQ(downstream->status, 200);
  EXPECT_EQ(downstream->body, "downstream said: hello\n");
  const std::string downstream_id = RootOf(downstream->get_header_value("X-Amzn-Trace-Id"));
  const httplib::Result work = client.Get("/work");
  ASSERT_TRUE(work) << httplib::to_string(work.error()) << "\nfront: " << front.err();
  EXPECT_EQ(work->status, 200);
  const std::string work_id = RootOf(work->get_header_value("X-Amzn-Trace-Id"));
  ASSERT_FALSE(downstream_id.empty());
  ASSERT_FALSE(work_id.empty());

  // Every entity asserted on below has come (see FakeDaemon::trace: the back service's segment
  // or the task's may come before the front service's).
  ASSERT_TRUE(daemon.WaitForTrace(downstream_id, {kName, "127.0.0.1", "demo-back"}, kStepTimeout) &&
              daemon.WaitForTrace(
                  work_id, {kName, "compute", "send-report", "render-report", "upload-report"},
                  kStepTimeout))
      << "front: " << front.err() << "\nback: " << back.err();

  const Trace chained = *daemon.trace(downstream_id);
  ASSERT_EQ(chained.roots().size(), 1u) << "one tree: the back segment hangs under the call";
  const TraceNode& front_segment = chained.roots()[0];
  EXPECT_EQ(front_segment.entity->name, kName);
  const TraceNode* call = chained.FindByName("127.0.0.1");
  ASSERT_NE(call, nullptr);
  EXPECT_EQ(String(Member(*call->entity->json, "namespace")), "remote");
  EXPECT_EQ(chained.ParentOf(call->entity->id), &front_segment);
  const TraceNode* back_segment = chained.FindByName("demo-back");
  ASSERT_NE(back_segment, nullptr);
  EXPECT_TRUE(back_segment->entity->is_segment);
  EXPECT_EQ(back_segment->entity->parent_id, call->entity->id);
  EXPECT_EQ(chained.ParentOf(back_segment->entity->id), call);

  const Trace worked = *daemon.trace(work_id);
  ASSERT_EQ(worked.roots().size(), 1u);
  EXPECT_EQ(worked.roots()[0].entity->name, kName);
  const TraceNode* compute = worked.FindByName("compute");
  ASSERT_NE(compute, nullptr);
  EXPECT_EQ(worked.ParentOf(compute->entity->id), &worked.roots()[0]);
  const TraceNode* task = worked.FindByName("send-report");
  ASSERT_NE(task, nullptr);
  EXPECT_TRUE(task->entity->is_segment);
  std::vector<std::string> steps;
  for (const TraceNode& step : task->children) steps.push_back(step.entity->name);
  EXPECT_THAT(steps, ElementsAre("render-report", "upload-report"));

  front.Signal(SIGTERM);
  back.Signal(SIGTERM);
  EXPECT_EQ(front.Wait(absl::Now() + kStepTimeout), 0) << front.err();
  EXPECT_EQ(back.Wait(absl::Now() + kStepTimeout), 0) << back.err();
}

// A SIGTERM sent as soon as "listening on" is printed, before the server may have started
// serving, still stops the demo. With httplib such a signal used to be lost now and then (its
// stop() does nothing before the accept loop runs), leaving the demo running for good: a few
// attempts, each at once after the line, make that window likely to be hit.
TEST_P(DemoTest, StopsOnSigtermRightAfterListening) {
  for (int attempt = 0; attempt < 10; ++attempt) {
    SCOPED_TRACE(absl::StrCat("attempt ", attempt));
    DemoProcess demo(ServeArgs(kName), daemon_->address());
    ASSERT_NE(demo.ListeningPort(absl::Now() + kStepTimeout), 0);
    demo.Signal(SIGTERM);
    ASSERT_EQ(demo.Wait(absl::Now() + kStepTimeout), 0) << demo.err();
    EXPECT_THAT(demo.err(), HasSubstr(" datagrams sent, dropped: 0 queue full, 0 send errors, "
                                      "0 too big, 0 after close\n"));
  }
}

// A daemon name that never resolves (".invalid" is reserved for that) does not stop the demo
// from serving, and what waited for it shows in the last line as dropped after close.
TEST_P(DemoTest, ADaemonNameThatNeverResolvesCountsItsDocumentsAsDropped) {
  DemoProcess demo(ServeArgs(kName), "xray-daemon.invalid:2000");
  const uint16_t port = demo.ListeningPort(absl::Now() + kStepTimeout);
  ASSERT_NE(port, 0) << demo.err();
  httplib::Client client = Client(port);
  const httplib::Result hello = client.Get("/hello");
  ASSERT_TRUE(hello) << httplib::to_string(hello.error());
  EXPECT_EQ(hello->status, 200);
  demo.Signal(SIGTERM);
  ASSERT_EQ(demo.Wait(absl::Now() + kStepTimeout), 0) << demo.err();
  const std::string err = demo.err();
  EXPECT_THAT(err, HasSubstr("X-Ray daemon address 'xray-daemon.invalid:2000' does not resolve"));
  ASSERT_TRUE(absl::EndsWith(err, "\n")) << err;
  const std::string last_line = err.substr(err.rfind('\n', err.size() - 2) + 1);
  size_t segments = 0, sent = 0, dropped = 0;
  ASSERT_EQ(std::sscanf(last_line.c_str(),
                        "demo: %zu segments sent, %zu datagrams sent, dropped: 0 queue full, 0 "
                        "send errors, 0 too big, %zu after close",
                        &segments, &sent, &dropped),
            3)
      << err;
  EXPECT_GE(segments, 1u) << err;  // /hello's at least
  EXPECT_EQ(sent, 0u) << err;
  EXPECT_EQ(dropped, segments) << err;
}

// --log-group links every segment to the group (aws.cloudwatch_logs); --client plays an outside
// caller: it prints each path's status and trace header, and exits 1 when a request fails.
TEST_P(DemoTest, LogGroupOnSegmentsAndClientMode) {
  FakeDaemon& daemon = *daemon_;
  DemoProcess demo(ServeArgs(kName, {"--log-group", "/aws/demo/app"}), daemon.address());
  const uint16_t port = demo.ListeningPort(absl::Now() + kStepTimeout);
  ASSERT_NE(port, 0);

  const std::string url = absl::StrCat("http://127.0.0.1:", port);
  DemoProcess client({"--client", url, "/hello", "/nope"}, daemon.address());
  ASSERT_EQ(client.Wait(absl::Now() + kStepTimeout), 0) << client.err();
  const std::vector<std::string> lines = absl::StrSplit(client.out(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << client.out();
  EXPECT_THAT(lines[0], StartsWith("GET /hello -> 200  X-Amzn-Trace-Id: Root=1-"));
  EXPECT_THAT(lines[1], StartsWith("GET /nope -> 404  X-Amzn-Trace-Id: Root=1-"));
  const std::string trace_id = RootOf(lines[0].substr(lines[0].find("Root=")));

  const auto received = [&] {
    const std::optional<Trace> trace = daemon.trace(trace_id);
    return trace && trace->complete();
  };
  ASSERT_TRUE(AwaitReceived(daemon, absl::Now() + kStepTimeout, received)) << demo.err();
  const rapidjson::Value& segment = *daemon.trace(trace_id)->roots()[0].entity->json;
  const rapidjson::Value* aws = Member(segment, "aws");
  ASSERT_NE(aws, nullptr);
  const rapidjson::Value* logs = Member(*aws, "cloudwatch_logs");
  ASSERT_TRUE(logs != nullptr && logs->IsArray() && logs->Size() == 1u);
  EXPECT_EQ(String(Member((*logs)[0], "log_group")), "/aws/demo/app");

  // Nothing listens once the demo is gone: the client reports the error and exits 1.
  demo.Signal(SIGTERM);
  ASSERT_EQ(demo.Wait(absl::Now() + kStepTimeout), 0) << demo.err();
  DemoProcess failing({"--client", url, "/hello"}, daemon.address());
  EXPECT_EQ(failing.Wait(absl::Now() + kStepTimeout), 1);
  EXPECT_THAT(failing.out(), StartsWith("GET /hello -> error: "));
}

INSTANTIATE_TEST_SUITE_P(Frameworks, DemoTest, ::testing::Values("httplib", "beast"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

// A port another socket listens on: the demo says so on stderr and exits 1, before it serves.
TEST_P(DemoTest, APortInUseFailsWithAMessage) {
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(listen(listener, 1), 0);
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const std::string port = std::to_string(ntohs(address.sin_port));

  DemoProcess demo({"--framework", GetParam(), "--port", port}, "127.0.0.1:9");
  EXPECT_EQ(demo.Wait(absl::Now() + kStepTimeout), 1);
  EXPECT_THAT(demo.out(), Not(HasSubstr("listening on")));
  EXPECT_THAT(demo.err(), HasSubstr("demo: cannot listen on 127.0.0.1:" + port));
  close(listener);
}

TEST(DemoFlagsTest, BadFlagsFailWithAMessage) {
  struct Case {
    std::vector<std::string> args;
    int exit_code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--framework", "nope"}, 2, "demo: --framework must be httplib or beast, got 'nope'\n"},
      {{"--port", "abc"}, 2, "demo: --port must be a number from 0 to 65535, got 'abc'\n"},
      {{"--port", "65536"}, 2, "demo: --port must be a number from 0 to 65535, got '65536'\n"},
      {{"--port"}, 2, "demo: --port needs a value\n"},
      {{"--bogus"}, 2, "demo: unknown argument '--bogus'\n"},
      {{"--downstream", "ftp://x"}, 2, "demo: --downstream must be an http:// URL, got 'ftp://x'"},
      {{"--client", "http://127.0.0.1:1"}, 2, "demo: --client needs at least one PATH\n"},
      {{"--sampling-rules", "/no/such/rules.json"}, 1, "demo: sampling rules: /no/such/rules.json"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrJoin(c.args, " "));
    // Nothing listens there: the demo must fail before it serves or sends anything.
    DemoProcess demo(c.args, "127.0.0.1:9");
    EXPECT_EQ(demo.Wait(absl::Now() + kStepTimeout), c.exit_code);
    EXPECT_EQ(demo.out(), "");
    EXPECT_THAT(demo.err(), HasSubstr(c.message));
    if (c.exit_code == 2) {
      EXPECT_THAT(demo.err(), HasSubstr("usage: demo"));
    }
  }
}

}  // namespace
}  // namespace xraysink::tools
