#include "core/wildcard.h"

#include <gtest/gtest.h>

#include <string>
#include <tuple>

namespace xraysink::core {
namespace {

// The SDKs' vectors (spec 8.2).
TEST(WildcardTest, SdkVectors) {
  const std::tuple<const char*, const char*, bool> cases[] = {
      {"foo", "foo", true},   {"foo", "cat", false},  {"fo?", "foo", true},
      {"f?o", "boo", false},  {"?o?", "foo", true},   {"foo*", "foo", true},
      {"foo*", "fo0", false}, {"*o?", "foo", true},   {"f?*", "boo", false},
      {"*", "foo", true},     {"*", "", true},        {"", "", true},
      {"", "a", false},       {"?at", "bat", true},   {"?o?se", "mouse", true},
      {"*s", "horses", true}, {"J*", "Jeep", true},   {"????", "ford", true},
      {"????", "chevy", false}, {"*/foo", "/bar/foo", true}, {"abcd", "abc", false},
      {"*a", "a", true},      {"**a**", "a", true},   {"a**b", "abb", true},
      {"*??", "aa", true},    {"*???", "aa", false},  {"??", "a", false},
      {"?*?", "a", false},    {"?*?", "aa", true},    {"*?*a", "a", false},
      {"*?*a*", "ba", true},  {"a*a*", "aaaaaaaaaaaaaaaaaaaaaaaaaa", true},
      {"a*na*ha", "anananahahanahana", false},
      {"a*b*a*b*a*b*a*b*a*",
       "akljd9gsdfbkjhaabajkhbbyiaahkjbjhbuykjakjhabkjhbabjhkaabbabbaaakljdfsjklababkjbsdabab",
       true},
  };
  for (const auto& [pattern, text, expected] : cases) {
    EXPECT_EQ(WildcardMatch(pattern, text), expected) << pattern << " vs " << text;
  }
}

TEST(WildcardTest, CaseSensitivity) {
  EXPECT_TRUE(WildcardMatch("Foo", "FOO"));
  EXPECT_FALSE(WildcardMatch("Foo", "FOO", /*case_sensitive=*/true));
  EXPECT_TRUE(WildcardMatch("Fo?", "FOO"));
  EXPECT_TRUE(WildcardMatch("/api/*", "/API/X"));
}

TEST(WildcardTest, LongInputsStayFast) {
  const std::string text(10000, 'a');
  EXPECT_FALSE(WildcardMatch("*a*a*a*a*a*b", text));
  EXPECT_TRUE(WildcardMatch("*a*a*a*a*a*", text));
}

}  // namespace
}  // namespace xraysink::core
