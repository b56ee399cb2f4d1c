#include "core/daemon_address.h"

#include <cstdlib>

namespace xraysink::core {
namespace {

absl::Status Invalid(std::string_view value, std::string_view why) {
  return absl::InvalidArgumentError("invalid X-Ray daemon address '" + std::string(value) +
                                    "': " + std::string(why) +
                                    " (expected host:port or 'tcp:host:port udp:host:port')");
}

absl::StatusOr<Endpoint> ParseEndpoint(std::string_view whole, std::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return Invalid(whole, "missing port");
  const std::string_view host = text.substr(0, colon);
  const std::string_view port = text.substr(colon + 1);
  if (host.empty()) return Invalid(whole, "missing host");
  for (char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == '_';
    if (!ok) return Invalid(whole, "bad host (IPv6 is not supported)");
  }
  if (port.empty() || port.size() > 5) return Invalid(whole, "bad port");
  int number = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return Invalid(whole, "port is not a number");
    number = number * 10 + (c - '0');
  }
  if (number < 1 || number > 65535) return Invalid(whole, "port out of range");
  return Endpoint{std::string(host), static_cast<uint16_t>(number)};
}

}  // namespace

DaemonAddress DaemonAddress::Default() {
  return DaemonAddress{Endpoint{"127.0.0.1", 2000}, Endpoint{"127.0.0.1", 2000}};
}

absl::StatusOr<DaemonAddress> DaemonAddress::Parse(std::string_view value) {
  const size_t space = value.find(' ');
  if (space == std::string_view::npos) {
    if (value.substr(0, 4) == "tcp:" || value.substr(0, 4) == "udp:") {
      return Invalid(value, "both tcp: and udp: parts are needed");
    }
    absl::StatusOr<Endpoint> both = ParseEndpoint(value, value);
    if (!both.ok()) return both.status();
    return DaemonAddress{*both, *both};
  }
  const std::string_view first = value.substr(0, space);
  const std::string_view second = value.substr(space + 1);
  if (second.find(' ') != std::string_view::npos) return Invalid(value, "too many parts");
  DaemonAddress address;
  bool has_tcp = false, has_udp = false;
  for (std::string_view part : {first, second}) {
    const std::string_view prefix = part.substr(0, 4);
    if (prefix != "tcp:" && prefix != "udp:") return Invalid(value, "parts need tcp: or udp:");
    bool& seen = prefix == "tcp:" ? has_tcp : has_udp;
    if (seen) return Invalid(value, "duplicate part");
    seen = true;
    absl::StatusOr<Endpoint> endpoint = ParseEndpoint(value, part.substr(4));
    if (!endpoint.ok()) return endpoint.status();
    (prefix == "tcp:" ? address.tcp : address.udp) = *endpoint;
  }
  return address;
}

absl::StatusOr<DaemonAddress> DaemonAddress::FromEnvironment(std::string_view configured) {
  if (const char* env = std::getenv("AWS_XRAY_DAEMON_ADDRESS"); env != nullptr && *env != '\0') {
    absl::StatusOr<DaemonAddress> parsed = Parse(env);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError("AWS_XRAY_DAEMON_ADDRESS: " +
                                        std::string(parsed.status().message()));
    }
    return parsed;
  }
  if (!configured.empty()) return Parse(configured);
  return Default();
}

}  // namespace xraysink::core
