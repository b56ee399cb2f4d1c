#ifndef XRAYSINK_CORE_INTERNAL_TEXT_H_
#define XRAYSINK_CORE_INTERNAL_TEXT_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace xraysink::core::internal {

// Returns `text` as valid UTF-8 of at most `max_chars` code points: invalid bytes become U+FFFD,
// the cut never splits a character. Returns `text` itself when it already qualifies (the common
// case: no copy); otherwise the result lives in `scratch`.
std::string_view ValidUtf8(std::string_view text, size_t max_chars, std::string& scratch);

// A segment or subsegment name the official schema accepts: only the characters it allows
// (Unicode letters, digits, spaces and _ . : / % & # = + - @), at most 200 characters; "unnamed"
// when nothing is left. Same result-or-scratch contract as ValidUtf8.
std::string_view EntityName(std::string_view name, std::string& scratch);

}  // namespace xraysink::core::internal

#endif  // XRAYSINK_CORE_INTERNAL_TEXT_H_
