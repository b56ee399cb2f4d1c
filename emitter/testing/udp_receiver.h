#ifndef XRAYSINK_EMITTER_TESTING_UDP_RECEIVER_H_
#define XRAYSINK_EMITTER_TESTING_UDP_RECEIVER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "core/daemon_address.h"

namespace xraysink::emitter::testing {

// A UDP socket bound to 127.0.0.1 on a free port, with as large a receive buffer as the system
// allows, standing in for the daemon in tests.
class UdpReceiver {
 public:
  UdpReceiver();
  ~UdpReceiver();
  UdpReceiver(const UdpReceiver&) = delete;
  UdpReceiver& operator=(const UdpReceiver&) = delete;

  uint16_t port() const { return port_; }
  core::Endpoint endpoint() const { return {"127.0.0.1", port_}; }

  // Receives datagrams until there are `count` or `timeout` passed; returns what arrived.
  std::vector<std::string> Receive(size_t count, absl::Duration timeout = absl::Seconds(20));

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

// A port on 127.0.0.1 where nothing listens (bound once, then released).
uint16_t UnusedUdpPort();

}  // namespace xraysink::emitter::testing

#endif  // XRAYSINK_EMITTER_TESTING_UDP_RECEIVER_H_
