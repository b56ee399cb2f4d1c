#ifndef XRAYSINK_CORE_TRACE_HEADER_H_
#define XRAYSINK_CORE_TRACE_HEADER_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/ids.h"

namespace xraysink::core {

// The `Sampled` field: 1, 0, `?` (the caller asks us to decide and tell it), or absent/unknown.
enum class SampledFlag { kUnknown, kSampled, kNotSampled, kRequested };

// Longest header value we parse; longer ones are rejected.
inline constexpr size_t kMaxTraceHeaderLength = 2048;
// Extra (unknown) keys kept for propagation, in total bytes; further ones are dropped.
inline constexpr size_t kMaxExtraKeysBytes = 256;

// An `X-Amzn-Trace-Id` value, e.g. `Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1`.
//
// Parsing is tolerant as the Node SDK is (spec 2.1 port note): parts are split on `;`, empty
// parts skipped (a trailing `;` is fine), keys and values trimmed, a part split at its FIRST `=`;
// Root/Parent/Sampled/Self match case-insensitively; Self is dropped; Sampled other than 1, 0
// or ? is unknown; a Root not of the trace-id form or a Parent not 16 hex digits is treated as
// absent; other keys (e.g. Lineage) are kept in order, up to kMaxExtraKeysBytes in total.
// Parse fails, with the reason, when the value is longer than kMaxTraceHeaderLength, holds a
// control or non-ASCII character, has a part without `=`, or carries none of Root, Parent and
// Sampled.
struct TraceHeader {
  std::optional<TraceId> root;
  std::optional<EntityId> parent;
  SampledFlag sampled = SampledFlag::kUnknown;
  std::vector<std::pair<std::string, std::string>> extra;

  static absl::StatusOr<TraceHeader> Parse(std::string_view value);

  // Root, Parent, Sampled (when known), then the extra keys; `;`-joined without spaces.
  std::string ToString() const;
  // The extra keys alone, "k1=v1;k2=v2" ("" when none), for forwarding downstream.
  std::string ExtraKeys() const;

  // Appends the header of an outgoing call, `Root=..;Parent=..;Sampled=1|0[;extra]`, to `out`.
  static void AppendOutgoing(const TraceId& root, EntityId parent, bool sampled,
                             std::string_view extra_keys, std::string& out);
};

}  // namespace xraysink::core

#endif  // XRAYSINK_CORE_TRACE_HEADER_H_
