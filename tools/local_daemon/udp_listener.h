#ifndef XRAYSINK_TOOLS_LOCAL_DAEMON_UDP_LISTENER_H_
#define XRAYSINK_TOOLS_LOCAL_DAEMON_UDP_LISTENER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace xraysink::tools {

// A UDP socket bound to an IPv4 address, as the daemon listens for segments. One thread
// receives; Wake() may be called from any thread or a signal handler.
class UdpListener {
 public:
  // `host` is an IPv4 address or a name that resolves to one; port 0 picks a free port. Errors
  // name the address and the reason (e.g. "Address already in use").
  static absl::StatusOr<std::unique_ptr<UdpListener>> Bind(const std::string& host, uint16_t port);
  ~UdpListener();
  UdpListener(const UdpListener&) = delete;
  UdpListener& operator=(const UdpListener&) = delete;

  // The bound port (the chosen one when bound to port 0).
  uint16_t port() const { return port_; }

  // Waits up to `timeout` (absl::InfiniteDuration() for ever) for one datagram and returns it
  // whole. nullopt when the time is up, a signal interrupted the wait, or Wake() was called
  // (before or during the wait); an error only when the socket fails.
  absl::StatusOr<std::optional<std::string>> Receive(absl::Duration timeout);
  // A datagram already queued, without waiting (nullopt when there is none); Wake() does not
  // stop it. To drain the socket at shutdown.
  absl::StatusOr<std::optional<std::string>> ReceiveQueued();

  // Datagrams the kernel dropped for this socket, nearly all because its receive buffer was
  // full. The kernel tells with each datagram it queues, so drops after the last datagram
  // received are not counted yet.
  uint64_t dropped() const { return dropped_; }

  // Makes the current or next Receive return nullopt. Async-signal-safe.
  void Wake();

 private:
  UdpListener(int socket, int wake_read, int wake_write, uint16_t port)
      : socket_(socket), wake_read_(wake_read), wake_write_(wake_write), port_(port) {}

  const int socket_;
  const int wake_read_;
  const int wake_write_;
  const uint16_t port_;
  std::string buffer_;
  uint64_t dropped_ = 0;
};

}  // namespace xraysink::tools

#endif  // XRAYSINK_TOOLS_LOCAL_DAEMON_UDP_LISTENER_H_
