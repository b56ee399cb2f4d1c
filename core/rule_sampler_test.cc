#include "core/rule_sampler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <thread>
#include <vector>

namespace xraysink::core {
namespace {

// A sampler on a clock and random source the test controls.
class RuleSamplerTest : public ::testing::Test {
 protected:
  bool Sampled(const SamplingRequest& request) { return sampler_.ShouldTrace(request).sampled; }
  bool Sampled(std::string_view host, std::string_view method, std::string_view path) {
    return Sampled({.host = host, .method = method, .path = path});
  }
  void Load(std::string_view json) { ASSERT_TRUE(sampler_.LoadString(json).ok()) << json; }

  int64_t now_ = 1000;
  uint64_t draw_ = UINT64_MAX;  // never under a rate below 1
  RuleSampler sampler_{[this] { return now_; }, [this] { return draw_; }};
};

// Spec 8.3's manifest M.
constexpr char kMoveRules[] = R"({"version": 2,
  "rules": [{"host": "*", "http_method": "*", "url_path": "/api/move/*",
             "fixed_target": 0, "rate": 0}],
  "default": {"fixed_target": 1, "rate": 1}})";

TEST_F(RuleSamplerTest, StartsWithTheBuiltInRules) {
  EXPECT_TRUE(Sampled({}));  // the first of the second
  EXPECT_FALSE(Sampled({}));
  draw_ = static_cast<uint64_t>(std::ldexp(0.049, 64));  // under 5 %
  EXPECT_TRUE(Sampled({}));
}

TEST_F(RuleSamplerTest, NeverNamesALocalRule) {
  Load(kMoveRules);
  EXPECT_EQ(sampler_.ShouldTrace({.path = "/view"}).rule_name, "");
  EXPECT_EQ(sampler_.ShouldTrace({.path = "/api/move/left"}).rule_name, "");
}

TEST_F(RuleSamplerTest, MatchesTheSpecManifest) {
  Load(kMoveRules);
  EXPECT_TRUE(Sampled("", "GET", "/view"));
  EXPECT_FALSE(Sampled("name", "method", "/api/move/left"));
  EXPECT_TRUE(Sampled({}));  // default rule
  // The Python SDK lets a request without HTTP data match the first rule; here only `*`
  // patterns match a missing attribute, so a background task falls to the default rule.
  EXPECT_TRUE(Sampled({.service = "x"}));
}

TEST_F(RuleSamplerTest, MissingAttributesMatchOnlyStarPatterns) {
  // Spec 8.3's rule R with the default sampling everything else.
  Load(kMoveRules);
  EXPECT_FALSE(Sampled("", "POST", "/api/move/up"));  // host `*`
  EXPECT_FALSE(Sampled("name", "", "/api/move/up"));  // method `*`
  EXPECT_TRUE(Sampled("name", "PUT", ""));            // path pattern needs a path
  EXPECT_TRUE(Sampled("", "GET", "/root"));           // path does not match
}

TEST_F(RuleSamplerTest, FirstMatchingRuleWinsInOrder) {
  Load(R"({"version": 2, "rules": [
      {"host": "*", "http_method": "GET", "url_path": "/api/*", "fixed_target": 0, "rate": 1},
      {"host": "*", "http_method": "*", "url_path": "/api/*", "fixed_target": 0, "rate": 0},
      {"host": "*", "http_method": "POST", "url_path": "*", "fixed_target": 0, "rate": 1}],
    "default": {"fixed_target": 0, "rate": 0}})");
  EXPECT_TRUE(Sampled("h", "GET", "/api/x"));    // first rule
  EXPECT_FALSE(Sampled("h", "POST", "/api/x"));  // second rule, before the third
  EXPECT_TRUE(Sampled("h", "POST", "/other"));   // third rule
  EXPECT_FALSE(Sampled("h", "GET", "/other"));   // default
}

