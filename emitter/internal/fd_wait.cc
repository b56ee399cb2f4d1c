#include "emitter/internal/fd_wait.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"

namespace xraysink::emitter::internal {

std::string ErrnoText(int error) {
  char buffer[128];
  return strerror_r(error, buffer, sizeof(buffer));  // GNU: returns the text
}

Readiness WaitFor(int fd, short events, int cancel_fd,
                  std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return Readiness::kDeadline;
    const int64_t left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
    pollfd fds[2] = {{fd, events, 0}, {cancel_fd, POLLIN, 0}};
    const int count =
        poll(fds, cancel_fd >= 0 ? 2 : 1, static_cast<int>(std::min<int64_t>(left, INT_MAX)));
    if (count < 0) {
      if (errno == EINTR) continue;
      return Readiness::kError;
    }
    if (cancel_fd >= 0 && fds[1].revents != 0) return Readiness::kCancelled;
    if (count > 0 && fds[0].revents != 0) return Readiness::kReady;
  }
}

absl::Status NotReady(Readiness readiness, absl::string_view doing) {
  switch (readiness) {
    case Readiness::kDeadline:
      return absl::DeadlineExceededError(absl::StrCat("the deadline passed while ", doing));
    case Readiness::kCancelled:
      return absl::CancelledError("cancelled");
    default:
      return absl::UnavailableError(absl::StrCat("waiting while ", doing, ": ", ErrnoText(errno)));
  }
}

}  // namespace xraysink::emitter::internal
