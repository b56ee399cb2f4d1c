#ifndef XRAYSINK_EMITTER_UDP_EMITTER_H_
#define XRAYSINK_EMITTER_UDP_EMITTER_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/segment_sink.h"
#include "emitter/datagram_sender.h"

namespace xraysink::emitter {

// Where and how a UdpEmitter sends.
struct EmitterOptions {
  // `host:port` or `tcp:host:port udp:host:port` (only the UDP part is used here).
  // AWS_XRAY_DAEMON_ADDRESS wins when set; empty means 127.0.0.1:2000.
  std::string daemon_address;
  // Documents waiting to be sent; more are dropped and counted.
  size_t queue_capacity = DatagramSenderOptions{}.queue_capacity;
  // How long the sender waits for a batch to build up (see DatagramSenderOptions::batch_delay).
  absl::Duration batch_delay = DatagramSenderOptions{}.batch_delay;
  // How long the sender sleeps, unwoken, while documents trickle in, and after how long a quiet
  // spell it sleeps until woken (see DatagramSenderOptions::idle_delay and sleep_after).
  absl::Duration idle_delay = DatagramSenderOptions{}.idle_delay;
  absl::Duration sleep_after = DatagramSenderOptions{}.sleep_after;
  // Above this many queued documents, the threads that end segments serialize their own (see
  // DatagramSenderOptions::caller_serializes_above). 0: never.
  size_t caller_serializes_above = DatagramSenderOptions{}.caller_serializes_above;
  // How the emitter's thread is scheduled (see DatagramSenderOptions::priority): kIdle keeps its
  // sending from delaying requests, and on a host whose cores stay busy, sends late or drops.
  DatagramSenderOptions::Priority sender_priority = DatagramSenderOptions{}.priority;
  // How often a daemon given by host name is looked up again, on the emitter's thread (see
  // DatagramSenderOptions::resolve_interval).
  absl::Duration resolve_interval = DatagramSenderOptions{}.resolve_interval;
  // How long destruction waits for queued documents to go out.
  absl::Duration flush_timeout = DatagramSenderOptions{}.shutdown_flush_timeout;
};

// The segment sink that sends finished documents to the X-Ray daemon over UDP, one document per
// datagram (spec 4.1). Accept() only queues: serialization and sending happen on the emitter's
// own thread, and nothing the daemon or the network does can block or crash the caller.
class UdpEmitter : public core::SegmentSink {
 public:
  using Stats = DatagramSender::Stats;

  // Errors: a bad daemon address (naming AWS_XRAY_DAEMON_ADDRESS when it came from there), bad
  // options. A host name is looked up on the emitter's thread, not here: one that does not
  // resolve yet (the daemon's container still starting) is logged and retried while documents
  // wait in the queue (see DatagramSenderOptions::resolve_interval).
  static absl::StatusOr<std::shared_ptr<UdpEmitter>> Create(EmitterOptions options = {});

  // Queues the document; false when the queue is full (counted in stats().dropped_queue_full).
  bool Accept(core::DocumentRef document) override;
  // Queues a ready datagram (header line included), sent as given. For benchmarks and tools.
  bool SendRaw(std::string datagram);
  // Waits until everything queued before the call was sent, or `deadline`; true if all was.
  bool Flush(absl::Time deadline);
  // Flushes (bounded by flush_timeout) and stops the sending thread; later documents are
  // dropped and counted (stats().dropped_closed). For shutdown: the recorder may outlive the
  // setup that owns this emitter, but its thread should not.
  void Close();
  Stats stats() const;

 private:
  explicit UdpEmitter(std::unique_ptr<DatagramSender> sender);

  const std::unique_ptr<DatagramSender> sender_;
};

}  // namespace xraysink::emitter

#endif  // XRAYSINK_EMITTER_UDP_EMITTER_H_
