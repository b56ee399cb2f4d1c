// The benchmark tools whose figures docs/PERFORMANCE.md quotes, run for real and briefly: their
// counts add up (every datagram emit_load sends is received; the traced hello server sends one
// segment per request, and the sink receives them all), and bad arguments get a message and a
// non-zero exit. Throughput is not asserted here: speed is the benchmarks' business.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "rapidjson/document.h"
#include "tools/testing/child_process.h"

namespace xraysink::tools {
namespace {

using testing::ChildProcess;
using ::testing::HasSubstr;
using ::testing::Not;

// How long each step may take: generous, for the sanitizer builds.
constexpr absl::Duration kStepTimeout = absl::Seconds(60);

std::string Tool(const std::string& name) {
  return (std::filesystem::path(std::getenv("TEST_SRCDIR")) / std::getenv("TEST_WORKSPACE") /
          "tools/bench" / name)
      .string();
}

// The command line of a tool with `args`.
std::vector<std::string> Argv(const std::string& tool, std::vector<std::string> args) {
  args.insert(args.begin(), Tool(tool));
  return args;
}

// The JSON object on the last line of `out`; a failure when there is none.
rapidjson::Document LastJsonLine(const std::string& out) {
  std::string text = out;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  rapidjson::Document document;
  document.Parse(text.substr(text.rfind('\n') + 1).c_str());
  EXPECT_TRUE(!document.HasParseError() && document.IsObject()) << "no JSON line in: " << out;
  if (document.HasParseError()) document.SetObject();
  return document;
}

// A member of a JSON object as an unsigned count; -1 when it is missing or not one.
int64_t Count(const rapidjson::Value& object, const char* name) {
  const auto member = object.FindMember(name);
  if (member == object.MemberEnd() || !member->value.IsUint64()) return -1;
  return static_cast<int64_t>(member->value.GetUint64());
}

// Runs `argv` and expects it to refuse: exit status 2 and `message` on stderr.
void ExpectRejected(const std::vector<std::string>& argv, const std::string& message) {
  SCOPED_TRACE(absl::StrJoin(argv, " "));
  ChildProcess process(argv, testing::WithoutVariables("AWS_XRAY_"));
  EXPECT_EQ(process.Wait(absl::Now() + kStepTimeout), 2);
  EXPECT_THAT(process.err(), HasSubstr(message));
}

TEST(BenchToolsTest, EmitLoadReceivesEveryDatagramItSends) {
  for (const bool raw : {false, true}) {
    std::vector<std::string> args = {"300", "4", "--json"};
    if (raw) args.push_back("--raw");
    ChildProcess emit_load(Argv("emit_load", args), testing::WithoutVariables("AWS_XRAY_"));
    ASSERT_EQ(emit_load.Wait(absl::Now() + kStepTimeout), 0) << emit_load.err();
    const rapidjson::Document result = LastJsonLine(emit_load.out());
    EXPECT_EQ(Count(result, "N"), 300) << emit_load.out();
    EXPECT_EQ(Count(result, "K"), 4);
    EXPECT_EQ(Count(result, "expected_datagrams"), 300);
    EXPECT_EQ(Count(result, "datagrams_received"), 300) << "raw: " << raw;
    EXPECT_GT(Count(result, "avg_datagram_bytes"), 500) << "raw: " << raw;
  }
}

TEST(BenchToolsTest, EmitLoadRejectsBadArguments) {
  ExpectRejected(Argv("emit_load", {"0", "10"}), "N must be > 0");
  ExpectRejected(Argv("emit_load", {"--fast"}), "usage: emit_load");
}

// The environment of a hello server. Debian's libcpp-httplib is not built with TSan, and under
// keep-alive load TSan reports a race between two of its worker threads inside it (a memcpy and a
// memcmp the library calls), with or without our middleware: under TSan, reports from the
// interceptors the library calls are suppressed. Our code on its threads is still checked.
ChildProcess::Environment HelloServerEnvironment() {
  ChildProcess::Environment env = testing::WithoutVariables("AWS_XRAY_");
  const std::string suppressions =
      (std::filesystem::path(std::getenv("TEST_TMPDIR")) / "httplib_tsan.supp").string();
  std::ofstream(suppressions) << "called_from_lib:libcpp-httplib.so\n";
  const char* options = std::getenv("TSAN_OPTIONS");
  env["TSAN_OPTIONS"] =
      absl::StrCat(options == nullptr ? "" : options, ":suppressions=", suppressions);
  return env;
}

// What run_http_bench.sh relies on, per framework: a traced hello server under http_load's load
// answers every request, sends one segment per request (every request sampled), and the UDP
// sink counts each of them when stopped.
class HelloServerTest : public ::testing::TestWithParam<const char*> {};

TEST_P(HelloServerTest, TracedServerSendsOneSegmentPerRequestAndTheSinkCountsThemAll) {
  const ChildProcess::Environment env = testing::WithoutVariables("AWS_XRAY_");
  ChildProcess sink(Argv("http_load", {"--udp-sink"}), env);
  const uint16_t sink_port = sink.ListeningPort(absl::Now() + kStepTimeout);
  ASSERT_NE(sink_port, 0);
  ChildProcess server(
      Argv("http_hello", {"--framework", GetParam(), "--traced", "1", "--port", "0", "--daemon",
                          absl::StrCat("127.0.0.1:", sink_port), "--sampling", "all"}),
      HelloServerEnvironment());
  const uint16_t port = server.ListeningPort(absl::Now() + kStepTimeout);
  ASSERT_NE(port, 0);

  // A count of requests to reach, not a time window to fill: a busy machine only makes it slower.
  ChildProcess load(Argv("http_load", {"--url", absl::StrCat("http://127.0.0.1:", port, "/hello"),
                                       "--connections", "4", "--requests", "200", "--duration-s",
                                       "60", "--warmup-s", "0"}),
                    env);
  ASSERT_EQ(load.Wait(absl::Now() + kStepTimeout), 0) << load.err();
  const rapidjson::Document load_result = LastJsonLine(load.out());
  EXPECT_GE(Count(load_result, "requests"), 200) << load.out();
  EXPECT_EQ(Count(load_result, "errors"), 0) << load.out();

  // Open loop: the schedule, not the server, sets the pace (closed, it would be many times more).
  ChildProcess paced(Argv("http_load", {"--url", absl::StrCat("http://127.0.0.1:", port, "/hello"),
                                        "--connections", "4", "--rate", "1000", "--requests", "50",
                                        "--duration-s", "60", "--warmup-s", "0"}),
                     env);
  ASSERT_EQ(paced.Wait(absl::Now() + kStepTimeout), 0) << paced.err();
  const rapidjson::Document paced_result = LastJsonLine(paced.out());
  EXPECT_GE(Count(paced_result, "requests"), 50) << paced.out();
  EXPECT_EQ(Count(paced_result, "errors"), 0) << paced.out();
  EXPECT_LE(paced_result["rps"].GetDouble(), 1100) << paced.out();

  // Stopped in run_http_bench.sh's order: the server flushes its segments, then the sink drains
  // its socket.
  server.Signal(SIGTERM);
  ASSERT_EQ(server.Wait(absl::Now() + kStepTimeout), 0) << server.err();
  const rapidjson::Document counters = LastJsonLine(server.out());
  const int64_t requests = Count(counters, "requests");
  EXPECT_GE(requests, Count(load_result, "requests") + Count(paced_result, "requests"))
      << server.out();
  EXPECT_EQ(Count(counters, "segments_sent"), requests) << server.out();
  EXPECT_EQ(Count(counters, "datagrams_sent"), requests) << server.out();
  EXPECT_EQ(Count(counters, "dropped"), 0) << server.out();
  sink.Signal(SIGTERM);
  ASSERT_EQ(sink.Wait(absl::Now() + kStepTimeout), 0) << sink.err();
  EXPECT_EQ(Count(LastJsonLine(sink.out()), "datagrams"), requests) << sink.out();
}

INSTANTIATE_TEST_SUITE_P(Frameworks, HelloServerTest, ::testing::Values("httplib", "beast"));

// A double member of a JSON object; NaN when it is missing or not a number.
double Number(const rapidjson::Value& object, const char* name) {
  const auto member = object.FindMember(name);
  if (member == object.MemberEnd() || !member->value.IsNumber()) return std::nan("");
  return member->value.GetDouble();
}

// Rounds http_load --versus left out, as it says on stderr: a server answered nothing in its
// slice (a stall of the loaded machine longer than the slice). 0 when it says nothing.
int LeftOutRounds(const std::string& err) {
  for (absl::string_view line : absl::StrSplit(err, '\n')) {
    constexpr absl::string_view kPrefix = "http_load: ";
    const size_t end = line.find(" round(s) left out");
    int rounds = 0;
    if (absl::StartsWith(line, kPrefix) && end != absl::string_view::npos &&
        absl::SimpleAtoi(line.substr(kPrefix.size(), end - kPrefix.size()), &rounds)) {
      return rounds;
    }
  }
  return 0;
}

// The versus test below relies on this reading of http_load's message (only a stalled machine
// makes http_load say it, so the test that reads it cannot be made to).
TEST(BenchToolsTest, LeftOutRoundsAreReadFromHttpLoadsMessage) {
  EXPECT_EQ(LeftOutRounds(""), 0);
  EXPECT_EQ(LeftOutRounds("http_load: 2 round(s) left out: a server answered nothing\n"), 2);
  EXPECT_EQ(LeftOutRounds("other\nhttp_load: 13 round(s) left out: a server answered nothing"), 13);
}

// What run_http_bench.sh relies on: http_load --versus loads two servers in turn, slice by
// slice, closed loop and open, over connections kept open throughout: each slice ends with no
// request in flight (else the next slice's first request would follow another on the same
// connection: its answer would be taken for the new request's, and at exit some would be left
// unanswered), every round gives a pair or is said to be left out, and each overhead comes with
// an interval around its median.
TEST(BenchToolsTest, HttpLoadVersusAlternatesBetweenTwoServers) {
  const ChildProcess::Environment env = testing::WithoutVariables("AWS_XRAY_");
  ChildProcess server_a(
      Argv("http_hello", {"--framework", "beast", "--traced", "0", "--port", "0"}), env);
  ChildProcess server_b(
      Argv("http_hello", {"--framework", "beast", "--traced", "0", "--port", "0"}), env);
  const uint16_t port_a = server_a.ListeningPort(absl::Now() + kStepTimeout);
  const uint16_t port_b = server_b.ListeningPort(absl::Now() + kStepTimeout);
  ASSERT_NE(port_a, 0);
  ASSERT_NE(port_b, 0);
  int64_t timed_a = 0;
  int64_t timed_b = 0;
  for (const bool open_loop : {false, true}) {
    SCOPED_TRACE(open_loop ? "open loop" : "closed loop");
    std::vector<std::string> args = {"--url",
                                     absl::StrCat("http://127.0.0.1:", port_a, "/hello"),
                                     "--versus",
                                     absl::StrCat("http://127.0.0.1:", port_b, "/hello"),
                                     "--connections",
                                     "3",
                                     "--rounds",
                                     "6",
                                     "--slice-ms",
                                     "60",
                                     "--slice-warmup-ms",
                                     "10",
                                     "--warmup-s",
                                     "0.05"};
    if (open_loop) args.insert(args.end(), {"--rate", "2000"});
    ChildProcess load(Argv("http_load", args), env);
    ASSERT_EQ(load.Wait(absl::Now() + kStepTimeout), 0) << load.err();
    const rapidjson::Document result = LastJsonLine(load.out());
    // Pairs, and the rounds left out (stated, not silent): on a loaded machine a 50 ms slice
    // can pass with a server stalled.
    EXPECT_GE(Count(result, "rounds"), 1) << load.out();
    EXPECT_EQ(Count(result, "rounds") + LeftOutRounds(load.err()), 6) << load.out() << load.err();
    EXPECT_GT(Count(result, "requests_a"), 0) << load.out();
    EXPECT_GT(Count(result, "requests_b"), 0) << load.out();
    EXPECT_EQ(Count(result, "errors_a"), 0) << load.out();
    EXPECT_EQ(Count(result, "errors_b"), 0) << load.out();
    EXPECT_EQ(Count(result, "unanswered_a"), 0) << load.out();
    EXPECT_EQ(Count(result, "unanswered_b"), 0) << load.out();
    for (const auto& [overhead, unit] :
         {std::pair{"rps_overhead", "_pct"}, std::pair{"p50_overhead", "_us"},
          std::pair{"p99_overhead", "_us"}, std::pair{"service_p99_overhead", "_us"}}) {
      const double median = Number(result, absl::StrCat(overhead, unit).c_str());
      EXPECT_LE(Number(result, absl::StrCat(overhead, "_low").c_str()), median) << load.out();
      EXPECT_GE(Number(result, absl::StrCat(overhead, "_high").c_str()), median) << load.out();
    }
    if (open_loop) {
      // The schedule sets the pace of each slice: 2000 a second, not what the server could do.
      EXPECT_LE(Number(result, "rps_a"), 2200) << load.out();
      EXPECT_LE(Number(result, "rps_b"), 2200) << load.out();
      // A request is written when it is due or later, so its service time is no longer.
      EXPECT_LE(Number(result, "service_p99_a_us"), Number(result, "p99_a_us")) << load.out();
      EXPECT_LE(Number(result, "service_p99_b_us"), Number(result, "p99_b_us")) << load.out();
    }
    timed_a += Count(result, "requests_a");
    timed_b += Count(result, "requests_b");
  }
  // Each server answered at least what was timed against it (and the untimed warm-ups).
  for (const auto& [server, timed] :
       {std::pair{&server_a, timed_a}, std::pair{&server_b, timed_b}}) {
    server->Signal(SIGTERM);
    ASSERT_EQ(server->Wait(absl::Now() + kStepTimeout), 0) << server->err();
    EXPECT_GE(Count(LastJsonLine(server->out()), "requests"), timed) << server->out();
  }
}

// An open loop times each request twice: from when it was due (what a client waiting for it
// sees) and from when it was written (what the server took). One connection cannot carry a
// million requests a second, so the requests queue in the load generator before they are
// written: the due-time p99 is that queue, the service p99 one round trip. (Were both timed from
// the same moment, they would be equal.)
TEST(BenchToolsTest, HttpLoadTimesServiceApartFromTheDueTime) {
  const ChildProcess::Environment env = testing::WithoutVariables("AWS_XRAY_");
  ChildProcess server(Argv("http_hello", {"--framework", "beast", "--traced", "0", "--port", "0"}),
                      env);
  const uint16_t port = server.ListeningPort(absl::Now() + kStepTimeout);
  ASSERT_NE(port, 0);
  ChildProcess load(Argv("http_load", {"--url", absl::StrCat("http://127.0.0.1:", port, "/hello"),
                                       "--connections", "1", "--rate", "1000000", "--duration-s",
                                       "0.3", "--warmup-s", "0"}),
                    env);
  ASSERT_EQ(load.Wait(absl::Now() + kStepTimeout), 0) << load.err();
  const rapidjson::Document result = LastJsonLine(load.out());
  EXPECT_GT(Count(result, "requests"), 0) << load.out();
  EXPECT_EQ(Count(result, "errors"), 0) << load.out();
  EXPECT_EQ(Count(result, "unanswered"), 0) << load.out();
  const double service_p99 = Number(result, "service_p99_us");
  EXPECT_GT(service_p99, 0) << load.out();
  EXPECT_GT(Number(result, "p99_us"), 4 * service_p99) << load.out();
  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait(absl::Now() + kStepTimeout), 0) << server.err();
}

TEST(BenchToolsTest, HttpToolsRejectBadArguments) {
  ExpectRejected(Argv("http_hello", {"--framework", "nginx", "--traced", "0"}),
                 "usage: http_hello");
  ExpectRejected(
      Argv("http_hello", {"--framework", "beast", "--traced", "1", "--sender-priority", "fast"}),
      "bad --sender-priority 'fast'");
  ExpectRejected(
      Argv("http_hello", {"--framework", "beast", "--traced", "1", "--batch-delay-ms", "-1"}),
      "bad --batch-delay-ms '-1'");
  ExpectRejected(Argv("http_load", {"--url", "ftp://127.0.0.1/"}), "usage: http_load");
  ExpectRejected(Argv("http_load", {"--url", "http://127.0.0.1:1/", "--requests", "0"}),
                 "bad --requests '0'");
  ExpectRejected(Argv("http_load", {"--url", "http://127.0.0.1:1/", "--rate", "0"}),
                 "bad --rate '0'");
  ExpectRejected(Argv("http_load", {"--url", "http://127.0.0.1:1/", "--versus", "http://x/"}),
                 "bad --versus 'http://x/'");
  ExpectRejected(Argv("http_load", {"--url", "http://127.0.0.1:1/", "--versus",
                                    "http://127.0.0.1:2/", "--duration-s", "1"}),
                 "not --duration-s or --requests");
  ExpectRejected(Argv("http_load", {"--url", "http://127.0.0.1:1/", "--rounds", "3"}),
                 "need --versus");
  ExpectRejected(
      Argv("http_load", {"--url", "http://127.0.0.1:1/", "--versus", "http://127.0.0.1:2/",
                         "--slice-ms", "10", "--slice-warmup-ms", "10"}),
      "--slice-warmup-ms must be shorter than --slice-ms");
}

// The environment of a benchmark script run on this test's own binaries (nothing built).
ChildProcess::Environment ScriptEnvironment() {
  ChildProcess::Environment env = HelloServerEnvironment();
  env["XRAYSINK_BENCH_BIN"] = std::filesystem::path(Tool("http_hello")).parent_path().string();
  return env;
}

// The numbers of the line of `out` that starts with `first` (the fields after it); empty when
// there is no such line, NaN for a field that is not a number.
std::vector<double> RowOf(const std::string& out, const std::string& first) {
  std::vector<double> numbers;
  for (absl::string_view line : absl::StrSplit(out, '\n')) {
    std::vector<std::string> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (fields.empty() || fields[0] != first) continue;
    for (size_t i = 1; i < fields.size(); ++i) {
      double number = 0;
      numbers.push_back(absl::SimpleAtod(fields[i], &number) ? number : std::nan(""));
    }
  }
  return numbers;
}

// The verdict run_http_bench.sh gives for a figure [low, high] and its target, by the rule it
// documents: met when the whole interval is within the target, missed when it is all beyond.
std::string Verdict(double low, double high, double target) {
  if (high <= target) return "met";
  if (low > target) return "missed";
  return "not resolved";
}

// One "FIGURE [LOW, HIGH], target <= T UNIT: VERDICT" part of a verdict line: checks VERDICT
// against the interval. (Parsed by hand: std::regex trips GCC 12's -Wmaybe-uninitialized
// under ASan.)
void ExpectVerdictFollowsInterval(absl::string_view part, double target) {
  SCOPED_TRACE(std::string(part));
  const size_t open = part.find('[');
  const size_t close = part.find(']');
  ASSERT_TRUE(open != absl::string_view::npos && close != absl::string_view::npos);
  const std::vector<absl::string_view> bounds =
      absl::StrSplit(part.substr(open + 1, close - open - 1), ", ");
  double low = 0;
  double high = 0;
  ASSERT_EQ(bounds.size(), 2u);
  ASSERT_TRUE(absl::SimpleAtod(bounds[0], &low) && absl::SimpleAtod(bounds[1], &high));
  absl::string_view verdict = part.substr(0, part.find(" ("));  // without a trailing remark
  verdict = verdict.substr(verdict.rfind(": ") + 2);
  EXPECT_EQ(std::string(verdict), Verdict(low, high, target));
}

// `framework`'s verdict line names both targets, each verdict the one its interval gives.
void ExpectVerdictsFollowTheirIntervals(const std::string& out, const std::string& framework) {
  int lines = 0;
  for (absl::string_view line : absl::StrSplit(out, '\n')) {
    if (!absl::StartsWith(line, framework + ": throughput overhead ")) continue;
    ++lines;
    const std::vector<absl::string_view> parts = absl::StrSplit(line, "; ");
    ASSERT_GE(parts.size(), 2u) << line;
    ExpectVerdictFollowsInterval(parts[0], 5);
    ExpectVerdictFollowsInterval(parts[1], 50);
  }
  EXPECT_EQ(lines, 1) << framework << "\n" << out;
}

// run_http_bench.sh measures for real, briefly: a row of numbers per framework, closed loop and
// open, and no warning (every sampled segment sent and received). At the default rule, as the
// figures are taken: with every request sampled, a closed loop on a busy machine can overflow
// the sink's socket buffer, which is the machine's limit, not the script's.
TEST(BenchToolsTest, RunHttpBenchGivesARowPerFramework) {
  for (const bool open_loop : {false, true}) {
    SCOPED_TRACE(open_loop ? "open loop" : "closed loop");
    std::vector<std::string> argv = {"/bin/bash",     Tool("run_http_bench.sh"),
                                     "--rounds",      "3",
                                     "--slice-ms",    "100",
                                     "--warmup-s",    "0",
                                     "--connections", "2",
                                     "--sampling",    "default"};
    // Open loop on one framework only: the paced path is the same for both.
    const std::vector<std::string> frameworks = open_loop
                                                    ? std::vector<std::string>{"beast"}
                                                    : std::vector<std::string>{"httplib", "beast"};
    if (open_loop) argv.insert(argv.end(), {"--rate", "200", "--frameworks", "beast"});
    ChildProcess bench(argv, ScriptEnvironment());
    ASSERT_EQ(bench.Wait(absl::Now() + 4 * kStepTimeout), 0) << bench.err();
    EXPECT_THAT(bench.err(), Not(HasSubstr("WARNING"))) << bench.err();
    for (const std::string& framework : frameworks) {
      const std::vector<double> row = RowOf(bench.out(), framework);
      ASSERT_EQ(row.size(), 14u) << framework << "\n" << bench.out();
      EXPECT_GT(row[0], 0) << bench.out();  // requests/s, untraced
      EXPECT_GT(row[1], 0) << bench.out();  // and traced
      for (const double number : row) EXPECT_FALSE(std::isnan(number)) << bench.out();
      ExpectVerdictsFollowTheirIntervals(bench.out(), framework);
    }
  }
}

// server_cpu.sh measures for real, briefly: a line per pair and the medians.
TEST(BenchToolsTest, ServerCpuGivesMedians) {
  ChildProcess cpu({"/bin/bash", Tool("server_cpu.sh"), "--rounds", "2", "--duration-s", "0.2"},
                   ScriptEnvironment());
  ASSERT_EQ(cpu.Wait(absl::Now() + 4 * kStepTimeout), 0) << cpu.err();
  EXPECT_THAT(cpu.out(), HasSubstr("median of 2 pairs: serving threads ")) << cpu.out();
  EXPECT_THAT(cpu.out(), Not(HasSubstr("nan"))) << cpu.out();
}

// And open loop, at a fixed pace for both servers.
TEST(BenchToolsTest, ServerCpuTakesARate) {
  ChildProcess cpu({"/bin/bash", Tool("server_cpu.sh"), "--rounds", "1", "--duration-s", "0.2",
                    "--rate", "2000"},
                   ScriptEnvironment());
  ASSERT_EQ(cpu.Wait(absl::Now() + 4 * kStepTimeout), 0) << cpu.err();
  EXPECT_THAT(cpu.err(), HasSubstr("2000 requests/s")) << cpu.err();
  EXPECT_THAT(cpu.out(), HasSubstr("median of 1 pairs: serving threads ")) << cpu.out();
}

// request_instructions.sh counts for real, briefly: both servers' counts per request, and what
// tracing adds. valgrind cannot run the sanitizer builds' binaries, so those only check the
// arguments (below).
TEST(BenchToolsTest, RequestInstructionsCountsBothServers) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "valgrind does not run sanitized binaries";
#endif
  if (std::system("command -v valgrind >/dev/null") != 0) GTEST_SKIP() << "no valgrind here";
  const std::string kept = ::testing::TempDir() + "/request_instructions_dumps";
  ChildProcess count(
      {"/bin/bash", Tool("request_instructions.sh"), "--requests", "300", "--keep", kept},
      ScriptEnvironment());
  ASSERT_EQ(count.Wait(absl::Now() + 4 * kStepTimeout), 0) << count.err();
  for (const char* dump : {"/untraced.out", "/traced.out"}) {
    EXPECT_TRUE(std::filesystem::exists(kept + dump)) << kept << dump;
  }
  for (const std::string row : {"untraced:", "traced:"}) {
    const std::vector<double> numbers = RowOf(count.out(), row);
    ASSERT_FALSE(numbers.empty()) << count.out();
    EXPECT_GT(numbers[0], 1000) << count.out();  // instructions per request
  }
  EXPECT_THAT(count.out(), HasSubstr("added: ")) << count.out();
}

