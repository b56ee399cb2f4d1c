// End to end on 127.0.0.1: real cpp-httplib servers and clients, traced with the middleware.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "context/handoff.h"
#include "core/recorder.h"
#include "core/testing/collecting_sink.h"
#include "core/testing/loopback_listener.h"
#include "core/testing/schema_validator.h"
#include "middleware/httplib_client.h"
#include "middleware/httplib_server.h"
#include "middleware/testing/trace_header_forms.h"
#include "rapidjson/document.h"

#if defined(__SANITIZE_THREAD__)
// Under TSan: Debian's libcpp-httplib is not built with it, and with many of its workers busy at
// once (ConcurrentRequestsEachGetTheirOwnSegment) TSan reports a race between two of them inside
// the library (a memcmp and the allocation it reads, both called from the library), with or
// without the middleware (see the README). Reports from what the library calls are suppressed,
// by the line tools/bench/bench_tools_test.cc gives its httplib servers; our code on httplib's
// threads is still checked. Built in, as TSAN_OPTIONS is read before the test could set it.
extern "C" const char* __tsan_default_suppressions() {
  return "called_from_lib:libcpp-httplib.so\n";
}
#endif

namespace xraysink::middleware {
namespace {

constexpr char kT[] = "1-5759e988-bd862e3fe1be46a994272793";
constexpr char kP[] = "53995c3f42cd8ad8";

struct AlwaysSample : core::Sampler {
  core::SamplingDecision ShouldTrace(const core::SamplingRequest&) override { return {true, ""}; }
};

// A traced httplib server on 127.0.0.1, port picked by the kernel.
class TracedServer {
 public:
  TracedServer(std::shared_ptr<core::Recorder> recorder, std::string name)
      : TracedServer(std::make_shared<RequestTracer>(recorder, SegmentNaming::Fixed(name))) {}
  explicit TracedServer(std::shared_ptr<const RequestTracer> tracer, HttplibHooks hooks = {}) {
    InstallTracing(server_, std::move(tracer), std::move(hooks));
    port_ = server_.bind_to_any_port("127.0.0.1");
  }
  ~TracedServer() {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }
  httplib::Server& server() { return server_; }
  void Start() {
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!server_.is_running() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    ASSERT_TRUE(server_.is_running());
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

class HttplibMiddlewareTest : public ::testing::Test {
 protected:
  HttplibMiddlewareTest() {
    core::RecorderOptions options;
    options.service_name = "svc";
    options.read_environment = false;
    options.sampler = std::make_shared<AlwaysSample>();
    options.sink = sink_;
    recorder_ = *core::Recorder::Create(std::move(options));
  }

  // Documents sent so far, schema-checked, by segment name.
  std::multimap<std::string, rapidjson::Document> Segments() {
    std::multimap<std::string, rapidjson::Document> out;
    for (const std::string& json : sink_->documents()) {
      const absl::Status valid = core::testing::ValidateSegmentDocument(json);
      EXPECT_TRUE(valid.ok()) << valid.message();
      rapidjson::Document document;
      document.Parse(json.c_str());
      out.emplace(document["name"].GetString(), std::move(document));
    }
    return out;
  }

  std::shared_ptr<core::testing::CollectingSink> sink_ =
      std::make_shared<core::testing::CollectingSink>();
  std::shared_ptr<core::Recorder> recorder_;
};

TEST_F(HttplibMiddlewareTest, TwoChainedServicesMakeOneTrace) {
  TracedServer backend(recorder_, "backend");
  backend.server().Get("/hello", [&](const httplib::Request&, httplib::Response& response) {
    recorder_->BeginSubsegment("compute");
    recorder_->EndSubsegment();
    response.set_content("hello", "text/plain");
  });
  backend.Start();
  TracedServer frontend(recorder_, "frontend");
  frontend.server().Get("/downstream", [&](const httplib::Request&, httplib::Response& response) {
    TracedClient client(backend.url(), recorder_.get());
    httplib::Result result = client.Get("/hello");
    response.status = result ? result->status : 502;
  });
  frontend.Start();

  httplib::Client client(frontend.url());
  httplib::Result result = client.Get("/downstream", {{"User-Agent", "test-agent"}});
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 200);
  const std::string response_header = result->get_header_value("X-Amzn-Trace-Id");
  ASSERT_EQ(response_header.rfind("Root=1-", 0), 0u) << response_header;

  auto segments = Segments();
  ASSERT_EQ(segments.size(), 2u);
  const auto& front = segments.find("frontend")->second;
  const auto& back = segments.find("backend")->second;
  EXPECT_EQ(response_header, std::string("Root=") + front["trace_id"].GetString());
  EXPECT_STREQ(front["trace_id"].GetString(), back["trace_id"].GetString());
  EXPECT_FALSE(front.HasMember("parent_id"));
  const auto& call = front["subsegments"][0];
  EXPECT_STREQ(call["name"].GetString(), "127.0.0.1");
  EXPECT_STREQ(call["namespace"].GetString(), "remote");
  EXPECT_EQ(call["http"]["response"]["status"].GetInt(), 200);
  EXPECT_EQ(std::string(call["http"]["request"]["url"].GetString()), backend.url() + "/hello");
  EXPECT_STREQ(back["parent_id"].GetString(), call["id"].GetString());
  EXPECT_STREQ(back["subsegments"][0]["name"].GetString(), "compute");
  EXPECT_STREQ(front["http"]["request"]["method"].GetString(), "GET");
  EXPECT_STREQ(front["http"]["request"]["user_agent"].GetString(), "test-agent");
  EXPECT_STREQ(front["http"]["request"]["client_ip"].GetString(), "127.0.0.1");
  EXPECT_EQ(std::string(front["http"]["request"]["url"].GetString()),
            "http://127.0.0.1:" + std::to_string(frontend.port()) + "/downstream");
  EXPECT_EQ(back["http"]["response"]["content_length"].GetInt(), 5);
}

TEST_F(HttplibMiddlewareTest, TraceHeaderForms) {
  TracedServer server(recorder_, "svc");
  server.server().Get("/hello", [](const httplib::Request&, httplib::Response& response) {
    response.set_content("hi", "text/plain");
  });
  server.Start();
  httplib::Client client(server.url());
  const auto get = [&](const std::string& header) {
    httplib::Result result = client.Get("/hello", {{"X-Amzn-Trace-Id", header}});
    EXPECT_TRUE(result);
    return result ? result->get_header_value("X-Amzn-Trace-Id") : std::string();
  };

  // Root + Parent + Sampled=1: continue the caller's trace under its parent.
  EXPECT_EQ(get(std::string("Root=") + kT + ";Parent=" + kP + ";Sampled=1"),
            std::string("Root=") + kT);
  auto segments = Segments();
  ASSERT_EQ(segments.size(), 1u);
  EXPECT_STREQ(segments.begin()->second["trace_id"].GetString(), kT);
  EXPECT_STREQ(segments.begin()->second["parent_id"].GetString(), kP);

  // Sampled=0: nothing sent, the caller's Root kept.
  EXPECT_EQ(get(std::string("Root=") + kT + ";Parent=" + kP + ";Sampled=0"),
            std::string("Root=") + kT);
  EXPECT_EQ(sink_->size(), 1u);

  // Sampled=?: the answer says what we decided.
  EXPECT_EQ(get(std::string("Root=") + kT + ";Sampled=?;k1=v1"),
            std::string("Root=") + kT + ";Sampled=1");
  EXPECT_EQ(sink_->size(), 2u);

  // Malformed: a new trace; nothing of the request echoed.
  const std::string answer = get("Root=evil;<script>");
  EXPECT_EQ(answer.find("evil"), std::string::npos);
  EXPECT_EQ(answer.size(), std::string("Root=").size() + 35);
  EXPECT_EQ(sink_->size(), 3u);

  // Lowercase keys and spaces are accepted (Node rules).
  EXPECT_EQ(get(std::string("root=") + kT + "; parent=" + kP + "; sampled=1"),
            std::string("Root=") + kT);
}

TEST_F(HttplibMiddlewareTest, StatusesAndExceptions) {
  TracedServer server(recorder_, "svc");
  server.server().Get(
      "/fail", [](const httplib::Request&, httplib::Response& response) { response.status = 500; });
  server.server().Get("/limited", [](const httplib::Request&, httplib::Response& response) {
    response.status = 429;
  });
  server.server().Get("/throw", [](const httplib::Request&, httplib::Response&) {
    throw std::logic_error("handler bug");
  });
  server.Start();
  httplib::Client client(server.url());
  EXPECT_EQ(client.Get("/fail")->status, 500);
  EXPECT_EQ(client.Get("/limited")->status, 429);
  EXPECT_EQ(client.Get("/throw")->status, 500);
  EXPECT_EQ(client.Get("/missing")->status, 404);

  std::map<std::string, int> seen;
  for (const std::string& json : sink_->documents()) {
    ASSERT_TRUE(core::testing::ValidateSegmentDocument(json).ok());
    rapidjson::Document doc;
    doc.Parse(json.c_str());
    const std::string url = doc["http"]["request"]["url"].GetString();
    const int status = doc["http"]["response"]["status"].GetInt();
    seen[url.substr(url.rfind('/'))] = status;
    if (status == 500) {
      EXPECT_TRUE(doc["fault"].GetBool());
      EXPECT_FALSE(doc.HasMember("error"));
    }
    if (status == 429) {
      EXPECT_TRUE(doc["error"].GetBool());
      EXPECT_TRUE(doc["throttle"].GetBool());
    }
    if (status == 404) {
      EXPECT_TRUE(doc["error"].GetBool());
    }
    if (url.find("/throw") != std::string::npos) {
      EXPECT_STREQ(doc["cause"]["exceptions"][0]["type"].GetString(), "std::logic_error");
      EXPECT_STREQ(doc["cause"]["exceptions"][0]["message"].GetString(), "handler bug");
    }
  }
  EXPECT_EQ(seen, (std::map<std::string, int>{
                      {"/fail", 500}, {"/limited", 429}, {"/throw", 500}, {"/missing", 404}}));
}

TEST_F(HttplibMiddlewareTest, ForwardedForNamesTheClient) {
  TracedServer server(recorder_, "svc");
  server.server().Get("/hello", [](const httplib::Request&, httplib::Response&) {});
  server.Start();
  httplib::Client client(server.url());
  ASSERT_TRUE(client.Get("/hello", {{"X-Forwarded-For", "10.1.2.3, 10.0.0.1"}}));
  // Repeated, in any case: the first counts.
  ASSERT_TRUE(client.Get("/hello", {{"x-forwarded-for", "10.9.9.9"},
                                    {"X-Forwarded-For", "10.8.8.8"},
                                    {"user-agent", "first-agent"},
                                    {"User-Agent", "second-agent"}}));
  std::vector<rapidjson::Document> segments;
  for (auto& [name, doc] : Segments()) segments.push_back(std::move(doc));
  ASSERT_EQ(segments.size(), 2u);
  const auto& request = segments[0]["http"]["request"];
  EXPECT_STREQ(request["client_ip"].GetString(), "10.1.2.3");
  EXPECT_TRUE(request["x_forwarded_for"].GetBool());
  EXPECT_STREQ(segments[1]["http"]["request"]["client_ip"].GetString(), "10.9.9.9");
  EXPECT_STREQ(segments[1]["http"]["request"]["user_agent"].GetString(), "first-agent");
}

// A streamed body's size is the length its provider was given; without one (or chunked) it is
// unknown, and the segment has none rather than the empty body's 0.
TEST_F(HttplibMiddlewareTest, StreamedBodiesRecordTheirLengthOnlyWhenKnown) {
  TracedServer server(recorder_, "svc");
  const auto write_hello = [](size_t offset, size_t, httplib::DataSink& sink) {
    if (offset == 0) sink.write("hello world", 11);
    return true;
  };
  server.server().Get("/sized", [&](const httplib::Request&, httplib::Response& response) {
    response.set_content_provider(11, "text/plain", write_hello);
  });
  server.server().Get("/chunked", [](const httplib::Request&, httplib::Response& response) {
    response.set_chunked_content_provider("text/plain", [](size_t, httplib::DataSink& sink) {
      sink.write("hello world", 11);
      sink.done();
      return true;
    });
  });
  server.Start();
  httplib::Client client(server.url());
  for (const char* path : {"/sized", "/chunked"}) {
    httplib::Result result = client.Get(path);
    ASSERT_TRUE(result) << path;
    EXPECT_EQ(result->body, "hello world") << path;
  }
  std::map<std::string, int> length_by_url;
  for (const auto& [name, segment] : Segments()) {
    const auto& response = segment["http"]["response"];
    EXPECT_EQ(response["status"].GetInt(), 200);
    length_by_url[segment["http"]["request"]["url"].GetString()] =
        response.HasMember("content_length") ? response["content_length"].GetInt() : -1;
  }
  EXPECT_EQ(length_by_url, (std::map<std::string, int>{{server.url() + "/sized", 11},
                                                       {server.url() + "/chunked", -1}}));
}

// A null tracer traces with the global recorder, segments named after its service.
TEST_F(HttplibMiddlewareTest, ANullTracerTracesWithTheGlobalRecorder) {
  core::SetGlobalRecorder(recorder_);
  {
    TracedServer server(nullptr);
    server.server().Get("/hello", [](const httplib::Request&, httplib::Response&) {});
    server.Start();
    httplib::Client client(server.url());
    httplib::Result result = client.Get("/hello");
    EXPECT_TRUE(result && result->status == 200);
  }
  core::SetGlobalRecorder(nullptr);
  auto segments = Segments();
  ASSERT_EQ(segments.size(), 1u);
  EXPECT_EQ(segments.begin()->first, "svc");
}

// 200 requests in flight at once, each on its own httplib worker thread (a pool of 200): every
// handler waits at a gate until all 200 have arrived, then hands a job to another thread with
// the request's context (context::Wrap), which opens a subsegment there. Each handler and job
// checks all along that the current entity is its own request's: nothing crossed.
TEST_F(HttplibMiddlewareTest, ConcurrentRequestsEachGetTheirOwnSegment) {
  constexpr int kRequests = 200;
  // Passing runs take well under a second (sanitizers included): these only bound a failing
  // one. Every request must have arrived by `deadline` (each handler waits at the gate until
  // then at most, and after it not at all), every job have finished by `deadline + kDeadline`.
  constexpr auto kDeadline = std::chrono::seconds(20);
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  std::atomic<int> crossed{0};
  const auto check = [&](bool own) {
    if (!own) ++crossed;
  };
  std::atomic<int> jobs_on_handler_thread{0};
  std::mutex mu;
  std::condition_variable arrival;  // each request reaching its handler
  std::condition_variable gate;     // all of them there
  int arrived = 0;                  // guarded by mu
  // Declared before the server: its jobs may still reference the test's state while the server
  // stops, so it is joined after the server's workers are.
  boost::asio::thread_pool jobs(4);

  TracedServer server(recorder_, "svc");
  // One worker per request: all of them can be in flight at once.
  server.server().new_task_queue = [] { return new httplib::ThreadPool(kRequests); };
  server.server().Get(
      R"(/item/(\d+))", [&](const httplib::Request& request, httplib::Response& response) {
        const int item = std::stoi(request.matches[1]);
        core::Entity* const segment = core::Recorder::PeekCurrentEntity();
        check(segment != nullptr);
        check(recorder_->PutAnnotation("item", item));
        {
          std::unique_lock<std::mutex> lock(mu);
          if (++arrived == kRequests) gate.notify_all();
          arrival.notify_one();
          if (!gate.wait_until(lock, deadline, [&] { return arrived == kRequests; })) {
            ADD_FAILURE() << "item " << item << ": only " << arrived << " of " << kRequests
                          << " requests arrived";
          }
        }
        check(core::Recorder::PeekCurrentEntity() == segment);

        // The job runs on a thread of `jobs`, in a copy of this request's context.
        const std::thread::id handler_thread = std::this_thread::get_id();
        auto done = std::make_shared<std::promise<void>>();
        std::future<void> finished = done->get_future();
        boost::asio::post(jobs, context::Wrap([&, done, item, segment, handler_thread] {
                            if (std::this_thread::get_id() == handler_thread) {
                              ++jobs_on_handler_thread;
                            }
                            check(core::Recorder::PeekCurrentEntity() == segment);
                            core::Subsegment* const load = recorder_->BeginSubsegment("load");
                            check(load != nullptr && core::Recorder::PeekCurrentEntity() == load);
                            check(recorder_->PutAnnotation("item", item));
                            recorder_->EndSubsegment();
                            check(core::Recorder::PeekCurrentEntity() == segment);
                            done->set_value();
                          }));
        if (finished.wait_until(deadline + kDeadline) != std::future_status::ready) {
          ADD_FAILURE() << "item " << item << ": the job did not finish";
        }
        check(core::Recorder::PeekCurrentEntity() == segment);
        response.set_content(std::to_string(item), "text/plain");
      });
  server.Start();

  // Debian's libcpp-httplib listens with a backlog of 5 (CPPHTTPLIB_LISTEN_BACKLOG, compiled in):
  // 200 connections at once overflow it, and the kernel retransmits the SYN-ACK of a handshake
  // it dropped after 1, 2, 4, 8, 16 s. So client `item` starts once request `item - kAhead` has
  // reached its handler (which holds it at the gate): no more than kAhead + 1 connections ever
  // wait to be accepted, and all 200 requests still end up in flight together.
  constexpr int kAhead = 3;
  std::atomic<int> answered{0};
  std::vector<std::thread> clients;
  for (int item = 0; item < kRequests; ++item) {
    {
      std::unique_lock<std::mutex> lock(mu);
      if (!arrival.wait_until(lock, deadline, [&] { return arrived >= item - kAhead; })) {
        ADD_FAILURE() << "request " << item - kAhead << " did not arrive";
        break;
      }
    }
    clients.emplace_back([&, item] {
      httplib::Client client(server.url());
      client.set_connection_timeout(kDeadline);
      client.set_read_timeout(3 * kDeadline);  // beyond the jobs' deadline
      httplib::Result result = client.Get("/item/" + std::to_string(item));
      EXPECT_TRUE(result) << "item " << item << ": " << httplib::to_string(result.error());
      if (result && result->status == 200 && result->body == std::to_string(item)) ++answered;
    });
  }
  for (auto& thread : clients) thread.join();
  EXPECT_EQ(answered.load(), kRequests);
  EXPECT_EQ(crossed.load(), 0);
  EXPECT_EQ(jobs_on_handler_thread.load(), 0);

  std::set<std::string> ids;
  std::set<int> items;
  for (auto& [name, doc] : Segments()) {
    ids.insert(doc["id"].GetString());
    ASSERT_TRUE(doc.HasMember("annotations")) << doc["http"]["request"]["url"].GetString();
    const int item = doc["annotations"]["item"].GetInt();
    const std::string url = doc["http"]["request"]["url"].GetString();
    EXPECT_EQ(url.substr(url.rfind('/') + 1), std::to_string(item));
    ASSERT_TRUE(doc.HasMember("subsegments")) << url;
    ASSERT_EQ(doc["subsegments"].Size(), 1u) << url;
    const auto& load = doc["subsegments"][0];
    EXPECT_STREQ(load["name"].GetString(), "load");
    ASSERT_TRUE(load.HasMember("annotations")) << url;
    EXPECT_EQ(load["annotations"]["item"].GetInt(), item);
    items.insert(item);
  }
  EXPECT_EQ(sink_->size(), static_cast<size_t>(kRequests));
  EXPECT_EQ(ids.size(), static_cast<size_t>(kRequests));
  EXPECT_EQ(items.size(), static_cast<size_t>(kRequests));
}

TEST_F(HttplibMiddlewareTest, ConnectionErrorsAreFaults) {
  // A port that was just free: nothing listens there.
  int dead_port;
  {
    const int probe = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(probe, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    socklen_t length = sizeof(address);
    getsockname(probe, reinterpret_cast<sockaddr*>(&address), &length);
    dead_port = ntohs(address.sin_port);
    close(probe);
  }
  recorder_->BeginSegment("caller");
  TracedClient client("http://127.0.0.1:" + std::to_string(dead_port), recorder_.get());
  client.client().set_connection_timeout(1, 0);
  EXPECT_FALSE(client.Get("/hello"));
  recorder_->EndSegment();
  auto segments = Segments();
  const auto& call = segments.begin()->second["subsegments"][0];
  EXPECT_TRUE(call["fault"].GetBool());
  EXPECT_TRUE(call["cause"]["exceptions"][0]["remote"].GetBool());
  EXPECT_STREQ(call["cause"]["exceptions"][0]["type"].GetString(), "httplib::Error");
}

// A downstream that takes the connection and never answers: the call times out, a fault with
// the timeout as its cause.
TEST_F(HttplibMiddlewareTest, ClientTimeoutsAreFaults) {
  // Listening, never accepting: the kernel completes the handshake, nobody ever answers.
  core::testing::LoopbackListener silent;
  ASSERT_TRUE(silent.ok());

  recorder_->BeginSegment("caller");
  TracedClient client("http://127.0.0.1:" + std::to_string(silent.port()), recorder_.get());
  client.client().set_read_timeout(0, 200 * 1000);
  httplib::Result result = client.Get("/hello");
  recorder_->EndSegment();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error(), httplib::Error::Read);

  auto segments = Segments();
  ASSERT_EQ(segments.size(), 1u);
  const auto& call = segments.begin()->second["subsegments"][0];
  EXPECT_STREQ(call["namespace"].GetString(), "remote");
  EXPECT_TRUE(call["fault"].GetBool());
  EXPECT_FALSE(call["http"].HasMember("response")) << "nothing was answered";
  EXPECT_TRUE(call["cause"]["exceptions"][0]["remote"].GetBool());
  EXPECT_STREQ(call["cause"]["exceptions"][0]["type"].GetString(), "httplib::Error");
  EXPECT_STREQ(call["cause"]["exceptions"][0]["message"].GetString(), "Read");
}

// Each method of the traced client is a `remote` subsegment with its method, and carries the
// header naming that subsegment as the downstream's parent.
TEST_F(HttplibMiddlewareTest, EveryClientMethodIsTracedAndPropagated) {
  httplib::Server plain;
  std::mutex mu;
  std::map<std::string, std::string> headers_seen;  // by method
  const auto record = [&](const httplib::Request& request, httplib::Response& response) {
    std::lock_guard<std::mutex> lock(mu);
    headers_seen[request.method] = request.get_header_value("X-Amzn-Trace-Id");
    response.status = 204;
  };
  plain.Get("/r", record);
  plain.Post("/r", record);
  plain.Put("/r", record);
  plain.Patch("/r", record);
  plain.Delete("/r", record);
  plain.Options("/r", record);
  const int port = plain.bind_to_any_port("127.0.0.1");
  std::thread thread([&] { plain.listen_after_bind(); });

  recorder_->BeginSegment("caller");
  TracedClient client("http://127.0.0.1:" + std::to_string(port), recorder_.get());
  std::vector<int> statuses;
  for (const httplib::Result& result :
       {client.Get("/r"), client.Post("/r", "{}", "application/json"),
        client.Put("/r", "{}", "application/json"), client.Patch("/r", "{}", "application/json"),
        client.Delete("/r"), client.Head("/r"), client.Options("/r")}) {
    statuses.push_back(result ? result->status : -1);
  }
  recorder_->EndSegment();
  plain.stop();
  thread.join();
  // httplib answers HEAD from the GET route.
  EXPECT_EQ(statuses, std::vector<int>(7, 204));

  auto segments = Segments();
  ASSERT_EQ(segments.size(), 1u);
  const auto& calls = segments.begin()->second["subsegments"];
  ASSERT_EQ(calls.Size(), 7u);
  const std::string trace_id = segments.begin()->second["trace_id"].GetString();
  std::vector<std::string> methods;
  std::lock_guard<std::mutex> lock(mu);
  for (const auto& call : calls.GetArray()) {
    const std::string method = call["http"]["request"]["method"].GetString();
    methods.push_back(method);
    EXPECT_STREQ(call["namespace"].GetString(), "remote");
    EXPECT_EQ(call["http"]["response"]["status"].GetInt(), 204);
    EXPECT_EQ(headers_seen[method],
              "Root=" + trace_id + ";Parent=" + call["id"].GetString() + ";Sampled=1")
        << method;
  }
  EXPECT_EQ(methods,
            (std::vector<std::string>{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}));
}

TEST_F(HttplibMiddlewareTest, ClientOutsideATraceSendsNoHeader) {
  std::string seen_header = "unset";
  httplib::Server plain;
  plain.Get("/hello", [&](const httplib::Request& request, httplib::Response&) {
    seen_header = request.get_header_value("X-Amzn-Trace-Id");
  });
  const int port = plain.bind_to_any_port("127.0.0.1");
  std::thread thread([&] { plain.listen_after_bind(); });
  TracedClient client("http://127.0.0.1:" + std::to_string(port), recorder_.get());
  EXPECT_TRUE(client.Get("/hello"));
  plain.stop();
  thread.join();
  EXPECT_EQ(seen_header, "");
  EXPECT_EQ(recorder_->stats().context_missing, 1u);
}

// The TCP_NODELAY option of this process's socket connected from 127.0.0.1:`local_port` to
// 127.0.0.1:`peer_port`, or -1 when there is none.
int NoDelayOfConnection(int local_port, int peer_port) {
  for (int fd = 0; fd < 4096; ++fd) {
    sockaddr_in local{}, peer{};
    socklen_t local_size = sizeof(local), peer_size = sizeof(peer);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_size) != 0 ||
        getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_size) != 0 ||
        local.sin_family != AF_INET || ntohs(local.sin_port) != local_port ||
        ntohs(peer.sin_port) != peer_port) {
      continue;
    }
    int on = 0;
    socklen_t size = sizeof(on);
    if (getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &size) != 0) return -1;
    return on;
  }
  return -1;
}

