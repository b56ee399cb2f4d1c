#ifndef XRAYSINK_CORE_LOG_H_
#define XRAYSINK_CORE_LOG_H_

#include <string_view>

namespace xraysink::core {

enum class LogLevel { kWarning, kError };

// Where the library's own diagnostics go (default: one line on stderr, prefixed "xraysink:").
// The handler must be thread-safe; null restores the default. What the library logs while the
// handler runs on the same thread (the handler called back into it), or a message whose handler
// threw, goes to stderr.
using LogHandler = void (*)(LogLevel level, std::string_view message);
void SetLogHandler(LogHandler handler);

// Reports a diagnostic through the current handler.
void Log(LogLevel level, std::string_view message);

}  // namespace xraysink::core

#endif  // XRAYSINK_CORE_LOG_H_
