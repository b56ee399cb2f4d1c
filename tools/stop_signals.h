#ifndef XRAYSINK_TOOLS_STOP_SIGNALS_H_
#define XRAYSINK_TOOLS_STOP_SIGNALS_H_

#include <signal.h>

namespace xraysink::tools {

// SIGINT and SIGTERM. The tools block them in main before any thread starts (every thread
// inherits the mask) and take them with WaitForStopSignal, so no handler ever interrupts a
// server thread.
inline sigset_t StopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  return signals;
}

// Blocks the stop signals in the calling thread (and the threads it starts afterwards).
inline void BlockStopSignals() {
  const sigset_t signals = StopSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
}

// Returns once SIGINT or SIGTERM arrives.
inline void WaitForStopSignal() {
  const sigset_t signals = StopSignals();
  int received = 0;
  sigwait(&signals, &received);
}

}  // namespace xraysink::tools

#endif  // XRAYSINK_TOOLS_STOP_SIGNALS_H_
