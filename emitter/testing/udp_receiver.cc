#include "emitter/testing/udp_receiver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace xraysink::emitter::testing {
namespace {

// Binds a UDP socket to 127.0.0.1:0; returns it and its port. Aborts the test binary on failure:
// no test can run without it.
int BindLoopback(uint16_t& port) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    std::perror("UdpReceiver: cannot bind 127.0.0.1:0");
    std::abort();
  }
  port = ntohs(address.sin_port);
  return fd;
}

}  // namespace

UdpReceiver::UdpReceiver() {
  fd_ = BindLoopback(port_);
  // Bursts of a few thousand small datagrams must fit even if the test reads them late.
  // SO_RCVBUFFORCE passes net.core.rmem_max when privileged; SO_RCVBUF is capped by it.
  const int size = 16 << 20;
  if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) != 0) {
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
  }
}

UdpReceiver::~UdpReceiver() { close(fd_); }

std::vector<std::string> UdpReceiver::Receive(size_t count, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::vector<std::string> datagrams;
  std::string buffer(1 << 16, '\0');
  while (datagrams.size() < count) {
    const ssize_t size = recv(fd_, buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (size >= 0) {
      datagrams.emplace_back(buffer.data(), static_cast<size_t>(size));
      continue;
    }
    const absl::Duration left = deadline - absl::Now();
    if ((errno != EAGAIN && errno != EINTR) || left <= absl::ZeroDuration()) break;
    pollfd readable{fd_, POLLIN, 0};
    poll(&readable, 1, static_cast<int>(std::max<int64_t>(1, absl::ToInt64Milliseconds(left))));
  }
  return datagrams;
}

uint16_t UnusedUdpPort() {
  uint16_t port = 0;
  close(BindLoopback(port));
  return port;
}

}  // namespace xraysink::emitter::testing
