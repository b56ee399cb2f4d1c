#include "logs/spdlog_formatter.h"

#include <utility>

#include "logs/trace_id.h"

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

void InstallTraceIdFlag(spdlog::logger& logger, std::string pattern) {
  logger.set_formatter(MakeTraceIdFormatter(std::move(pattern)));
}

}  // namespace xraysink::logs