TEST_F(RuleSamplerTest, WildcardsMatchHostMethodAndPathWithoutCase) {
  Load(R"({"version": 2, "rules": [{"host": "api-?.Example.com", "http_method": "g*",
      "url_path": "/users/*/orders", "fixed_target": 0, "rate": 1}],
    "default": {"fixed_target": 0, "rate": 0}})");
  EXPECT_TRUE(Sampled("api-1.example.com", "GET", "/users/42/orders"));
  EXPECT_TRUE(Sampled("API-X.EXAMPLE.COM", "get", "/USERS//ORDERS"));
  EXPECT_FALSE(Sampled("api-12.example.com", "GET", "/users/42/orders"));  // `?` is one char
  EXPECT_FALSE(Sampled("api-1.example.com", "POST", "/users/42/orders"));
  EXPECT_FALSE(Sampled("api-1.example.com", "GET", "/users/42/orders/1"));  // whole path
}

TEST_F(RuleSamplerTest, Version1MatchesServiceNameAgainstTheHost) {
  // Spec 8.3's version 1 vector.
  Load(R"({"version": 1, "rules": [{"service_name": "api.example.com", "http_method": "GET",
      "url_path": "/health", "fixed_target": 0, "rate": 0}],
    "default": {"fixed_target": 0, "rate": 1}})");
  EXPECT_FALSE(Sampled("api.example.com", "GET", "/health"));
  EXPECT_FALSE(Sampled("API.EXAMPLE.COM", "get", "/HEALTH"));
  EXPECT_TRUE(Sampled("api.example.com", "POST", "/health"));
  EXPECT_TRUE(Sampled("other.example.com", "GET", "/health"));
}

TEST_F(RuleSamplerTest, ReservoirRefillsEachSecond) {
  // Spec 8.3: fixed_target 2, rate 0 -> T, T, F, F, F within one second.
  Load(R"({"version": 2, "default": {"fixed_target": 2, "rate": 0}})");
  EXPECT_TRUE(Sampled({}));
  EXPECT_TRUE(Sampled({}));
  EXPECT_FALSE(Sampled({}));
  EXPECT_FALSE(Sampled({}));
  EXPECT_FALSE(Sampled({}));
  now_ = 1001;
  EXPECT_TRUE(Sampled({}));
  EXPECT_TRUE(Sampled({}));
  EXPECT_FALSE(Sampled({}));
}

TEST_F(RuleSamplerTest, EachRuleHasItsOwnReservoir) {
  LocalRules rules;
  rules.rules.push_back({.url_path = "/a", .fixed_target = 1});
  rules.rules.push_back({.url_path = "/b", .fixed_target = 2});
  rules.default_rule = {.fixed_target = 1, .rate = 0};
  ASSERT_TRUE(sampler_.SetRules(rules).ok());
  EXPECT_TRUE(Sampled({.path = "/a"}));
  EXPECT_FALSE(Sampled({.path = "/a"}));
  EXPECT_TRUE(Sampled({.path = "/b"}));
  EXPECT_TRUE(Sampled({.path = "/b"}));
  EXPECT_FALSE(Sampled({.path = "/b"}));
  EXPECT_TRUE(Sampled({.path = "/c"}));
  EXPECT_FALSE(Sampled({.path = "/c"}));
  now_ = 1001;
  EXPECT_TRUE(Sampled({.path = "/a"}));
  EXPECT_TRUE(Sampled({.path = "/c"}));
}

TEST_F(RuleSamplerTest, RateDecidesOnceTheReservoirIsEmpty) {
  LocalRules rules;
  rules.rules.push_back({.url_path = "/quarter", .rate = 0.25});
  rules.rules.push_back({.url_path = "/all", .rate = 1});
  rules.default_rule = {.fixed_target = 0, .rate = 0};
  ASSERT_TRUE(sampler_.SetRules(rules).ok());
  const uint64_t quarter = uint64_t{1} << 62;
  draw_ = quarter - 1;
  EXPECT_TRUE(Sampled({.path = "/quarter"}));
  draw_ = quarter;
  EXPECT_FALSE(Sampled({.path = "/quarter"}));
  draw_ = UINT64_MAX;
  EXPECT_TRUE(Sampled({.path = "/all"}));
  draw_ = 0;
  EXPECT_FALSE(Sampled({.path = "/none"}));
}

