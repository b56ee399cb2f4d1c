// Runs the real xray_local binary and talks to it over UDP.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "rapidjson/document.h"
#include "tools/local_daemon/datagram.h"
#include "tools/local_daemon/udp_listener.h"
#include "tools/testing/child_process.h"

namespace xraysink::tools {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr absl::Duration kTimeout = absl::Seconds(30);

std::filesystem::path Runfile(const std::string& path) {
  return std::filesystem::path(std::getenv("TEST_SRCDIR")) / std::getenv("TEST_WORKSPACE") / path;
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string Corpus(const std::string& name) {
  return ReadFile(Runfile("integration_tests/testdata/corpus/" + name));
}

void Send(uint16_t port, const std::string& datagram) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(sendto(fd, datagram.data(), datagram.size(), 0,
                   reinterpret_cast<const sockaddr*>(&address), sizeof(address)),
            static_cast<ssize_t>(datagram.size()));
  close(fd);
}

// The kernel's count of datagrams dropped for the socket bound to 127.0.0.1:`port`, from
// /proc/net/udp; -1 when it is not listed.
int64_t KernelDrops(uint16_t port) {
  std::ifstream udp("/proc/net/udp");
  const std::string local_address = absl::StrFormat("0100007F:%04X", port);
  for (std::string line; std::getline(udp, line);) {
    const std::vector<std::string> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
    int64_t drops = 0;
    if (fields.size() > 2 && fields[1] == local_address &&
        absl::SimpleAtoi(fields.back(), &drops)) {
      return drops;
    }
  }
  return -1;
}

size_t Count(const std::string& text, const std::string& part) {
  size_t count = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) {
    ++count;
  }
  return count;
}

// xray_local as a child process, each wait on it bounded by kTimeout.
class XrayLocal {
 public:
  explicit XrayLocal(std::vector<std::string> args) : process_(Argv(std::move(args))) {}

  // The first stdout line, without '\n' ("" if none came in time).
  std::string FirstLine() {
    const auto has_a_line = [](const std::string& out, const std::string&) {
      return out.find('\n') != std::string::npos;
    };
    process_.WaitFor(has_a_line, absl::Now() + kTimeout);
    const std::string out = process_.out();
    return out.substr(0, out.find('\n'));
  }
  // The port from "listening on 127.0.0.1:PORT" (0 if the line is not that).
  uint16_t Port() {
    const std::string line = FirstLine();
    const std::string prefix = "listening on 127.0.0.1:";
    uint32_t port = 0;
    if (line.rfind(prefix, 0) != 0 || !absl::SimpleAtoi(line.substr(prefix.size()), &port) ||
        port > 65535) {
      ADD_FAILURE() << "unexpected first line: " << line << "\nstderr: " << err();
      return 0;
    }
    return static_cast<uint16_t>(port);
  }
  // Waits until `done(out, err)` holds.
  bool Await(const testing::ChildProcess::OutputPredicate& done) {
    return process_.WaitFor(done, absl::Now() + kTimeout);
  }
  // Waits until stderr contains `text`.
  bool AwaitStderr(const std::string& text) {
    const auto has_text = [&](const std::string&, const std::string& err) {
      return err.find(text) != std::string::npos;
    };
    return process_.WaitFor(has_text, absl::Now() + kTimeout);
  }
  void Signal(int signal) { process_.Signal(signal); }
  bool WaitUntilStopped() { return process_.WaitUntilStopped(absl::Now() + kTimeout); }
  // Reads both outputs to their end and reaps the process; its exit code, or -1 (and a failure)
  // when it did not exit in time (then it is killed) or did not exit normally.
  int Wait() { return process_.Wait(absl::Now() + kTimeout).value_or(-1); }

  std::string out() const { return process_.out(); }
  std::string err() const { return process_.err(); }

 private:
  static std::vector<std::string> Argv(std::vector<std::string> args) {
    args.insert(args.begin(), Runfile("tools/local_daemon/xray_local").string());
    return args;
  }

  testing::ChildProcess process_;
};

