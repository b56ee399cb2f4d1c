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

// An `X-Amzn-Trace-Id` value, e.g.
// `Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1`.
//
// Parsing is tolerant as the Node SDK is (spec 2.1 port note), not strict as Python's:
// - the value is split on `;`; parts, keys and values are trimmed of spaces and tabs; empty
//   parts are skipped, so a trailing `;` or `; ` between parts is fine;
// - each part is split at its FIRST `=` (`k1=v1=x` keeps the value `v1=x`); a part with an
//   empty key (`=v`) is skipped;
// - the keys Root, Parent, Sampled and Self match in any case; Self (added by load balancers) is
//   dropped; when a key repeats, the last one wins;
// - a Root not of the trace-id form (TraceId::Parse), or the no-op Root of unsampled Python
//   segments (`1-00000000-000000000000000000000000`), is treated as absent; likewise a Parent
//   that is not 16 hex digits or is all zeros;
// - Sampled `1`, `0` and `?` are kSampled, kNotSampled and kRequested; any other value is
//   kUnknown, as if absent;
// - other keys (e.g. Lineage) are kept in order with their values; once the next one would take
//   `k=v;` bytes past kMaxExtraKeysBytes in total, it and all later ones are dropped.
// Parse fails, with the reason, when the value is longer than kMaxTraceHeaderLength, holds a
// control character other than tab or a non-ASCII byte, has a (non-empty) part without `=`, or
// has no valid Root, no valid Parent and no Sampled key (`Lineage=1`, `Root=garbage`).
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

  // Appends the header of an outgoing call, `Root=..;Parent=..;Sampled=1|0[;extra]`, to `out`;
  // allocates only when `out` must grow. `extra_keys` is an ExtraKeys() string.
  static void AppendOutgoing(const TraceId& root, EntityId parent, bool sampled,
                             std::string_view extra_keys, std::string& out);
};

}  // namespace xraysink::core

#endif  // XRAYSINK_CORE_TRACE_HEADER_H_
