#include "emitter/datagram_sender.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <new>
#include <numeric>
#include <optional>
#include <system_error>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/log.h"
#include "emitter/internal/bounded_queue.h"

namespace xraysink::emitter {
namespace {

constexpr size_t kMaxQueueCapacity = size_t{1} << 24;
// Datagrams per sendmmsg call, and about how many the sender gathers before sending.
constexpr size_t kBatch = 64;
// How long the sender waits, in all per batch, for room in a full socket buffer; once that is
// spent, what the socket still refuses is dropped without waiting (counted as would_block): a
// socket that stays full costs each batch 50 ms at most, not 50 ms per datagram, so a Close()
// outlasts its shutdown_flush_timeout by one such wait at most.
constexpr auto kWaitForRoomPerBatch = std::chrono::milliseconds(50);
// Sent items waiting for a producer to let go of them (see State::Retire).
constexpr size_t kRetiredCapacity = 1024;
// Sent datagrams the sender thread keeps to serialize the next ones into: at most a batch of
// them, in all at most this many bytes (kept while idle, too).
constexpr size_t kSpareBytes = 256 * 1024;
// How many retired segments a producer lets go of per item it queues: more than one, so that
// producers keep up with the sender, few, so that no caller pays for a whole backlog.
constexpr int kReleasesPerPush = 2;
// Every this many pushes, the pushing thread measures the backlog (reading the consumer's
// position costs a cache miss while the sender is busy) and updates whether the sender is behind.
constexpr uint64_t kBacklogCheckInterval = 64;

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103  // Linux 4.18; older C libraries do not name it
#endif
// Datagrams in one segmented message: the kernel's UDP_MAX_SEGMENTS (64 before Linux 6.10).
constexpr size_t kMaxSegmentsPerSend = 64;
// IPv4 and UDP headers: a segment and its headers must fit the path's MTU.
constexpr size_t kHeaderBytes = 28;
// After this many segmented messages refused in a row, the sender stops segmenting.
constexpr int kRefusalsBeforeGivingUp = 3;
// Spaces a document may get so that its message's datagrams are one size (see PaddingAllowance).
constexpr size_t kMaxPaddingBytes = 512;
constexpr std::array<char, kMaxPaddingBytes> kSpaces = [] {
  std::array<char, kMaxPaddingBytes> spaces{};
  for (char& space : spaces) space = ' ';
  return spaces;
}();

// How much longer than `bytes` a datagram may be made to join a segmented message: 1/16 of it,
// between 64 and kMaxPaddingBytes bytes.
size_t PaddingAllowance(size_t bytes) {
  return std::clamp<size_t>(bytes / 16, 64, kMaxPaddingBytes);
}

// Errors with which the kernel refuses a segmented message that it would send as datagrams.
bool IsSegmentationRefusal(int error) {
  return error == EINVAL || error == EMSGSIZE || error == EIO || error == EOPNOTSUPP ||
         error == ENOPROTOOPT;
}

// Refusals that say the socket cannot segment at all (not this message, or this path).
bool IsSegmentationUnsupported(int error) {
  return error == EIO || error == EOPNOTSUPP || error == ENOPROTOOPT;
}

// The first wait before looking a daemon's name up again (doubling up to resolve_interval), and
// how long one lookup may take before it counts as failed (it goes on, and the next call waits
// for it rather than start another).
constexpr auto kFirstLookupRetry = std::chrono::milliseconds(100);
constexpr auto kLookupTimeout = std::chrono::seconds(5);

std::string ErrnoText(int error) {
  return std::error_code(error, std::generic_category()).message();
}

std::string AddressText(const sockaddr_in& address) {
  char text[INET_ADDRSTRLEN] = "?";
  inet_ntop(AF_INET, &address.sin_addr, text, sizeof(text));
  return absl::StrCat(text, ":", ntohs(address.sin_port));
}

}  // namespace

class DatagramSender::State {
 public:
  // A datagram a producer serialized from a document (see PushSerialized): unlike a datagram
  // queued ready, it may be padded (see udp_segmentation).
  struct SerializedDatagram {
    std::string bytes;
  };
  using Item = std::variant<std::string, core::DocumentRef, SerializedDatagram>;

  // `named`: the daemon's host name, which the sender thread looks up (`fd` is not connected);
  // `cancel_fd` (an eventfd, owned from here; -1 with no name) ends a lookup at Stop().
  State(int fd, const Options& options, std::optional<core::Endpoint> named = std::nullopt,
        int cancel_fd = -1)
      : fd_(fd),
        named_(std::move(named)),
        cancel_fd_(cancel_fd),
        resolver_(options.resolve != nullptr ? options.resolve : &getaddrinfo, AF_INET, SOCK_DGRAM),
        resolve_interval_(absl::ToChronoNanoseconds(options.resolve_interval)),
        priority_(options.priority),
        udp_segmentation_(options.udp_segmentation),
        batch_delay_(absl::ToChronoNanoseconds(options.batch_delay)),
        idle_delay_(absl::ToChronoNanoseconds(options.idle_delay)),
        sleep_after_(absl::ToChronoNanoseconds(options.sleep_after)),
        wake_backlog_(std::min(kBatch, options.queue_capacity / 2)),
        caller_serializes_above_(options.caller_serializes_above),
        queue_(options.queue_capacity),
        retired_(kRetiredCapacity),
        paused_(options.start_paused) {}
  ~State() {
    CloseSocket();
    if (cancel_fd_ >= 0) close(cancel_fd_);
  }

