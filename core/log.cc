#include "core/log.h"

#include <atomic>
#include <cstdio>
#include <string>

namespace xraysink::core {
namespace {

void LogToStderr(LogLevel level, std::string_view message) {
  std::string line = level == LogLevel::kError ? "xraysink: error: " : "xraysink: warning: ";
  line.append(message);
  line.push_back('\n');
  std::fwrite(line.data(), 1, line.size(), stderr);
}

std::atomic<LogHandler> handler{&LogToStderr};

}  // namespace

void SetLogHandler(LogHandler new_handler) {
  handler.store(new_handler != nullptr ? new_handler : &LogToStderr, std::memory_order_release);
}

void Log(LogLevel level, std::string_view message) {
  // A handler that calls back into the library (a logger that asks for the current segment,
  // which reports a missing context, which logs...) would recurse until the stack overflows:
  // what it causes goes to stderr instead. A handler that throws must not throw into the
  // library's callers: its message goes to stderr too.
  thread_local bool in_handler = false;
  const LogHandler current = handler.load(std::memory_order_acquire);
  if (in_handler || current == &LogToStderr) {
    LogToStderr(level, message);
    return;
  }
  in_handler = true;
  try {
    current(level, message);
  } catch (...) {
    LogToStderr(level, message);
  }
  in_handler = false;
}

}  // namespace xraysink::core