TEST(XrayLocalTest, PrintsAReceivedTraceAndAppendsItToJsonl) {
  const std::string jsonl = absl::StrCat(std::getenv("TEST_TMPDIR"), "/segments.jsonl");
  XrayLocal xray_local(
      {"--address", "127.0.0.1:0", "--exit-after-traces", "1", "--jsonl", jsonl, "--quiet-ms=20"});
  const uint16_t port = xray_local.Port();
  ASSERT_NE(port, 0);
  const std::string document = Corpus("awsdocs-segment-with-embedded-subsegment.json");
  Send(port, "not a datagram");
  Send(port, MakeDatagram(document));

  ASSERT_EQ(xray_local.Wait(), 0) << xray_local.err();
  EXPECT_EQ(xray_local.out(), absl::StrCat("listening on 127.0.0.1:", port, "\n",
                                           R"(trace 1-5759e988-bd862e3fe1be46a994272793
  www.example.com (segment) 29.0 ms GET https://www.example.com/health 200
    api.example.com 26.1 ms POST https://api.example.com/health 200
)"));
  EXPECT_EQ(xray_local.err(),
            "xray_local: malformed datagram #1 (14 bytes): bad datagram: no header line\n");

  const std::string lines = ReadFile(jsonl);
  ASSERT_THAT(lines, StartsWith("{\"trace_id\":\"1-5759e988-bd862e3fe1be46a994272793\""));
  ASSERT_EQ(lines.find('\n'), lines.size() - 1) << "one document, one line";
  rapidjson::Document written, sent;
  written.Parse(lines.data(), lines.size() - 1);
  sent.Parse(document.data(), document.size());
  EXPECT_TRUE(written == sent);
}

TEST(XrayLocalTest, PrintsPendingTracesOnSigterm) {
  XrayLocal xray_local({"--address", "127.0.0.1:0", "--quiet-ms", "600000", "--stats"});
  const uint16_t port = xray_local.Port();
  ASSERT_NE(port, 0);
  Send(port, MakeDatagram(Corpus("awsdocs-in-progress-segment.json")));
  // Complete, but still in its quiet period at the signal.
  Send(port, MakeDatagram(Corpus("awsdocs-segment-with-embedded-subsegment.json")));
  // Datagrams from one socket are handled in order: once this one is reported, the segments are
  // in.
  Send(port, "not a datagram");
  ASSERT_TRUE(xray_local.AwaitStderr("malformed datagram #1")) << xray_local.err();
  xray_local.Signal(SIGTERM);

  ASSERT_EQ(xray_local.Wait(), 0) << xray_local.err();
  EXPECT_THAT(xray_local.out(),
              HasSubstr("trace 1-581cf771-a006649127e371903a2de979 (incomplete at exit)\n"
                        "  example.com (segment) in progress\n"));
  EXPECT_THAT(xray_local.out(), HasSubstr("trace 1-5759e988-bd862e3fe1be46a994272793\n"))
      << "a complete trace is not marked";
  EXPECT_THAT(xray_local.err(),
              HasSubstr("xray_local: 3 datagrams, 1 malformed, 2 traces printed (0 incomplete "
                        "after --pending-timeout-s), 0 pending, 0 dropped by the kernel (receive "
                        "buffer full)\n"));
}

TEST(XrayLocalTest, PrintsATraceStillIncompleteAfterThePendingTimeout) {
  XrayLocal xray_local({"--address", "127.0.0.1:0", "--pending-timeout-s=1", "--stats"});
  const uint16_t port = xray_local.Port();
  ASSERT_NE(port, 0);
  const std::string expected =
      absl::StrCat("listening on 127.0.0.1:", port, "\n",
                   "trace 1-581cf771-a006649127e371903a2de979 (incomplete: no document for 1 s)\n"
                   "  example.com (segment) in progress\n");
  Send(port, MakeDatagram(Corpus("awsdocs-in-progress-segment.json")));
  // Printed while running, not at exit: nothing else would print it.
  ASSERT_TRUE(xray_local.Await([](const std::string& out, const std::string&) {
    return out.find("in progress\n") != std::string::npos;
  })) << xray_local.out();
  EXPECT_EQ(xray_local.out(), expected);
  xray_local.Signal(SIGTERM);

  ASSERT_EQ(xray_local.Wait(), 0) << xray_local.err();
  EXPECT_EQ(xray_local.out(), expected) << "printed once, then forgotten";
  EXPECT_EQ(xray_local.err(),
            "xray_local: 1 datagrams, 0 malformed, 1 traces printed (1 incomplete after "
            "--pending-timeout-s), 0 pending, 0 dropped by the kernel (receive buffer full)\n");
}

TEST(XrayLocalTest, ReadsWhatWasAlreadyReceivedOnSigterm) {
  XrayLocal xray_local({"--address", "127.0.0.1:0", "--quiet-ms", "600000", "--stats"});
  const uint16_t port = xray_local.Port();
  ASSERT_NE(port, 0);
  // Stopped, it cannot read them before the signal is handled; they wait in the socket.
  xray_local.Signal(SIGSTOP);
  ASSERT_TRUE(xray_local.WaitUntilStopped()) << xray_local.err();
  for (int i = 0; i < 5; ++i) Send(port, "not a datagram");
  Send(port, MakeDatagram(Corpus("awsdocs-in-progress-segment.json")));
  xray_local.Signal(SIGTERM);
  xray_local.Signal(SIGCONT);

  ASSERT_EQ(xray_local.Wait(), 0) << xray_local.err();
  EXPECT_THAT(xray_local.out(),
              HasSubstr("trace 1-581cf771-a006649127e371903a2de979 (incomplete at exit)\n"
                        "  example.com (segment) in progress\n"));
  EXPECT_THAT(xray_local.err(),
              HasSubstr("xray_local: 6 datagrams, 5 malformed, 1 traces printed (0 incomplete "
                        "after --pending-timeout-s), 0 pending, 0 dropped by the kernel (receive "
                        "buffer full)\n"));
}

TEST(XrayLocalTest, CountsDatagramsTheKernelDropped) {
  XrayLocal xray_local({"--address", "127.0.0.1:0", "--stats"});
  const uint16_t port = xray_local.Port();
  ASSERT_NE(port, 0);
  // More than the receive buffer holds (at most 16 MiB: xray_local asks for 8, the kernel
  // doubles it), sent while xray_local cannot read.
  constexpr int kSent = 400;
  xray_local.Signal(SIGSTOP);
  for (int i = 0; i < kSent; ++i) Send(port, std::string(64000, 'x'));
  xray_local.Signal(SIGCONT);
  // Until every datagram is accounted for: read by xray_local, or dropped by the kernel.
  int64_t dropped = -1;
  ASSERT_TRUE(xray_local.Await([&](const std::string&, const std::string& err) {
    dropped = KernelDrops(port);
    return static_cast<int64_t>(Count(err, "malformed datagram #")) + dropped == kSent;
  })) << "dropped "
      << dropped << "\n"
      << xray_local.err();
  ASSERT_GT(dropped, 0);
  // The kernel reports the count with the next datagram it queues.
  Send(port, "marker");
  ASSERT_TRUE(xray_local.AwaitStderr("(6 bytes)")) << xray_local.err();
  xray_local.Signal(SIGTERM);

  ASSERT_EQ(xray_local.Wait(), 0) << xray_local.err();
  const int64_t received = kSent - dropped + 1;
  EXPECT_THAT(xray_local.err(),
              HasSubstr(absl::StrCat("xray_local: ", received, " datagrams, ", received,
                                     " malformed, 0 traces printed (0 incomplete after "
                                     "--pending-timeout-s), 0 pending, ",
                                     dropped, " dropped by the kernel (receive buffer full)\n")));
}

TEST(XrayLocalTest, FailsWhenTheJsonlFileCannotBeWritten) {
  XrayLocal xray_local({"--address", "127.0.0.1:0", "--exit-after-traces", "1", "--quiet-ms=0",
                        "--jsonl", "/dev/full"});
  const uint16_t port = xray_local.Port();
  ASSERT_NE(port, 0);
  Send(port, MakeDatagram(Corpus("awsdocs-segment-with-embedded-subsegment.json")));

  EXPECT_EQ(xray_local.Wait(), 1);
  EXPECT_EQ(xray_local.err(), "xray_local: cannot write /dev/full: No space left on device\n");
}

TEST(XrayLocalTest, FailsClearlyWhenThePortIsTaken) {
  absl::StatusOr<std::unique_ptr<UdpListener>> taken = UdpListener::Bind("127.0.0.1", 0);
  ASSERT_TRUE(taken.ok()) << taken.status();
  const std::string address = absl::StrCat("127.0.0.1:", (*taken)->port());
  XrayLocal xray_local({"--address", address});
  EXPECT_EQ(xray_local.Wait(), 1);
  EXPECT_EQ(xray_local.out(), "");
  EXPECT_EQ(xray_local.err(),
            absl::StrCat("xray_local: cannot listen on ", address, ": Address already in use\n"));
}

TEST(XrayLocalTest, RejectsBadArguments) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--bogus"}, "unknown argument '--bogus'"},
      {{"extra"}, "unknown argument 'extra'"},
      {{"--address", "nowhere"}, "bad --address 'nowhere'"},
      {{"--address=127.0.0.1:70000"}, "bad --address '127.0.0.1:70000'"},
      {{"--quiet-ms", "-1"}, "bad --quiet-ms '-1': expected an integer >= 0"},
      {{"--pending-timeout-s", "0"}, "bad --pending-timeout-s '0': expected an integer >= 1"},
      {{"--pending-timeout-s=5m"}, "bad --pending-timeout-s '5m': expected an integer >= 1"},
      {{"--exit-after-traces", "0"}, "bad --exit-after-traces '0': expected an integer >= 1"},
      {{"--jsonl"}, "--jsonl needs a value"},
      {{"--stats=yes"}, "--stats=yes: takes no value"},
  };
  for (const auto& [args, error] : cases) {
    XrayLocal xray_local(args);
    EXPECT_EQ(xray_local.Wait(), 2) << error;
    EXPECT_THAT(xray_local.err(), HasSubstr(absl::StrCat("xray_local: ", error)));
    EXPECT_THAT(xray_local.err(), HasSubstr("Run xray_local --help for usage."));
  }
}

}  // namespace
}  // namespace xraysink::tools