  // Once the sender thread has stopped: the socket goes back at once, even if something keeps
  // this state alive (a retired recorder holds its emitter).
  void CloseSocket() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  // Never blocks; takes the lock only to wake the sender thread (see PushItem).
  bool Push(Item item) {
    if (closed_.load(std::memory_order_relaxed)) {
      dropped_closed_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    if (core::DocumentRef* document = std::get_if<core::DocumentRef>(&item);
        document != nullptr && behind_.load(std::memory_order_relaxed)) {
      return PushSerialized(std::move(*document));
    }
    return PushItem(std::move(item));
  }

  bool Flush(absl::Time deadline) {
    const uint64_t target = queue_.pushed();
    std::unique_lock lock(mu_);
    if (done_ >= target) return true;
    ++flush_requests_;  // ends a linger or a doze now: the caller is waiting
    wake_.notify_one();
    return handled_.wait_until(lock, absl::ToChronoTime(deadline), [&] { return done_ >= target; });
  }

  // Notifies under the lock: once woken, the sender thread may destroy this state (see
  // ~DatagramSender), so the caller must be done with it by then.
  void Resume() {
    std::lock_guard lock(mu_);
    paused_ = false;
    wake_.notify_one();
  }

  // Refuses further items (counted); what is already queued still goes until Stop().
  void Close() { closed_.store(true, std::memory_order_relaxed); }
  bool closed() const { return closed_.load(std::memory_order_relaxed); }

  // In a forked child: a state for a new sender thread, with this one's socket (which this one
  // gives up), a cancellation descriptor of its own (this one's is shared with the parent, whose
  // lookups a Stop() here would end) and nothing queued. Called while the child has one thread.
  std::shared_ptr<State> ForkedCopy(Options options) {
    options.start_paused = paused_;
    const int cancel_fd =
        named_ ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : -1;  // -1: uncancellable
    return std::make_shared<State>(std::exchange(fd_, -1), options, named_, cancel_fd);
  }

  // The thread stops after its current batch; what is still queued is dropped with the state.
  void Stop() {
    std::lock_guard lock(mu_);
    stopping_ = true;
    wake_.notify_one();
    if (cancel_fd_ >= 0) {
      const uint64_t one = 1;
      [[maybe_unused]] const ssize_t written = write(cancel_fd_, &one, sizeof(one));
    }
  }

  // Once the sender thread has stopped: counts what it left in the queue as dropped. The end is
  // marked first, so that a push landing after this drop drops itself (see PushItem).
  void DropLeftovers() {
    ended_.store(true, std::memory_order_seq_cst);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    DropQueued();
    ReleaseRetired(kRetiredCapacity);
  }

  Stats stats() const {
    std::lock_guard lock(mu_);
    Stats stats = stats_;
    stats.enqueued = queue_.pushed();
    stats.serialized_by_callers = serialized_by_callers_.load(std::memory_order_relaxed);
    stats.serialization.documents += caller_documents_.load(std::memory_order_relaxed);
    stats.serialization.split_documents += caller_split_.load(std::memory_order_relaxed);
    stats.serialization.trimmed_documents += caller_trimmed_.load(std::memory_order_relaxed);
    stats.serialization.dropped_documents += caller_dropped_.load(std::memory_order_relaxed);
    stats.dropped_queue_full = dropped_queue_full_.load(std::memory_order_relaxed);
    stats.dropped_closed = dropped_closed_.load(std::memory_order_relaxed);
    return stats;
  }

  // The sender thread. Never holds the lock while it lets go of a document: that may destroy the
  // DatagramSender, which takes the lock to stop this thread.
  void Run() {
    // Shown by top -H, perf and gdb: the host's engineers can tell whose thread this is.
    pthread_setname_np(pthread_self(), "xraysink-send");
    if (priority_ == Options::Priority::kIdle) {
      const sched_param no_priority{};  // SCHED_IDLE takes priority 0
      if (const int error = pthread_setschedparam(pthread_self(), SCHED_IDLE, &no_priority);
          error != 0) {
        core::Log(core::LogLevel::kWarning,
                  absl::StrCat("the emitter's thread keeps its scheduling: SCHED_IDLE refused (",
                               ErrnoText(error), ")"));
      }
    }
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [this] { return !paused_ || stopping_; });
      if (stopping_) return;
    }
    std::vector<std::string> datagrams;
    std::vector<Origin> origins;     // of each of `datagrams`
    std::vector<std::string> spare;  // sent datagrams of ours, their memory reused
    core::SerializationStats serialization;
    Item item;
    // Whether the queue stayed empty through a linger since the last item, and since when; at
    // start, for sleep_after already, so that we sleep until the first item wakes us.
    bool lingered = true;
    auto quiet_since = std::chrono::steady_clock::now() - sleep_after_;
    while (true) {
      if (named_ && !FindDaemon()) return;
      uint64_t taken = 0;
      while (datagrams.size() < kBatch && queue_.TryPop(item)) {
        ++taken;
        if (std::string* raw = std::get_if<std::string>(&item)) {
          origins.push_back(Origin::kProducersDatagram);
          datagrams.push_back(std::move(*raw));
        } else if (auto* serialized = std::get_if<SerializedDatagram>(&item)) {
          origins.push_back(Origin::kProducersDocument);
          datagrams.push_back(std::move(serialized->bytes));
        } else {
          core::DocumentRef& document = std::get<core::DocumentRef>(item);
          core::SerializeDatagrams(document, core::kMaxDatagramBytes, datagrams, serialization,
                                   &spare);
          origins.resize(datagrams.size(), Origin::kSerializedHere);
          Retire(Item(std::move(document)));
        }
      }
      if (taken == 0) {
        // Caught up: producers hand over documents again.
        if (behind_.load(std::memory_order_relaxed))
          behind_.store(false, std::memory_order_relaxed);
        // Under load, waiting a moment before sending gathers many datagrams into one sendmmsg.
        if (!lingered) {
          if (!Linger()) return;
          lingered = true;
          quiet_since = std::chrono::steady_clock::now();
          continue;
        }
        // Items trickle in, or none come: let go of what is retired (producers may not come
        // back), then look again after idle_delay, unwoken, or, after a quiet spell, sleep
        // until the next item's thread wakes us.
        ReleaseRetired(kRetiredCapacity);
        const auto quiet_for = std::chrono::steady_clock::now() - quiet_since;
        if (idle_delay_ > std::chrono::nanoseconds::zero() && quiet_for < sleep_after_) {
          if (!Doze(std::min<std::chrono::nanoseconds>(idle_delay_, sleep_after_ - quiet_for))) {
            return;
          }
        } else if (!Park()) {
          return;
        }
        continue;
      }
      lingered = false;
      Stats counts;
      SendBatch(datagrams, origins, counts);
      // Producers' strings go back to producers (see Retire); ours are refilled next time.
      size_t spare_bytes = 0;
      for (const std::string& kept : spare) spare_bytes += kept.capacity();
      for (size_t i = 0; i < datagrams.size(); ++i) {
        if (origins[i] != Origin::kSerializedHere) {
          Retire(Item(std::move(datagrams[i])));
        } else if (spare.size() < kBatch && spare_bytes + datagrams[i].capacity() <= kSpareBytes) {
          spare_bytes += datagrams[i].capacity();
          spare.push_back(std::move(datagrams[i]));
        }
      }
      origins.clear();
      datagrams.clear();
      std::lock_guard lock(mu_);
      done_ += taken;
      stats_.sent += counts.sent;
      stats_.bytes_sent += counts.bytes_sent;
      stats_.send_calls += counts.send_calls;
      stats_.send_errors += counts.send_errors;
      stats_.connection_refused += counts.connection_refused;
      stats_.message_too_long += counts.message_too_long;
      stats_.would_block += counts.would_block;
      stats_.other_errors += counts.other_errors;
      stats_.segmented_sends += counts.segmented_sends;
      stats_.segmented_datagrams += counts.segmented_datagrams;
      stats_.padding_bytes += counts.padding_bytes;
      stats_.segmentation_refused += counts.segmentation_refused;
      stats_.serialization = serialization;
      handled_.notify_all();
      if (stopping_) return;
    }
  }

