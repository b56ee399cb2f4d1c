#include "core/centralized_sampler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/testing/child_process.h"
#include "core/testing/threads.h"

namespace xraysink::core {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::MatchesRegex;
using ::testing::SizeIs;

constexpr int64_t kStart = 1700000000;

// A scripted SamplingApi that records what it is asked.
class FakeApi : public SamplingApi {
 public:
  absl::StatusOr<std::vector<SamplingRule>> GetSamplingRules() override {
    std::lock_guard<std::mutex> lock(mu_);
    ++rules_calls_;
    called_.notify_all();
    return rules_;
  }
  absl::StatusOr<SamplingTargets> GetSamplingTargets(
      const std::vector<SamplingStatistics>& statistics) override {
    std::lock_guard<std::mutex> lock(mu_);
    reports_.push_back(statistics);
    return targets_;
  }

  void SetRules(absl::StatusOr<std::vector<SamplingRule>> rules) {
    std::lock_guard<std::mutex> lock(mu_);
    rules_ = std::move(rules);
  }
  void SetTargets(absl::StatusOr<SamplingTargets> targets) {
    std::lock_guard<std::mutex> lock(mu_);
    targets_ = std::move(targets);
  }
  int rules_calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return rules_calls_;
  }
  std::vector<std::vector<SamplingStatistics>> reports() {
    std::lock_guard<std::mutex> lock(mu_);
    return reports_;
  }
  bool WaitForRulesCalls(int calls) {
    std::unique_lock<std::mutex> lock(mu_);
    return called_.wait_for(lock, std::chrono::seconds(20), [&] { return rules_calls_ >= calls; });
  }

 private:
  std::mutex mu_;
  std::condition_variable called_;
  absl::StatusOr<std::vector<SamplingRule>> rules_ = std::vector<SamplingRule>{};
  absl::StatusOr<SamplingTargets> targets_ = SamplingTargets{};
  int rules_calls_ = 0;
  std::vector<std::vector<SamplingStatistics>> reports_;
};

// Never samples; counts how often it was asked.
class CountingFallback : public Sampler {
 public:
  SamplingDecision ShouldTrace(const SamplingRequest&) override {
    ++calls;
    return {};
  }
  std::atomic<int> calls{0};
};

// A settable clock, safe to read from many threads.
class FakeClock {
 public:
  absl::Time Now() const { return absl::FromUnixNanos(nanos_.load()); }
  void Set(absl::Time time) { nanos_ = absl::ToUnixNanos(time); }
  void Advance(absl::Duration by) { Set(Now() + by); }

 private:
  std::atomic<int64_t> nanos_{kStart * 1'000'000'000};
};

SamplingRule Rule(std::string name, int64_t priority, double rate = 1, int64_t reservoir = 0) {
  SamplingRule rule;
  rule.rule_name = std::move(name);
  rule.resource_arn = "*";
  rule.priority = priority;
  rule.fixed_rate = rate;
  rule.reservoir_size = reservoir;
  rule.service_name = rule.service_type = rule.host = rule.http_method = rule.url_path = "*";
  rule.version = 1;
  return rule;
}

SamplingRule Rule(std::string name, int64_t priority, std::string host, std::string method,
                  std::string path, std::string service, std::string service_type) {
  SamplingRule rule = Rule(std::move(name), priority);
  rule.host = std::move(host);
  rule.http_method = std::move(method);
  rule.url_path = std::move(path);
  rule.service_name = std::move(service);
  rule.service_type = std::move(service_type);
  return rule;
}

SamplingTarget Target(std::string name, std::optional<double> rate, std::optional<int64_t> quota,
                      std::optional<int64_t> ttl, std::optional<int64_t> interval = 10) {
  return {std::move(name), rate, quota, ttl, interval};
}

class CentralizedSamplerTest : public ::testing::Test {
 protected:
  std::unique_ptr<CentralizedSampler> Make(std::string origin = "") {
    CentralizedSamplerOptions options;
    options.api = api_;
    options.fallback = fallback_;
    options.origin = std::move(origin);
    options.clock = [this] { return clock_.Now(); };
    absl::StatusOr<std::unique_ptr<CentralizedSampler>> sampler =
        CentralizedSampler::Create(std::move(options));
    EXPECT_TRUE(sampler.ok()) << sampler.status();
    return *std::move(sampler);
  }

  // A sampler with these rules loaded.
  std::unique_ptr<CentralizedSampler> Loaded(std::vector<SamplingRule> rules,
                                             std::string origin = "") {
    api_->SetRules(std::move(rules));
    std::unique_ptr<CentralizedSampler> sampler = Make(std::move(origin));
    EXPECT_TRUE(sampler->RefreshRules().ok());
    return sampler;
  }

  // Which rule sampled `request` ("" = not sampled by a centralized rule).
  static std::string RuleFor(CentralizedSampler& sampler, const SamplingRequest& request) {
    return sampler.ShouldTrace(request).rule_name;
  }

