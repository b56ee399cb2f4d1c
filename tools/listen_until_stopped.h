#ifndef XRAYSINK_TOOLS_LISTEN_UNTIL_STOPPED_H_
#define XRAYSINK_TOOLS_LISTEN_UNTIL_STOPPED_H_

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <thread>

#include "httplib.h"
#include "tools/stop_signals.h"

namespace xraysink::tools {

// Serves `server` (bound already) on this thread until SIGINT or SIGTERM, which the caller has
// blocked (BlockStopSignals). False when accepting failed rather than a signal ending it.
//
// A helper thread takes the signal and stops the server from ordinary code (httplib's stop()
// is not async-signal-safe). stop() does nothing before listen_after_bind's accept loop runs,
// so a signal that came sooner waits for that loop to start, or for listening to have ended:
// else it would be lost and the server would run on.
inline bool ListenUntilStopSignal(httplib::Server& server) {
  std::atomic<bool> listen_ended{false};
  std::thread stopper([&server, &listen_ended] {
    WaitForStopSignal();
    while (!server.is_running() && !listen_ended) std::this_thread::yield();
    server.stop();
  });
  const bool served = server.listen_after_bind();
  listen_ended = true;
  pthread_kill(stopper.native_handle(), SIGTERM);  // wakes it if listening ended on its own
  stopper.join();
  return served;
}

}  // namespace xraysink::tools

#endif  // XRAYSINK_TOOLS_LISTEN_UNTIL_STOPPED_H_
