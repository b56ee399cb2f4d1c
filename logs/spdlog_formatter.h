#ifndef XRAYSINK_LOGS_SPDLOG_FORMATTER_H_
#define XRAYSINK_LOGS_SPDLOG_FORMATTER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "spdlog/logger.h"
#include "spdlog/pattern_formatter.h"

namespace xraysink::logs {

// spdlog pattern flags for the current flow's X-Ray ids (logs/trace_id.h). They read the
// context of the thread that formats the record: that is the logging call's thread for
// spdlog's synchronous loggers, but not for spdlog::async_logger (its worker thread has no
// context, so records would get the empty value; InstallTraceIdFlag refuses one). Width and
// alignment (`%-20k`) are not applied.

// `%k`: `<trace id>@<entity id>`, nothing when there is no context. E.g.
// "[%l] %v AWS-XRAY-TRACE-ID: %k".
inline constexpr char kTraceIdFlag = 'k';
// `%K`: the JSON member `"traceId":"<trace id>@<entity id>"` (`"traceId":""` when there is no
// context), for JSON patterns: `{"level":"%l","message":"%v",%K}`.
inline constexpr char kJsonTraceIdFlag = 'K';

// The `%k` flag, to register under another character with pattern_formatter::add_flag.
class TraceIdFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm& time,
              spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::custom_flag_formatter> clone() const override;
};

// The `%K` flag, to register under another character with pattern_formatter::add_flag.
class JsonTraceIdFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm& time,
              spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::custom_flag_formatter> clone() const override;
};

// A formatter for `pattern` (spdlog's syntax plus `%k` and `%K`).
std::unique_ptr<spdlog::pattern_formatter> MakeTraceIdFormatter(std::string pattern);

// Makes every sink of `logger` format with MakeTraceIdFormatter(pattern). FailedPrecondition,
// and the logger left as it was, for an spdlog::async_logger: it formats on its worker thread,
// where every record would get the empty ids.
absl::Status InstallTraceIdFlag(spdlog::logger& logger, std::string pattern);

}  // namespace xraysink::logs

#endif  // XRAYSINK_LOGS_SPDLOG_FORMATTER_H_
