#include "core/internal/text.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <iterator>

namespace xraysink::core::internal {
namespace {

struct CodePointRange {
  uint32_t first, last;
};
constexpr CodePointRange kNameRanges[] = {
#include "core/internal/name_ranges.inc"
};

constexpr uint32_t kReplacement = 0xFFFD;
constexpr size_t kMaxNameChars = 200;

// Decodes one UTF-8 character at text[i]; returns its length (0: invalid byte).
size_t Decode(std::string_view text, size_t i, uint32_t& code_point) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(text[k]); };
  const uint8_t lead = byte(i);
  size_t length;
  uint32_t min;
  if (lead < 0x80) {
    code_point = lead;
    return 1;
  } else if ((lead & 0xE0) == 0xC0) {
    length = 2, min = 0x80, code_point = lead & 0x1F;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, min = 0x800, code_point = lead & 0x0F;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, min = 0x10000, code_point = lead & 0x07;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  for (size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    code_point = (code_point << 6) | (byte(i + k) & 0x3F);
  }
  if (code_point < min || code_point > 0x10FFFF || (code_point >= 0xD800 && code_point <= 0xDFFF)) {
    return 0;
  }
  return length;
}

void Encode(uint32_t code_point, std::string& out) {
  if (code_point < 0x80) {
    out.push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

bool AllowedInName(uint32_t code_point) {
  const auto* it = std::upper_bound(
      std::begin(kNameRanges), std::end(kNameRanges), code_point,
      [](uint32_t value, const CodePointRange& range) { return value < range.first; });
  return it != std::begin(kNameRanges) && code_point <= std::prev(it)->last;
}

bool AllowedAsciiInName(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ' ' ||
         c == '_' || c == '.' || c == ':' || c == '/' || c == '%' || c == '&' || c == '#' ||
         c == '=' || c == '+' || c == '-' || c == '@';
}

// Eight bytes at a time: strings are mostly ASCII, and a byte-by-byte loop with an early exit
// is not vectorized.
bool AllAscii(std::string_view text) {
  uint64_t bits = 0;
  size_t i = 0;
  for (; i + sizeof(uint64_t) <= text.size(); i += sizeof(uint64_t)) {
    uint64_t word;
    std::memcpy(&word, text.data() + i, sizeof(word));
    bits |= word;
  }
  for (; i < text.size(); ++i) bits |= static_cast<uint8_t>(text[i]);
  return (bits & 0x8080808080808080ULL) == 0;
}

}  // namespace

std::string_view ValidUtf8(std::string_view text, size_t max_chars, std::string& scratch) {
  // Fast path: ASCII within the limit.
  if (text.size() <= max_chars && AllAscii(text)) return text;
  scratch.clear();
  size_t chars = 0;
  for (size_t i = 0; i < text.size() && chars < max_chars; ++chars) {
    uint32_t code_point;
    const size_t length = Decode(text, i, code_point);
    if (length == 0) {
      Encode(kReplacement, scratch);
      ++i;
    } else {
      scratch.append(text.substr(i, length));
      i += length;
    }
  }
  return scratch;
}

std::string_view EntityName(std::string_view name, std::string& scratch) {
  if (!name.empty() && name.size() <= kMaxNameChars &&
      std::all_of(name.begin(), name.end(), AllowedAsciiInName)) {
    return name;
  }
  scratch.clear();
  size_t chars = 0;
  for (size_t i = 0; i < name.size() && chars < kMaxNameChars;) {
    uint32_t code_point;
    const size_t length = Decode(name, i, code_point);
    if (length == 0) {
      ++i;
      continue;
    }
    if (AllowedInName(code_point)) {
      scratch.append(name.substr(i, length));
      ++chars;
    }
    i += length;
  }
  if (scratch.empty()) scratch = "unnamed";
  return scratch;
}

}  // namespace xraysink::core::internal