  // How many of `n` decisions sampled.
  static int Sampled(CentralizedSampler& sampler, int n, const SamplingRequest& request = {}) {
    int sampled = 0;
    for (int i = 0; i < n; ++i) sampled += sampler.ShouldTrace(request).sampled;
    return sampled;
  }

  std::shared_ptr<FakeApi> api_ = std::make_shared<FakeApi>();
  std::shared_ptr<CountingFallback> fallback_ = std::make_shared<CountingFallback>();
  FakeClock clock_;
};

TEST_F(CentralizedSamplerTest, NeedsAnApi) {
  EXPECT_EQ(CentralizedSampler::Create({}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CentralizedSamplerTest, ClientIdIs24RandomHexDigits) {
  const std::unique_ptr<CentralizedSampler> a = Make();
  const std::unique_ptr<CentralizedSampler> b = Make();
  EXPECT_THAT(a->client_id(), MatchesRegex("[0-9a-f]{24}"));
  EXPECT_NE(a->client_id(), b->client_id());
}

TEST_F(CentralizedSamplerTest, FallbackDecidesUntilRulesArrive) {
  const std::unique_ptr<CentralizedSampler> sampler = Make();
  EXPECT_FALSE(sampler->ShouldTrace({}).sampled);
  EXPECT_EQ(fallback_->calls, 1);
}

// Spec 8.4 (test_sampling_rule_cache.py): rules sorted by priority, then name; a request
// attribute that is missing matches implicitly; Default catches the rest.
TEST_F(CentralizedSamplerTest, MatchesRulesInPriorityOrder) {
  const std::unique_ptr<CentralizedSampler> sampler = Loaded({
      Rule("Default", 1000),
      Rule("b", 2, "*", "GET", "ping", "myapp", "AWS::EC2::Instance"),
      Rule("aa", 2, "*random*", "POST", "random", "proxy", "random"),
      Rule("a", 1, "*mydomain*", "GET", "myop", "random", "random"),
  });
  EXPECT_EQ(RuleFor(*sampler, {.host = "mydomain.com"}), "a");
  EXPECT_EQ(RuleFor(*sampler, {.method = "POST"}), "aa");
  EXPECT_EQ(RuleFor(*sampler, {.path = "ping"}), "b");
  EXPECT_EQ(RuleFor(*sampler, {.service = "proxy"}), "aa");
  EXPECT_EQ(RuleFor(*sampler, {.service_type = "AWS::EC2::Instance"}), "b");
  EXPECT_EQ(RuleFor(*sampler, {.host = "unknown", .path = "unknown"}), "Default");
  // Wildcards are case-insensitive, as everywhere in X-Ray.
  EXPECT_EQ(RuleFor(*sampler, {.host = "API.MYDOMAIN.COM", .method = "get", .path = "MyOp"}), "a");
  EXPECT_EQ(fallback_->calls, 0);
}

TEST_F(CentralizedSamplerTest, EqualPrioritiesGoByName) {
  const std::unique_ptr<CentralizedSampler> sampler =
      Loaded({Rule("zeta", 5), Rule("alpha", 5), Rule("Default", 10000)});
  EXPECT_EQ(RuleFor(*sampler, {.host = "h"}), "alpha");
}

TEST_F(CentralizedSamplerTest, NoMatchFallsBack) {
  const std::unique_ptr<CentralizedSampler> sampler =
      Loaded({Rule("health", 1, "*", "GET", "/health", "*", "*")});
  EXPECT_EQ(RuleFor(*sampler, {.method = "GET", .path = "/health"}), "health");
  EXPECT_EQ(fallback_->calls, 0);
  EXPECT_FALSE(sampler->ShouldTrace({.method = "GET", .path = "/api"}).sampled);
  EXPECT_EQ(fallback_->calls, 1);
}

TEST_F(CentralizedSamplerTest, OriginStandsInForAMissingServiceType) {
  std::vector<SamplingRule> rules = {Rule("ecs", 1, "*", "*", "*", "*", "AWS::ECS::Container"),
                                     Rule("ec2", 2, "*", "*", "*", "*", "AWS::EC2::Instance")};
  EXPECT_EQ(RuleFor(*Loaded(rules), {.service = "svc"}), "ecs");
  const std::unique_ptr<CentralizedSampler> on_ec2 = Loaded(rules, "AWS::EC2::Instance");
  EXPECT_EQ(RuleFor(*on_ec2, {.service = "svc"}), "ec2");
  EXPECT_EQ(RuleFor(*on_ec2, {.service_type = "AWS::ECS::Container"}), "ecs");
}

TEST_F(CentralizedSamplerTest, IgnoresRulesTheSdksCannotApply) {
  SamplingRule v2 = Rule("v2", 1);
  v2.version = 2;
  SamplingRule arn = Rule("arn", 2);
  arn.resource_arn = "arn:aws:lambda:us-east-1:123456789012:function:f";
  SamplingRule no_type = Rule("no_type", 3);
  no_type.service_type = "";
  SamplingRule attributes = Rule("attributes", 4);
  attributes.attributes = {{"tenant", "a"}};
  const std::unique_ptr<CentralizedSampler> sampler =
      Loaded({v2, arn, no_type, attributes, Rule("Default", 10000)});
  EXPECT_EQ(RuleFor(*sampler, {.host = "h"}), "Default");

  // Only unusable rules: nothing to apply, the poll counts as failed.
  api_->SetRules(std::vector<SamplingRule>{v2, attributes});
  const std::unique_ptr<CentralizedSampler> none = Make();
  const absl::Status status = none->RefreshRules();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("none of the 2 sampling rules"));
  EXPECT_EQ(none->stats().rule_polls_failed, 1u);
  EXPECT_FALSE(none->ShouldTrace({}).sampled);
  EXPECT_EQ(fallback_->calls, 1);
}

// Without a quota from the service a rule with a reservoir borrows one trace a second; a rule
// without a reservoir cannot.
TEST_F(CentralizedSamplerTest, BorrowsOneASecondWithoutQuota) {
  const std::unique_ptr<CentralizedSampler> sampler =
      Loaded({Rule("borrow", 1, 0.0, 5), Rule("Default", 10000, 0.0, 0)});
  const SamplingRequest borrower = {.service = "a"};
  std::vector<SamplingRule> only_default = {Rule("Default", 10000, 0.0, 0)};
  EXPECT_EQ(RuleFor(*sampler, borrower), "borrow");
  EXPECT_EQ(Sampled(*sampler, 2, borrower), 0);
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(Sampled(*sampler, 3, borrower), 1);

  const std::unique_ptr<CentralizedSampler> cannot = Loaded(only_default);
  EXPECT_EQ(Sampled(*cannot, 10), 0);
  EXPECT_EQ(fallback_->calls, 0);
}

TEST_F(CentralizedSamplerTest, TakesTheQuotaUntilItsTtlThenBorrows) {
  const std::unique_ptr<CentralizedSampler> sampler = Loaded({Rule("Default", 10000, 0.0, 1)});
  sampler->ShouldTrace({});  // a request, so there is something to report
  api_->SetTargets(SamplingTargets{{Target("Default", 0.0, 2, kStart + 10)}});
  ASSERT_TRUE(sampler->RefreshTargets().ok());

  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(Sampled(*sampler, 5), 2);
  clock_.Set(absl::FromUnixSeconds(kStart + 10));  // the TTL's own second still counts
  EXPECT_EQ(Sampled(*sampler, 5), 2);
  clock_.Advance(absl::Seconds(1));  // expired: back to borrowing one a second
  EXPECT_EQ(Sampled(*sampler, 5), 1);
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(Sampled(*sampler, 5), 1);
}

TEST_F(CentralizedSamplerTest, AFreshZeroQuotaNeitherTakesNorBorrows) {
  const std::unique_ptr<CentralizedSampler> sampler = Loaded({Rule("Default", 10000, 0.0, 1)});
  sampler->ShouldTrace({});
  api_->SetTargets(SamplingTargets{{Target("Default", std::nullopt, 0, kStart + 60)}});
  ASSERT_TRUE(sampler->RefreshTargets().ok());
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(Sampled(*sampler, 5), 0);
}

TEST_F(CentralizedSamplerTest, FixedRateFromTheTargetDecidesAfterTheReservoir) {
  const std::unique_ptr<CentralizedSampler> sampler = Loaded({Rule("Default", 10000, 0.0, 0)});
  EXPECT_EQ(Sampled(*sampler, 100), 0);
  api_->SetTargets(SamplingTargets{{Target("Default", 1.0, std::nullopt, std::nullopt)}});
  ASSERT_TRUE(sampler->RefreshTargets().ok());
  EXPECT_EQ(Sampled(*sampler, 100), 100);

  api_->SetTargets(SamplingTargets{{Target("Default", 0.5, std::nullopt, std::nullopt)}});
  clock_.Advance(CentralizedSampler::kTargetsInterval);
  ASSERT_TRUE(sampler->RefreshTargets().ok());
  const int sampled = Sampled(*sampler, 10000);
  EXPECT_GT(sampled, 4000);  // 0.5 +- 20 standard deviations
  EXPECT_LT(sampled, 6000);
}

TEST_F(CentralizedSamplerTest, ReportsStatisticsAndResetsThem) {
  const std::unique_ptr<CentralizedSampler> sampler =
      Loaded({Rule("api", 1, "*", "*", "/api/*", "*", "*"), Rule("Default", 10000, 0.0, 1)});
  // Rule "api" samples everything; Default borrows one of three.
  for (int i = 0; i < 2; ++i) sampler->ShouldTrace({.path = "/api/x"});
  for (int i = 0; i < 3; ++i) sampler->ShouldTrace({.path = "/other"});
  ASSERT_TRUE(sampler->RefreshTargets().ok());
  ASSERT_THAT(api_->reports(), SizeIs(1));
  const std::vector<SamplingStatistics> report = api_->reports()[0];
  ASSERT_THAT(report, SizeIs(2));
  EXPECT_EQ(report[0].rule_name, "api");
  EXPECT_EQ(report[0].client_id, sampler->client_id());
  EXPECT_EQ(report[0].timestamp, kStart);
  EXPECT_EQ(report[0].request_count, 2);
  EXPECT_EQ(report[0].sampled_count, 2);
  EXPECT_EQ(report[0].borrow_count, 0);
  EXPECT_EQ(report[1].rule_name, "Default");
  EXPECT_EQ(report[1].request_count, 3);
  EXPECT_EQ(report[1].sampled_count, 1);  // a borrowed trace is a recorded one too
  EXPECT_EQ(report[1].borrow_count, 1);
  EXPECT_EQ(sampler->stats().target_polls_ok, 1u);

  // Nothing matched since: no call at all.
  clock_.Advance(CentralizedSampler::kTargetsInterval);
  ASSERT_TRUE(sampler->RefreshTargets().ok());
  EXPECT_THAT(api_->reports(), SizeIs(1));

  // Only what happened since the last report, only for rules that matched.
  sampler->ShouldTrace({.path = "/api/y"});
  clock_.Advance(CentralizedSampler::kTargetsInterval);
  ASSERT_TRUE(sampler->RefreshTargets().ok());
  ASSERT_THAT(api_->reports(), SizeIs(2));
  EXPECT_THAT(api_->reports()[1], ElementsAre(AllOf(Field(&SamplingStatistics::rule_name, "api"),
                                                    Field(&SamplingStatistics::request_count, 1),
                                                    Field(&SamplingStatistics::sampled_count, 1))));
}

// Spec 8.4: a target Interval of 20 s reports every second 10-s poll; a shorter one makes the
// poller come sooner.
TEST_F(CentralizedSamplerTest, TargetIntervalSetsTheReportPace) {
  const std::unique_ptr<CentralizedSampler> sampler = Loaded({Rule("Default", 10000)});
  api_->SetTargets(SamplingTargets{{Target("Default", 1.0, std::nullopt, std::nullopt, 20)}});
  sampler->ShouldTrace({});
  ASSERT_TRUE(sampler->RefreshTargets().ok());
  for (int tick = 1; tick <= 4; ++tick) {
    sampler->ShouldTrace({});
    clock_.Advance(CentralizedSampler::kTargetsInterval);
    ASSERT_TRUE(sampler->RefreshTargets().ok());
    EXPECT_THAT(api_->reports(), SizeIs(1 + tick / 2)) << "tick " << tick;
  }

  api_->SetTargets(SamplingTargets{{Target("Default", 1.0, std::nullopt, std::nullopt, 5)}});
  sampler->ShouldTrace({});
  clock_.Advance(absl::Seconds(20));
  ASSERT_TRUE(sampler->RefreshTargets().ok());
  clock_.Advance(absl::Seconds(306));  // everything due: the next step comes from Interval
  const absl::Time next = sampler->PollOnce();
  EXPECT_GE(next, clock_.Now() + absl::Seconds(5));
  EXPECT_LE(next, clock_.Now() + absl::Seconds(5) + CentralizedSampler::kTargetsJitter);
}

TEST_F(CentralizedSamplerTest, PollOnceFetchesRulesAtOnceThenEveryFiveMinutes) {
  api_->SetRules(std::vector<SamplingRule>{Rule("Default", 10000)});
  const std::unique_ptr<CentralizedSampler> sampler = Make();
  const absl::Time start = clock_.Now();
  const absl::Time next = sampler->PollOnce();
  EXPECT_EQ(api_->rules_calls(), 1);
  EXPECT_EQ(RuleFor(*sampler, {}), "Default");
  // The next step is the targets poll, 10-10.1 s away.
  EXPECT_GE(next, start + CentralizedSampler::kTargetsInterval);
  EXPECT_LE(next,
            start + CentralizedSampler::kTargetsInterval + CentralizedSampler::kTargetsJitter);

  clock_.Set(start + CentralizedSampler::kRulesInterval - absl::Seconds(1));
  sampler->PollOnce();
  EXPECT_EQ(api_->rules_calls(), 1);
  clock_.Set(start + CentralizedSampler::kRulesInterval + CentralizedSampler::kRulesJitter);
  sampler->PollOnce();
  EXPECT_EQ(api_->rules_calls(), 2);
  EXPECT_EQ(sampler->stats().rule_polls_ok, 2u);
}

TEST_F(CentralizedSamplerTest, FailedPollsKeepTheRulesAndRetrySooner) {
  const std::unique_ptr<CentralizedSampler> sampler = Loaded({Rule("Default", 10000, 1.0, 0)});
  sampler->ShouldTrace({});
  api_->SetRules(absl::UnavailableError("connection refused"));
  api_->SetTargets(absl::InvalidArgumentError("bad JSON at offset 0"));

  clock_.Advance(CentralizedSampler::kRulesInterval + CentralizedSampler::kRulesJitter);
  absl::Time next = sampler->PollOnce();
  EXPECT_EQ(sampler->stats().rule_polls_failed, 1u);
  EXPECT_EQ(sampler->stats().target_polls_failed, 1u);
  EXPECT_EQ(RuleFor(*sampler, {}), "Default");  // the last good rules still apply
  EXPECT_LE(next, clock_.Now() + CentralizedSampler::kRulesRetryInterval);

  clock_.Advance(CentralizedSampler::kRulesRetryInterval);
  sampler->PollOnce();
  EXPECT_EQ(api_->rules_calls(), 3);
  EXPECT_EQ(sampler->stats().rule_polls_failed, 2u);

  api_->SetRules(std::vector<SamplingRule>{Rule("recovered", 1)});
  clock_.Advance(CentralizedSampler::kRulesRetryInterval);
  sampler->PollOnce();
  EXPECT_EQ(RuleFor(*sampler, {}), "recovered");
  EXPECT_EQ(sampler->stats().rule_polls_ok, 2u);
  EXPECT_EQ(fallback_->calls, 0);
}

TEST_F(CentralizedSamplerTest, RulesExpireAfterAnHourWithoutRefresh) {
  const std::unique_ptr<CentralizedSampler> sampler = Loaded({Rule("Default", 10000)});
  api_->SetRules(absl::UnavailableError("daemon down"));
  clock_.Advance(CentralizedSampler::kCacheTtl);
  sampler->PollOnce();
  EXPECT_EQ(RuleFor(*sampler, {}), "Default");
  EXPECT_EQ(fallback_->calls, 0);

  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(RuleFor(*sampler, {}), "");
  EXPECT_EQ(fallback_->calls, 1);

  api_->SetRules(std::vector<SamplingRule>{Rule("Default", 10000)});
  clock_.Advance(CentralizedSampler::kRulesRetryInterval);
  sampler->PollOnce();
  EXPECT_EQ(RuleFor(*sampler, {}), "Default");
  EXPECT_EQ(fallback_->calls, 1);
}

// A refresh keeps a same-named rule's reservoir and unreported counters (spec 8.4); its rate
// comes from the fresh definition; vanished rules go.
TEST_F(CentralizedSamplerTest, RefreshKeepsReservoirAndCounters) {
  const std::unique_ptr<CentralizedSampler> sampler =
      Loaded({Rule("a", 1, 0.0, 1), Rule("gone", 2), Rule("Default", 10000, 0.0, 0)});
  sampler->ShouldTrace({});
  api_->SetTargets(SamplingTargets{
      {Target("a", std::nullopt, 3, kStart + 15), Target("unknown", 1.0, 9, kStart + 15)}});
  ASSERT_TRUE(sampler->RefreshTargets().ok());
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(Sampled(*sampler, 2), 2);

  SamplingRule moved = Rule("a", 5, 0.0, 1);
  moved.url_path = "/a";
  api_->SetRules(std::vector<SamplingRule>{moved, Rule("Default", 10000, 0.0, 0)});
  ASSERT_TRUE(sampler->RefreshRules().ok());
  EXPECT_EQ(Sampled(*sampler, 5, {.path = "/a"}), 1);  // same second: 3 of quota 3 in all
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(Sampled(*sampler, 5, {.path = "/a"}), 3);

  clock_.Advance(CentralizedSampler::kTargetsInterval);
  ASSERT_TRUE(sampler->RefreshTargets().ok());
  ASSERT_THAT(api_->reports(), SizeIs(2));
  EXPECT_THAT(api_->reports()[1], ElementsAre(AllOf(Field(&SamplingStatistics::rule_name, "a"),
                                                    Field(&SamplingStatistics::request_count, 12),
                                                    Field(&SamplingStatistics::sampled_count, 6))));
  // "gone" (rate 1, before Default) vanished with the refresh.
  EXPECT_EQ(RuleFor(*sampler, {.path = "/b"}), "");
  EXPECT_EQ(fallback_->calls, 0);
}

TEST_F(CentralizedSamplerTest, NewerRuleModificationRefetchesRules) {
  const std::unique_ptr<CentralizedSampler> sampler = Make();
  api_->SetRules(std::vector<SamplingRule>{Rule("Default", 10000)});
  sampler->PollOnce();
  sampler->ShouldTrace({});
  SamplingTargets targets;
  targets.last_rule_modification = kStart + 5;
  api_->SetTargets(targets);
  api_->SetRules(std::vector<SamplingRule>{Rule("changed", 1)});
  clock_.Advance(CentralizedSampler::kTargetsInterval + CentralizedSampler::kTargetsJitter);
  sampler->PollOnce();
  EXPECT_EQ(api_->rules_calls(), 2);
  EXPECT_EQ(RuleFor(*sampler, {}), "changed");

  // Not newer than our rules: no extra fetch.
  sampler->ShouldTrace({});
  clock_.Advance(CentralizedSampler::kTargetsInterval + CentralizedSampler::kTargetsJitter);
  sampler->PollOnce();
  EXPECT_EQ(api_->rules_calls(), 2);
  EXPECT_THAT(api_->reports(), SizeIs(2));
}

// Decisions from 8 threads while the poller swaps rules and takes statistics: the quota holds
// exactly and every request is reported once.
TEST_F(CentralizedSamplerTest, ConcurrentDecisionsAndPolls) {
  const std::unique_ptr<CentralizedSampler> sampler = Loaded({Rule("Default", 10000, 0.0, 1)});
  sampler->ShouldTrace({});
  api_->SetTargets(SamplingTargets{{Target("Default", 0.0, 5, kStart + 3600, 1)}});
  ASSERT_TRUE(sampler->RefreshTargets().ok());
  clock_.Advance(absl::Seconds(1));  // a fresh second; the report is due

  constexpr int kThreads = 8, kPerThread = 2000;
  std::atomic<int> sampled{0};
  std::atomic<bool> done{false};
  std::thread poller([&] {
    while (!done) {
      EXPECT_TRUE(sampler->RefreshRules().ok());
      EXPECT_TRUE(sampler->RefreshTargets().ok());
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        const SamplingDecision decision = sampler->ShouldTrace({.service = "svc"});
        if (decision.sampled) {
          EXPECT_EQ(decision.rule_name, "Default");
          ++sampled;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  done = true;
  poller.join();
  EXPECT_EQ(sampled, 5);

  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(sampler->RefreshTargets().ok());
  int64_t requests = 0, reported_sampled = 0;
  const std::vector<std::vector<SamplingStatistics>> reports = api_->reports();
  for (size_t i = 1; i < reports.size(); ++i) {
    for (const SamplingStatistics& statistics : reports[i]) {
      EXPECT_LE(statistics.sampled_count, statistics.request_count);
      requests += statistics.request_count;
      reported_sampled += statistics.sampled_count;
    }
  }
  EXPECT_EQ(requests, kThreads * kPerThread);
  EXPECT_EQ(reported_sampled, 5);
}

TEST_F(CentralizedSamplerTest, BackgroundPollerFetchesAtOnceAndStopsPromptly) {
  api_->SetRules(std::vector<SamplingRule>{Rule("Default", 10000)});
  CentralizedSamplerOptions options;
  options.api = api_;
  options.fallback = fallback_;
  const std::unique_ptr<CentralizedSampler> sampler =
      *CentralizedSampler::Create(std::move(options));
  ASSERT_TRUE(sampler->Start().ok());
  ASSERT_TRUE(sampler->Start().ok());  // idempotent
  ASSERT_TRUE(api_->WaitForRulesCalls(1));
  EXPECT_EQ(::xraysink::core::testing::CountThreadsNamed("xraysink-rules"),
            1);  // for top -H, perf and gdb
  // Stop waits for the poll in flight, then ends the poller's 10-s wait for the next step.
  sampler->Stop();
  sampler->Stop();
  EXPECT_EQ(RuleFor(*sampler, {}), "Default");
  EXPECT_EQ(api_->rules_calls(), 1);
  // Restartable; the destructor stops it too.
  ASSERT_TRUE(sampler->Start().ok());
}

// Waits, up to 20 s, until `done()`.
template <typename Done>
bool Eventually(Done done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

// A pre-forking server that set tracing up before it forked: each worker polls on a thread of
// its own, as a client of its own to the sampling API (its own id, only its own requests
// reported), and stops without waiting for the parent's poller, which it does not have.
TEST_F(CentralizedSamplerTest, AForkedChildPollsAsAClientOfItsOwn) {
  if (!::xraysink::core::testing::kForkedChildrenCanStartThreads)
    GTEST_SKIP() << "TSan cannot follow a forked child's threads";
  api_->SetRules(std::vector<SamplingRule>{Rule("Default", 10000, 0.0, 1)});
  CentralizedSamplerOptions options;
  options.api = api_;
  options.fallback = fallback_;
  const std::unique_ptr<CentralizedSampler> sampler =
      *CentralizedSampler::Create(std::move(options));
  ASSERT_TRUE(sampler->Start().ok());
  // Out of the API (whose lock the child would otherwise inherit held) and waiting.
  ASSERT_TRUE(Eventually([&] { return sampler->stats().rule_polls_ok == 1; }));
  for (int i = 0; i < 5; ++i) sampler->ShouldTrace({});  // the parent's, not reported yet
  const std::string parent_id = sampler->client_id();
  const int code = ::xraysink::core::testing::RunInChild(
      [&] {
        if (!Eventually([] {
              return ::xraysink::core::testing::CountThreadsNamed("xraysink-rules") == 1;
            })) {
          return 1;
        }
        if (sampler->client_id() == parent_id) return 2;
        sampler->ShouldTrace({});
        if (!sampler->RefreshTargets().ok()) return 3;
        int64_t requests = 0;
        for (const std::vector<SamplingStatistics>& report : api_->reports()) {
          for (const SamplingStatistics& statistics : report) {
            if (statistics.client_id != sampler->client_id()) return 4;
            requests += statistics.request_count;
          }
        }
        if (requests != 1) return 5;
        sampler->Stop();
        return 0;
      },
      std::chrono::seconds(60));
  EXPECT_EQ(code, 0) << "1: no poller, 2: the parent's id, 3: report failed, 4: another id in "
                        "a report, 5: not only the child's requests, -1: hung";
  // The parent's sampler is as it was: its 5 requests are its own to report.
  ASSERT_TRUE(sampler->RefreshTargets().ok());
  ASSERT_THAT(api_->reports(), SizeIs(1));
  EXPECT_EQ(api_->reports()[0][0].client_id, parent_id);
  EXPECT_EQ(api_->reports()[0][0].request_count, 5);
}

// ---- JSON ----

TEST(SamplingJsonTest, RulesRequest) {
  EXPECT_EQ(EncodeSamplingRulesRequest(""), "{}");
  EXPECT_EQ(EncodeSamplingRulesRequest("tok\"en"), R"({"NextToken":"tok\"en"})");
  EXPECT_EQ(*DecodeSamplingRulesRequest("{}"), "");
  EXPECT_EQ(*DecodeSamplingRulesRequest(R"({"NextToken":"t"})"), "t");
  EXPECT_FALSE(DecodeSamplingRulesRequest(R"({"NextToken":1})").ok());
  EXPECT_FALSE(DecodeSamplingRulesRequest("").ok());
}

// The shape the service documents (API_GetSamplingRules), extra members included.
TEST(SamplingJsonTest, DecodesTheDocumentedRulesResponse) {
  const absl::StatusOr<SamplingRulesPage> page = DecodeSamplingRulesResponse(R"({
    "SamplingRuleRecords": [{
      "CreatedAt": 1.53e9, "ModifiedAt": 1530557205,
      "SamplingRule": {
        "RuleName": "Default", "RuleARN": "arn:aws:xray:us-east-1::sampling-rule/Default",
        "ResourceARN": "*", "Priority": 10000, "FixedRate": 0.05, "ReservoirSize": 1,
        "ServiceName": "*", "ServiceType": "*", "Host": "*", "HTTPMethod": "*", "URLPath": "*",
        "Version": 1, "Attributes": {"k": "v"},
        "SamplingRateBoost": {"MaxRate": 0.5, "CooldownWindowMinutes": 1}}}],
    "NextToken": "page2"})");
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->next_token, "page2");
  ASSERT_THAT(page->rules, SizeIs(1));
  const SamplingRule& rule = page->rules[0];
  EXPECT_EQ(rule.rule_name, "Default");
  EXPECT_EQ(rule.priority, 10000);
  EXPECT_DOUBLE_EQ(rule.fixed_rate, 0.05);
  EXPECT_EQ(rule.reservoir_size, 1);
  EXPECT_EQ(rule.version, 1);
  EXPECT_EQ(rule.attributes.at("k"), "v");
}

TEST(SamplingJsonTest, RulesResponseRoundTrips) {
  SamplingRule rule = Rule("a", 3, "h*", "GET", "/p", "svc", "AWS::EC2::Instance");
  rule.fixed_rate = 0.25;
  rule.reservoir_size = 7;
  rule.attributes = {{"x", "y"}};
  const absl::StatusOr<SamplingRulesPage> page =
      DecodeSamplingRulesResponse(EncodeSamplingRulesResponse({{rule, Rule("b", 4)}, "next"}));
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->next_token, "next");
  ASSERT_THAT(page->rules, SizeIs(2));
  const SamplingRule& back = page->rules[0];
  EXPECT_EQ(back.rule_name, "a");
  EXPECT_EQ(back.resource_arn, "*");
  EXPECT_EQ(back.priority, 3);
  EXPECT_EQ(back.fixed_rate, 0.25);
  EXPECT_EQ(back.reservoir_size, 7);
  EXPECT_EQ(back.host, "h*");
  EXPECT_EQ(back.http_method, "GET");
  EXPECT_EQ(back.url_path, "/p");
  EXPECT_EQ(back.service_name, "svc");
  EXPECT_EQ(back.service_type, "AWS::EC2::Instance");
  EXPECT_EQ(back.version, 1);
  EXPECT_EQ(back.attributes, rule.attributes);
  EXPECT_TRUE(page->rules[1].attributes.empty());
}

TEST(SamplingJsonTest, TargetsRoundTrip) {
  const std::vector<SamplingStatistics> statistics = {
      {"a", "0123456789abcdef01234567", kStart, 5, 2, 1}};
  const absl::StatusOr<std::vector<SamplingStatistics>> request =
      DecodeSamplingTargetsRequest(EncodeSamplingTargetsRequest(statistics));
  ASSERT_TRUE(request.ok()) << request.status();
  ASSERT_THAT(*request, SizeIs(1));
  EXPECT_EQ((*request)[0].rule_name, "a");
  EXPECT_EQ((*request)[0].client_id, "0123456789abcdef01234567");
  EXPECT_EQ((*request)[0].timestamp, kStart);
  EXPECT_EQ((*request)[0].request_count, 5);
  EXPECT_EQ((*request)[0].sampled_count, 2);
  EXPECT_EQ((*request)[0].borrow_count, 1);

  SamplingTargets targets;
  targets.targets = {Target("a", 0.1, 4, kStart + 10, 20),
                     Target("b", std::nullopt, std::nullopt, std::nullopt, std::nullopt)};
  targets.last_rule_modification = kStart - 1;
  const absl::StatusOr<SamplingTargets> back =
      DecodeSamplingTargetsResponse(EncodeSamplingTargetsResponse(targets));
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_THAT(back->targets, SizeIs(2));
  EXPECT_EQ(back->targets[0].fixed_rate, 0.1);
  EXPECT_EQ(back->targets[0].reservoir_quota, 4);
  EXPECT_EQ(back->targets[0].reservoir_quota_ttl, kStart + 10);
  EXPECT_EQ(back->targets[0].interval, 20);
  EXPECT_EQ(back->targets[1].rule_name, "b");
  EXPECT_FALSE(back->targets[1].fixed_rate.has_value());
  EXPECT_FALSE(back->targets[1].reservoir_quota.has_value());
  EXPECT_EQ(back->last_rule_modification, kStart - 1);
}

TEST(SamplingJsonTest, TargetsResponseTakesFractionalEpochs) {
  const absl::StatusOr<SamplingTargets> targets = DecodeSamplingTargetsResponse(
      R"({"SamplingTargetDocuments":[{"RuleName":"a","ReservoirQuotaTTL":1700000010.75}],)"
      R"("LastRuleModification":1.7e9,"UnprocessedStatistics":[]})");
  ASSERT_TRUE(targets.ok()) << targets.status();
  EXPECT_EQ(targets->targets[0].reservoir_quota_ttl, 1700000010);
  EXPECT_EQ(targets->last_rule_modification, 1700000000);
  EXPECT_THAT(DecodeSamplingTargetsResponse("{}")->targets, IsEmpty());
}

TEST(SamplingJsonTest, GarbageIsAnErrorNamingWhatIsWrong) {
  auto rules_error = [](std::string_view body) {
    return std::string(DecodeSamplingRulesResponse(body).status().message());
  };
  EXPECT_THAT(rules_error("<html>502</html>"), HasSubstr("bad JSON at offset 0"));
  EXPECT_THAT(rules_error(""), HasSubstr("bad JSON"));
  EXPECT_THAT(rules_error("[]"), HasSubstr("not a JSON object"));
  EXPECT_THAT(rules_error("{}"), HasSubstr("SamplingRuleRecords must be present"));
  EXPECT_THAT(rules_error(R"({"SamplingRuleRecords":{}})"), HasSubstr("must be an array"));
  EXPECT_THAT(rules_error(R"({"SamplingRuleRecords":[1]})"),
              HasSubstr("SamplingRuleRecords[0] must be an object"));
  EXPECT_THAT(rules_error(R"({"SamplingRuleRecords":[{}]})"),
              HasSubstr("SamplingRuleRecords[0].SamplingRule must be present"));
  std::string body = EncodeSamplingRulesResponse({{Rule("a", 1)}, ""});
  body.replace(body.find("\"Priority\":1"), 12, "\"Priority\":\"1\"");
  EXPECT_THAT(rules_error(body), HasSubstr("SamplingRuleRecords[0].SamplingRule.Priority must be "
                                           "an integer"));
  body = EncodeSamplingRulesResponse({{Rule("a", 1)}, ""});
  body.replace(body.find("\"Attributes\":{}"), 15, R"("Attributes":{"k":1})");
  EXPECT_THAT(rules_error(body), HasSubstr("Attributes must be an object of strings"));
  body = EncodeSamplingRulesResponse({{Rule("a", 1)}, ""});
  body.replace(body.find("\"Host\":\"*\","), 11, "");
  EXPECT_THAT(rules_error(body), HasSubstr("Host must be present"));
  // Deep nesting must not exhaust the stack.
  EXPECT_THAT(rules_error(std::string(100000, '[') + std::string(100000, ']')),
              HasSubstr("not a JSON object"));

  EXPECT_FALSE(
      DecodeSamplingTargetsResponse(R"({"SamplingTargetDocuments":[{"FixedRate":1}]})").ok());
  EXPECT_FALSE(DecodeSamplingTargetsResponse(
                   R"({"SamplingTargetDocuments":[{"RuleName":"a","Interval":"x"}]})")
                   .ok());
  EXPECT_FALSE(DecodeSamplingTargetsResponse(R"({"LastRuleModification":1e300})").ok());
  EXPECT_FALSE(
      DecodeSamplingTargetsRequest(R"({"SamplingStatisticsDocuments":[{"RuleName":"a"}]})").ok());
  EXPECT_FALSE(DecodeSamplingTargetsRequest("{}").ok());
}

}  // namespace
}  // namespace xraysink::core
