#ifndef XRAYSINK_EMITTER_DATAGRAM_SENDER_H_
#define XRAYSINK_EMITTER_DATAGRAM_SENDER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/daemon_address.h"
#include "core/internal/after_fork.h"
#include "core/segment_sink.h"
#include "core/serialization.h"
#include "emitter/internal/name_resolver.h"

namespace xraysink::emitter {

// How a DatagramSender queues and shuts down.
struct DatagramSenderOptions {
  // Items (documents or ready datagrams) waiting to be sent; more are dropped and counted.
  // 2 .. 16777216.
  size_t queue_capacity = 8192;
  // How long the sender thread, having emptied the queue, waits for more items before it sleeps
  // until woken. Under load this gathers datagrams into one sendmmsg and spares the threads that
  // end segments a wake-up call each; when idle it costs one late datagram at most this late.
  // Flush() and destruction cut it short. 0 .. 1 min; 0 sends each item as soon as it is seen.
  absl::Duration batch_delay = absl::Milliseconds(1);
  // How long the sender thread, once the queue stayed empty through a batch_delay, sleeps before
  // it looks again; items queued meanwhile wait for it. The threads that end segments do not wake
  // it (unless a whole batch waits): a wake-up is a system call on the thread that ends a
  // segment, and the woken sender, run at once on that thread's core, delays the request the
  // segment belongs to (by 50-70 us at the median, on the 2-core VM of docs/PERFORMANCE.md).
  // 0 .. 1 min; 0: every item wakes a sleeping sender at once (with batch_delay 0, each item is
  // sent as soon as it is queued).
  absl::Duration idle_delay = absl::Milliseconds(10);
  // Once the queue has stayed empty this long, the sender thread sleeps until an item comes
  // (whose thread then wakes it): a service without traffic has no timer wake-ups. 0 .. 1 h.
  absl::Duration sleep_after = absl::Seconds(1);
  // When more items than this wait in the queue, the sender thread is behind: not a burst, which
  // the queue absorbs, but load it cannot keep up with. The threads that end segments then
  // serialize their own documents and queue the datagrams, so that the sender thread only sends:
  // the work spreads over the producers' cores, and producers slow down a little (a serialization
  // each) instead of filling the queue until documents are dropped. 0 (or queue_capacity and
  // above): never.
  size_t caller_serializes_above = 2048;
  // How the sender thread is scheduled. kIdle (Linux's SCHED_IDLE) runs it only on CPU time
  // that no other thread of the machine wants, so its bursts of sending never delay a request:
  // on the 2-core VM of docs/PERFORMANCE.md, ~20 us less p99 at the default sampling rule. The
  // price: on a host whose cores stay busy it sends late, and once the queue is full drops
  // (counted), when traces of an overloaded service may be the ones wanted. Where the system
  // refuses the policy, the thread stays as it was (logged).
  enum class Priority { kNormal, kIdle };
  Priority priority = Priority::kNormal;
  // Sends runs of datagrams of about one size as one message that the kernel cuts into
  // datagrams (Linux UDP segmentation offload, UDP_SEGMENT): a third of the CPU time per datagram
  // of one message each, on the sending side and in the loopback delivery to a daemon on the
  // same host (docs/PERFORMANCE.md). Each datagram still arrives on its own, as the daemon
  // protocol requires. To make a run's datagrams one size, documents serialized here get
  // trailing spaces (JSON whitespace, which the daemon passes on and X-Ray's parser skips): at
  // most 1/16 of a document, 64 bytes at least, 512 at most. Datagrams queued ready
  // (Enqueue(std::string)) are never padded. Off, on a socket that is not UDP, for a datagram
  // beyond the path's MTU, or once the kernel refuses it (counted: segmentation_refused), each
  // datagram is a message of its own. On, a batch's datagrams may leave in another order than
  // they were queued (grouped by size): UDP keeps no order, and the daemon needs none.
  bool udp_segmentation = true;
  // A daemon given by host name (a container's, a service's) is looked up on the sender thread,
  // never on the caller's, and again this often: a daemon that restarts may come back at another
  // address. Until the name first resolves, items wait in the queue (once it is full, more are
  // dropped and counted); failed lookups are counted (resolve_failures), logged (the first of a
  // run) and retried after 100 ms, doubling up to this. A later lookup that fails keeps the
  // address the socket has. An address (127.0.0.1) is never looked up. 1 ms .. 1 day.
  absl::Duration resolve_interval = absl::Seconds(60);
  // For tests: how host names are looked up (getaddrinfo when null).
  internal::ResolveFunction resolve = nullptr;
  // How long destruction waits for the queue to drain before giving up on the rest.
  absl::Duration shutdown_flush_timeout = absl::Seconds(1);
  // For tests: the sender thread sends nothing until Resume(), so the queue can be filled.
  bool start_paused = false;
};

// Sends datagrams to one UDP address from a background thread. Any thread may enqueue; enqueueing
// never blocks and, but for the first item after a quiet spell (see sleep_after), takes no lock
// and makes no system call: items go into a
// bounded lock-free queue drained by the one sender thread, which serializes documents (so the
// thread that ended a segment does not, unless the sender falls behind: see
// caller_serializes_above) and sends in batches with sendmmsg, runs of documents of about one
// size as one message each (see udp_segmentation). Nothing here is fatal: a full
// queue and every send error are counted, and the item is dropped.
// Sent items are let go of (freed) by the threads that enqueue, a couple per call, or by the
// sender thread once idle: memory goes back where it was allocated, without malloc's
// cross-thread lock contention.
// In a child forked after it was made, it starts a sender thread of its own (threads do not
// survive a fork) on the same socket, with an empty queue: what the parent had queued is the
// parent's to send, and the child's stats count from zero.
class DatagramSender {
 public:
  using Options = DatagramSenderOptions;

