#include "core/sampling_rules.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>

namespace xraysink::core {
namespace {

std::string ErrorOf(std::string_view json) {
  absl::StatusOr<LocalRules> rules = ParseLocalRules(json);
  EXPECT_FALSE(rules.ok()) << json;
  if (rules.ok()) return "";
  EXPECT_EQ(rules.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(rules.status().message());
}

// A version 2 document with `rule` as its only custom rule.
std::string WithRule(std::string_view rule, int version = 2) {
  return R"({"version": )" + std::to_string(version) + R"(, "rules": [)" + std::string(rule) +
         R"(], "default": {"fixed_target": 1, "rate": 0.1}})";
}

TEST(SamplingRulesTest, BuiltInDefaults) {
  const LocalRules rules;
  EXPECT_TRUE(rules.rules.empty());
  EXPECT_EQ(rules.default_rule.fixed_target, 1);
  EXPECT_EQ(rules.default_rule.rate, 0.05);
  EXPECT_TRUE(ValidateLocalRules(rules).ok());
}

TEST(SamplingRulesTest, ParsesVersion2) {
  // The AWS documentation's example, plus a second rule with `?`.
  absl::StatusOr<LocalRules> rules = ParseLocalRules(R"({
    "version": 2,
    "rules": [
      {"description": "Player moves.", "host": "*", "http_method": "*",
       "url_path": "/api/move/*", "fixed_target": 0, "rate": 0.05},
      {"host": "api-?.example.com", "http_method": "GET", "url_path": "/health",
       "fixed_target": 3.0, "rate": 1}
    ],
    "default": {"fixed_target": 1, "rate": 0.1, "description": "everything else"}
  })");
  ASSERT_TRUE(rules.ok()) << rules.status();
  ASSERT_EQ(rules->rules.size(), 2u);
  const LocalRule& move = rules->rules[0];
  EXPECT_EQ(move.description, "Player moves.");
  EXPECT_EQ(move.host, "*");
  EXPECT_EQ(move.http_method, "*");
  EXPECT_EQ(move.url_path, "/api/move/*");
  EXPECT_EQ(move.fixed_target, 0);
  EXPECT_EQ(move.rate, 0.05);
  const LocalRule& health = rules->rules[1];
  EXPECT_EQ(health.description, "");
  EXPECT_EQ(health.host, "api-?.example.com");
  EXPECT_EQ(health.http_method, "GET");
  EXPECT_EQ(health.url_path, "/health");
  EXPECT_EQ(health.fixed_target, 3);
  EXPECT_EQ(health.rate, 1.0);
  EXPECT_EQ(rules->default_rule.fixed_target, 1);
  EXPECT_EQ(rules->default_rule.rate, 0.1);
}

TEST(SamplingRulesTest, ParsesVersion1ServiceNameAsHost) {
  absl::StatusOr<LocalRules> rules = ParseLocalRules(R"({"version": 1, "rules": [
      {"description": "health", "service_name": "api.example.com", "http_method": "GET",
       "url_path": "/health", "fixed_target": 0, "rate": 0}],
    "default": {"fixed_target": 2, "rate": 1}})");
  ASSERT_TRUE(rules.ok()) << rules.status();
  ASSERT_EQ(rules->rules.size(), 1u);
  EXPECT_EQ(rules->rules[0].host, "api.example.com");
  EXPECT_EQ(rules->rules[0].description, "health");
  EXPECT_EQ(rules->default_rule.fixed_target, 2);
}

TEST(SamplingRulesTest, RulesAreOptional) {
  absl::StatusOr<LocalRules> rules =
      ParseLocalRules(R"({"default": {"fixed_target": 0, "rate": 0}, "version": 2})");
  ASSERT_TRUE(rules.ok()) << rules.status();
  EXPECT_TRUE(rules->rules.empty());
  EXPECT_EQ(rules->default_rule.fixed_target, 0);
  EXPECT_EQ(rules->default_rule.rate, 0.0);
}

