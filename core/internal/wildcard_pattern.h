#ifndef XRAYSINK_CORE_INTERNAL_WILDCARD_PATTERN_H_
#define XRAYSINK_CORE_INTERNAL_WILDCARD_PATTERN_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace xraysink::core::internal {

// A wildcard pattern prepared once for matching many texts, with WildcardMatch's answers
// (case-insensitive). Rule matching runs on every request against every rule, and most patterns
// are `*`, a literal, or literals around wildcards (`/api/*`, `*.example.com`): those are decided
// inline by a length check and word-at-a-time compares of the literal ends, without the general
// scan.
class WildcardPattern {
 public:
  explicit WildcardPattern(std::string_view pattern);

  bool Matches(std::string_view text) const {
    if (any_) return true;
    if (text.size() < min_length_ || (!has_star_ && text.size() != min_length_)) return false;
    // The length check keeps prefix and suffix from overlapping in `text`.
    return EqualsFolded(text.data(), folded_.data(), prefix_) &&
           EqualsFolded(text.data() + text.size() - suffix_,
                        folded_.data() + folded_.size() - suffix_, suffix_) &&
           (simple_ || MatchesMiddle(text));
  }

 private:
  static uint64_t Load(const char* p) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    return word;
  }
  static char Fold(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c | 0x20) : c; }
  // Lower-cases the ASCII capitals of eight bytes at once (bytes >= 0x80 are left alone).
  static uint64_t FoldWord(uint64_t word) {
    constexpr uint64_t kOnes = 0x0101010101010101;
    const uint64_t low7 = word & (kOnes * 0x7f);
    const uint64_t at_least_a = low7 + kOnes * (0x80 - 'A');
    const uint64_t above_z = low7 + kOnes * (0x80 - 'Z' - 1);
    const uint64_t upper = at_least_a & ~above_z & ~word & (kOnes * 0x80);
    return word | (upper >> 2);  // 0x80 -> 0x20 in each capital's byte
  }
  // Whether `text`, folded, equals the already folded `pattern` (both `length` bytes). Sibling
  // rules' literals tend to differ near their end (`/api/orders/*`, `/api/users/*`), so the
  // last word is compared first.
  static bool EqualsFolded(const char* text, const char* pattern, size_t length) {
    if (length < 8) {
      for (size_t i = 0; i < length; ++i) {
        if (Fold(text[i]) != pattern[i]) return false;
      }
      return true;
    }
    if (FoldWord(Load(text + length - 8)) != Load(pattern + length - 8)) return false;
    for (size_t i = 0; i + 8 < length; i += 8) {
      if (FoldWord(Load(text + i)) != Load(pattern + i)) return false;
    }
    return true;
  }

  // The general scan, for patterns with literals between wildcards.
  bool MatchesMiddle(std::string_view text) const;

  std::string folded_;     // the pattern in ASCII lower case
  size_t min_length_ = 0;  // characters other than `*`
  size_t prefix_ = 0;      // literal characters before the first wildcard
  size_t suffix_ = 0;      // literal characters after the last wildcard (0 without wildcards)
  bool has_star_ = false;
  bool any_ = false;     // only `*`: matches everything, also empty text
  bool simple_ = false;  // nothing but wildcards between prefix and suffix
};

}  // namespace xraysink::core::internal

#endif  // XRAYSINK_CORE_INTERNAL_WILDCARD_PATTERN_H_
