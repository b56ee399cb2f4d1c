#include "tools/local_daemon/udp_listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace xraysink::tools {
namespace {

// Larger than any UDP payload (65,507 bytes over IPv4), so no datagram is ever cut.
constexpr size_t kBufferBytes = 1 << 16;

absl::Status SystemError(const std::string& what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(errno)));
}

absl::StatusOr<sockaddr_in> Resolve(const std::string& host, uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (const int error = getaddrinfo(host.c_str(), nullptr, &hints, &found); error != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot resolve '", host, "' to an IPv4 address: ", gai_strerror(error)));
  }
  sockaddr_in address;
  std::memcpy(&address, found->ai_addr, sizeof(address));
  freeaddrinfo(found);
  address.sin_port = htons(port);
  return address;
}

}  // namespace

absl::StatusOr<std::unique_ptr<UdpListener>> UdpListener::Bind(const std::string& host,
                                                               uint16_t port) {
  absl::StatusOr<sockaddr_in> address = Resolve(host, port);
  if (!address.ok()) return address.status();
  const std::string where = absl::StrCat(host, ":", port);
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return SystemError("cannot create a UDP socket");
  // No SO_REUSEADDR: on Linux it would let two daemons share a UDP port silently.
  if (bind(fd, reinterpret_cast<const sockaddr*>(&*address), sizeof(*address)) != 0) {
    absl::Status status = SystemError(absl::StrCat("cannot listen on ", where));
    close(fd);
    return status;
  }
  socklen_t length = sizeof(*address);
  int pipe_fds[2];
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&*address), &length) != 0 ||
      pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    absl::Status status = SystemError(absl::StrCat("cannot set up the socket on ", where));
    close(fd);
    return status;
  }
  // Room for bursts (a streamed segment, a load test) while the receiver is busy printing; the
  // kernel caps it at net.core.rmem_max, which is fine.
  const int receive_buffer = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof(receive_buffer));
  // So that datagrams lost to a full buffer are counted rather than silently gone. Without it
  // (an old kernel) dropped() stays 0, which is no reason to refuse to run.
  const int enable = 1;
  setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &enable, sizeof(enable));
  return std::unique_ptr<UdpListener>(
      new UdpListener(fd, pipe_fds[0], pipe_fds[1], ntohs(address->sin_port)));
}

UdpListener::~UdpListener() {
  close(socket_);
  close(wake_read_);
  close(wake_write_);
}

absl::StatusOr<std::optional<std::string>> UdpListener::Receive(absl::Duration timeout) {
  int timeout_ms = -1;
  if (timeout != absl::InfiniteDuration()) {
    const int64_t ms = absl::ToInt64Milliseconds(absl::Ceil(timeout, absl::Milliseconds(1)));
    timeout_ms = static_cast<int>(std::clamp<int64_t>(ms, 0, std::numeric_limits<int>::max()));
  }
  pollfd fds[2] = {{socket_, POLLIN, 0}, {wake_read_, POLLIN, 0}};
  const int ready = poll(fds, 2, timeout_ms);
  if (ready < 0 && errno != EINTR) return SystemError("poll");
  if (ready <= 0) return std::nullopt;
  if (fds[1].revents != 0) {
    char drain[64];
    while (read(wake_read_, drain, sizeof(drain)) > 0) {
    }
    return std::nullopt;
  }
  return ReceiveQueued();
}

absl::StatusOr<std::optional<std::string>> UdpListener::ReceiveQueued() {
  buffer_.resize(kBufferBytes);
  iovec data{buffer_.data(), buffer_.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(uint32_t))];
  msghdr message{};
  message.msg_iov = &data;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof(control);
  const ssize_t size = recvmsg(socket_, &message, 0);
  if (size < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return std::nullopt;
    return SystemError("recvmsg");
  }
  // The kernel's running count as the datagram was queued, sent only once it is not 0.
  for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr;
       header = CMSG_NXTHDR(&message, header)) {
    if (header->cmsg_level == SOL_SOCKET && header->cmsg_type == SO_RXQ_OVFL) {
      uint32_t count;
      std::memcpy(&count, CMSG_DATA(header), sizeof(count));
      dropped_ = count;
    }
  }
  return std::string(buffer_.data(), static_cast<size_t>(size));
}

void UdpListener::Wake() {
  const char byte = 1;
  // A full pipe already holds a wake-up; nothing else can go wrong worth reporting here.
  [[maybe_unused]] const ssize_t written = write(wake_write_, &byte, 1);
}

}  // namespace xraysink::tools