  // Counters since creation.
  struct Stats {
    uint64_t enqueued = 0;            // items accepted into the queue
    uint64_t dropped_queue_full = 0;  // items refused because the queue was full
    uint64_t dropped_closed = 0;      // items refused or left unsent by Close()
    uint64_t sent = 0;                // datagrams the socket accepted
    uint64_t bytes_sent = 0;          // of the datagrams sent, their padding included
    uint64_t send_calls = 0;          // sendmmsg calls: sent / send_calls is the batch size
    // Messages the kernel cut into datagrams (udp_segmentation), the datagrams they held, and
    // the spaces added to documents to make a message's datagrams one size.
    uint64_t segmented_sends = 0;
    uint64_t segmented_datagrams = 0;
    uint64_t padding_bytes = 0;
    // Segmented messages the kernel refused: their datagrams went one by one. After three in a
    // row, or one that says the socket cannot segment at all, the sender stops trying (logged).
    uint64_t segmentation_refused = 0;
    uint64_t send_errors = 0;         // datagrams dropped by a send error, all kinds below
    uint64_t connection_refused = 0;  // ECONNREFUSED: nothing listens at the address
    uint64_t message_too_long = 0;    // EMSGSIZE
    uint64_t would_block = 0;         // EAGAIN: the socket buffer stayed full
    uint64_t other_errors = 0;
    // Lookups of the daemon's host name that failed or took longer than 5 s (each is retried).
    uint64_t resolve_failures = 0;
    // Times a later lookup of the host name moved the socket to another address.
    uint64_t address_changes = 0;
    uint64_t serialized_by_callers = 0;  // documents the enqueueing threads serialized
    // Items whose thread woke the sender thread (a system call there): the first after a quiet
    // spell (sleep_after), or a whole batch waiting while it slept (idle_delay).
    uint64_t producer_wakeups = 0;
    // Times the sender thread went to sleep until woken: at start, and after each quiet spell.
    uint64_t sleeps = 0;
    core::SerializationStats serialization;  // of the documents serialized so far
  };

  // Sends to `udp` (IPv4) over a non-blocking UDP socket: an address is connected to here, a
  // host name is looked up by the sender thread (see resolve_interval), so that a slow or failing
  // resolver never holds the caller, and a name that does not resolve yet (a daemon's container
  // that is not up) is waited for. Errors: a bad endpoint, bad options, no socket, descriptor or
  // thread available.
  static absl::StatusOr<std::unique_ptr<DatagramSender>> Create(const core::Endpoint& udp,
                                                                Options options = {});
  // Sends on `fd`, a connected non-blocking datagram socket made elsewhere (in tests, a
  // socketpair whose reader can be made to fall behind), which it owns from the call on (closed
  // on error too). Errors: bad options, no thread available.
  static absl::StatusOr<std::unique_ptr<DatagramSender>> Adopt(int fd, Options options = {});
  // Close().
  ~DatagramSender();
  DatagramSender(const DatagramSender&) = delete;
  DatagramSender& operator=(const DatagramSender&) = delete;

  // Queues one ready datagram, sent as given. False (counted) when the queue is full.
  bool Enqueue(std::string datagram);
  // Queues one document; the sender thread turns it into datagrams (header line + JSON, split or
  // trimmed to fit), or this thread does when the sender is behind. False (counted) when the
  // queue is full.
  bool Enqueue(core::DocumentRef document);

  // Waits until every item enqueued before the call was sent (or failed to send), or until
  // `deadline`. True when everything was handled in time.
  bool Flush(absl::Time deadline);

  // Waits up to `shutdown_flush_timeout` for the queue to drain, then stops the sender thread.
  // Items enqueued afterwards, or still queued then, are dropped and counted
  // (dropped_closed). Idempotent; for shutdown, once the producers are done.
  void Close();

  // Lets a sender created with `start_paused` run. No effect otherwise.
  void Resume();

  Stats stats() const;

 private:
  // Everything the sender thread uses. The thread shares ownership, so that a DatagramSender
  // destroyed on its own sender thread (a queued segment held the last reference to the sink that
  // owns it) can let the thread finish instead of joining itself.
  class State;

  DatagramSender(std::shared_ptr<State> state, const Options& options);
  // Starts the sender thread on `state`.
  static absl::StatusOr<std::unique_ptr<DatagramSender>> Start(std::shared_ptr<State> state,
                                                               const Options& options);
  // In a forked child (see core::internal::AfterForkHook): a new state, then a thread for it,
  // unless the parent had closed this sender.
  void ResetInChild();
  void StartInChild();

  std::shared_ptr<State> state_;  // replaced only in a forked child, while it has one thread
  const Options options_;
  std::mutex close_mu_;  // serializes Close() calls
  std::thread thread_;
  bool start_in_child_ = false;
  core::internal::AfterForkHook after_fork_{[this] { ResetInChild(); },
                                            [this] { StartInChild(); }};  // last: goes first
};

}  // namespace xraysink::emitter

#endif  // XRAYSINK_EMITTER_DATAGRAM_SENDER_H_
