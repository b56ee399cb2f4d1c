#ifndef XRAYSINK_CORE_INTERNAL_JSON_TEXT_H_
#define XRAYSINK_CORE_INTERNAL_JSON_TEXT_H_

#include <cstddef>
#include <memory_resource>
#include <string>

#include "core/internal/json_writer.h"
#include "core/json_value.h"

namespace xraysink::core::internal {

// Longest string written inside a document, unless a tighter limit applies (metadata, messages,
// queries).
inline constexpr size_t kMaxTextChars = 32 * 1024;

// Writes `value` so that any document it goes into stays valid: strings made valid UTF-8 and cut
// to `max_chars` characters, keys escaped, non-finite numbers written as null.
void WriteJsonValue(const JsonValue& value, size_t max_chars, JsonWriter& writer,
                    std::string& scratch);

// `value` as JSON text, by the same rules (strings cut to kMaxTextChars), into `out`.
void AssignJsonText(const JsonValue& value, std::pmr::string& out);

}  // namespace xraysink::core::internal

#endif  // XRAYSINK_CORE_INTERNAL_JSON_TEXT_H_
