#include "emitter/internal/http_post.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "emitter/internal/fd_wait.h"

namespace xraysink::emitter::internal {
namespace {

using Clock = std::chrono::steady_clock;

// Longest chunk-size line accepted: a size in hex, and rarely extensions.
constexpr size_t kMaxChunkLine = 1024;
// How much of a malformed status line goes into a message.
constexpr size_t kMaxLineInMessage = 60;

class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) close(fd_);
  }
  Socket(Socket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Socket& operator=(Socket&&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

absl::StatusOr<Socket> Connect(const core::Endpoint& endpoint, int cancel_fd,
                               Clock::time_point deadline, NameResolver& resolver) {
  absl::StatusOr<NameResolver::Addresses> addresses =
      resolver.Resolve(endpoint, cancel_fd, deadline);
  if (!addresses.ok()) return addresses.status();
  const addrinfo* found = addresses->first();
  absl::Status failed = absl::UnavailableError("no address to connect to");
  for (const addrinfo* address = found; address != nullptr; address = address->ai_next) {
    Socket socket(::socket(address->ai_family, address->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                           address->ai_protocol));
    if (socket.fd() < 0) {
      failed = absl::UnavailableError(absl::StrCat("cannot open a socket: ", ErrnoText(errno)));
      continue;
    }
    if (connect(socket.fd(), address->ai_addr, address->ai_addrlen) == 0) return socket;
    // Interrupted, a non-blocking connection goes on by itself.
    if (errno != EINPROGRESS && errno != EINTR) {
      failed = absl::UnavailableError(absl::StrCat("cannot connect: ", ErrnoText(errno)));
      continue;
    }
    const Readiness ready = WaitFor(socket.fd(), POLLOUT, cancel_fd, deadline);
    if (ready != Readiness::kReady) return NotReady(ready, "connecting");
    int error = 0;
    socklen_t length = sizeof(error);
    if (getsockopt(socket.fd(), SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
    if (error == 0) return socket;
    failed = absl::UnavailableError(absl::StrCat("cannot connect: ", ErrnoText(error)));
  }
  return failed;
}

absl::Status SendAll(int fd, absl::string_view data, int cancel_fd, Clock::time_point deadline) {
  while (!data.empty()) {
    // MSG_NOSIGNAL: a peer's reset is an error here, not SIGPIPE for the whole process.
    const ssize_t sent = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (sent > 0) {
      data.remove_prefix(static_cast<size_t>(sent));
    } else if (sent < 0 && errno == EINTR) {
      continue;
    } else if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      const Readiness ready = WaitFor(fd, POLLOUT, cancel_fd, deadline);
      if (ready != Readiness::kReady) return NotReady(ready, "sending the request");
    } else {
      return absl::UnavailableError(
          absl::StrCat("cannot send the request: ", ErrnoText(sent < 0 ? errno : EPIPE)));
    }
  }
  return absl::OkStatus();
}

absl::Status TooLarge(size_t limit) {
  return absl::ResourceExhaustedError(absl::StrCat("the answer is larger than ", limit, " bytes"));
}

absl::Status Malformed(absl::string_view what) {
  return absl::UnavailableError(absl::StrCat("not an HTTP/1.x answer: ", what));
}

// Reads an answer as it arrives, in bounded memory: the head (status line and headers) up to
// its limit, then the body as its framing says.
class AnswerParser {
 public:
  explicit AnswerParser(const HttpLimits& limits) : limits_(limits) {}

  // Takes what was read next: an error, or whether the answer is complete.
  absl::StatusOr<bool> Feed(absl::string_view data) {
    pending_.append(data.data(), data.size());
    absl::StatusOr<bool> done = Parse();
    pending_.erase(0, consumed_);
    consumed_ = 0;
    return done;
  }

  // The peer closed the connection.
  absl::Status End() const {
    if (state_ == State::kDone || state_ == State::kUntilClose) return absl::OkStatus();
    return absl::UnavailableError("the connection closed before the whole answer");
  }

  HttpAnswer Take() { return std::move(answer_); }

 private:
  enum class State {
    kHead,
    kLength,
    kUntilClose,
    kChunkSize,
    kChunkData,
    kChunkEnd,
    kTrailers,
    kDone
  };

  absl::string_view Unparsed() const { return absl::string_view(pending_).substr(consumed_); }

  // Moves up to `count` unparsed bytes into the body.
  size_t TakeBody(size_t count) {
    const size_t taken = std::min(count, Unparsed().size());
    answer_.body.append(pending_, consumed_, taken);
    consumed_ += taken;
    return taken;
  }

  absl::StatusOr<bool> Parse() {
    for (;;) {
      switch (state_) {
        case State::kHead: {
          const size_t from = std::max<size_t>(searched_, 3) - 3;
          const size_t end = Unparsed().find("\r\n\r\n", from);
          if (end == absl::string_view::npos || end + 4 > limits_.max_head_bytes) {
            if (Unparsed().size() > limits_.max_head_bytes) {
              return absl::ResourceExhaustedError(
                  absl::StrCat("the answer's status line and headers are over ",
                               limits_.max_head_bytes, " bytes"));
            }
            searched_ = Unparsed().size();
            return false;
          }
          const absl::string_view head = Unparsed().substr(0, end + 2);  // its lines' CRLFs
          consumed_ += end + 4;
          searched_ = 0;
          if (absl::Status parsed = ParseHead(head); !parsed.ok()) return parsed;
          break;
        }
        case State::kLength:
          remaining_ -= TakeBody(remaining_);
          if (remaining_ > 0) return false;
          state_ = State::kDone;
          break;
        case State::kUntilClose:
          TakeBody(Unparsed().size());
          if (answer_.body.size() > limits_.max_body_bytes) return TooLarge(limits_.max_body_bytes);
          return false;
        case State::kChunkSize: {
          const size_t end = Unparsed().find("\r\n");
          if (end == absl::string_view::npos) {
            if (Unparsed().size() > kMaxChunkLine) return Malformed("a chunk size line too long");
            return false;
          }
          absl::string_view line = Unparsed().substr(0, end);
          consumed_ += end + 2;
          line = absl::StripAsciiWhitespace(line.substr(0, line.find(';')));
          uint64_t size = 0;
          if (line.empty() || line.size() > 15 || !absl::SimpleHexAtoi(line, &size)) {
            return Malformed("a bad chunk size");
          }
          if (size == 0) {
            state_ = State::kTrailers;
          } else if (size > limits_.max_body_bytes - answer_.body.size()) {
            return TooLarge(limits_.max_body_bytes);
          } else {
            remaining_ = size;
            state_ = State::kChunkData;
          }
          break;
        }
        case State::kChunkData:
          remaining_ -= TakeBody(remaining_);
          if (remaining_ > 0) return false;
          state_ = State::kChunkEnd;
          break;
        case State::kChunkEnd:
          if (Unparsed().size() < 2) return false;
          if (Unparsed().substr(0, 2) != "\r\n") return Malformed("a chunk without its CRLF");
          consumed_ += 2;
          state_ = State::kChunkSize;
          break;
        case State::kTrailers: {
          const size_t end = Unparsed().find("\r\n");
          if (end == absl::string_view::npos) {
            if (Unparsed().size() > limits_.max_head_bytes) return Malformed("trailers too long");
            return false;
          }
          consumed_ += end + 2;
          if (end == 0) state_ = State::kDone;
          break;
        }
        case State::kDone:
          return true;
      }
    }
  }

  // `head`: the status line and the headers, each ending in CRLF.
  absl::Status ParseHead(absl::string_view head) {
    const std::vector<absl::string_view> lines =
        absl::StrSplit(head.substr(0, head.size() - 2), "\r\n");
    const absl::string_view status_line = lines[0];
    // "HTTP/1.1 200" and, usually, " OK".
    const bool well_formed = absl::StartsWith(status_line, "HTTP/1.") && status_line.size() >= 12 &&
                             status_line[8] == ' ' && absl::ascii_isdigit(status_line[9]) &&
                             absl::ascii_isdigit(status_line[10]) &&
                             absl::ascii_isdigit(status_line[11]) &&
                             (status_line.size() == 12 || status_line[12] == ' ');
    if (!well_formed) {
      return Malformed(absl::StrCat(
          "status line '", absl::CHexEscape(status_line.substr(0, kMaxLineInMessage)), "'"));
    }
    answer_.status =
        (status_line[9] - '0') * 100 + (status_line[10] - '0') * 10 + (status_line[11] - '0');
    // Not std::optional: g++ 12 at -O2 warns it may be read uninitialized (it is not).
    bool has_content_length = false;
    uint64_t content_length = 0;
    bool chunked = false, transfer_encoded = false;  // with any coding, Content-Length is moot
    for (size_t i = 1; i < lines.size(); ++i) {
      const size_t colon = lines[i].find(':');
      if (colon == absl::string_view::npos) return Malformed("a header line without ':'");
      const absl::string_view name = lines[i].substr(0, colon);
      const absl::string_view value = absl::StripAsciiWhitespace(lines[i].substr(colon + 1));
      if (absl::EqualsIgnoreCase(name, "Content-Length")) {
        uint64_t length = 0;
        if (value.empty() || !std::all_of(value.begin(), value.end(), absl::ascii_isdigit) ||
            !absl::SimpleAtoi(value, &length) || (has_content_length && content_length != length)) {
          return Malformed("a bad Content-Length");
        }
        content_length = length;
        has_content_length = true;
      } else if (absl::EqualsIgnoreCase(name, "Transfer-Encoding")) {
        // Chunked when it is the last coding applied (RFC 7230, 3.3.3).
        const absl::string_view last =
            absl::StripAsciiWhitespace(value.substr(value.rfind(',') + 1));
        chunked = absl::EqualsIgnoreCase(last, "chunked");
        transfer_encoded = true;
      }
    }
    if (answer_.status / 100 == 1) {  // interim (100 Continue): the real answer follows
      answer_.status = 0;
      state_ = State::kHead;
    } else if (answer_.status == 204 || answer_.status == 304) {
      state_ = State::kDone;
    } else if (chunked) {
      state_ = State::kChunkSize;
    } else if (has_content_length && !transfer_encoded) {
      if (content_length > limits_.max_body_bytes) return TooLarge(limits_.max_body_bytes);
      remaining_ = content_length;
      state_ = remaining_ == 0 ? State::kDone : State::kLength;
    } else {
      state_ = State::kUntilClose;
    }
    return absl::OkStatus();
  }

  const HttpLimits limits_;
  State state_ = State::kHead;
  std::string pending_;  // read and not yet parsed (from consumed_ on)
  size_t consumed_ = 0;
  size_t searched_ = 0;  // of the head, bytes looked through for its end
  uint64_t remaining_ = 0;
  HttpAnswer answer_;
};

}  // namespace

absl::StatusOr<HttpAnswer> PostJson(const core::Endpoint& endpoint, std::string_view path,
                                    std::string_view body, Clock::time_point deadline,
                                    int cancel_fd, NameResolver& resolver,
                                    const HttpLimits& limits) {
  absl::StatusOr<Socket> socket = Connect(endpoint, cancel_fd, deadline, resolver);
  if (!socket.ok()) return socket.status();
  const bool v6 = endpoint.host.find(':') != std::string::npos;
  const std::string request = absl::StrCat(
      "POST ", absl::string_view(path.data(), path.size()), " HTTP/1.1\r\nHost: ", v6 ? "[" : "",
      endpoint.host, v6 ? "]" : "", ":", endpoint.port,
      "\r\nContent-Type: application/json\r\nContent-Length: ", body.size(),
      "\r\nConnection: close\r\n\r\n", absl::string_view(body.data(), body.size()));
  if (absl::Status sent = SendAll(socket->fd(), request, cancel_fd, deadline); !sent.ok()) {
    return sent;
  }
  AnswerParser parser(limits);
  char buffer[16 * 1024];
  for (;;) {
    const ssize_t received = recv(socket->fd(), buffer, sizeof(buffer), 0);
    if (received > 0) {
      absl::StatusOr<bool> done =
          parser.Feed(absl::string_view(buffer, static_cast<size_t>(received)));
      if (!done.ok()) return done.status();
      if (*done) return parser.Take();
    } else if (received == 0) {
      if (absl::Status ended = parser.End(); !ended.ok()) return ended;
      return parser.Take();
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      const Readiness ready = WaitFor(socket->fd(), POLLIN, cancel_fd, deadline);
      if (ready != Readiness::kReady) return NotReady(ready, "reading the answer");
    } else if (errno != EINTR) {
      return absl::UnavailableError(absl::StrCat("cannot read the answer: ", ErrnoText(errno)));
    }
  }
}

}  // namespace xraysink::emitter::internal
