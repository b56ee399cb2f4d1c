// Sampling through the one-call setup: Configure() builds the centralized sampler on the daemon's
// TCP sampling API (the FakeDaemon's, on 127.0.0.1) over the local rules file, starts its poller
// and stops it with Tracing. Segments travel over real UDP; waits have deadlines.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/centralized_sampler.h"
#include "core/recorder.h"
#include "core/sampler.h"
#include "core/testing/child_process.h"
#include "integration_tests/fake_daemon.h"
#include "rapidjson/document.h"
#include "tools/local_daemon/datagram.h"
#include "xraysink.h"

namespace xraysink::integration_tests {
namespace {

using ::testing::HasSubstr;

// Generous: a loaded 2-core machine under TSan. Waits return as soon as the condition holds.
constexpr absl::Duration kTimeout = absl::Seconds(120);

// A rule for service `service` (any host, method, path and service type).
core::SamplingRule Rule(std::string name, int64_t priority, std::string service, double rate) {
  core::SamplingRule rule;
  rule.rule_name = std::move(name);
  rule.resource_arn = "*";
  rule.priority = priority;
  rule.fixed_rate = rate;
  rule.reservoir_size = 0;  // no borrowed trace a second: the rate alone decides
  rule.service_name = std::move(service);
  rule.service_type = rule.host = rule.http_method = rule.url_path = "*";
  rule.version = 1;
  return rule;
}

// Spins (no sleep) until `done` or the deadline; the last value of `done`.
bool WaitUntil(const std::function<bool()>& done) {
  const absl::Time deadline = absl::Now() + kTimeout;
  while (!done() && absl::Now() < deadline) std::this_thread::yield();
  return done();
}

// Threads of this process right now.
size_t ThreadCount() {
  const std::filesystem::directory_iterator tasks("/proc/self/task");
  return static_cast<size_t>(std::distance(begin(tasks), end(tasks)));
}

std::string WriteFile(const std::string& name, std::string_view text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

// The sampling rule name a received segment carries ("" when none).
std::string RuleName(const tools::ReceivedDocument& document) {
  const rapidjson::Value& json = *document.entity().json;
  if (!json.HasMember("aws") || !json["aws"].HasMember("xray")) return "";
  const rapidjson::Value& xray = json["aws"]["xray"];
  return xray.HasMember("sampling_rule_name") ? xray["sampling_rule_name"].GetString() : "";
}

class ConfigureSamplingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The test environment points AWS_XRAY_DAEMON_ADDRESS at a dead port; it would win.
    unsetenv("AWS_XRAY_DAEMON_ADDRESS");
    absl::StatusOr<std::unique_ptr<FakeDaemon>> daemon = FakeDaemon::Start();
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    daemon_ = *std::move(daemon);
  }
  void TearDown() override { unsetenv("AWS_XRAY_DAEMON_ADDRESS"); }

  TracingOptions Options() const {
    TracingOptions options;
    options.service_name = "svc";
    options.daemon_address = daemon_->daemon_address();
    options.recorder.read_environment = false;
    return options;
  }

  static std::unique_ptr<Tracing> Start(TracingOptions options) {
    absl::StatusOr<std::unique_ptr<Tracing>> tracing = Configure(std::move(options));
    EXPECT_TRUE(tracing.ok()) << tracing.status();
    return tracing.ok() ? *std::move(tracing) : nullptr;
  }

  // Ends a segment named `name`, sampled as `decision` says (unset: the recorder's sampler).
  static void SendSegment(core::Recorder& recorder, std::string_view name,
                          std::optional<core::SamplingDecision> decision = std::nullopt) {
    recorder.BeginSegment(name, {.sampling = std::move(decision)});
    recorder.EndSegment();
  }

  // The one document that arrives after everything ended so far was sent (an unsampled segment
  // ended before it would have arrived before it).
  tools::ReceivedDocument OnlyDocument(const Tracing& tracing) {
    EXPECT_TRUE(tracing.Flush(kTimeout));
    EXPECT_TRUE(daemon_->WaitFor(1, kTimeout));
    const std::vector<tools::ReceivedDocument> documents = daemon_->documents();
    EXPECT_EQ(documents.size(), 1u);
    return documents.at(0);
  }

