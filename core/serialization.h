#ifndef XRAYSINK_CORE_SERIALIZATION_H_
#define XRAYSINK_CORE_SERIALIZATION_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/segment_sink.h"

namespace xraysink::core {

// The UDP daemon's datagram header line (followed by '\n' and one document).
inline constexpr char kDaemonHeader[] = "{\"format\":\"json\",\"version\":1}\n";
// Largest datagram we send: the IPv4 UDP payload limit, header line included.
inline constexpr size_t kMaxDatagramBytes = 65507;

// What serialization had to cut to make documents fit.
struct SerializationStats {
  uint64_t documents = 0;
  uint64_t split_documents = 0;    // oversize documents sent as several
  uint64_t trimmed_documents = 0;  // documents that lost metadata, stacks or strings
  uint64_t dropped_documents = 0;  // could not be made to fit at all
};

// Serializes one document (a whole segment, or a streamed subtree as an independent subsegment)
// to JSON that validates against the official schema, whatever the user put in: names are
// sanitized, strings cut to their limits, control characters escaped, invalid UTF-8 replaced,
// non-finite numbers written as null... Reads the tree under the segment's lock.
std::string SerializeDocument(const DocumentRef& document);

// Produces the datagrams (header line + document) for one document, each at most `max_bytes`:
// an oversize segment is split into several documents (completed subtrees sent as independent
// subsegments), then trimmed (metadata, stacks, long strings dropped, `truncated` marked) as a
// last resort. Appends to `out`; updates `stats`. Strings in `spare` (datagrams already sent, say)
// are taken and refilled before any new one is allocated: a datagram is a few KB, above the
// sizes malloc keeps per-thread caches for.
void SerializeDatagrams(const DocumentRef& document, size_t max_bytes,
                        std::vector<std::string>& out, SerializationStats& stats,
                        std::vector<std::string>* spare = nullptr);

}  // namespace xraysink::core

#endif  // XRAYSINK_CORE_SERIALIZATION_H_
