#ifndef XRAYSINK_CORE_TESTING_LOOPBACK_LISTENER_H_
#define XRAYSINK_CORE_TESTING_LOOPBACK_LISTENER_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>

namespace xraysink::core::testing {

// A TCP socket listening on 127.0.0.1, at a port the kernel picked; closed when destroyed.
// Nothing accepts unless the test does: the kernel still completes handshakes into the backlog,
// which makes a peer that connects and is never answered.
class LoopbackListener {
 public:
  explicit LoopbackListener(int backlog = 4) : fd_(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        listen(fd_, backlog) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      Close();
      return;
    }
    port_ = ntohs(address.sin_port);
  }
  ~LoopbackListener() { Close(); }
  LoopbackListener(const LoopbackListener&) = delete;
  LoopbackListener& operator=(const LoopbackListener&) = delete;

  // False when the socket could not be set up (then fd() is -1 and port() 0).
  bool ok() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  uint16_t port() const { return port_; }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
  uint16_t port_ = 0;
};

}  // namespace xraysink::core::testing

#endif  // XRAYSINK_CORE_TESTING_LOOPBACK_LISTENER_H_