// httplib sends a request's headers and body apart; with Nagle's algorithm, a kept-alive POST's
// body would wait for the server's delayed ACK (~40 ms a call).
TEST_F(HttplibMiddlewareTest, TracedClientConnectionsSendWithoutNagleDelay) {
  httplib::Server plain;
  std::atomic<int> client_port{0};
  plain.Post("/r", [&](const httplib::Request& request, httplib::Response& response) {
    client_port = request.remote_port;
    response.status = 204;
  });
  const int port = plain.bind_to_any_port("127.0.0.1");
  std::thread thread([&] { plain.listen_after_bind(); });

  recorder_->BeginSegment("caller");
  {
    TracedClient client("http://127.0.0.1:" + std::to_string(port), recorder_.get());
    client.client().set_keep_alive(true);  // the connection stays open to be looked at
    const httplib::Result result = client.Post("/r", "{}", "application/json");
    EXPECT_TRUE(result && result->status == 204);
    EXPECT_EQ(NoDelayOfConnection(client_port, port), 1);
  }  // Closed by the client's destructor: its stop(), inlined into this file, unlocks a mutex
     // the library (not built with TSan) locked, which TSan reports.

  recorder_->EndSegment();
  plain.stop();
  thread.join();
}

// A handler's own X-Amzn-Trace-Id (any case) is replaced: the response carries one, ours.
TEST_F(HttplibMiddlewareTest, TheResponseCarriesOneTraceHeaderOurs) {
  TracedServer server(recorder_, "own-header");
  server.server().Get("/a", [](const httplib::Request&, httplib::Response& response) {
    response.set_header("x-amzn-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793");
    response.set_content("a", "text/plain");
  });
  server.Start();
  httplib::Client client(server.url());
  const httplib::Result result = client.Get("/a");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->get_header_value_count("X-Amzn-Trace-Id"), 1u);
  const auto segments = Segments();
  ASSERT_EQ(segments.count("own-header"), 1u);
  EXPECT_EQ(result->get_header_value("X-Amzn-Trace-Id"),
            std::string("Root=") + segments.find("own-header")->second["trace_id"].GetString());
}

