#include "integration_tests/fake_daemon.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tools/local_daemon/trace_printer.h"

namespace xraysink::integration_tests {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kTraceId[] = "1-5759e988-bd862e3fe1be46a994272793";
constexpr absl::Duration kTimeout = absl::Seconds(20);

// Sends one datagram to 127.0.0.1:`port` from a fresh socket; returns errno (0 when sent).
int Send(uint16_t port, const std::string& datagram) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const ssize_t sent = sendto(fd, datagram.data(), datagram.size(), 0,
                              reinterpret_cast<const sockaddr*>(&address), sizeof(address));
  const int error = sent < 0 ? errno : 0;
  close(fd);
  return error;
}

std::string Segment(const std::string& id, const std::string& name, const std::string& extra = "") {
  return tools::MakeDatagram(
      absl::StrCat(R"({"trace_id":")", kTraceId, R"(","id":")", id, R"(","name":")", name,
                   R"(","start_time":1700000000,"end_time":1700000001)", extra, "}"));
}

std::unique_ptr<FakeDaemon> StartDaemon() {
  absl::StatusOr<std::unique_ptr<FakeDaemon>> daemon = FakeDaemon::Start();
  EXPECT_TRUE(daemon.ok()) << daemon.status();
  return daemon.ok() ? *std::move(daemon) : nullptr;
}

// A segment whose parent segment has not come is a root, so its trace looks complete:
// WaitForTrace waits for the entities named as well.
TEST(FakeDaemonTest, WaitForTraceWaitsForEveryEntityNamed) {
  const std::unique_ptr<FakeDaemon> daemon = StartDaemon();
  ASSERT_NE(daemon, nullptr);
  ASSERT_EQ(Send(daemon->port(),
                 Segment("5e00000000000002", "task", R"(,"parent_id":"5e00000000000001")")),
            0);
  ASSERT_TRUE(daemon->WaitFor(1, kTimeout));
  ASSERT_TRUE(daemon->trace(kTraceId)->complete());
  EXPECT_TRUE(daemon->WaitForTrace(kTraceId, {"task"}, absl::ZeroDuration()));
  EXPECT_FALSE(daemon->WaitForTrace(kTraceId, {"api", "task"}, absl::ZeroDuration()));
  EXPECT_FALSE(
      daemon->WaitForTrace("1-5759e988-000000000000000000000000", {}, absl::ZeroDuration()));

  ASSERT_EQ(Send(daemon->port(), Segment("5e00000000000001", "api")), 0);
  ASSERT_TRUE(daemon->WaitForTrace(kTraceId, {"api", "task"}, kTimeout));
  const std::optional<tools::Trace> trace = daemon->trace(kTraceId);
  ASSERT_EQ(trace->roots().size(), 1u);
  EXPECT_EQ(trace->ParentOf("5e00000000000002")->entity->name, "api");
}

TEST(FakeDaemonTest, ListensOnAFreeLoopbackPort) {
  const std::unique_ptr<FakeDaemon> daemon = StartDaemon();
  ASSERT_NE(daemon, nullptr);
  EXPECT_NE(daemon->port(), 0);
  EXPECT_EQ(daemon->address(), absl::StrCat("127.0.0.1:", daemon->port()));
  EXPECT_FALSE(daemon->WaitFor(1, absl::Milliseconds(10)));
}

TEST(FakeDaemonTest, AssemblesDocumentsIntoTraces) {
  const std::unique_ptr<FakeDaemon> daemon = StartDaemon();
  ASSERT_NE(daemon, nullptr);
  // The streamed subsegment first, as a streaming SDK may send it before its segment.
  ASSERT_EQ(Send(daemon->port(),
                 tools::MakeDatagram(absl::StrCat(
                     R"({"type":"subsegment","trace_id":")", kTraceId,
                     R"(","parent_id":"5e00000000000001","id":"b000000000000001","name":"db",)",
                     R"("start_time":1700000000.25,"end_time":1700000000.5,"fault":true})"))),
            0);
  ASSERT_EQ(Send(daemon->port(), Segment("5e00000000000001", "api")), 0);
  ASSERT_TRUE(daemon->WaitFor(2, kTimeout));

  EXPECT_EQ(daemon->malformed_count(), 0u);
  ASSERT_EQ(daemon->documents().size(), 2u);
  EXPECT_EQ(daemon->documents()[0].entity().name, "db");
  EXPECT_THAT(daemon->trace_ids(), ElementsAre(kTraceId));
  const std::optional<tools::Trace> trace = daemon->trace(kTraceId);
  ASSERT_TRUE(trace.has_value());
  EXPECT_TRUE(trace->complete());
  EXPECT_EQ(trace->ParentOf("b000000000000001")->entity->name, "api");
  EXPECT_EQ(tools::FormatTrace(*trace),
            absl::StrCat("trace ", kTraceId, "\n", "  api (segment) 1000.0 ms\n",
                         "    db 250.0 ms !fault\n"));
  ASSERT_TRUE(daemon->TraceWithEntity("db").has_value());
  EXPECT_EQ(daemon->TraceWithEntity("db")->id(), kTraceId);
  EXPECT_FALSE(daemon->TraceWithEntity("nope").has_value());
  EXPECT_FALSE(daemon->trace("1-5759e988-000000000000000000000000").has_value());
}

