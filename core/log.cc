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
  handler.load(std::memory_order_acquire)(level, message);
}

}  // namespace xraysink::core
