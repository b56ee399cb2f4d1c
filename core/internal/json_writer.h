#ifndef XRAYSINK_CORE_INTERNAL_JSON_WRITER_H_
#define XRAYSINK_CORE_INTERNAL_JSON_WRITER_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace xraysink::core::internal {

// For each byte: 0 when JSON copies it as is, else the character after the backslash ('u':
// \u00XX).
struct JsonEscapeTable {
  char entries[256];
  constexpr JsonEscapeTable() : entries() {
    for (int c = 0; c < 0x20; ++c) entries[c] = 'u';
    entries[static_cast<unsigned char>('"')] = '"';
    entries[static_cast<unsigned char>('\\')] = '\\';
    entries[static_cast<unsigned char>('\b')] = 'b';
    entries[static_cast<unsigned char>('\f')] = 'f';
    entries[static_cast<unsigned char>('\n')] = 'n';
    entries[static_cast<unsigned char>('\r')] = 'r';
    entries[static_cast<unsigned char>('\t')] = 't';
  }
};
inline constexpr JsonEscapeTable kJsonEscapes{};

// RapidJSON's writer (it keeps the structure: commas, colons, nesting, numbers) with a faster
// string path. RapidJSON copies a string byte by byte through its escape table; documents are
// mostly strings, so this writer checks and copies eight bytes at a time while none of them
// needs escaping. Strings must already be valid UTF-8 (the serializer ensures it).
class JsonWriter : public rapidjson::Writer<rapidjson::StringBuffer> {
 public:
  explicit JsonWriter(rapidjson::StringBuffer& buffer) : Writer(buffer) {}

  bool String(const char* text, size_t length) {
    Prefix(rapidjson::kStringType);
    WriteEscaped(text, length);
    return EndValue(true);
  }
  template <size_t N>
  bool String(const char (&text)[N]) {
    return String(text, N - 1);
  }
  bool Key(const char* text, size_t length) { return String(text, length); }
  // A key known to need no escaping (our field names, validated annotation keys).
  bool CleanKey(const char* text, size_t length) {
    Prefix(rapidjson::kStringType);
    char* out = os_->Push(length + 2);
    out[0] = '"';
    std::memcpy(out + 1, text, length);
    out[length + 1] = '"';
    return EndValue(true);
  }

  // A number already formatted as JSON.
  bool RawNumber(const char* text, size_t length) {
    return Raw(rapidjson::kNumberType, text, length);
  }
  // A value already written as valid JSON (RapidJSON's RawValue transcodes it byte by byte).
  bool RawJson(const char* text, size_t length) {
    return Raw(rapidjson::kObjectType, text, length);
  }

 private:
  bool Raw(rapidjson::Type type, const char* text, size_t length) {
    Prefix(type);
    std::memcpy(os_->Push(length), text, length);
    return EndValue(true);
  }

  // Whether any of the 8 bytes of `word` must be escaped: a control byte (below 0x20), '"' or
  // '\\'. Exact (no false positives), and bytes from 0x80 up (UTF-8) never count: "has a byte
  // below n" is (x - n * ones) & ~x & highs, for n <= 0x80; "has a byte equal to c" is the same
  // for n = 1 on x ^ (c * ones).
  static bool MustEscapeAny(uint64_t word) {
    constexpr uint64_t kOnes = 0x0101010101010101ULL;
    constexpr uint64_t kHighs = 0x8080808080808080ULL;
    const uint64_t quote = word ^ (kOnes * '"');
    const uint64_t backslash = word ^ (kOnes * '\\');
    return (((word - kOnes * 0x20) & ~word) | ((quote - kOnes) & ~quote) |
            ((backslash - kOnes) & ~backslash)) &
           kHighs;
  }

  void WriteEscaped(const char* text, size_t length) {
    // Worst case: every byte becomes \u00XX, plus the quotes. Room for that is pushed first,
    // so clean bytes are stored eight at a time as they are scanned (one load and one store,
    // no second pass to copy them), and the excess is popped at the end.
    char* out = os_->Push(2 + 6 * length);
    char* const begin = out;
    *out++ = '"';
    const char* const end = text + length;
    const char* p = text;
    while (p != end) {
      if (end - p >= 8) {
        uint64_t word;
        std::memcpy(&word, p, sizeof(word));
        if (!MustEscapeAny(word)) {
          std::memcpy(out, &word, sizeof(word));
          out += sizeof(word);
          p += sizeof(word);
          continue;
        }
      }
      // Byte by byte through a word that has a byte to escape, and through the last few.
      const auto c = static_cast<unsigned char>(*p++);
      const char escape = kJsonEscapes.entries[c];
      if (escape == 0) {
        *out++ = static_cast<char>(c);
        continue;
      }
      *out++ = '\\';
      *out++ = escape;
      if (escape == 'u') {
        static constexpr char kHex[] = "0123456789ABCDEF";
        *out++ = '0';
        *out++ = '0';
        *out++ = kHex[c >> 4];
        *out++ = kHex[c & 0xF];
      }
    }
    *out++ = '"';
    os_->Pop(2 + 6 * length - static_cast<size_t>(out - begin));
  }
};

}  // namespace xraysink::core::internal

#endif  // XRAYSINK_CORE_INTERNAL_JSON_WRITER_H_
