#include "emitter/datagram_sender.h"

#include <gtest/gtest.h>
#include <netdb.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/entity.h"
#include "core/serialization.h"
#include "core/testing/child_process.h"
#include "core/testing/threads.h"
#include "emitter/testing/udp_receiver.h"

namespace xraysink::emitter {
namespace {

using testing::UdpReceiver;

std::unique_ptr<DatagramSender> NewSender(const core::Endpoint& endpoint,
                                          DatagramSender::Options options = {}) {
  absl::StatusOr<std::unique_ptr<DatagramSender>> sender =
      DatagramSender::Create(endpoint, options);
  EXPECT_TRUE(sender.ok()) << sender.status();
  return sender.ok() ? *std::move(sender) : nullptr;
}

DatagramSender::Options Paused(size_t queue_capacity = 8192) {
  DatagramSender::Options options;
  options.queue_capacity = queue_capacity;
  options.start_paused = true;
  return options;
}

// A datagram without the spaces that made it as long as the others sent with it (see
// DatagramSenderOptions::udp_segmentation).
std::string WithoutPadding(std::string datagram) {
  datagram.erase(datagram.find_last_not_of(' ') + 1);
  return datagram;
}

std::shared_ptr<core::Segment> NewEndedSegment(std::string name) {
  core::SegmentOptions options;
  options.name = std::move(name);
  auto segment =
      core::Segment::Create(std::move(options), std::make_shared<core::SegmentSettings>(), nullptr);
  segment->End();
  return segment;
}

std::shared_ptr<core::Segment> NewSegment(std::shared_ptr<core::SegmentSink> sink) {
  auto settings = std::make_shared<core::SegmentSettings>();
  settings->sink = std::move(sink);
  core::SegmentOptions options;
  options.name = "svc";
  return core::Segment::Create(std::move(options), std::move(settings), nullptr);
}

TEST(DatagramSenderTest, SendsDatagramsIntactAndInOrder) {
  UdpReceiver receiver;
  auto sender = NewSender(receiver.endpoint());
  ASSERT_NE(sender, nullptr);
  std::vector<std::string> expected;
  uint64_t bytes = 0;
  for (int i = 0; i < 300; ++i) {
    // Sizes from 1 byte to the UDP limit, so batches mix small and large datagrams.
    expected.push_back(std::string(i == 299 ? core::kMaxDatagramBytes : 1 + i * 7, 'a' + i % 26));
    bytes += expected.back().size();
    ASSERT_TRUE(sender->Enqueue(expected.back()));
  }
  ASSERT_TRUE(sender->Flush(absl::Now() + absl::Seconds(20)));
  EXPECT_EQ(receiver.Receive(expected.size()), expected);
  const DatagramSender::Stats stats = sender->stats();
  EXPECT_EQ(stats.enqueued, expected.size());
  EXPECT_EQ(stats.sent, expected.size());
  EXPECT_EQ(stats.bytes_sent, bytes);
  EXPECT_EQ(stats.send_errors, 0u);
  EXPECT_EQ(stats.dropped_queue_full, 0u);
}

TEST(DatagramSenderTest, EveryProducerThreadsDatagramsArriveInItsOrder) {
  constexpr int kProducers = 8;
  constexpr int kPerProducer = 250;
  UdpReceiver receiver;
  auto sender = NewSender(receiver.endpoint());
  ASSERT_NE(sender, nullptr);
  std::atomic<int> refused{0};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        if (!sender->Enqueue(absl::StrCat(p, ":", i))) refused.fetch_add(1);
      }
    });
  }
  const std::vector<std::string> received = receiver.Receive(kProducers * kPerProducer);
  for (std::thread& producer : producers) producer.join();
  EXPECT_EQ(refused.load(), 0);
  ASSERT_EQ(received.size(), size_t{kProducers * kPerProducer});
  std::vector<int> next(kProducers, 0);
  for (const std::string& datagram : received) {
    const std::vector<std::string> parts = absl::StrSplit(datagram, ':');
    int p = -1, i = -1;
    ASSERT_EQ(parts.size(), 2u) << datagram;
    ASSERT_TRUE(absl::SimpleAtoi(parts[0], &p) && absl::SimpleAtoi(parts[1], &i)) << datagram;
    ASSERT_TRUE(p >= 0 && p < kProducers) << datagram;
    EXPECT_EQ(i, next[p]++) << datagram;
  }
  EXPECT_EQ(next, std::vector<int>(kProducers, kPerProducer));
  ASSERT_TRUE(sender->Flush(absl::Now() + absl::Seconds(20)));  // the counters are updated last
  EXPECT_EQ(sender->stats().sent, uint64_t{kProducers * kPerProducer});
}

// A pre-forking server that set tracing up before it forked: a worker's documents must still go,
// and its exit must not wait forever for the parent's sender thread, which it does not have.
TEST(DatagramSenderTest, AForkedChildSendsOnAThreadOfItsOwnAndClosesWithoutWaiting) {
  if (!core::testing::kForkedChildrenCanStartThreads)
    GTEST_SKIP() << "TSan cannot follow a forked child's threads";
  UdpReceiver receiver;
  auto sender = NewSender(receiver.endpoint());
  ASSERT_NE(sender, nullptr);
  ASSERT_TRUE(sender->Enqueue("parent, before"));
  ASSERT_EQ(receiver.Receive(1), std::vector<std::string>{"parent, before"});  // its thread runs
  const int code = core::testing::RunInChild(
      [&] {
        if (!sender->Enqueue("child")) return 1;
        if (!sender->Flush(absl::Now() + absl::Seconds(10))) return 2;
        if (sender->stats().sent != 1) return 3;  // the child's own count
        sender.reset();                           // joins the child's thread, not the parent's
        return 0;
      },
      std::chrono::seconds(60));
  EXPECT_EQ(code, 0) << "1: refused, 2: not sent, 3: miscounted, -1: hung";
  EXPECT_EQ(receiver.Receive(1), std::vector<std::string>{"child"});
  ASSERT_TRUE(sender->Enqueue("parent, after"));  // the parent's sender goes on as it was
  EXPECT_EQ(receiver.Receive(1), std::vector<std::string>{"parent, after"});
  ASSERT_TRUE(sender->Flush(absl::Now() + absl::Seconds(20)));  // counted once handled
  EXPECT_EQ(sender->stats().sent, 2u);
}

