#include "core/internal/scoped_sigpipe_block.h"

#include <errno.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

namespace xraysink::core::internal {
namespace {

bool SigpipePending() {
  sigset_t pending;
  sigpending(&pending);
  return sigismember(&pending, SIGPIPE) == 1;
}

// Each test runs with SIGPIPE's default action (ending the process), as in a host that never
// touched it; a test runner may have it ignored.
class ScopedSigpipeBlockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    struct sigaction action {};
    action.sa_handler = SIG_DFL;
    ASSERT_EQ(sigaction(SIGPIPE, &action, &previous_), 0);
  }
  void TearDown() override { sigaction(SIGPIPE, &previous_, nullptr); }

  struct sigaction previous_ {};
};

// A write to a pipe nobody reads raises SIGPIPE: inside the block it is an EPIPE error, the
// process goes on, and nothing is left pending or blocked afterwards.
TEST_F(ScopedSigpipeBlockTest, AWriteToABrokenPipeIsAnErrorNotTheEnd) {
  int ends[2];
  ASSERT_EQ(pipe(ends), 0);
  close(ends[0]);
  {
    ScopedSigpipeBlock block;
    errno = 0;
    EXPECT_EQ(write(ends[1], "x", 1), -1);
    EXPECT_EQ(errno, EPIPE);
    EXPECT_TRUE(SigpipePending());
  }
  close(ends[1]);
  EXPECT_FALSE(SigpipePending());
  sigset_t mask;
  pthread_sigmask(SIG_SETMASK, nullptr, &mask);
  EXPECT_EQ(sigismember(&mask, SIGPIPE), 0);
}

// A SIGPIPE the thread had pending (and blocked) before is not the block's to discard.
TEST_F(ScopedSigpipeBlockTest, ASigpipePendingBeforeStaysPending) {
  sigset_t pipe_only, previous;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_only, &previous);
  pthread_kill(pthread_self(), SIGPIPE);
  { ScopedSigpipeBlock block; }
  EXPECT_TRUE(SigpipePending());
  const timespec no_wait{};
  sigtimedwait(&pipe_only, nullptr, &no_wait);  // the test's own, taken back
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

}  // namespace
}  // namespace xraysink::core::internal