  std::unique_ptr<FakeDaemon> daemon_;
};

TEST_F(ConfigureSamplingTest, CentralizedRulesFromTheDaemonDecide) {
  daemon_->SetSamplingRules({Rule("drop-svc", 1, "svc", 0), Rule("keep-all", 2, "*", 1)});
  // The TCP side comes from the environment, as in the SDKs.
  setenv("AWS_XRAY_DAEMON_ADDRESS", daemon_->daemon_address().c_str(), 1);
  TracingOptions options = Options();
  options.daemon_address = "";
  const std::unique_ptr<Tracing> tracing = Start(std::move(options));
  ASSERT_NE(tracing, nullptr);
  ASSERT_NE(tracing->centralized_sampler(), nullptr);
  ASSERT_TRUE(daemon_->WaitForRulesRequests(1, kTimeout));
  ASSERT_TRUE(
      WaitUntil([&] { return tracing->centralized_sampler()->stats().rule_polls_ok >= 1; }));

  core::Recorder& recorder = tracing->recorder();
  SendSegment(recorder, "");  // "svc": rate 0, no reservoir
  SendSegment(recorder, "other");
  const tools::ReceivedDocument document = OnlyDocument(*tracing);
  EXPECT_EQ(document.entity().name, "other");
  EXPECT_EQ(RuleName(document), "keep-all");
  EXPECT_EQ(recorder.stats().segments_unsampled, 1u);
}

// The daemon address set in TracingOptions::emitter alone (allowed, see xraysink.h) reaches the
// sampling poller too, not only the emitter.
TEST_F(ConfigureSamplingTest, TheEmittersDaemonAddressServesSamplingToo) {
  TracingOptions options = Options();
  options.emitter.daemon_address = options.daemon_address;
  options.daemon_address = "";
  const std::unique_ptr<Tracing> tracing = Start(std::move(options));
  ASSERT_NE(tracing, nullptr);
  ASSERT_NE(tracing->centralized_sampler(), nullptr);
  EXPECT_TRUE(daemon_->WaitForRulesRequests(1, kTimeout));
}

TEST_F(ConfigureSamplingTest, LocalRulesFileDecidesWhileTheDaemonIsUnreachable) {
  daemon_->StopSamplingApi();
  TracingOptions options = Options();
  options.sampling_rules_file = WriteFile("unreachable_rules.json", R"({
    "version": 2,
    "rules": [{"description": "keep", "host": "*", "http_method": "*", "url_path": "/keep",
               "fixed_target": 0, "rate": 1}],
    "default": {"fixed_target": 0, "rate": 0}})");
  const std::unique_ptr<Tracing> tracing = Start(std::move(options));
  ASSERT_NE(tracing, nullptr);
  ASSERT_NE(tracing->centralized_sampler(), nullptr);
  ASSERT_TRUE(
      WaitUntil([&] { return tracing->centralized_sampler()->stats().rule_polls_failed >= 1; }));

  core::Recorder& recorder = tracing->recorder();
  SendSegment(recorder, "dropped", recorder.Sample({.method = "GET", .path = "/drop"}));
  SendSegment(recorder, "kept", recorder.Sample({.method = "GET", .path = "/keep"}));
  const tools::ReceivedDocument document = OnlyDocument(*tracing);
  EXPECT_EQ(document.entity().name, "kept");
  EXPECT_EQ(RuleName(document), "");  // local rules name no rule
}

TEST_F(ConfigureSamplingTest, BadRulesFileFailsConfigureNamingIt) {
  TracingOptions options = Options();
  options.sampling_rules_file = WriteFile("bad_rules.json", R"({
    "version": 2, "default": {"fixed_target": 1, "rate": 2}})");
  absl::StatusOr<std::unique_ptr<Tracing>> tracing = Configure(options);
  ASSERT_FALSE(tracing.ok());
  EXPECT_EQ(tracing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(tracing.status().message(), HasSubstr(options.sampling_rules_file));
  EXPECT_THAT(tracing.status().message(), HasSubstr("default.rate"));

  options.sampling_rules_file = ::testing::TempDir() + "/no_such_rules.json";
  tracing = Configure(options);
  ASSERT_FALSE(tracing.ok());
  EXPECT_THAT(tracing.status().message(), HasSubstr(options.sampling_rules_file));
  EXPECT_THAT(tracing.status().message(), HasSubstr("cannot open"));
}

TEST_F(ConfigureSamplingTest, UserSamplerIsUsedAsIs) {
  struct Mine : core::Sampler {
    core::SamplingDecision ShouldTrace(const core::SamplingRequest&) override { return {}; }
  };
  const auto mine = std::make_shared<Mine>();
  TracingOptions options = Options();
  options.recorder.sampler = mine;
  options.sampling_rules_file = ::testing::TempDir() + "/no_such_rules.json";  // never read
  const std::unique_ptr<Tracing> tracing = Start(std::move(options));
  ASSERT_NE(tracing, nullptr);
  EXPECT_EQ(&tracing->recorder().sampler(), mine.get());
  EXPECT_EQ(tracing->centralized_sampler(), nullptr);
}