 private:
  // Any number of threads may pop at once (the queue is multi-consumer).
  void DropQueued() {
    Item item;
    while (queue_.TryPop(item)) dropped_closed_.fetch_add(1, std::memory_order_relaxed);
  }

  bool PushItem(Item item) {
    uint64_t position = 0;
    if (!queue_.TryPush(std::move(item), &position)) {
      dropped_queue_full_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    // A producer that passed the closed_ check as Close() ran may push after Close() emptied
    // the queue, where nothing would ever send or count the item. Pairs with DropLeftovers():
    // the push and this load are seq_cst, its store of the end is followed by a seq_cst fence,
    // so either its drop sees the item or we see the end here.
    if (ended_.load(std::memory_order_seq_cst)) {
      DropQueued();
      return false;
    }
    // Pairs with Park(): the push is seq_cst, so either the sender sees the item before sleeping
    // or we see it asleep here. A sender that lingers or dozes wakes on its own (within
    // batch_delay or idle_delay): this thread is spared the system call, and its request the
    // woken sender's run on its core; unless a whole batch waits.
    if (const Rest rest = rest_.load(std::memory_order_seq_cst);
        rest == Rest::kAsleep ||
        (rest == Rest::kDozing && queue_.BacklogAt(position) >= wake_backlog_)) {
      WakeSender();
    }
    if (caller_serializes_above_ != 0 && position % kBacklogCheckInterval == 0) {
      const bool behind = queue_.BacklogAt(position) > caller_serializes_above_;
      if (behind != behind_.load(std::memory_order_relaxed)) {
        behind_.store(behind, std::memory_order_relaxed);
      }
    }
    // Last: letting go of a segment cannot end this sender while the caller still holds the
    // document's sink, but it may be the last use of something else.
    ReleaseRetired(kReleasesPerPush);
    return true;
  }

  // The sender thread is behind: this thread turns the document into datagrams, queues them,
  // and lets go of the segment here, where its memory was allocated.
  bool PushSerialized(core::DocumentRef document) {
    // The thread's buffer, taken rather than used in place: letting go of retired items while
    // queueing must not find it half-iterated if that ever queued again on this thread.
    thread_local std::vector<std::string> reused;
    std::vector<std::string> datagrams = std::move(reused);
    datagrams.clear();
    core::SerializationStats counts;
    core::SerializeDatagrams(document, core::kMaxDatagramBytes, datagrams, counts);
    document = core::DocumentRef();
    serialized_by_callers_.fetch_add(1, std::memory_order_relaxed);
    caller_documents_.fetch_add(counts.documents, std::memory_order_relaxed);
    caller_split_.fetch_add(counts.split_documents, std::memory_order_relaxed);
    caller_trimmed_.fetch_add(counts.trimmed_documents, std::memory_order_relaxed);
    caller_dropped_.fetch_add(counts.dropped_documents, std::memory_order_relaxed);
    bool all_queued = true;
    for (std::string& datagram : datagrams) {
      all_queued = PushItem(Item(SerializedDatagram{std::move(datagram)})) && all_queued;
    }
    datagrams.clear();
    reused = std::move(datagrams);
    return all_queued;
  }

  // With the daemon given by name: connects the socket to what the name resolves to, at first
  // (waiting, retrying, until it resolves: items stay queued meanwhile) and again once
  // resolve_interval has passed since the last lookup (keeping the address when that lookup
  // fails). False once stopped.
  bool FindDaemon() {
    if (connected_ && std::chrono::steady_clock::now() < next_lookup_) return true;
    auto retry_after = std::min<std::chrono::nanoseconds>(kFirstLookupRetry, resolve_interval_);
    for (;;) {
      const bool found = LookUpDaemon();
      if (stopping()) return false;
      if (found || connected_) {  // a later lookup that failed: the address stays
        next_lookup_ = std::chrono::steady_clock::now() + resolve_interval_;
        return true;
      }
      std::unique_lock lock(mu_);
      if (wake_.wait_for(lock, retry_after, [this] { return stopping_; })) return false;
      retry_after = std::min(retry_after * 2, resolve_interval_);
    }
  }

  // One lookup of the daemon's name; true once the socket is connected to what it found.
  bool LookUpDaemon() {
    absl::StatusOr<internal::NameResolver::Addresses> found =
        resolver_.Resolve(*named_, cancel_fd_, std::chrono::steady_clock::now() + kLookupTimeout);
    if (!found.ok()) {
      if (!absl::IsCancelled(found.status())) LookupFailed(found.status().message());
      return false;
    }
    const addrinfo* first = found->first();
    if (first == nullptr || first->ai_family != AF_INET ||
        first->ai_addrlen != sizeof(sockaddr_in)) {
      LookupFailed("no IPv4 address");
      return false;
    }
    sockaddr_in address;
    std::memcpy(&address, first->ai_addr, sizeof(address));
    if (connected_ && address.sin_addr.s_addr == address_.sin_addr.s_addr &&
        address.sin_port == address_.sin_port) {
      lookup_failing_ = false;
      return true;
    }
    if (connect(fd_, first->ai_addr, first->ai_addrlen) != 0) {
      LookupFailed(absl::StrCat("cannot connect a UDP socket to it: ", ErrnoText(errno)));
      return false;
    }
    if (connected_ || lookup_failing_) {
      core::Log(core::LogLevel::kWarning,
                absl::StrCat("X-Ray daemon address '", named_->ToString(), "' now resolves to ",
                             AddressText(address), ": segments go there"));
    }
    if (connected_) {
      std::lock_guard lock(mu_);
      ++stats_.address_changes;
    }
    connected_ = true;
    lookup_failing_ = false;
    address_ = address;
    segment_limit_known_ = false;  // another path, perhaps another MTU
    return true;
  }

  // Counts a failed lookup, and logs the first of a run.
  void LookupFailed(absl::string_view why) {
    {
      std::lock_guard lock(mu_);
      ++stats_.resolve_failures;
    }
    if (std::exchange(lookup_failing_, true)) return;
    core::Log(
        core::LogLevel::kWarning,
        absl::StrCat("X-Ray daemon address '", named_->ToString(), "' does not resolve (", why,
                     connected_ ? "); segments still go to "
                                : "); segments wait in the queue while it is looked up again",
                     connected_ ? AddressText(address_) : ""));
  }

  bool stopping() const {
    std::lock_guard lock(mu_);
    return stopping_;
  }

  // Sleeps until an item arrives or Stop(); false when stopped.
  bool Park() {
    std::unique_lock lock(mu_);
    rest_.store(Rest::kAsleep, std::memory_order_seq_cst);
    ++stats_.sleeps;  // under the lock: stats() sees it only once we wait (or were woken)
    if (queue_.Empty()) {
      wake_.wait(lock, [this] {
        return rest_.load(std::memory_order_relaxed) == Rest::kAwake || stopping_;
      });
    }
    rest_.store(Rest::kAwake, std::memory_order_relaxed);
    return !stopping_;
  }

  // Sleeps for `duration` while the queue is empty, or until a producer sees a batch waiting,
  // Flush() or Stop(); false when stopped.
  bool Doze(std::chrono::nanoseconds duration) {
    std::unique_lock lock(mu_);
    rest_.store(Rest::kDozing, std::memory_order_seq_cst);
    if (queue_.Empty()) {
      wake_.wait_for(lock, duration, [this] {
        return rest_.load(std::memory_order_relaxed) == Rest::kAwake || stopping_ ||
               flush_requests_ != flush_requests_seen_;
      });
    }
    rest_.store(Rest::kAwake, std::memory_order_relaxed);
    flush_requests_seen_ = flush_requests_;
    return !stopping_;
  }

  // Sleeps for batch_delay, or until Flush() or Stop(); false when stopped.
  bool Linger() {
    std::unique_lock lock(mu_);
    if (batch_delay_ > std::chrono::nanoseconds::zero()) {
      wake_.wait_for(lock, batch_delay_,
                     [this] { return stopping_ || flush_requests_ != flush_requests_seen_; });
    }
    flush_requests_seen_ = flush_requests_;
    return !stopping_;
  }

  // A sent item (a segment, a producer's datagram) is let go of by the next producers rather than
  // by the sender thread: freeing the many small blocks of a segment on a thread other than the
  // one that allocated them makes glibc's malloc take the allocating thread's arena lock for
  // each, in contention with that thread's own allocations, and it costs the sender time it
  // needs for sending.
  void Retire(Item item) {
    if (!retired_.TryPush(std::move(item))) item = Item();  // full: let go here
  }

  void ReleaseRetired(size_t count) {
    Item item;
    for (size_t i = 0; i < count && retired_.TryPop(item); ++i) item = Item();
  }

  void WakeSender() {
    std::lock_guard lock(mu_);
    if (rest_.load(std::memory_order_relaxed) == Rest::kAwake) return;  // another producer did
    rest_.store(Rest::kAwake, std::memory_order_relaxed);
    ++stats_.producer_wakeups;
    wake_.notify_one();
  }

  // Where a datagram came from: what may be done to it, and who lets go of it.
  enum class Origin : uint8_t {
    kSerializedHere,     // ours: may be padded, and its memory is reused for the next ones
    kProducersDocument,  // serialized by a producer: may be padded, goes back to producers
    kProducersDatagram,  // queued ready: sent as given, goes back to producers
  };

  // One message of a sendmmsg call: the datagrams order[first .. first + count), each padded to
  // segment_bytes when there are several (a message the kernel cuts into datagrams).
  struct SendUnit {
    size_t first;
    size_t count;
    size_t segment_bytes;
  };

  // The largest datagram a segmented message may hold on the socket's path, 0 when it cannot
  // be segmented (off, refused, or not a UDP socket: IP_MTU fails on a socketpair).
  size_t SegmentLimit() {
    if (!udp_segmentation_ || segmentation_off_) return 0;
    if (!segment_limit_known_) {
      int mtu = 0;
      socklen_t length = sizeof(mtu);
      segment_limit_ = 0;
      if (getsockopt(fd_, IPPROTO_IP, IP_MTU, &mtu, &length) == 0 &&
          static_cast<size_t>(mtu) > kHeaderBytes) {
        segment_limit_ = std::min(static_cast<size_t>(mtu) - kHeaderBytes, core::kMaxDatagramBytes);
      }
      segment_limit_known_ = true;
    }
    return segment_limit_;
  }

  // Groups `datagrams` into messages: runs of datagrams of about one size (see
  // PaddingAllowance), in order of size, each run one segmented message; the rest one message
  // each, in the order queued.
  void PlanSends(const std::vector<std::string>& datagrams, const std::vector<Origin>& origins,
                 std::vector<size_t>& order, std::vector<SendUnit>& units) {
    order.resize(datagrams.size());
    std::iota(order.begin(), order.end(), size_t{0});
    units.clear();
    const size_t limit = datagrams.size() >= 2 ? SegmentLimit() : 0;
    if (limit == 0) {
      for (size_t i = 0; i < order.size(); ++i) units.push_back({i, 1, datagrams[i].size()});
      return;
    }
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return datagrams[a].size() < datagrams[b].size(); });
    const auto bytes = [&](size_t at) { return datagrams[order[at]].size(); };
    for (size_t first = 0; first < order.size();) {
      size_t end = first + 1;
      if (bytes(first) <= limit) {
        // A datagram queued ready cannot be padded: once one is in, the run takes only more of
        // its size.
        std::optional<size_t> fixed;
        if (origins[order[first]] == Origin::kProducersDatagram) fixed = bytes(first);
        const size_t most = bytes(first) + PaddingAllowance(bytes(first));
        while (end < order.size() && end - first < kMaxSegmentsPerSend) {
          const size_t next = bytes(end);
          if (next > limit || next > most || (end - first + 1) * next > core::kMaxDatagramBytes ||
              (fixed && next != *fixed)) {
            break;
          }
          if (origins[order[end]] == Origin::kProducersDatagram) fixed = next;
          ++end;
        }
      }
      units.push_back({first, end - first, bytes(end - 1)});
      first = end;
    }
  }

  // A segmented message refused with `error`: its datagrams go one by one; the sender stops
  // segmenting for good after kRefusalsBeforeGivingUp in a row, or at once when the socket
  // cannot segment. A refusal may also mean a smaller MTU: it is read again.
  void SegmentationRefused(int error) {
    segment_limit_known_ = false;
    if (!IsSegmentationUnsupported(error) && ++refusals_in_a_row_ < kRefusalsBeforeGivingUp) {
      return;
    }
    segmentation_off_ = true;
    core::Log(core::LogLevel::kWarning,
              absl::StrCat("the emitter sends each datagram as a message of its own from now on: "
                           "the kernel refuses UDP segmentation (",
                           ErrnoText(error), ")"));
  }

  // Sends `datagrams`, counting into the send fields of `counts`. A datagram the socket refuses
  // is counted and skipped; the rest still go.
  void SendBatch(const std::vector<std::string>& datagrams, const std::vector<Origin>& origins,
                 Stats& counts) {
    PlanSends(datagrams, origins, order_, units_);
    // A segmented message takes two vectors a datagram (its bytes, its padding).
    std::array<mmsghdr, kBatch> messages;
    std::array<iovec, 2 * kMaxSegmentsPerSend + kBatch> vectors;
    union Control {
      char bytes[CMSG_SPACE(sizeof(uint16_t))];
      cmsghdr aligned;
    };
    std::array<Control, kBatch> controls;
    size_t next = 0;               // in units_
    bool waited_for_room = false;  // for units_[next]
    // Set at the first full socket buffer: when this batch's waiting for room ends.
    std::optional<std::chrono::steady_clock::time_point> stop_waiting;
    while (next < units_.size()) {
      size_t count = 0;
      size_t vectors_used = 0;
      while (next + count < units_.size() && count < kBatch) {
        const SendUnit& unit = units_[next + count];
        const size_t needed = unit.count > 1 ? 2 * unit.count : 1;
        if (vectors_used + needed > vectors.size()) break;
        mmsghdr& message = messages[count];
        message = {};
        message.msg_hdr.msg_iov = &vectors[vectors_used];
        for (size_t i = 0; i < unit.count; ++i) {
          const std::string& datagram = datagrams[order_[unit.first + i]];
          vectors[vectors_used++] = {const_cast<char*>(datagram.data()), datagram.size()};
          if (const size_t padding = unit.segment_bytes - datagram.size(); padding > 0) {
            vectors[vectors_used++] = {const_cast<char*>(kSpaces.data()), padding};
          }
        }
        message.msg_hdr.msg_iovlen =
            static_cast<size_t>(&vectors[vectors_used] - message.msg_hdr.msg_iov);
        if (unit.count > 1) {
          message.msg_hdr.msg_control = controls[count].bytes;
          message.msg_hdr.msg_controllen = sizeof(controls[count].bytes);
          cmsghdr* header = CMSG_FIRSTHDR(&message.msg_hdr);
          header->cmsg_level = IPPROTO_UDP;
          header->cmsg_type = UDP_SEGMENT;
          header->cmsg_len = CMSG_LEN(sizeof(uint16_t));
          const auto segment_bytes = static_cast<uint16_t>(unit.segment_bytes);
          std::memcpy(CMSG_DATA(header), &segment_bytes, sizeof(segment_bytes));
        }
        ++count;
      }
      const int sent = sendmmsg(fd_, messages.data(), static_cast<unsigned>(count), 0);
      ++counts.send_calls;
      if (sent > 0) {
        for (int i = 0; i < sent; ++i) {
          const SendUnit& unit = units_[next + static_cast<size_t>(i)];
          counts.bytes_sent += messages[i].msg_len;
          counts.sent += unit.count;
          if (unit.count > 1) {
            ++counts.segmented_sends;
            counts.segmented_datagrams += unit.count;
            for (size_t j = 0; j < unit.count; ++j) {
              counts.padding_bytes += unit.segment_bytes - datagrams[order_[unit.first + j]].size();
            }
            refusals_in_a_row_ = 0;
          }
        }
        next += static_cast<size_t>(sent);
        waited_for_room = false;
        continue;
      }
      // sendmmsg reports the error of the first message it could not send: units_[next].
      const int error = errno;
      if (error == EINTR) continue;
      if (error == EAGAIN && !waited_for_room && WaitForRoom(stop_waiting)) {
        waited_for_room = true;
        continue;
      }
      const SendUnit failed = units_[next];
      if (failed.count > 1 && IsSegmentationRefusal(error)) {
        // Its datagrams, one message each, take its place (and are counted as they fare).
        ++counts.segmentation_refused;
        SegmentationRefused(error);
        units_.erase(units_.begin() + static_cast<std::ptrdiff_t>(next));
        for (size_t i = failed.count; i-- > 0;) {
          const size_t at = failed.first + i;
          units_.insert(units_.begin() + static_cast<std::ptrdiff_t>(next),
                        SendUnit{at, 1, datagrams[order_[at]].size()});
        }
        continue;
      }
      counts.send_errors += failed.count;
      switch (error) {
        case ECONNREFUSED:
          counts.connection_refused += failed.count;
          break;
        case EMSGSIZE:
          counts.message_too_long += failed.count;
          break;
        case EAGAIN:
          counts.would_block += failed.count;
          break;
        default:
          counts.other_errors += failed.count;
      }
      ++next;
      waited_for_room = false;
    }
  }

  // Waits until the socket has room or the batch's time for waiting is spent; false when it was
  // spent already.
  bool WaitForRoom(std::optional<std::chrono::steady_clock::time_point>& stop_waiting) const {
    const auto now = std::chrono::steady_clock::now();
    if (!stop_waiting) stop_waiting = now + kWaitForRoomPerBatch;
    if (now >= *stop_waiting) return false;
    pollfd writable{fd_, POLLOUT, 0};
    // Rounded up: poll's 0 would not wait at all.
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(*stop_waiting - now);
    poll(&writable, 1, static_cast<int>(left.count()));
    return true;
  }

  int fd_;  // -1 once closed; used by the sender thread only while it runs
  // The daemon's host name when it was given by name: the sender thread connects fd_ to it.
  const std::optional<core::Endpoint> named_;
  const int cancel_fd_;  // readable once stopping: ends a lookup
  internal::NameResolver resolver_;
  const std::chrono::nanoseconds resolve_interval_;
  const Options::Priority priority_;
  // The sender thread's own: whether to segment (see udp_segmentation), how far, and how the
  // kernel took it.
  const bool udp_segmentation_;
  bool segmentation_off_ = false;  // refused for good
  bool segment_limit_known_ = false;
  size_t segment_limit_ = 0;  // see SegmentLimit()
  int refusals_in_a_row_ = 0;
  std::vector<size_t> order_;  // SendBatch's, kept for their memory
  std::vector<SendUnit> units_;
  // The sender thread's own, with a name: whether fd_ is connected, to what, when to look again,
  // and whether the last lookup failed.
  bool connected_ = false;
  sockaddr_in address_{};
  std::chrono::steady_clock::time_point next_lookup_;
  bool lookup_failing_ = false;
  const std::chrono::nanoseconds batch_delay_;
  const std::chrono::nanoseconds idle_delay_;
  const std::chrono::nanoseconds sleep_after_;
  const size_t wake_backlog_;  // queued items that make a producer wake a dozing sender
  const size_t caller_serializes_above_;
  internal::BoundedQueue<Item> queue_;
  internal::BoundedQueue<Item> retired_;  // sent; for producers to let go of
  // Set by the sender thread just before it sleeps (dozing: until idle_delay is over; asleep:
  // until woken), back to kAwake by whoever wakes it: a producer looks at it (one load) to know
  // whether it has to wake the sender.
  enum class Rest : uint8_t { kAwake, kDozing, kAsleep };
  std::atomic<Rest> rest_{Rest::kAwake};
  std::atomic<uint64_t> dropped_queue_full_{0};
  std::atomic<bool> closed_{false};
  std::atomic<bool> ended_{false};  // the sender thread is gone (see DropLeftovers)
  std::atomic<uint64_t> dropped_closed_{0};
  // Whether the backlog was above caller_serializes_above_ when last measured (by a producer,
  // every kBacklogCheckInterval pushes); cleared by the sender thread when it empties the queue.
  std::atomic<bool> behind_{false};
  std::atomic<uint64_t> serialized_by_callers_{0};
  // The producers' share of Stats::serialization.
  std::atomic<uint64_t> caller_documents_{0};
  std::atomic<uint64_t> caller_split_{0};
  std::atomic<uint64_t> caller_trimmed_{0};
  std::atomic<uint64_t> caller_dropped_{0};

  // std, not absl: the system Abseil is not built for TSan, which would not see its ordering.
  mutable std::mutex mu_;
  std::condition_variable wake_;     // the sender thread waits here: resting or paused
  std::condition_variable handled_;  // Flush() waits here
  bool paused_;                      // guarded by mu_, like the five below
  bool stopping_ = false;
  uint64_t flush_requests_ = 0;       // Flush() calls that found items unhandled
  uint64_t flush_requests_seen_ = 0;  // by the sender thread: no need to stay awake for them
  uint64_t done_ = 0;                 // items the sender thread has handled
  Stats stats_;                       // the sender thread's counters
};

