// The JSON text primitives the serializer's speed rests on: JsonWriter's escaping, which skips
// clean input eight bytes at a time, and ValidUtf8's ASCII fast path, which checks eight bytes at
// a time. Both are checked byte value by byte value at every position of a word and of the tail,
// against RapidJSON's own writer and against the byte-by-byte definition.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>

#include "core/internal/json_writer.h"
#include "core/internal/text.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace xraysink::core::internal {
namespace {

std::string Escaped(const std::string& text) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.String(text.data(), text.size());
  return std::string(buffer.GetString(), buffer.GetSize());
}

// RapidJSON's writer escapes byte by byte through its own table: the reference.
std::string EscapedByRapidJson(const std::string& text) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
  return std::string(buffer.GetString(), buffer.GetSize());
}

TEST(JsonWriterTest, EscapesEveryByteValueAtEveryPositionAsRapidJsonDoes) {
  // 19 bytes: two whole words and a tail of three, so that a byte lands in each lane of a word
  // and in the tail.
  for (int value = 0; value < 256; ++value) {
    for (size_t position = 0; position < 19; ++position) {
      std::string text(19, 'a');
      text[position] = static_cast<char>(value);
      ASSERT_EQ(Escaped(text), EscapedByRapidJson(text)) << "byte " << value << " at " << position;
    }
  }
}

TEST(JsonWriterTest, EscapesMixedStringsOfEveryShortLengthAsRapidJsonDoes) {
  // Mostly clean bytes, with quotes, backslashes, control bytes and UTF-8 among them.
  static constexpr char kBytes[] = "abcdefgh/:.-_ 019\"\\\n\t\x01\x1f\x7f\xc3\xa9\xe2\x82\xac";
  const std::string alphabet(kBytes, sizeof(kBytes) - 1);
  std::mt19937 random(20261201);
  for (size_t length = 0; length <= 40; ++length) {
    for (int round = 0; round < 200; ++round) {
      std::string text;
      for (size_t i = 0; i < length; ++i) text += alphabet[random() % alphabet.size()];
      ASSERT_EQ(Escaped(text), EscapedByRapidJson(text)) << "length " << length;
    }
  }
}

TEST(ValidUtf8Test, ReplacesAnInvalidByteAtEveryPosition) {
  std::string scratch;
  for (size_t position = 0; position < 19; ++position) {
    std::string text(19, 'a');
    text[position] = '\xff';  // never valid in UTF-8
    std::string expected = text;
    expected.replace(position, 1, "\xef\xbf\xbd");  // U+FFFD
    EXPECT_EQ(ValidUtf8(text, 100, scratch), expected) << "at " << position;
  }
}

TEST(ValidUtf8Test, ReturnsAsciiAndValidUtf8AsTheyAre) {
  std::string scratch;
  for (size_t length = 0; length <= 19; ++length) {
    const std::string ascii(length, 'z');
    EXPECT_EQ(ValidUtf8(ascii, 100, scratch), ascii);
  }
  const std::string accented =
      "caf\xc3\xa9 cr\xc3\xa8me br\xc3\xbbl\xc3\xa9"
      "e";
  EXPECT_EQ(ValidUtf8(accented, 100, scratch), accented);
}

}  // namespace
}  // namespace xraysink::core::internal