// The scripts check their arguments before building anything.
TEST(BenchToolsTest, ScriptsRejectBadArguments) {
  ExpectRejected({"/bin/bash", Tool("run_http_bench.sh"), "--sampling", "half"},
                 "bad --sampling 'half'");
  ExpectRejected({"/bin/bash", Tool("run_http_bench.sh"), "--rate", "fast"}, "bad --rate 'fast'");
  ExpectRejected({"/bin/bash", Tool("run_http_bench.sh"), "--slice-ms", "0"}, "bad --slice-ms '0'");
  ExpectRejected({"/bin/bash", Tool("server_cpu.sh"), "--baseline", "nothing"},
                 "bad --baseline 'nothing'");
  ExpectRejected({"/bin/bash", Tool("server_cpu.sh"), "--fast", "1"}, "tools/bench/server_cpu.sh");
  ExpectRejected({"/bin/bash", Tool("server_cpu.sh"), "--rate", "fast"}, "bad --rate 'fast'");
  ExpectRejected({"/bin/bash", Tool("request_instructions.sh"), "--requests", "many"},
                 "bad --requests 'many'");
  ExpectRejected({"/bin/bash", Tool("request_instructions.sh"), "--framework", "nginx"},
                 "bad --framework 'nginx'");
}

}  // namespace
}  // namespace xraysink::tools