namespace {

absl::Status CheckOptions(const DatagramSender::Options& options) {
  if (options.queue_capacity < 2 || options.queue_capacity > kMaxQueueCapacity) {
    return absl::InvalidArgumentError(absl::StrCat(
        "emitter queue capacity must be 2..", kMaxQueueCapacity, ", not ", options.queue_capacity));
  }
  for (const auto& [name, value, max] :
       {std::tuple("batch delay", options.batch_delay, absl::Minutes(1)),
        std::tuple("idle delay", options.idle_delay, absl::Minutes(1)),
        std::tuple("sleep-after", options.sleep_after, absl::Hours(1))}) {
    if (value < absl::ZeroDuration() || value > max) {
      return absl::InvalidArgumentError(absl::StrCat("emitter ", name, " must be 0..",
                                                     absl::FormatDuration(max), ", not ",
                                                     absl::FormatDuration(value)));
    }
  }
  if (options.resolve_interval < absl::Milliseconds(1) ||
      options.resolve_interval > absl::Hours(24)) {
    return absl::InvalidArgumentError(
        absl::StrCat("emitter resolve interval must be 1ms..24h, not ",
                     absl::FormatDuration(options.resolve_interval)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<DatagramSender>> DatagramSender::Create(const core::Endpoint& udp,
                                                                       Options options) {
  if (absl::Status checked = CheckOptions(options); !checked.ok()) return checked;
  if (udp.host.empty() || udp.port == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("X-Ray daemon UDP address '", udp.ToString(), "' needs a host and a port"));
  }
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("cannot open a UDP socket: ", ErrnoText(errno)));
  }
  // The daemon address format has no IPv6 form: an IPv4 address, or a name.
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(udp.port);
  if (inet_pton(AF_INET, udp.host.c_str(), &address.sin_addr) != 1) {
    // A name: the sender thread looks it up, and Stop() ends a lookup through this descriptor.
    const int cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (cancel_fd < 0) {
      const int error = errno;
      close(fd);
      return absl::UnavailableError(absl::StrCat("cannot open an eventfd: ", ErrnoText(error)));
    }
    return Start(std::make_shared<State>(fd, options, udp, cancel_fd), options);
  }
  // Connected: sends need no address, and the kernel reports ICMP errors (ECONNREFUSED).
  if (connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    const int error = errno;
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot connect a UDP socket to '", udp.ToString(), "': ", ErrnoText(error)));
  }
  return Start(std::make_shared<State>(fd, options), options);
}

absl::StatusOr<std::unique_ptr<DatagramSender>> DatagramSender::Adopt(int fd, Options options) {
  if (absl::Status checked = CheckOptions(options); !checked.ok()) {
    close(fd);
    return checked;
  }
  return Start(std::make_shared<State>(fd, options), options);  // from here it owns the socket
}

absl::StatusOr<std::unique_ptr<DatagramSender>> DatagramSender::Start(std::shared_ptr<State> state,
                                                                      const Options& options) {
  std::unique_ptr<DatagramSender> sender(new DatagramSender(std::move(state), options));
  try {
    sender->thread_ = std::thread([state = sender->state_] { state->Run(); });
  } catch (const std::system_error& error) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot start the emitter thread: ", error.what()));
  }
  return sender;
}

DatagramSender::DatagramSender(std::shared_ptr<State> state, const Options& options)
    : state_(std::move(state)), options_(options) {}

void DatagramSender::ResetInChild() {
  new (&close_mu_) std::mutex;  // a thread of the parent may have been closing
  start_in_child_ = false;
  if (!thread_.joinable()) return;  // closed before the fork, or not started yet
  // The handle names a thread the child does not have: joining it would never return, and
  // destroying it while joinable aborts. Let go of it and of its state, which the thread may
  // have left mid-operation, and whose queue holds the parent's documents.
  core::internal::LeakInChild(new std::thread(std::move(thread_)));
  if (state_->closed()) return;  // the parent was closing: so is the child
  std::shared_ptr<State> forked = state_->ForkedCopy(options_);
  core::internal::LeakInChild(new std::shared_ptr<State>(std::exchange(state_, std::move(forked))));
  start_in_child_ = true;
}

void DatagramSender::StartInChild() {
  if (!start_in_child_) return;
  try {
    thread_ = std::thread([state = state_] { state->Run(); });
  } catch (const std::system_error&) {
    state_->Close();  // no thread to send: documents are refused and counted, never left waiting
  }
}

DatagramSender::~DatagramSender() { Close(); }

void DatagramSender::Close() {
  std::lock_guard lock(close_mu_);
  state_->Close();
  if (!thread_.joinable()) return;
  if (thread_.get_id() == std::this_thread::get_id()) {
    // The sender thread let go of the last reference to our owner: it cannot wait for itself.
    state_->Stop();
    thread_.detach();
    return;
  }
  state_->Flush(absl::Now() + options_.shutdown_flush_timeout);
  state_->Stop();
  thread_.join();
  state_->DropLeftovers();
  state_->CloseSocket();
}

bool DatagramSender::Enqueue(std::string datagram) {
  return state_->Push(State::Item(std::move(datagram)));
}

bool DatagramSender::Enqueue(core::DocumentRef document) {
  return state_->Push(State::Item(std::move(document)));
}

bool DatagramSender::Flush(absl::Time deadline) { return state_->Flush(deadline); }

void DatagramSender::Resume() { state_->Resume(); }

DatagramSender::Stats DatagramSender::stats() const { return state_->stats(); }

}  // namespace xraysink::emitter
