#include "core/internal/wildcard_pattern.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/wildcard.h"

namespace xraysink::core::internal {
namespace {

bool Matches(std::string_view pattern, std::string_view text) {
  return WildcardPattern(pattern).Matches(text);
}

TEST(WildcardPatternTest, SpecVectors) {
  // Spec 8.2.
  const struct {
    const char* pattern;
    const char* text;
    bool match;
  } cases[] = {
      {"foo", "foo", true},
      {"foo", "cat", false},
      {"fo?", "foo", true},
      {"f?o", "boo", false},
      {"?o?", "foo", true},
      {"foo*", "foo", true},
      {"foo*", "fo0", false},
      {"*o?", "foo", true},
      {"f?*", "boo", false},
      {"*", "foo", true},
      {"*", "", true},
      {"", "", true},
      {"", "a", false},
      {"?at", "bat", true},
      {"?o?se", "mouse", true},
      {"*s", "horses", true},
      {"J*", "Jeep", true},
      {"????", "ford", true},
      {"????", "chevy", false},
      {"*/foo", "/bar/foo", true},
      {"abcd", "abc", false},
      {"*a", "a", true},
      {"**a**", "a", true},
      {"a**b", "abb", true},
      {"*??", "aa", true},
      {"*???", "aa", false},
      {"??", "a", false},
      {"?*?", "a", false},
      {"?*?", "aa", true},
      {"*?*a", "a", false},
      {"*?*a*", "ba", true},
      {"a*a*", "aaaaaaaaaaaaaaaaaaaaaaaaaa", true},
      {"a*na*ha", "anananahahanahana", false},
      {"a*b*a*b*a*b*a*b*a*",
       "akljd9gsdfbkjhaabajkhbbyiaahkjbjhbuykjakjhabkjhbabjhkaabbabbaaakljdfsjklababkjbsdabab",
       true},
      {"Foo", "FOO", true},
      {"Fo?", "FOO", true},
      {"/api/*", "/API/X", true},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(Matches(c.pattern, c.text), c.match) << c.pattern << " " << c.text;
  }
}

TEST(WildcardPatternTest, WordCompareFoldsOnlyAsciiCapitals) {
  EXPECT_TRUE(Matches("/api/v1/service19/*", "/API/V1/SERVICE19/orders"));
  EXPECT_TRUE(Matches("*.example.com", "SHOP.EXAMPLE.COM"));
  EXPECT_FALSE(Matches("/api/v1/service1/*", "/api/v1/service2/orders"));
  // Neighbours of A-Z ('@' '[' '`' '{') and bytes >= 0x80 are not letters.
  EXPECT_FALSE(Matches("`abcdefg{", "@ABCDEFG["));
  EXPECT_TRUE(Matches("@abcdefg[", "@ABCDEFG["));
  EXPECT_FALSE(Matches("\xe9t\xe9-12345", "\xc9T\xc9-12345"));
  EXPECT_TRUE(Matches("\xc9t\xc9-12345*", "\xc9T\xc9-12345"));
}

// Every pattern over {a, B, *, ?} up to 5 characters against every text over {a, A, b, B} up to
// 5 characters: the prepared pattern answers as WildcardMatch does.
TEST(WildcardPatternTest, AgreesWithWildcardMatch) {
  auto all = [](std::string_view alphabet, size_t max_length) {
    std::vector<std::string> out = {""};
    for (size_t begin = 0, length = 1; length <= max_length; ++length) {
      const size_t end = out.size();
      for (size_t i = begin; i < end; ++i) {
        for (char c : alphabet) out.push_back(out[i] + c);
      }
      begin = end;
    }
    return out;
  };
  const std::vector<std::string> texts = all("aAbB", 5);
  int compared = 0;
  for (const std::string& pattern : all("aB*?", 5)) {
    const WildcardPattern prepared(pattern);
    for (const std::string& text : texts) {
      ASSERT_EQ(prepared.Matches(text), WildcardMatch(pattern, text)) << pattern << " " << text;
      ++compared;
    }
  }
  EXPECT_EQ(compared, 1365 * 1365);
}

}  // namespace
}  // namespace xraysink::core::internal