TEST(SamplingRulesTest, SyntaxErrorsGiveOffsetLineAndColumn) {
  EXPECT_EQ(ErrorOf("{\n  \"version\": 2,\n  \"default\" {}\n}"),
            "JSON syntax error at byte 30 (line 3, column 13): Missing a colon after a name of "
            "object member.");
  EXPECT_EQ(ErrorOf(R"({"version": 2} x)"),
            "JSON syntax error at byte 15 (line 1, column 16): The document root must not be "
            "followed by other values.");
  EXPECT_EQ(ErrorOf(""), "JSON syntax error at byte 0 (line 1, column 1): The document is empty.");
  EXPECT_EQ(ErrorOf(R"({"version": 2, "rate": NaN})"),
            "JSON syntax error at byte 23 (line 1, column 24): Invalid value.");
}

TEST(SamplingRulesTest, DocumentErrors) {
  EXPECT_EQ(ErrorOf("[]"), "the document must be an object");
  EXPECT_EQ(ErrorOf(R"({"default": {"fixed_target": 1, "rate": 0}})"),
            "version: missing (must be 1 or 2)");
  EXPECT_EQ(ErrorOf(R"({"version": 3, "default": {"fixed_target": 1, "rate": 0}})"),
            "version: must be 1 or 2");
  EXPECT_EQ(ErrorOf(R"({"version": "2", "default": {"fixed_target": 1, "rate": 0}})"),
            "version: must be 1 or 2");
  EXPECT_EQ(ErrorOf(R"({"version": 2.0, "default": {"fixed_target": 1, "rate": 0}})"),
            "version: must be 1 or 2");
  EXPECT_EQ(ErrorOf(R"({"version": 2, "rules": []})"),
            "default: missing (a default rule is required)");
  EXPECT_EQ(ErrorOf(R"({"version": 2, "default": 1})"), "default: must be an object");
  EXPECT_EQ(ErrorOf(R"({"version": 2, "rules": {}, "default": {"fixed_target": 1, "rate": 0}})"),
            "rules: must be an array");
  EXPECT_EQ(ErrorOf(R"({"version": 2, "Rules": [], "default": {"fixed_target": 1, "rate": 0}})"),
            "Rules: unknown key");
  EXPECT_EQ(ErrorOf(R"({"version": 2, "version": 1, "default": {}})"), "version: duplicate key");
}

TEST(SamplingRulesTest, DefaultRuleErrors) {
  EXPECT_EQ(ErrorOf(R"({"version": 2, "default": {"host": "*", "fixed_target": 1, "rate": 0}})"),
            "default.host: not allowed in the default rule (it has only fixed_target and rate)");
  EXPECT_EQ(
      ErrorOf(R"({"version": 1, "default": {"url_path": "*"}})"),
      "default.url_path: not allowed in the default rule (it has only fixed_target and rate)");
  EXPECT_EQ(ErrorOf(R"({"version": 2, "default": {"fixed_target": 1, "rate": 0, "ratio": 1}})"),
            "default.ratio: unknown key");
  EXPECT_EQ(ErrorOf(R"({"version": 2, "default": {"rate": 0}})"), "default.fixed_target: missing");
  EXPECT_EQ(ErrorOf(R"({"version": 2, "default": {"fixed_target": 1}})"), "default.rate: missing");
  EXPECT_EQ(ErrorOf(R"({"version": 2, "default": {"fixed_target": -1, "rate": 0}})"),
            "default.fixed_target: must be an integer in [0, 16777215]");
  EXPECT_EQ(ErrorOf(R"({"version": 2, "default": {"fixed_target": 1, "rate": -0.5}})"),
            "default.rate: must be a number in [0, 1]");
}