TEST_F(ConfigureSamplingTest, DestroyingTracingStopsThePollerAndTheEmitterThread) {
  daemon_->SetSamplingRules({Rule("keep-all", 1, "*", 1)});
  std::unique_ptr<Tracing> tracing = Start(Options());
  ASSERT_NE(tracing, nullptr);
  ASSERT_TRUE(
      WaitUntil([&] { return tracing->centralized_sampler()->stats().rule_polls_ok >= 1; }));
  std::shared_ptr<core::Recorder> recorder = tracing->recorder_ptr();
  size_t before = ThreadCount();
  tracing.reset();
  const size_t stopped_with_poller = before - ThreadCount();
  // The recorder outlives the setup and keeps deciding on the last rules.
  EXPECT_EQ(recorder->Sample({}).rule_name, "keep-all");

  // The same without a poller: what destruction stops besides it.
  TracingOptions local_only = Options();
  local_only.centralized_sampling = false;
  tracing = Start(std::move(local_only));
  ASSERT_NE(tracing, nullptr);
  EXPECT_EQ(tracing->centralized_sampler(), nullptr);
  recorder = tracing->recorder_ptr();  // held across destruction as above
  before = ThreadCount();
  tracing.reset();
  // The emitter's sending thread stops too, although the recorder (and so the emitter) lives on.
  EXPECT_EQ(before - ThreadCount(), 1u);
  EXPECT_EQ(stopped_with_poller, before - ThreadCount() + 1);
}

// A pre-forking server that set tracing up before it forked (the README says not to, but a
// mature library must survive it): a worker's segments still reach the daemon, sent and sampled
// by threads of its own, and its ordinary exit, which destroys Tracing, returns.
TEST_F(ConfigureSamplingTest, AWorkerForkedAfterConfigureTracesAndExits) {
  if (!core::testing::kForkedChildrenCanStartThreads)
    GTEST_SKIP() << "TSan cannot follow a forked child's threads";
  daemon_->SetSamplingRules({Rule("keep-all", 1, "*", 1)});
  std::unique_ptr<Tracing> tracing = Start(Options());
  ASSERT_NE(tracing, nullptr);
  ASSERT_TRUE(
      WaitUntil([&] { return tracing->centralized_sampler()->stats().rule_polls_ok >= 1; }));
  SendSegment(tracing->recorder(), "parent");
  ASSERT_EQ(RuleName(OnlyDocument(*tracing)), "keep-all");
  const int code = core::testing::RunInChild(
      [&] {
        SendSegment(tracing->recorder(), "worker");
        if (!tracing->Flush(kTimeout)) return 1;
        tracing.reset();
        return 0;
      },
      std::chrono::seconds(120));
  EXPECT_EQ(code, 0) << "1: not sent, -1: hung";
  ASSERT_TRUE(daemon_->WaitFor(2, kTimeout));
  const tools::ReceivedDocument worker = daemon_->documents().at(1);
  EXPECT_EQ(std::string((*worker.entity().json)["name"].GetString()), "worker");
  EXPECT_EQ(RuleName(worker), "keep-all");
  // The parent goes on as before.
  SendSegment(tracing->recorder(), "parent again");
  EXPECT_TRUE(tracing->Flush(kTimeout));
  EXPECT_TRUE(daemon_->WaitFor(3, kTimeout));
}

TEST_F(ConfigureSamplingTest, DisabledRecorderStartsNoPoller) {
  daemon_->StopSamplingApi();  // its threads end now, so only Configure's count below
  TracingOptions local_only = Options();
  local_only.centralized_sampling = false;
  size_t before = ThreadCount();
  std::unique_ptr<Tracing> tracing = Start(std::move(local_only));
  ASSERT_NE(tracing, nullptr);
  const size_t started_without_poller = ThreadCount() - before;
  tracing.reset();

  TracingOptions disabled = Options();
  disabled.recorder.enabled = false;
  before = ThreadCount();
  tracing = Start(std::move(disabled));
  ASSERT_NE(tracing, nullptr);
  EXPECT_EQ(ThreadCount() - before, started_without_poller);
}

}  // namespace
}  // namespace xraysink::integration_tests
