#ifndef XRAYSINK_CORE_INTERNAL_SCOPED_SIGPIPE_BLOCK_H_
#define XRAYSINK_CORE_INTERNAL_SCOPED_SIGPIPE_BLOCK_H_

#include <pthread.h>
#include <signal.h>
#include <time.h>

namespace xraysink::core::internal {

// Keeps SIGPIPE from the calling thread for its lifetime, and discards one that a write raised
// meanwhile (a SIGPIPE already pending before stays pending). For calls into code that writes
// to sockets without MSG_NOSIGNAL, such as Debian's httplib: a write to a connection the peer
// reset, or that another thread shut, raises SIGPIPE, whose default action ends the whole
// process, and a library must not change the process's disposition for its host.
class ScopedSigpipeBlock {
 public:
  ScopedSigpipeBlock() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &previous_);
    already_pending_ = Pending();
  }
  ~ScopedSigpipeBlock() {
    if (!already_pending_ && Pending()) {
      const timespec no_wait{};
      sigtimedwait(&pipe_, nullptr, &no_wait);
    }
    pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
  }
  ScopedSigpipeBlock(const ScopedSigpipeBlock&) = delete;
  ScopedSigpipeBlock& operator=(const ScopedSigpipeBlock&) = delete;

 private:
  static bool Pending() {
    sigset_t pending;
    sigpending(&pending);
    return sigismember(&pending, SIGPIPE) == 1;
  }

  sigset_t pipe_;
  sigset_t previous_;
  bool already_pending_ = false;
};

}  // namespace xraysink::core::internal

#endif  // XRAYSINK_CORE_INTERNAL_SCOPED_SIGPIPE_BLOCK_H_