TEST(SamplingRulesTest, RuleErrorsNameTheRuleAndKey) {
  const std::string ok_rule =
      R"({"host": "*", "http_method": "*", "url_path": "/a", "fixed_target": 0, "rate": 0})";
  const std::string doc =
      R"({"version": 2, "default": {"fixed_target": 1, "rate": 0}, "rules": [)" + ok_rule + "," +
      ok_rule + R"(, 7]})";
  EXPECT_EQ(ErrorOf(doc), "rules[2]: must be an object");

  const struct {
    std::string rule;
    std::string error;
  } cases[] = {
      {R"({"http_method": "GET", "url_path": "/", "fixed_target": 0, "rate": 0})",
       "rules[0].host: missing"},
      {R"({"host": "*", "url_path": "/", "fixed_target": 0, "rate": 0})",
       "rules[0].http_method: missing"},
      {R"({"host": "*", "http_method": "GET", "fixed_target": 0, "rate": 0})",
       "rules[0].url_path: missing"},
      {R"({"host": "*", "http_method": "GET", "url_path": "/", "rate": 0})",
       "rules[0].fixed_target: missing"},
      {R"({"host": "*", "http_method": "GET", "url_path": "/", "fixed_target": 0})",
       "rules[0].rate: missing"},
      {R"({"service_name": "*", "host": "*", "http_method": "GET", "url_path": "/"})",
       "rules[0].service_name: not a version 2 key (version 2 uses host)"},
      {R"({"host": "*", "http_method": "GET", "url_path": "/", "priority": 1})",
       "rules[0].priority: unknown key"},
      {R"({"host": "*", "host": "x", "http_method": "GET", "url_path": "/"})",
       "rules[0].host: duplicate key"},
      {R"({"host": 1, "http_method": "GET", "url_path": "/", "fixed_target": 0, "rate": 0})",
       "rules[0].host: must be a string"},
      {R"({"host": "*", "http_method": null, "url_path": "/", "fixed_target": 0, "rate": 0})",
       "rules[0].http_method: must be a string"},
      {R"({"description": 5, "host": "*", "http_method": "GET", "url_path": "/",
           "fixed_target": 0, "rate": 0})",
       "rules[0].description: must be a string"},
      {R"({"host": "*", "http_method": "GET", "url_path": "", "fixed_target": 0, "rate": 0})",
       "rules[0].url_path: must not be empty"},
      {R"({"host": "", "http_method": "GET", "url_path": "/", "fixed_target": 0, "rate": 0})",
       "rules[0].host: must not be empty"},
      {R"({"host": "*", "http_method": "GET", "url_path": "/", "fixed_target": "1", "rate": 0})",
       "rules[0].fixed_target: must be an integer in [0, 16777215]"},
      {R"({"host": "*", "http_method": "GET", "url_path": "/", "fixed_target": 1.5, "rate": 0})",
       "rules[0].fixed_target: must be an integer in [0, 16777215]"},
      {R"({"host": "*", "http_method": "GET", "url_path": "/", "fixed_target": -2, "rate": 0})",
       "rules[0].fixed_target: must be an integer in [0, 16777215]"},
      {R"({"host": "*", "http_method": "GET", "url_path": "/", "fixed_target": 16777216,
           "rate": 0})",
       "rules[0].fixed_target: must be an integer in [0, 16777215]"},
      {R"({"host": "*", "http_method": "GET", "url_path": "/", "fixed_target": 1e300,
           "rate": 0})",
       "rules[0].fixed_target: must be an integer in [0, 16777215]"},
      {R"({"host": "*", "http_method": "GET", "url_path": "/", "fixed_target": 0,
           "rate": true})",
       "rules[0].rate: must be a number in [0, 1]"},
      {R"({"host": "*", "http_method": "GET", "url_path": "/", "fixed_target": 0, "rate": -0.1})",
       "rules[0].rate: must be a number in [0, 1]"},
      {R"({"host": "*", "http_method": "GET", "url_path": "/", "fixed_target": 0, "rate": 1.5})",
       "rules[0].rate: must be a number in [0, 1]"},
  };
  for (const auto& c : cases) EXPECT_EQ(ErrorOf(WithRule(c.rule)), c.error) << c.rule;
}

TEST(SamplingRulesTest, Version1RuleErrorsUseItsKeys) {
  EXPECT_EQ(ErrorOf(WithRule(R"({"host": "*", "http_method": "GET", "url_path": "/"})", 1)),
            "rules[0].host: not a version 1 key (version 1 uses service_name)");
  EXPECT_EQ(ErrorOf(WithRule(R"({"http_method": "GET", "url_path": "/"})", 1)),
            "rules[0].service_name: missing");
  EXPECT_EQ(ErrorOf(WithRule(R"({"service_name": "", "http_method": "GET", "url_path": "/",
                                  "fixed_target": 0, "rate": 0})",
                             1)),
            "rules[0].service_name: must not be empty");
}