TEST(DatagramSenderTest, FullQueueDropsAreCountedAndNeverBlock) {
  UdpReceiver receiver;
  auto sender = NewSender(receiver.endpoint(), Paused(/*queue_capacity=*/4));
  ASSERT_NE(sender, nullptr);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(sender->Enqueue(absl::StrCat("d", i)), i < 4) << i;
  }
  DatagramSender::Stats stats = sender->stats();
  EXPECT_EQ(stats.enqueued, 4u);
  EXPECT_EQ(stats.dropped_queue_full, 6u);
  EXPECT_EQ(stats.sent, 0u);

  sender->Resume();
  ASSERT_TRUE(sender->Flush(absl::Now() + absl::Seconds(20)));
  EXPECT_EQ(receiver.Receive(4), (std::vector<std::string>{"d0", "d1", "d2", "d3"}));
  // Room again once drained.
  EXPECT_TRUE(sender->Enqueue("d10"));
  ASSERT_TRUE(sender->Flush(absl::Now() + absl::Seconds(20)));
  EXPECT_EQ(receiver.Receive(1), std::vector<std::string>{"d10"});
  stats = sender->stats();
  EXPECT_EQ(stats.sent, 5u);
  EXPECT_EQ(stats.dropped_queue_full, 6u);
}

TEST(DatagramSenderTest, FlushWaitsForTheQueueUntilTheDeadline) {
  UdpReceiver receiver;
  auto sender = NewSender(receiver.endpoint(), Paused());
  ASSERT_NE(sender, nullptr);
  EXPECT_TRUE(sender->Flush(absl::Now()));  // nothing queued
  ASSERT_TRUE(sender->Enqueue("one"));
  EXPECT_FALSE(sender->Flush(absl::Now() + absl::Milliseconds(50)));
  EXPECT_EQ(sender->stats().sent, 0u);
  sender->Resume();
  EXPECT_TRUE(sender->Flush(absl::Now() + absl::Seconds(20)));
  EXPECT_EQ(sender->stats().sent, 1u);
  EXPECT_EQ(receiver.Receive(1), std::vector<std::string>{"one"});
}

DatagramSender::Options Lingering() {
  DatagramSender::Options options;
  options.batch_delay = absl::Minutes(1);  // longer than any deadline below
  return options;
}

TEST(DatagramSenderTest, AnItemAfterAnIdleSpellIsSentWithoutWaitingForTheBatchDelay) {
  UdpReceiver receiver;
  auto sender = NewSender(receiver.endpoint(), Lingering());
  ASSERT_NE(sender, nullptr);
  ASSERT_TRUE(sender->Enqueue("first"));
  // The sleeping sender is woken by the push, not by the end of a batch delay.
  EXPECT_EQ(receiver.Receive(1), std::vector<std::string>{"first"});
}

TEST(DatagramSenderTest, FlushAndDestructionCutTheBatchDelayShort) {
  UdpReceiver receiver;
  auto sender = NewSender(receiver.endpoint(), Lingering());
  ASSERT_NE(sender, nullptr);
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(sender->Enqueue(absl::StrCat(round, ".", i)));
    EXPECT_TRUE(sender->Flush(absl::Now() + absl::Seconds(20))) << round;
  }
  EXPECT_EQ(receiver.Receive(30).size(), 30u);
  ASSERT_TRUE(sender->Enqueue("last"));
  auto destroyed = std::async(std::launch::async, [&] { sender.reset(); });
  EXPECT_EQ(destroyed.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  EXPECT_EQ(receiver.Receive(1), std::vector<std::string>{"last"});
}

// Items that trickle in (each sent before the next comes) never make their thread wake the
// sender: it looks again on its own every idle_delay. Only the very first item may wake it, when
// it finds the sender asleep since its start.
TEST(DatagramSenderTest, ItemsThatTrickleInDoNotWakeTheSender) {
  UdpReceiver receiver;
  DatagramSender::Options options;
  options.batch_delay = absl::ZeroDuration();  // no linger: the sender dozes after each send
  options.idle_delay = absl::Milliseconds(2);
  options.sleep_after = absl::Hours(1);
  auto sender = NewSender(receiver.endpoint(), options);
  ASSERT_NE(sender, nullptr);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(sender->Enqueue(absl::StrCat("item ", i)));
    ASSERT_EQ(receiver.Receive(1), std::vector<std::string>{absl::StrCat("item ", i)});
  }
  EXPECT_LE(sender->stats().producer_wakeups, 1u);
}

// No linger, and a doze (until `sleep_after`) that would outlast every deadline of the tests.
DatagramSender::Options Dozing(absl::Duration sleep_after) {
  DatagramSender::Options options;
  options.batch_delay = absl::ZeroDuration();
  options.idle_delay = absl::Minutes(1);
  options.sleep_after = sleep_after;
  return options;
}