// Debian's httplib sends without MSG_NOSIGNAL: a downstream that resets the connection between
// httplib's liveness check and its send would raise SIGPIPE and end the service. The traced
// client's calls run with SIGPIPE blocked on their thread (seen from the client's own socket
// callback, which runs on that thread during the call), and the thread's mask is as it was
// after.
TEST_F(HttplibMiddlewareTest, ClientCallsRunWithSigpipeBlocked) {
  TracedServer backend(recorder_, "backend");
  backend.server().Get("/hello", [](const httplib::Request&, httplib::Response& response) {
    response.set_content("hi", "text/plain");
  });
  backend.Start();
  const auto sigpipe_blocked = [] {
    sigset_t mask;
    pthread_sigmask(SIG_SETMASK, nullptr, &mask);
    return sigismember(&mask, SIGPIPE) == 1;
  };
  ASSERT_FALSE(sigpipe_blocked());
  TracedClient client(backend.url(), recorder_.get());
  int calls = 0;
  bool blocked_during_call = false;
  client.client().set_socket_options([&](socket_t) {
    ++calls;
    blocked_during_call = sigpipe_blocked();
  });
  EXPECT_TRUE(client.Get("/hello"));
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(blocked_during_call);
  EXPECT_FALSE(sigpipe_blocked());
}