TEST(SamplingRulesTest, ValidatesRulesBuiltInCode) {
  LocalRules rules;
  rules.rules.push_back({.url_path = "/health", .fixed_target = 1, .rate = 0.5});
  rules.rules.push_back({.http_method = "POST"});
  EXPECT_TRUE(ValidateLocalRules(rules).ok());

  rules.rules[1].rate = 2;
  EXPECT_EQ(ValidateLocalRules(rules).message(), "rules[1].rate: must be a number in [0, 1]");
  rules.rules[1].rate = std::nan("");
  EXPECT_EQ(ValidateLocalRules(rules).message(), "rules[1].rate: must be a number in [0, 1]");
  rules.rules[1].rate = 0;
  rules.rules[0].fixed_target = -1;
  EXPECT_EQ(ValidateLocalRules(rules).message(),
            "rules[0].fixed_target: must be an integer in [0, 16777215]");
  rules.rules[0].fixed_target = 0;
  rules.rules[0].http_method = "";
  EXPECT_EQ(ValidateLocalRules(rules).message(), "rules[0].http_method: must not be empty");
  rules.rules[0].http_method = "*";
  rules.default_rule.fixed_target = 1 << 24;
  EXPECT_EQ(ValidateLocalRules(rules).message(),
            "default.fixed_target: must be an integer in [0, 16777215]");
  rules.default_rule = {.fixed_target = 0, .rate = -1};
  EXPECT_EQ(ValidateLocalRules(rules).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateLocalRules(rules).message(), "default.rate: must be a number in [0, 1]");
}

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

TEST(SamplingRulesTest, LoadsAFile) {
  const std::string path = TempPath("rules.json");
  std::ofstream(path) << WithRule(
      R"({"host": "*", "http_method": "GET", "url_path": "/a", "fixed_target": 4, "rate": 0})");
  absl::StatusOr<LocalRules> rules = LoadLocalRulesFile(path);
  ASSERT_TRUE(rules.ok()) << rules.status();
  ASSERT_EQ(rules->rules.size(), 1u);
  EXPECT_EQ(rules->rules[0].fixed_target, 4);
}

TEST(SamplingRulesTest, FileErrorsStartWithThePath) {
  const std::string missing = TempPath("no-such-rules.json");
  absl::StatusOr<LocalRules> rules = LoadLocalRulesFile(missing);
  EXPECT_EQ(rules.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(rules.status().message(), missing + ": cannot open: No such file or directory");

  const std::string directory = TempPath("");
  rules = LoadLocalRulesFile(directory);
  EXPECT_EQ(rules.status().message(), directory + ": cannot read: Is a directory");

  const std::string bad = TempPath("bad-rules.json");
  std::ofstream(bad) << R"({"version": 2, "default": {"fixed_target": 1, "rate": 7}})";
  rules = LoadLocalRulesFile(bad);
  EXPECT_EQ(rules.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(rules.status().message(), bad + ": default.rate: must be a number in [0, 1]");
}

// Not rule files: an endless one (a device) and a huge one are refused by size; a deeply nested
// one is a syntax error, not a stack overflow.
TEST(SamplingRulesTest, EndlessHugeAndDeepFilesAreErrors) {
  absl::StatusOr<LocalRules> rules = LoadLocalRulesFile("/dev/zero");
  EXPECT_EQ(rules.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(rules.status().message(),
            "/dev/zero: more than 1048576 bytes; not a sampling rules file");

  const std::string huge = TempPath("huge-rules.json");
  std::ofstream(huge) << "{\"version\": 2, \"description\": \"" << std::string(2 << 20, 'x')
                      << "\"}";
  rules = LoadLocalRulesFile(huge);
  EXPECT_EQ(rules.status().code(), absl::StatusCode::kInvalidArgument);

  const std::string deep = TempPath("deep-rules.json");
  std::ofstream(deep) << std::string(500000, '[');
  rules = LoadLocalRulesFile(deep);
  EXPECT_EQ(rules.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(rules.status().message().find("syntax"), absl::string_view::npos)
      << rules.status().message();
}

}  // namespace
}  // namespace xraysink::core
