#ifndef XRAYSINK_CORE_WILDCARD_H_
#define XRAYSINK_CORE_WILDCARD_H_

#include <string_view>

namespace xraysink::core {

// X-Ray's wildcard match (sampling rules, dynamic segment naming): the whole text must match;
// `*` matches any sequence (also empty), `?` exactly one character, anything else itself.
// Case-insensitive (ASCII) unless `case_sensitive`. O(pattern x text) worst case, no allocation.
bool WildcardMatch(std::string_view pattern, std::string_view text, bool case_sensitive = false);

}  // namespace xraysink::core

#endif  // XRAYSINK_CORE_WILDCARD_H_
