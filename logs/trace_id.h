#ifndef XRAYSINK_LOGS_TRACE_ID_H_
#define XRAYSINK_LOGS_TRACE_ID_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "core/ids.h"

namespace xraysink::logs {

// The ids a log record carries so that X-Ray and CloudWatch Logs can link it to its trace: the
// trace and the entity (segment or subsegment) that was innermost when the record was made.
// Plain values: copying or keeping them costs nothing and never dangles.
struct TraceIds {
  core::TraceId trace_id;  // empty when there was no context
  core::EntityId entity_id;
  // False for unsampled traces: their ids still correlate logs and downstream calls (spec 5.6
  // Port note), but X-Ray holds no document for them.
  bool sampled = false;

  bool empty() const { return trace_id.empty(); }
};

// The ids of the current flow's innermost open entity (core::CurrentContext(), which //context
// makes follow coroutines and handlers across threads). With no context (no segment begun, or
// a disabled recorder) it is the empty value `TraceIds{}`: every format below writes nothing for
// it (the JSON field writes an empty string). No lock, no allocation.
TraceIds CurrentTraceIds();

// The field name the SDKs' structured logging uses for the ids (spec 6.4: `traceId`).
inline constexpr std::string_view kTraceIdField = "traceId";
// What precedes the ids in the text form (the Java SDK's log listeners, spec 6.4).
inline constexpr std::string_view kTraceIdTextPrefix = "AWS-XRAY-TRACE-ID: ";

// The value logs carry, `<trace id>@<entity id>` (empty for empty ids), held inline: making one
// never allocates.
class TraceIdValue {
 public:
  static constexpr size_t kLength = core::TraceId::kLength + 1 + core::EntityId::kLength;

  explicit TraceIdValue(const TraceIds& ids);
  std::string_view view() const { return std::string_view(text_, size_); }

 private:
  char text_[kLength] = {};
  size_t size_ = 0;
};

// The text form, `AWS-XRAY-TRACE-ID: <trace id>@<entity id>`; "" for empty ids.
std::string FormatTraceId(const TraceIds& ids);

namespace internal {
template <typename Buffer>
void Append(Buffer& out, std::string_view text) {
  out.append(text.data(), text.data() + text.size());
}
}  // namespace internal

// Appends the text form of FormatTraceId to `out`: anything with append(const char* first,
// const char* last), such as std::string or fmt/spdlog memory buffers. It allocates nothing
// itself, so nothing at all into a buffer with room (spdlog's inline buffer, a reserved string).
template <typename Buffer>
void AppendTraceId(const TraceIds& ids, Buffer& out) {
  if (ids.empty()) return;
  internal::Append(out, kTraceIdTextPrefix);
  internal::Append(out, TraceIdValue(ids).view());
}

// Appends the structured form, the JSON member `"traceId":"<trace id>@<entity id>"`
// (`"traceId":""` for empty ids, so a JSON layout stays valid), allocating as AppendTraceId.
template <typename Buffer>
void AppendTraceIdJsonField(const TraceIds& ids, Buffer& out) {
  internal::Append(out, "\"");
  internal::Append(out, kTraceIdField);
  internal::Append(out, "\":\"");
  internal::Append(out, TraceIdValue(ids).view());  // hex digits, '-' and '@': nothing to escape
  internal::Append(out, "\"");
}

}  // namespace xraysink::logs

#endif  // XRAYSINK_LOGS_TRACE_ID_H_