TEST_F(RuleSamplerTest, KeepsItsRulesWhenNewOnesAreInvalid) {
  Load(kMoveRules);
  LocalRules bad;
  bad.default_rule.rate = 2;
  EXPECT_EQ(sampler_.SetRules(bad).message(), "default.rate: must be a number in [0, 1]");
  EXPECT_EQ(sampler_.LoadString(R"({"version": 2})").message(),
            "default: missing (a default rule is required)");
  EXPECT_EQ(sampler_.LoadString("{").code(), absl::StatusCode::kInvalidArgument);
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = tmp != nullptr ? tmp : "/tmp";
  EXPECT_EQ(sampler_.LoadFile(dir + "/missing.json").code(), absl::StatusCode::kNotFound);
  // Still manifest M: its rule refuses moves, its default samples the rest.
  EXPECT_FALSE(Sampled({.path = "/api/move/up"}));
  EXPECT_TRUE(Sampled({.path = "/view"}));

  const std::string path = dir + "/rules.json";
  std::ofstream(path) << R"({"version": 2, "default": {"fixed_target": 0, "rate": 1}})";
  ASSERT_TRUE(sampler_.LoadFile(path).ok());
  EXPECT_TRUE(Sampled({.path = "/api/move/up"}));
}

TEST(RuleSamplerConcurrencyTest, NeverGrantsMoreThanFixedTargetAcrossThreads) {
  RuleSampler sampler([] { return int64_t{42}; }, [] { return UINT64_MAX; });
  LocalRules rules;
  rules.rules.push_back({.url_path = "/a", .fixed_target = 10});
  rules.default_rule = {.fixed_target = 5, .rate = 0};
  ASSERT_TRUE(sampler.SetRules(rules).ok());
  std::atomic<int> sampled_a{0}, sampled_b{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5000; ++i) {
        sampled_a += sampler.ShouldTrace({.path = "/a"}).sampled;
        sampled_b += sampler.ShouldTrace({.path = "/b"}).sampled;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(sampled_a.load(), 10);
  EXPECT_EQ(sampled_b.load(), 5);
}

TEST(RuleSamplerConcurrencyTest, DecisionsStayConsistentWhileRulesAreSwapped) {
  std::atomic<int64_t> now{0};
  RuleSampler sampler([&] { return now.load(); }, [] { return UINT64_MAX; });
  // Two rule sets that disagree about /a and /b and both refuse everything else.
  LocalRules sample_a;
  sample_a.rules.push_back({.url_path = "/a", .rate = 1});
  sample_a.default_rule = {.fixed_target = 0, .rate = 0};
  LocalRules sample_b;
  sample_b.rules.push_back({.url_path = "/b", .rate = 1});
  sample_b.default_rule = {.fixed_target = 0, .rate = 0};

  std::atomic<bool> done{false};
  std::atomic<int64_t> decisions{0}, wrong{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 8; ++t) {
    readers.emplace_back([&] {
      while (!done.load()) {
        sampler.ShouldTrace({.path = "/a"});
        sampler.ShouldTrace({.path = "/b"});
        wrong += sampler.ShouldTrace({.path = "/c"}).sampled;
        decisions += 3;
      }
    });
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  int swaps = 0;
  while ((swaps < 200 || decisions.load() < 20000) && std::chrono::steady_clock::now() < deadline) {
    ASSERT_TRUE(sampler.SetRules(swaps % 2 == 0 ? sample_b : sample_a).ok());
    ++swaps;
    now.fetch_add(1);
  }
  ASSERT_TRUE(sampler.SetRules(sample_a).ok());
  done = true;
  for (auto& reader : readers) reader.join();
  EXPECT_GE(swaps, 200);
  EXPECT_GE(decisions.load(), 20000);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_TRUE(sampler.ShouldTrace({.path = "/a"}).sampled);
  EXPECT_FALSE(sampler.ShouldTrace({.path = "/b"}).sampled);
}

}  // namespace
}  // namespace xraysink::core
