#include "logs/trace_id.h"

#include <algorithm>

#include "core/context_slot.h"
#include "core/entity.h"

namespace xraysink::logs {

TraceIds CurrentTraceIds() {
  const core::TraceContext& context = core::CurrentContext();
  const core::Entity* entity = context.current();
  if (entity == nullptr) return {};
  return {context.segment()->trace_id(), entity->id(), entity->sampled()};
}

TraceIdValue::TraceIdValue(const TraceIds& ids) {
  if (ids.empty()) return;
  const std::string_view trace = ids.trace_id.view();
  char* out = std::copy(trace.begin(), trace.end(), text_);
  *out++ = '@';
  ids.entity_id.WriteTo(out);
  size_ = kLength;
}

std::string FormatTraceId(const TraceIds& ids) {
  std::string text;
  if (ids.empty()) return text;
  text.reserve(kTraceIdTextPrefix.size() + TraceIdValue::kLength);
  AppendTraceId(ids, text);
  return text;
}

}  // namespace xraysink::logs
