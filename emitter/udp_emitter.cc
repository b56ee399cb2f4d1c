#include "emitter/udp_emitter.h"

#include <utility>

#include "core/daemon_address.h"

namespace xraysink::emitter {

absl::StatusOr<std::shared_ptr<UdpEmitter>> UdpEmitter::Create(EmitterOptions options) {
  absl::StatusOr<core::DaemonAddress> address =
      core::DaemonAddress::FromEnvironment(options.daemon_address);
  if (!address.ok()) return address.status();
  DatagramSenderOptions sender_options;
  sender_options.queue_capacity = options.queue_capacity;
  sender_options.batch_delay = options.batch_delay;
  sender_options.idle_delay = options.idle_delay;
  sender_options.sleep_after = options.sleep_after;
  sender_options.caller_serializes_above = options.caller_serializes_above;
  sender_options.shutdown_flush_timeout = options.flush_timeout;
  sender_options.resolve_interval = options.resolve_interval;
  sender_options.priority = options.sender_priority;
  absl::StatusOr<std::unique_ptr<DatagramSender>> sender =
      DatagramSender::Create(address->udp, sender_options);
  if (!sender.ok()) return sender.status();
  return std::shared_ptr<UdpEmitter>(new UdpEmitter(*std::move(sender)));
}

UdpEmitter::UdpEmitter(std::unique_ptr<DatagramSender> sender) : sender_(std::move(sender)) {}

bool UdpEmitter::Accept(core::DocumentRef document) {
  return sender_->Enqueue(std::move(document));
}

bool UdpEmitter::SendRaw(std::string datagram) { return sender_->Enqueue(std::move(datagram)); }

bool UdpEmitter::Flush(absl::Time deadline) { return sender_->Flush(deadline); }

void UdpEmitter::Close() { sender_->Close(); }

UdpEmitter::Stats UdpEmitter::stats() const { return sender_->stats(); }

}  // namespace xraysink::emitter
