#ifndef XRAYSINK_EMITTER_INTERNAL_FD_WAIT_H_
#define XRAYSINK_EMITTER_INTERNAL_FD_WAIT_H_

#include <chrono>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace xraysink::emitter::internal {

// How a bounded wait on a descriptor ended.
enum class Readiness { kReady, kDeadline, kCancelled, kError };

// Waits until `fd` has `events`, the deadline passes or `cancel_fd` (-1: none) is readable
// (looked at first: a cancelled call says so, whatever else is ready). An error or hang-up on
// `fd` counts as ready: the next call on it reports the error.
Readiness WaitFor(int fd, short events, int cancel_fd,
                  std::chrono::steady_clock::time_point deadline);

// What an errno value means, as text ("Connection refused").
std::string ErrnoText(int error);

// The status of a wait that did not end ready: DeadlineExceeded, Cancelled, or Unavailable with
// errno's text; `doing` says what was waited for ("connecting").
absl::Status NotReady(Readiness readiness, absl::string_view doing);

}  // namespace xraysink::emitter::internal

#endif  // XRAYSINK_EMITTER_INTERNAL_FD_WAIT_H_
