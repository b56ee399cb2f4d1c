#include "core/internal/wildcard_pattern.h"

#include "core/wildcard.h"

namespace xraysink::core::internal {
namespace {

bool IsWildcard(char c) { return c == '*' || c == '?'; }

}  // namespace

WildcardPattern::WildcardPattern(std::string_view pattern) : folded_(pattern) {
  for (char& c : folded_) c = Fold(c);
  const size_t first = folded_.find_first_of("*?");
  if (first == std::string::npos) {
    min_length_ = prefix_ = folded_.size();
    simple_ = true;
    return;
  }
  const size_t last = folded_.find_last_of("*?");
  prefix_ = first;
  suffix_ = folded_.size() - last - 1;
  simple_ = true;
  for (size_t i = 0; i < folded_.size(); ++i) {
    if (folded_[i] == '*') {
      has_star_ = true;
    } else {
      ++min_length_;
      if (i > first && i < last && !IsWildcard(folded_[i])) simple_ = false;
    }
  }
  any_ = min_length_ == 0;
}

bool WildcardPattern::MatchesMiddle(std::string_view text) const {
  return WildcardMatch(folded_, text);
}

}  // namespace xraysink::core::internal
