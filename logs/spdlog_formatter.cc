#include "logs/spdlog_formatter.h"

#include <utility>

#include "logs/trace_id.h"
#include "spdlog/async_logger.h"

namespace xraysink::logs {

void TraceIdFlag::format(const spdlog::details::log_msg&, const std::tm&,
                         spdlog::memory_buf_t& dest) {
  internal::Append(dest, TraceIdValue(CurrentTraceIds()).view());
}

std::unique_ptr<spdlog::custom_flag_formatter> TraceIdFlag::clone() const {
  return std::make_unique<TraceIdFlag>();
}

void JsonTraceIdFlag::format(const spdlog::details::log_msg&, const std::tm&,
                             spdlog::memory_buf_t& dest) {
  AppendTraceIdJsonField(CurrentTraceIds(), dest);
}

std::unique_ptr<spdlog::custom_flag_formatter> JsonTraceIdFlag::clone() const {
  return std::make_unique<JsonTraceIdFlag>();
}

std::unique_ptr<spdlog::pattern_formatter> MakeTraceIdFormatter(std::string pattern) {
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<TraceIdFlag>(kTraceIdFlag).add_flag<JsonTraceIdFlag>(kJsonTraceIdFlag);
  formatter->set_pattern(std::move(pattern));
  return formatter;
}

absl::Status InstallTraceIdFlag(spdlog::logger& logger, std::string pattern) {
  if (dynamic_cast<spdlog::async_logger*>(&logger) != nullptr) {
    return absl::FailedPreconditionError(
        "X-Ray trace id flags need a synchronous spdlog logger: an async_logger formats on its "
        "worker thread, which has no trace context");
  }
  logger.set_formatter(MakeTraceIdFormatter(std::move(pattern)));
  return absl::OkStatus();
}

}  // namespace xraysink::logs
