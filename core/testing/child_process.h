#ifndef XRAYSINK_CORE_TESTING_CHILD_PROCESS_H_
#define XRAYSINK_CORE_TESTING_CHILD_PROCESS_H_

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>

namespace xraysink::core::testing {

// ThreadSanitizer cannot follow a thread started in a child forked from a threaded process: glibc
// gives the new thread the stack, and so the id, of a thread that did not survive the fork, which
// TSan still counts as running ("dup thread with used id"). Tests whose children start threads
// skip under it.
#if defined(__SANITIZE_THREAD__)
inline constexpr bool kForkedChildrenCanStartThreads = false;
#else
inline constexpr bool kForkedChildrenCanStartThreads = true;
#endif

// What RunInChild returns when the child has not ended in time (it is killed), or could not be
// forked or watched.
inline constexpr int kChildHung = -1;
inline constexpr int kChildNotRun = -2;

// Runs `body` in a forked child, which then exits with what it returns (a gtest assertion there
// would not reach the parent: say what failed in the code); 125 if it throws. Returns the
// child's exit code, kChildHung if it has not ended within `timeout`, or 128 + the signal that
// ended it. The parent waits on a pidfd, so nothing sleeps.
inline int RunInChild(const std::function<int()>& body, std::chrono::milliseconds timeout) {
  const pid_t child = fork();
  if (child < 0) return kChildNotRun;
  if (child == 0) {
    int code = 125;
    try {
      code = body();
    } catch (...) {
    }
    _exit(code);
  }
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, child, 0));
  bool ended = true;
  if (pidfd >= 0) {
    pollfd ready{pidfd, POLLIN, 0};
    ended = poll(&ready, 1, static_cast<int>(timeout.count())) == 1;
    close(pidfd);
  }
  if (!ended) kill(child, SIGKILL);
  int status = 0;
  if (waitpid(child, &status, 0) != child) return kChildNotRun;
  if (!ended) return kChildHung;
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

}  // namespace xraysink::core::testing

#endif  // XRAYSINK_CORE_TESTING_CHILD_PROCESS_H_