// Every header form of the spec, against a sampler that says what the form needs it to say.
TEST(HttplibTraceHeaderTest, EveryFormOfTheSpec) {
  testing::ScriptedRecorder scripted = testing::MakeScriptedRecorder();
  TracedServer server(scripted.recorder, "svc");
  server.server().Get("/hello", [](const httplib::Request&, httplib::Response& response) {
    response.set_content("hi", "text/plain");
  });
  server.Start();
  httplib::Client client(server.url());
  testing::CheckTraceHeaderForms(
      *scripted.sampler, *scripted.sink, "127.0.0.1:" + std::to_string(server.port()),
      [&](const std::string& name, const std::string& value,
          const std::string& target) -> std::optional<std::string> {
        httplib::Result result = client.Get(target.c_str(), {{name, value}});
        EXPECT_TRUE(result) << httplib::to_string(result.error());
        if (!result) return std::nullopt;
        EXPECT_EQ(result->status, 200);
        return result->get_header_value("X-Amzn-Trace-Id");
      });
}

// The server's own hooks run inside the request's trace, and what they answer is what the
// segment records.
TEST_F(HttplibMiddlewareTest, UserHooksRunInsideTheTrace) {
  std::mutex mu;
  std::vector<std::string> seen;  // each hook and handler, and whether a segment was current
  const auto note = [&](const std::string& what) {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(what + (core::Recorder::PeekCurrentEntity() != nullptr ? " traced" : " bare"));
  };
  HttplibHooks hooks;
  hooks.pre_routing = [&](const httplib::Request& request, httplib::Response& response) {
    note("pre " + request.path);
    if (request.path != "/early") return httplib::Server::HandlerResponse::Unhandled;
    response.status = 403;
    response.set_content("no", "text/plain");
    return httplib::Server::HandlerResponse::Handled;
  };
  hooks.post_routing = [&](const httplib::Request& request, httplib::Response& response) {
    note("post " + request.path);
    response.set_header("X-Post", "1");
    if (request.path == "/post-throws") throw std::runtime_error("post hook bug");
  };
  hooks.exception = [&](const httplib::Request& request, httplib::Response& response,
                        std::exception_ptr) {
    note("exception " + request.path);
    if (request.path == "/hook-throws") throw std::runtime_error("exception hook bug");
    response.status = 503;
    response.set_content("sorry", "text/plain");
  };
  TracedServer server(std::make_shared<RequestTracer>(recorder_, SegmentNaming::Fixed("svc")),
                      std::move(hooks));
  server.server().Get("/hello", [&](const httplib::Request&, httplib::Response& response) {
    note("handler /hello");
    response.set_content("hi", "text/plain");
  });
  for (const char* path : {"/throw", "/hook-throws"}) {
    server.server().Get(path, [](const httplib::Request&, httplib::Response&) {
      throw std::logic_error("handler bug");
    });
  }
  server.server().Get("/post-throws", [](const httplib::Request&, httplib::Response& response) {
    response.set_content("fine", "text/plain");
  });
  server.Start();
  httplib::Client client(server.url());

  httplib::Result hello = client.Get("/hello");
  ASSERT_TRUE(hello);
  EXPECT_EQ(hello->status, 200);
  EXPECT_EQ(hello->get_header_value("X-Post"), "1");
  EXPECT_EQ(hello->get_header_value("X-Amzn-Trace-Id").rfind("Root=1-", 0), 0u);
  httplib::Result early = client.Get("/early");
  ASSERT_TRUE(early);
  EXPECT_EQ(early->status, 403);
  EXPECT_EQ(early->body, "no");
  httplib::Result thrown = client.Get("/throw");
  ASSERT_TRUE(thrown);
  EXPECT_EQ(thrown->status, 503);
  EXPECT_EQ(thrown->body, "sorry");
  httplib::Result hook_threw = client.Get("/hook-throws");
  ASSERT_TRUE(hook_threw);
  EXPECT_EQ(hook_threw->status, 500);
  httplib::Result post_threw = client.Get("/post-throws");
  ASSERT_TRUE(post_threw);
  EXPECT_EQ(post_threw->status, 500);
  EXPECT_EQ(post_threw->get_header_value("X-Amzn-Trace-Id").rfind("Root=1-", 0), 0u);

  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(seen, (std::vector<std::string>{
                        "pre /hello traced", "handler /hello traced", "post /hello traced",
                        "pre /early traced", "post /early traced", "pre /throw traced",
                        "exception /throw traced", "post /throw traced", "pre /hook-throws traced",
                        "exception /hook-throws traced", "post /hook-throws traced",
                        "pre /post-throws traced", "post /post-throws traced"}));
  }
  std::map<std::string, rapidjson::Document> by_path;
  for (auto& [name, doc] : Segments()) {
    const std::string url = doc["http"]["request"]["url"].GetString();
    by_path.emplace(url.substr(url.rfind('/')), std::move(doc));
  }
  ASSERT_EQ(by_path.size(), 5u);
  EXPECT_EQ(by_path["/hello"]["http"]["response"]["status"].GetInt(), 200);
  EXPECT_FALSE(by_path["/hello"].HasMember("fault"));
  EXPECT_EQ(by_path["/early"]["http"]["response"]["status"].GetInt(), 403);
  EXPECT_TRUE(by_path["/early"]["error"].GetBool());
  const auto cause_message = [&](const std::string& path) {
    const rapidjson::Document& doc = by_path[path];
    return doc.HasMember("cause")
               ? std::string(doc["cause"]["exceptions"][0]["message"].GetString())
               : std::string("(no cause)");
  };
  // The status the hook answered with, and the handler's exception as the cause.
  EXPECT_EQ(by_path["/throw"]["http"]["response"]["status"].GetInt(), 503);
  EXPECT_TRUE(by_path["/throw"]["fault"].GetBool());
  EXPECT_EQ(cause_message("/throw"), "handler bug");
  EXPECT_EQ(by_path["/hook-throws"]["http"]["response"]["status"].GetInt(), 500);
  EXPECT_TRUE(by_path["/hook-throws"]["fault"].GetBool());
  EXPECT_EQ(cause_message("/hook-throws"), "handler bug");
  EXPECT_EQ(by_path["/post-throws"]["http"]["response"]["status"].GetInt(), 500);
  EXPECT_TRUE(by_path["/post-throws"]["fault"].GetBool());
  EXPECT_EQ(cause_message("/post-throws"), "post hook bug");
}

}  // namespace
}  // namespace xraysink::middleware
