#ifndef XRAYSINK_CORE_INTERNAL_JSON_WRITER_H_
#define XRAYSINK_CORE_INTERNAL_JSON_WRITER_H_

#include <cstddef>
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
// mostly strings, so this writer scans for the bytes JSON must escape and copies the clean runs
// between them with memcpy. Strings must already be valid UTF-8 (the serializer ensures it).
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

  // Most runs are short (keys, ids, names): a call to memcpy costs more than copying them.
  static char* Copy(char* out, const char* from, size_t length) {
    if (length > 32) {
      std::memcpy(out, from, length);
      return out + length;
    }
    for (size_t i = 0; i < length; ++i) out[i] = from[i];
    return out + length;
  }

  void WriteEscaped(const char* text, size_t length) {
    // Worst case: every byte becomes \u00XX, plus the quotes.
    char* out = os_->Push(2 + 6 * length);
    char* const begin = out;
    *out++ = '"';
    const char* const end = text + length;
    const char* run = text;
    for (const char* p = text; p != end; ++p) {
      const char escape = kJsonEscapes.entries[static_cast<unsigned char>(*p)];
      if (escape == 0) continue;
      out = Copy(out, run, static_cast<size_t>(p - run));
      run = p + 1;
      *out++ = '\\';
      *out++ = escape;
      if (escape == 'u') {
        static constexpr char kHex[] = "0123456789ABCDEF";
        const auto c = static_cast<unsigned char>(*p);
        *out++ = '0';
        *out++ = '0';
        *out++ = kHex[c >> 4];
        *out++ = kHex[c & 0xF];
      }
    }
    out = Copy(out, run, static_cast<size_t>(end - run));
    *out++ = '"';
    os_->Pop(2 + 6 * length - static_cast<size_t>(out - begin));
  }
};

}  // namespace xraysink::core::internal

#endif  // XRAYSINK_CORE_INTERNAL_JSON_WRITER_H_