// Waits until the sender thread has gone to sleep `count` times in all; false at the deadline.
bool WaitForSleeps(const DatagramSender& sender, uint64_t count) {
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (sender.stats().sleeps < count) {
    if (absl::Now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

// After a quiet spell of sleep_after (here none at all), the sender sleeps until woken, and the
// next item's thread wakes it at once, however long a doze would be.
TEST(DatagramSenderTest, AfterAQuietSpellTheNextItemWakesTheSender) {
  UdpReceiver receiver;
  auto sender = NewSender(receiver.endpoint(), Dozing(absl::ZeroDuration()));
  ASSERT_NE(sender, nullptr);
  for (uint64_t i = 1; i <= 3; ++i) {
    ASSERT_TRUE(WaitForSleeps(*sender, i));  // asleep since the start, then since item i - 1
    ASSERT_TRUE(sender->Enqueue(absl::StrCat("item ", i)));
    ASSERT_EQ(receiver.Receive(1), std::vector<std::string>{absl::StrCat("item ", i)});
    EXPECT_EQ(sender->stats().producer_wakeups, i);
  }
}

// A doze ends when the quiet spell reaches sleep_after, however long idle_delay is: then the
// sender sleeps, and costs nothing until the next item.
TEST(DatagramSenderTest, ADozeEndsInSleepAfterTheQuietSpell) {
  UdpReceiver receiver;
  auto sender = NewSender(receiver.endpoint(), Dozing(absl::Milliseconds(20)));
  ASSERT_NE(sender, nullptr);
  ASSERT_TRUE(sender->Enqueue("first"));
  ASSERT_EQ(receiver.Receive(1), std::vector<std::string>{"first"});
  // Asleep at start (unless "first" came before), then after "first" and a 20 ms doze.
  EXPECT_TRUE(WaitForSleeps(*sender, sender->stats().producer_wakeups + 1));
}

// Flush() does not wait for a doze to end, nor does a backlog of a whole batch.
TEST(DatagramSenderTest, FlushAndABatchWaitingCutADozeShort) {
  UdpReceiver receiver;
  auto sender = NewSender(receiver.endpoint(), Dozing(absl::Hours(1)));
  ASSERT_NE(sender, nullptr);
  ASSERT_TRUE(sender->Enqueue("first"));  // wakes the sender, which then dozes
  ASSERT_EQ(receiver.Receive(1), std::vector<std::string>{"first"});
  ASSERT_TRUE(sender->Enqueue("flushed"));
  EXPECT_TRUE(sender->Flush(absl::Now() + absl::Seconds(20)));
  EXPECT_EQ(receiver.Receive(1), std::vector<std::string>{"flushed"});
  // Queued while the sender dozes (it has sent all there was): the 64th wakes it.
  for (int i = 0; i < 64; ++i) ASSERT_TRUE(sender->Enqueue(absl::StrCat("batch ", i)));
  EXPECT_EQ(receiver.Receive(64).size(), 64u);
}

TEST(DatagramSenderTest, CloseSendsWhatIsQueuedThenRefusesAndCounts) {
  UdpReceiver receiver;
  auto sender = NewSender(receiver.endpoint(), Lingering());
  ASSERT_NE(sender, nullptr);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(sender->Enqueue(absl::StrCat("q", i)));
  sender->Close();
  EXPECT_EQ(receiver.Receive(5).size(), 5u);
  EXPECT_FALSE(sender->Enqueue("after"));
  sender->Close();  // idempotent
  const DatagramSender::Stats stats = sender->stats();
  EXPECT_EQ(stats.sent, 5u);
  EXPECT_EQ(stats.dropped_closed, 1u);
}

// Descriptors this process has open.
size_t OpenDescriptors() {
  size_t count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    ++count;
  }
  return count;
}

// Close() gives the socket back at once, even while something keeps the sender alive (as a
// retired global recorder keeps its emitter): repeated setups do not run out of descriptors.
TEST(DatagramSenderTest, CloseGivesTheSocketBack) {
  UdpReceiver receiver;
  const size_t before = OpenDescriptors();
  auto sender = NewSender(receiver.endpoint());
  ASSERT_NE(sender, nullptr);
  EXPECT_EQ(OpenDescriptors(), before + 1);
  sender->Close();
  EXPECT_EQ(OpenDescriptors(), before);
  EXPECT_FALSE(sender->Enqueue("late"));
  EXPECT_EQ(sender->stats().dropped_closed, 1u);
}

TEST(DatagramSenderTest, CloseCountsWhatItCouldNotSendInTime) {
  UdpReceiver receiver;
  DatagramSender::Options options = Paused();
  options.shutdown_flush_timeout = absl::ZeroDuration();
  auto sender = NewSender(receiver.endpoint(), options);
  ASSERT_NE(sender, nullptr);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(sender->Enqueue("never"));
  sender->Close();
  const DatagramSender::Stats stats = sender->stats();
  EXPECT_EQ(stats.sent, 0u);
  EXPECT_EQ(stats.dropped_closed, 3u);
}

// A socket that stays full (the daemon's host drops nothing, but its buffer never empties): each
// batch waits for room once, not once per datagram, so Close() keeps to its timeout. Loopback UDP
// never fills a sender's buffer; a datagram socketpair whose reader never reads does.
TEST(DatagramSenderTest, ASocketThatStaysFullDoesNotHoldCloseUp) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
  const int reader = fds[1];
  while (send(fds[0], "x", 1, 0) == 1) {
  }
  ASSERT_EQ(errno, EAGAIN);
  DatagramSender::Options options = Paused();
  options.shutdown_flush_timeout = absl::Milliseconds(100);
  absl::StatusOr<std::unique_ptr<DatagramSender>> sender = DatagramSender::Adopt(fds[0], options);
  ASSERT_TRUE(sender.ok()) << sender.status();
  constexpr int kDatagrams = 200;  // a few batches
  for (int i = 0; i < kDatagrams; ++i) ASSERT_TRUE((*sender)->Enqueue("refused"));
  (*sender)->Resume();
  // Waiting 50 ms per datagram, the first batch alone took 3.2 s.
  std::future<void> closed = std::async(std::launch::async, [&] { (*sender)->Close(); });
  ASSERT_EQ(closed.wait_for(std::chrono::seconds(1)), std::future_status::ready);
  const DatagramSender::Stats stats = (*sender)->stats();
  EXPECT_EQ(stats.sent, 0u);
  EXPECT_GT(stats.would_block, 0u);
  EXPECT_EQ(stats.would_block, stats.send_errors);
  EXPECT_EQ(stats.would_block + stats.dropped_closed, static_cast<uint64_t>(kDatagrams));
  close(reader);
}

TEST(DatagramSenderTest, NothingListeningCostsOnlyCountedErrors) {
  auto sender = NewSender({"127.0.0.1", testing::UnusedUdpPort()});
  ASSERT_NE(sender, nullptr);
  // The kernel reports the ICMP "port unreachable" of one datagram on a later send.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  uint64_t enqueued = 0;
  while (sender->stats().connection_refused == 0 && absl::Now() < deadline) {
    ASSERT_TRUE(sender->Enqueue("x"));
    ++enqueued;
    ASSERT_TRUE(sender->Flush(deadline));
  }
  for (int i = 0; i < 1000; ++i, ++enqueued) ASSERT_TRUE(sender->Enqueue("burst"));
  ASSERT_TRUE(sender->Flush(absl::Now() + absl::Seconds(20)));
  const DatagramSender::Stats stats = sender->stats();
  EXPECT_GT(stats.connection_refused, 0u);
  EXPECT_EQ(stats.send_errors, stats.connection_refused);
  EXPECT_EQ(stats.sent + stats.send_errors, enqueued);
}

TEST(DatagramSenderTest, OversizeDatagramIsCountedAndTheRestStillGo) {
  UdpReceiver receiver;
  auto sender = NewSender(receiver.endpoint());
  ASSERT_NE(sender, nullptr);
  ASSERT_TRUE(sender->Enqueue(std::string(core::kMaxDatagramBytes + 1, 'x')));
  ASSERT_TRUE(sender->Enqueue("after"));
  ASSERT_TRUE(sender->Flush(absl::Now() + absl::Seconds(20)));
  EXPECT_EQ(receiver.Receive(1), std::vector<std::string>{"after"});
  const DatagramSender::Stats stats = sender->stats();
  EXPECT_EQ(stats.message_too_long, 1u);
  EXPECT_EQ(stats.send_errors, 1u);
  EXPECT_EQ(stats.sent, 1u);
}

TEST(DatagramSenderTest, BadEndpointsAndOptionsAreErrors) {
  EXPECT_EQ(DatagramSender::Create({"", 2000}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DatagramSender::Create({"127.0.0.1", 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  DatagramSender::Options options;
  options.queue_capacity = 1;
  EXPECT_EQ(DatagramSender::Create({"127.0.0.1", 2000}, options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = {};
  options.batch_delay = absl::Milliseconds(-1);
  EXPECT_EQ(DatagramSender::Create({"127.0.0.1", 2000}, options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = {};
  options.idle_delay = absl::Minutes(2);
  EXPECT_EQ(DatagramSender::Create({"127.0.0.1", 2000}, options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = {};
  options.sleep_after = absl::Milliseconds(-1);
  EXPECT_EQ(DatagramSender::Create({"127.0.0.1", 2000}, options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = {};
  options.resolve_interval = absl::ZeroDuration();
  EXPECT_EQ(DatagramSender::Create({"127.0.0.1", 2000}, options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.resolve_interval = absl::Hours(25);
  EXPECT_EQ(DatagramSender::Create({"127.0.0.1", 2000}, options).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(DatagramSender::Create({"localhost", 2000}).ok());
}

// A stand-in for the system's resolver, which the tests tell what a name resolves to and when.
// Names are looked up on NameResolver's threads: everything here is under the lock.
class FakeDns {
 public:
  enum class Answer { kAddress, kNoSuchName, kHang };

  static FakeDns& Get() {
    static FakeDns* const dns = new FakeDns;
    return *dns;
  }

  // From now on, `name` resolves to 127.0.0.1:`port`, to nothing, or never answers.
  void Set(const std::string& name, Answer answer, uint16_t port = 0) {
    std::lock_guard lock(mu_);
    answers_[name] = {answer, port};
    answered_.notify_all();
  }
  int lookups(const std::string& name) {
    std::lock_guard lock(mu_);
    return lookups_[name];
  }

  static int Resolve(const char* host, const char* service, const addrinfo* hints,
                     addrinfo** found) {
    // What the system's resolver says when asked for an address only (no lookup): the test's
    // names are not addresses.
    if ((hints->ai_flags & AI_NUMERICHOST) != 0) return EAI_NONAME;
    FakeDns& dns = Get();
    std::unique_lock lock(dns.mu_);
    ++dns.lookups_[host];
    // A hanging answer waits until the test sets another.
    dns.answered_.wait(lock, [&] { return dns.answers_[host].answer != Answer::kHang; });
    const auto [answer, port] = dns.answers_[host];
    lock.unlock();
    if (answer == Answer::kNoSuchName) return EAI_NONAME;
    EXPECT_EQ(hints->ai_family, AF_INET);
    EXPECT_EQ(hints->ai_socktype, SOCK_DGRAM);
    (void)service;
    addrinfo numeric = *hints;
    numeric.ai_flags |= AI_NUMERICHOST | AI_NUMERICSERV;
    return getaddrinfo("127.0.0.1", std::to_string(port).c_str(), &numeric, found);
  }

 private:
  struct Entry {
    Answer answer = Answer::kNoSuchName;
    uint16_t port = 0;
  };
  std::mutex mu_;
  std::condition_variable answered_;
  std::map<std::string, Entry> answers_;
  std::map<std::string, int> lookups_;
};

// Waits until `done` holds; false at a deadline of 20 s.
template <typename Done>
bool WaitUntil(Done done) {
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!done()) {
    if (absl::Now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

DatagramSender::Options WithFakeDns() {
  DatagramSender::Options options;
  options.resolve = &FakeDns::Resolve;
  return options;
}

// Until the daemon's name resolves (its container is still starting), Create() does not fail and
// items wait in the queue; once it does, they go, in order.
TEST(DatagramSenderTest, ADaemonNameThatDoesNotResolveYetIsWaitedFor) {
  UdpReceiver receiver;
  const std::string name = "starting.daemon.test";
  FakeDns::Get().Set(name, FakeDns::Answer::kNoSuchName);
  auto sender = NewSender({name, 2000}, WithFakeDns());
  ASSERT_NE(sender, nullptr);
  ASSERT_TRUE(sender->Enqueue("one"));
  ASSERT_TRUE(sender->Enqueue("two"));
  ASSERT_TRUE(WaitUntil([&] { return sender->stats().resolve_failures >= 2; }));
  EXPECT_FALSE(sender->Flush(absl::Now() + absl::Milliseconds(20)));
  EXPECT_EQ(sender->stats().sent, 0u);
  FakeDns::Get().Set(name, FakeDns::Answer::kAddress, receiver.port());
  EXPECT_EQ(receiver.Receive(2), (std::vector<std::string>{"one", "two"}));
  ASSERT_TRUE(sender->Flush(absl::Now() + absl::Seconds(20)));
  const DatagramSender::Stats stats = sender->stats();
  EXPECT_EQ(stats.sent, 2u);
  EXPECT_EQ(stats.address_changes, 0u);
  EXPECT_EQ(stats.dropped_queue_full + stats.send_errors, 0u);
}

// A resolver that never answers holds neither the thread that creates the sender, nor the ones
// that enqueue, nor Close(), which counts what waited as dropped.
TEST(DatagramSenderTest, AResolverThatNeverAnswersHoldsNothingUp) {
  const std::string name = "silent.daemon.test";
  FakeDns::Get().Set(name, FakeDns::Answer::kHang);
  DatagramSender::Options options = WithFakeDns();
  options.shutdown_flush_timeout = absl::Milliseconds(50);
  auto sender = NewSender({name, 2000}, options);
  ASSERT_NE(sender, nullptr);
  ASSERT_TRUE(WaitUntil([&] { return FakeDns::Get().lookups(name) >= 1; }));
  ASSERT_TRUE(sender->Enqueue("waits"));
  auto closed = std::async(std::launch::async, [&] { sender->Close(); });
  // Well before a lookup times out (5 s): Close() ends the lookup, it does not wait it out.
  EXPECT_EQ(closed.wait_for(std::chrono::seconds(3)), std::future_status::ready);
  closed.wait();
  const DatagramSender::Stats stats = sender->stats();
  EXPECT_EQ(stats.sent, 0u);
  EXPECT_EQ(stats.dropped_closed, 1u);
  FakeDns::Get().Set(name, FakeDns::Answer::kNoSuchName);  // lets the lookup's thread end
}

// The name is looked up again every resolve_interval: a daemon that comes back at another address
// is followed, and a lookup that fails meanwhile keeps the address the socket has.
TEST(DatagramSenderTest, ADaemonNameIsFollowedToANewAddress) {
  UdpReceiver first;
  UdpReceiver second;
  const std::string name = "moving.daemon.test";
  FakeDns::Get().Set(name, FakeDns::Answer::kAddress, first.port());
  DatagramSender::Options options = WithFakeDns();
  options.resolve_interval = absl::Milliseconds(1);
  auto sender = NewSender({name, 2000}, options);
  ASSERT_NE(sender, nullptr);
  ASSERT_TRUE(sender->Enqueue("first"));
  EXPECT_EQ(first.Receive(1), std::vector<std::string>{"first"});

  FakeDns::Get().Set(name, FakeDns::Answer::kNoSuchName);
  ASSERT_TRUE(WaitUntil([&] {
    // Each batch is a chance to look the name up.
    return sender->Enqueue("probe") && sender->Flush(absl::Now() + absl::Seconds(20)) &&
           sender->stats().resolve_failures >= 1;
  }));
  ASSERT_TRUE(sender->Enqueue("still first"));
  ASSERT_TRUE(sender->Flush(absl::Now() + absl::Seconds(20)));
  std::vector<std::string> received;
  while (received.empty() || received.back() != "still first") {
    const std::vector<std::string> more = first.Receive(1);
    ASSERT_EQ(more.size(), 1u) << "the socket lost its address";
    received.push_back(more[0]);
  }

  FakeDns::Get().Set(name, FakeDns::Answer::kAddress, second.port());
  bool moved = false;
  for (const absl::Time deadline = absl::Now() + absl::Seconds(20);
       !moved && absl::Now() < deadline;) {
    ASSERT_TRUE(sender->Enqueue("second"));
    ASSERT_TRUE(sender->Flush(deadline));
    moved = !second.Receive(1, absl::Milliseconds(10)).empty();
  }
  EXPECT_TRUE(moved);
  EXPECT_EQ(sender->stats().address_changes, 1u);
  EXPECT_EQ(sender->stats().send_errors, 0u);
}

TEST(DatagramSenderTest, SerializesDocumentsOnTheSenderThread) {
  UdpReceiver receiver;
  auto sender = NewSender(receiver.endpoint(), Paused());
  ASSERT_NE(sender, nullptr);
  auto segment = NewSegment(nullptr);
  segment->End();
  ASSERT_TRUE(sender->Enqueue(core::DocumentRef{segment}));
  // Enqueueing only queued the reference.
  EXPECT_EQ(sender->stats().serialization.documents, 0u);
  sender->Resume();
  ASSERT_TRUE(sender->Flush(absl::Now() + absl::Seconds(20)));
  const std::vector<std::string> received = receiver.Receive(1);
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0], core::kDaemonHeader + core::SerializeDocument({segment}));
  EXPECT_EQ(sender->stats().serialization.documents, 1u);
}

// The sender thread is named, so that top -H, perf and gdb show whose it is.
TEST(DatagramSenderTest, SenderThreadIsNamed) {
  const int before = core::testing::CountThreadsNamed("xraysink-send");
  UdpReceiver receiver;
  auto sender = NewSender(receiver.endpoint());
  ASSERT_NE(sender, nullptr);
  ASSERT_TRUE(sender->Enqueue("x"));
  ASSERT_TRUE(sender->Flush(absl::Now() + absl::Seconds(20)));  // the thread has started
  EXPECT_EQ(core::testing::CountThreadsNamed("xraysink-send"), before + 1);
  sender.reset();
  EXPECT_EQ(core::testing::CountThreadsNamed("xraysink-send"), before);
}

// kIdle puts the sender thread under SCHED_IDLE (and it still sends); kNormal leaves it as the
// creating thread's.
TEST(DatagramSenderTest, AnIdlePrioritySenderRunsUnderSchedIdle) {
  for (const auto priority :
       {DatagramSender::Options::Priority::kNormal, DatagramSender::Options::Priority::kIdle}) {
    const std::vector<pid_t> before = core::testing::ThreadIdsNamed("xraysink-send");
    UdpReceiver receiver;
    DatagramSender::Options options;
    options.priority = priority;
    auto sender = NewSender(receiver.endpoint(), options);
    ASSERT_NE(sender, nullptr);
    ASSERT_TRUE(sender->Enqueue("x"));
    ASSERT_EQ(receiver.Receive(1), std::vector<std::string>{"x"});  // past its setup, and sending
    std::vector<pid_t> started;
    for (const pid_t id : core::testing::ThreadIdsNamed("xraysink-send")) {
      if (std::find(before.begin(), before.end(), id) == before.end()) started.push_back(id);
    }
    ASSERT_EQ(started.size(), 1u);
    EXPECT_EQ(sched_getscheduler(started[0]),
              priority == DatagramSender::Options::Priority::kIdle ? SCHED_IDLE : SCHED_OTHER);
  }
}

// A sender that is behind (more queued than caller_serializes_above) has the enqueueing threads
// serialize their documents: they queue datagrams and keep no reference to the segment.
TEST(DatagramSenderTest, EnqueueingThreadsSerializeWhenTheSenderIsBehind) {
  constexpr int kDocuments = 300;
  UdpReceiver receiver;
  DatagramSender::Options options = Paused(/*queue_capacity=*/1024);
  options.caller_serializes_above = 100;
  auto sender = NewSender(receiver.endpoint(), options);
  ASSERT_NE(sender, nullptr);
  std::vector<std::shared_ptr<core::Segment>> segments;
  for (int i = 0; i < kDocuments; ++i) {
    auto settings = std::make_shared<core::SegmentSettings>();
    core::SegmentOptions segment_options;
    segment_options.name = absl::StrCat("s", i);
    segments.push_back(core::Segment::Create(std::move(segment_options), settings, nullptr));
    segments.back()->End();
    ASSERT_TRUE(sender->Enqueue(core::DocumentRef{segments.back()}));
  }
  DatagramSender::Stats stats = sender->stats();
  EXPECT_EQ(stats.enqueued, uint64_t{kDocuments});
  // The backlog is measured every 64 pushes: from the first check above 100 on, callers
  // serialize.
  EXPECT_GT(stats.serialized_by_callers, 0u);
  EXPECT_LT(stats.serialized_by_callers, uint64_t{kDocuments - 100});
  EXPECT_EQ(stats.serialization.documents, stats.serialized_by_callers);
  const size_t handed_over = kDocuments - stats.serialized_by_callers;
  for (int i = 0; i < kDocuments; ++i) {
    // Queued as a document: the queue holds the segment; serialized here: nothing does.
    EXPECT_EQ(segments[i].use_count(), static_cast<size_t>(i) < handed_over ? 2 : 1) << i;
  }

  sender->Resume();
  ASSERT_TRUE(sender->Flush(absl::Now() + absl::Seconds(20)));
  const std::vector<std::string> received = receiver.Receive(kDocuments);
  ASSERT_EQ(received.size(), size_t{kDocuments});
  for (int i = 0; i < kDocuments; ++i) {
    EXPECT_EQ(WithoutPadding(received[i]),
              core::kDaemonHeader + core::SerializeDocument({segments[i]}))
        << i;
  }
  stats = sender->stats();
  EXPECT_EQ(stats.serialization.documents, uint64_t{kDocuments});
  EXPECT_EQ(stats.sent, uint64_t{kDocuments});
}

// Sent segments are let go of by later producers, or by the sender thread once it goes idle: an
// idle sender keeps nothing alive.
TEST(DatagramSenderTest, LetsGoOfSentSegmentsWhenIdle) {
  UdpReceiver receiver;
  auto sender = NewSender(receiver.endpoint());
  ASSERT_NE(sender, nullptr);
  std::vector<std::weak_ptr<core::Segment>> sent;
  for (int i = 0; i < 10; ++i) {
    auto segment = NewSegment(nullptr);
    segment->End();
    sent.push_back(segment);
    ASSERT_TRUE(sender->Enqueue(core::DocumentRef{std::move(segment)}));
  }
  ASSERT_TRUE(sender->Flush(absl::Now() + absl::Seconds(20)));
  EXPECT_EQ(receiver.Receive(10).size(), 10u);
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  const auto all_released = [&] {
    for (const auto& segment : sent) {
      if (!segment.expired()) return false;
    }
    return true;
  };
  while (!all_released() && absl::Now() < deadline) std::this_thread::yield();
  EXPECT_TRUE(all_released());
}

// Records the thread that lets go of the segment it owns.
class ReleaseProbe {
 public:
  ReleaseProbe(std::shared_ptr<core::Segment> segment, std::atomic<std::thread::id>& released_on)
      : segment_(std::move(segment)), released_on_(released_on) {}
  ~ReleaseProbe() { released_on_.store(std::this_thread::get_id()); }

 private:
  std::shared_ptr<core::Segment> segment_;
  std::atomic<std::thread::id>& released_on_;
};

// A sent segment is let go of by the next thread that enqueues, not by the sender thread (whose
// frees would contend for the producer's malloc arena).
TEST(DatagramSenderTest, TheNextProducerLetsGoOfASentSegment) {
  UdpReceiver receiver;
  DatagramSender::Options options;
  options.batch_delay = absl::Minutes(1);  // the sender lingers: it does not go idle meanwhile
  auto sender = NewSender(receiver.endpoint(), options);
  ASSERT_NE(sender, nullptr);
  std::atomic<std::thread::id> released_on{};
  auto segment = NewSegment(nullptr);
  segment->End();
  const core::Segment* raw = segment.get();
  auto probe = std::make_shared<ReleaseProbe>(std::move(segment), released_on);
  // Shares the probe's ownership: the segment goes when the probe does.
  std::shared_ptr<const core::Segment> document(std::move(probe), raw);
  ASSERT_TRUE(sender->Enqueue(core::DocumentRef{std::move(document)}));
  EXPECT_EQ(receiver.Receive(1).size(), 1u);
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (sender->stats().sent == 0 && absl::Now() < deadline) std::this_thread::yield();
  ASSERT_EQ(sender->stats().sent, 1u);
  // Kept for a producer to let go of; or let go of already by this thread, when the sender
  // sent it before the Enqueue above returned (which ends by letting go of sent segments).
  const std::thread::id released = released_on.load();
  EXPECT_TRUE(released == std::thread::id() || released == std::this_thread::get_id());

  ASSERT_TRUE(sender->Enqueue(std::string("next")));
  EXPECT_EQ(released_on.load(), std::this_thread::get_id());
}

// A sink that owns its sender, like UdpEmitter: queued segments keep it alive.
class OwningSink : public core::SegmentSink {
 public:
  OwningSink(std::unique_ptr<DatagramSender> sender, std::promise<void>& destroyed)
      : sender_(std::move(sender)), destroyed_(destroyed) {}
  ~OwningSink() override {
    sender_.reset();
    destroyed_.set_value();
  }
  bool Accept(core::DocumentRef document) override { return sender_->Enqueue(std::move(document)); }
  DatagramSender& sender() { return *sender_; }

 private:
  std::unique_ptr<DatagramSender> sender_;
  std::promise<void>& destroyed_;
};

TEST(DatagramSenderTest, SenderThreadMayDropTheLastReferenceToItsOwner) {
  UdpReceiver receiver;
  std::promise<void> destroyed;
  auto sink = std::make_shared<OwningSink>(NewSender(receiver.endpoint(), Paused()), destroyed);
  DatagramSender& sender = sink->sender();
  auto segment = NewSegment(sink);
  segment->End();  // queued: the queue holds the segment, which holds the sink
  segment.reset();
  sink.reset();
  sender.Resume();
  // The sender thread destroys the sink and the sender, then still sends the datagram.
  EXPECT_EQ(destroyed.get_future().wait_for(std::chrono::seconds(20)), std::future_status::ready);
  EXPECT_EQ(receiver.Receive(1).size(), 1u);
}

// Documents of about one size go as one message the kernel cuts into datagrams: each arrives
// on its own, whole, with at most a few trailing spaces; documents of another size go in a
// message of their own.
TEST(DatagramSenderTest, DocumentsOfAboutOneSizeGoAsOneSegmentedMessage) {
  UdpReceiver receiver;
  auto sender = NewSender(receiver.endpoint(), Paused());
  ASSERT_NE(sender, nullptr);
  std::vector<std::string> expected;
  for (int i = 0; i < 40; ++i) {
    // Two sizes 150 bytes apart, beyond the padding any of them may get.
    auto segment = NewEndedSegment(i % 4 == 0 ? std::string(150, 'n') + std::to_string(i)
                                              : absl::StrCat("s", i));
    expected.push_back(core::kDaemonHeader + core::SerializeDocument({segment}));
    ASSERT_TRUE(sender->Enqueue(core::DocumentRef{segment}));
  }
  sender->Resume();
  ASSERT_TRUE(sender->Flush(absl::Now() + absl::Seconds(20)));
  const std::vector<std::string> received = receiver.Receive(expected.size());
  ASSERT_EQ(received.size(), expected.size());
  std::vector<std::string> unpadded;
  uint64_t bytes = 0, padding = 0;
  for (const std::string& datagram : received) {
    unpadded.push_back(WithoutPadding(datagram));
    bytes += datagram.size();
    padding += datagram.size() - unpadded.back().size();
    EXPECT_LE(datagram.size() - unpadded.back().size(), 64u) << datagram;
  }
  std::sort(unpadded.begin(), unpadded.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(unpadded, expected);
  const DatagramSender::Stats stats = sender->stats();
  EXPECT_EQ(stats.sent, expected.size());
  EXPECT_EQ(stats.segmented_sends, 2u);  // one message per size
  EXPECT_EQ(stats.segmented_datagrams, expected.size());
  EXPECT_GT(stats.padding_bytes, 0u);
  EXPECT_EQ(stats.padding_bytes, padding);
  EXPECT_EQ(stats.bytes_sent, bytes);
  EXPECT_EQ(stats.segmentation_refused, 0u);
  EXPECT_EQ(stats.send_errors, 0u);
}

// A datagram queued ready is sent as given: it shares a message only with datagrams of its size.
TEST(DatagramSenderTest, DatagramsQueuedReadyAreNeverPadded) {
  UdpReceiver receiver;
  auto sender = NewSender(receiver.endpoint(), Paused());
  ASSERT_NE(sender, nullptr);
  std::vector<std::string> expected;
  for (int i = 0; i < 30; ++i) {
    expected.push_back(std::string(100 + i % 3, 'a' + i % 26));
    ASSERT_TRUE(sender->Enqueue(expected.back()));
  }
  sender->Resume();
  ASSERT_TRUE(sender->Flush(absl::Now() + absl::Seconds(20)));
  std::vector<std::string> received = receiver.Receive(expected.size());
  std::sort(received.begin(), received.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(received, expected);
  const DatagramSender::Stats stats = sender->stats();
  EXPECT_EQ(stats.segmented_sends, 3u);  // one per size
  EXPECT_EQ(stats.segmented_datagrams, expected.size());
  EXPECT_EQ(stats.padding_bytes, 0u);
}

TEST(DatagramSenderTest, WithSegmentationOffEachDatagramIsAMessageAsSerialized) {
  UdpReceiver receiver;
  DatagramSender::Options options = Paused();
  options.udp_segmentation = false;
  auto sender = NewSender(receiver.endpoint(), options);
  ASSERT_NE(sender, nullptr);
  std::vector<std::string> expected;
  for (int i = 0; i < 20; ++i) {
    auto segment = NewEndedSegment(absl::StrCat("s", i));
    expected.push_back(core::kDaemonHeader + core::SerializeDocument({segment}));
    ASSERT_TRUE(sender->Enqueue(core::DocumentRef{segment}));
  }
  sender->Resume();
  ASSERT_TRUE(sender->Flush(absl::Now() + absl::Seconds(20)));
  EXPECT_EQ(receiver.Receive(expected.size()), expected);  // in order, as serialized
  const DatagramSender::Stats stats = sender->stats();
  EXPECT_EQ(stats.sent, expected.size());
  EXPECT_EQ(stats.segmented_sends, 0u);
  EXPECT_EQ(stats.padding_bytes, 0u);
}

// The kernel refuses segmentation on a socket that sends without UDP checksums (EINVAL): every
// datagram still goes, one message each, and after three refusals the sender stops trying.
TEST(DatagramSenderTest, ASocketThatRefusesSegmentationStillSendsEveryDatagram) {
  UdpReceiver receiver;
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  const int on = 1;
  ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_NO_CHECK, &on, sizeof(on)), 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(receiver.endpoint().port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  auto sender = DatagramSender::Adopt(fd);
  ASSERT_TRUE(sender.ok()) << sender.status();
  uint64_t total = 0;
  const auto send_round = [&] {
    std::vector<std::string> expected;
    for (int i = 0; i < 20; ++i) {
      auto segment = NewEndedSegment(absl::StrCat("s", i));
      expected.push_back(core::kDaemonHeader + core::SerializeDocument({segment}));
      ASSERT_TRUE((*sender)->Enqueue(core::DocumentRef{segment}));
    }
    ASSERT_TRUE((*sender)->Flush(absl::Now() + absl::Seconds(20)));
    std::vector<std::string> received = receiver.Receive(expected.size());
    for (std::string& datagram : received) datagram = WithoutPadding(std::move(datagram));
    std::sort(received.begin(), received.end());
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(received, expected);
    total += expected.size();
  };
  // Rounds until the third refusal (each round whose batch held two documents or more had one).
  for (int round = 0; round < 100 && (*sender)->stats().segmentation_refused < 3; ++round) {
    send_round();
  }
  ASSERT_EQ((*sender)->stats().segmentation_refused, 3u);
  for (int round = 0; round < 5; ++round) send_round();
  const DatagramSender::Stats stats = (*sender)->stats();
  EXPECT_EQ(stats.segmentation_refused, 3u);  // no longer tried
  EXPECT_EQ(stats.segmented_sends, 0u);
  EXPECT_EQ(stats.sent, total);
  EXPECT_EQ(stats.send_errors, 0u);
}

}  // namespace
}  // namespace xraysink::emitter