TEST(FakeDaemonTest, KeepsMalformedDatagramsApart) {
  const std::unique_ptr<FakeDaemon> daemon = StartDaemon();
  ASSERT_NE(daemon, nullptr);
  const std::vector<std::string> malformed = {
      "{\"format\":\"xml\",\"version\":1}\n{}",
      tools::MakeDatagram("{\"trace_id\":"),
      "no header at all",
      tools::MakeDatagram(
          absl::StrCat(R"({"trace_id":")", kTraceId, R"(","id":"5e00000000000001","name":"api"})")),
  };
  for (const std::string& datagram : malformed) ASSERT_EQ(Send(daemon->port(), datagram), 0);
  ASSERT_EQ(Send(daemon->port(), Segment("5e00000000000001", "api")), 0);
  ASSERT_TRUE(daemon->WaitForDatagrams(5, kTimeout));

  EXPECT_EQ(daemon->malformed_count(), 4u);
  // One socket on loopback: datagrams arrive in the order sent.
  EXPECT_THAT(daemon->malformed_reasons(),
              ElementsAre("bad header: format is not \"json\"", HasSubstr("bad JSON"),
                          "bad datagram: no header line", "missing start_time"));
  EXPECT_EQ(daemon->documents().size(), 1u);
  EXPECT_EQ(daemon->datagrams().size(), 5u);
  EXPECT_EQ(daemon->datagrams()[2], "no header at all");
  EXPECT_THAT(daemon->trace_ids(), ElementsAre(kTraceId));
}

TEST(FakeDaemonTest, ReceivesDatagramsUpToTheUdpLimitWhole) {
  const std::unique_ptr<FakeDaemon> daemon = StartDaemon();
  ASSERT_NE(daemon, nullptr);
  constexpr size_t kUdpLimit = 65507;  // IPv4: 65,535 - 20 (IP) - 8 (UDP)
  std::string big = Segment("5e00000000000001", "big", R"(,"metadata":{"default":{"blob":""}})");
  big.insert(big.size() - 4, kUdpLimit - big.size(), 'x');
  ASSERT_EQ(big.size(), kUdpLimit);
  ASSERT_EQ(Send(daemon->port(), big), 0);
  // One byte more cannot even be sent: the bound every emitter must respect.
  EXPECT_EQ(Send(daemon->port(), big + " "), EMSGSIZE);
  ASSERT_TRUE(daemon->WaitFor(1, kTimeout));

  ASSERT_EQ(daemon->datagrams().size(), 1u);
  EXPECT_EQ(daemon->datagrams()[0], big);
  EXPECT_EQ(daemon->malformed_count(), 0u);
  EXPECT_EQ(
      daemon->documents()[0].json()["metadata"]["default"]["blob"].GetStringLength(),
      kUdpLimit -
          Segment("5e00000000000001", "big", R"(,"metadata":{"default":{"blob":""}})").size());
}

TEST(FakeDaemonTest, CountsDatagramsFromConcurrentSenders) {
  const std::unique_ptr<FakeDaemon> daemon = StartDaemon();
  ASSERT_NE(daemon, nullptr);
  constexpr int kThreads = 4, kPerThread = 25;
  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string id = absl::StrCat("5e0000000000", 1000 + t * kPerThread + i);
        EXPECT_EQ(Send(daemon->port(), Segment(id, absl::StrCat("s", t))), 0);
      }
    });
  }
  // Reading while the senders run is part of the test.
  const std::vector<tools::ReceivedDocument> early = daemon->documents();
  EXPECT_LE(early.size(), static_cast<size_t>(kThreads * kPerThread));
  for (std::thread& sender : senders) sender.join();
  ASSERT_TRUE(daemon->WaitFor(kThreads * kPerThread, kTimeout));
  EXPECT_EQ(daemon->trace(kTraceId)->Entities().size(), static_cast<size_t>(kThreads * kPerThread));
}

}  // namespace
}  // namespace xraysink::integration_tests
