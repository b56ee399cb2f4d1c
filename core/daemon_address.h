#ifndef XRAYSINK_CORE_DAEMON_ADDRESS_H_
#define XRAYSINK_CORE_DAEMON_ADDRESS_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace xraysink::core {

// A host (name or IPv4 address, resolved by its user) and port.
struct Endpoint {
  std::string host;
  uint16_t port = 0;
  std::string ToString() const { return host + ":" + std::to_string(port); }
};

// Where the X-Ray daemon listens: UDP for segments, TCP for the sampling API (spec 4.2).
struct DaemonAddress {
  Endpoint udp;
  Endpoint tcp;

  // `host:port` (both), or `tcp:host:port udp:host:port` in either order, one space apart.
  // Hosts are names or IPv4 addresses (letters, digits, `.`, `-`, `_`); ports 1..65535.
  // Rejected with the reason: a missing or non-numeric port, port 0 or > 65535, an IPv6 address
  // (`[::1]:2000`), one prefixed part alone, two parts not both prefixed, a repeated prefix,
  // more than two parts.
  static absl::StatusOr<DaemonAddress> Parse(std::string_view value);
  // 127.0.0.1:2000 for both.
  static DaemonAddress Default();
  // AWS_XRAY_DAEMON_ADDRESS when set and not empty (a bad value is an error naming the
  // variable), else `configured` when not empty, else the default.
  static absl::StatusOr<DaemonAddress> FromEnvironment(std::string_view configured = "");
};

}  // namespace xraysink::core

#endif  // XRAYSINK_CORE_DAEMON_ADDRESS_H_
