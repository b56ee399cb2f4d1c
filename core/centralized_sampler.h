#ifndef XRAYSINK_CORE_CENTRALIZED_SAMPLER_H_
#define XRAYSINK_CORE_CENTRALIZED_SAMPLER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/internal/after_fork.h"
#include "core/internal/read_mostly.h"
#include "core/sampler.h"

namespace xraysink::core {

// One sampling rule as GetSamplingRules returns it (spec 3.4). Decoded faithfully; which rules
// the sampler uses is its own business.
struct SamplingRule {
  std::string rule_name;
  std::string resource_arn;
  int64_t priority = 0;
  double fixed_rate = 0;
  int64_t reservoir_size = 0;
  std::string service_name;
  std::string service_type;
  std::string host;
  std::string http_method;
  std::string url_path;
  int64_t version = 0;
  std::map<std::string, std::string> attributes;
};

// One page of GetSamplingRules; an empty next_token means the last page.
struct SamplingRulesPage {
  std::vector<SamplingRule> rules;
  std::string next_token;
};

// What a client reports about one rule since its last report (GetSamplingTargets).
// sampled_count includes the borrowed requests ("requests recorded", as the API defines it).
struct SamplingStatistics {
  std::string rule_name;
  std::string client_id;
  int64_t timestamp = 0;  // epoch seconds
  int64_t request_count = 0;
  int64_t sampled_count = 0;
  int64_t borrow_count = 0;
};

// The service's answer for one rule; an absent value leaves the rule's current one in place.
struct SamplingTarget {
  std::string rule_name;
  std::optional<double> fixed_rate;
  std::optional<int64_t> reservoir_quota;      // traces a second for this client
  std::optional<int64_t> reservoir_quota_ttl;  // epoch seconds the quota is valid until
  std::optional<int64_t> interval;             // seconds between statistics reports
};

// The whole GetSamplingTargets answer.
struct SamplingTargets {
  std::vector<SamplingTarget> targets;
  // Epoch seconds of the last rule change: newer than our rules means fetch them again.
  std::optional<int64_t> last_rule_modification;
};

// The JSON bodies of both calls, both sides (the client's and the daemon's). Decoders never
// crash on garbage: bad JSON, a missing required member or a wrong type is an error naming it;
// unknown members are ignored.
std::string EncodeSamplingRulesRequest(std::string_view next_token);
absl::StatusOr<std::string> DecodeSamplingRulesRequest(std::string_view body);  // the token
std::string EncodeSamplingRulesResponse(const SamplingRulesPage& page);
absl::StatusOr<SamplingRulesPage> DecodeSamplingRulesResponse(std::string_view body);
std::string EncodeSamplingTargetsRequest(const std::vector<SamplingStatistics>& statistics);
absl::StatusOr<std::vector<SamplingStatistics>> DecodeSamplingTargetsRequest(std::string_view body);
std::string EncodeSamplingTargetsResponse(const SamplingTargets& targets);
absl::StatusOr<SamplingTargets> DecodeSamplingTargetsResponse(std::string_view body);

// How the sampler reaches the X-Ray sampling API (through the daemon). Keeps core free of
// sockets and HTTP. Calls come from one thread at a time and may block (briefly: an
// implementation bounds each call as a whole).
class SamplingApi {
 public:
  virtual ~SamplingApi() = default;
  // Every page, in order.
  virtual absl::StatusOr<std::vector<SamplingRule>> GetSamplingRules() = 0;
  virtual absl::StatusOr<SamplingTargets> GetSamplingTargets(
      const std::vector<SamplingStatistics>& statistics) = 0;
  // From another thread: ends a call in flight soon, with an error (CentralizedSampler::Stop
  // calls it, so that stopping never waits out a slow daemon). Later calls run normally.
  virtual void Cancel() {}
};

struct CentralizedSamplerOptions {
  std::shared_ptr<SamplingApi> api;  // required
  // Decides when no centralized rule applies or the rules are older than an hour.
  // Null: DefaultSampler (1 a second, then 5 %).
  std::shared_ptr<Sampler> fallback;
  // The recorder's origin (e.g. "AWS::EC2::Instance"), matched against a rule's ServiceType
  // when a request carries no service_type.
  std::string origin;
  // Wall clock for decisions and poll scheduling. Null: absl::Now.
  std::function<absl::Time()> clock;
};

// Poll counters, for monitoring.
struct CentralizedSamplerStats {
  uint64_t rule_polls_ok = 0;
  uint64_t rule_polls_failed = 0;
  uint64_t target_polls_ok = 0;
  uint64_t target_polls_failed = 0;
};

namespace internal {
struct RuleSet;
}  // namespace internal

// Centralized sampling (spec 3.4): rules and reservoir quotas come from the X-Ray service via
// the daemon; decisions follow them and report per-rule statistics back.
//
// ShouldTrace takes no lock and does no I/O: it reads an immutable snapshot of the rules
// (internal::ReadMostly) and updates per-rule atomics. The poller (Start(), or PollOnce() driven by
// the caller) fetches rules at once, then every 300 s + 0-5 s (10 s after a failure); it reports
// statistics of rules that matched requests every 10 s + 0-0.1 s, or sooner when a target's
// Interval asks for it. A failed poll keeps the last good rules; rules not refreshed for an hour
// are ignored and the fallback decides until a refresh succeeds.
class CentralizedSampler : public Sampler {
 public:
  static constexpr absl::Duration kRulesInterval = absl::Seconds(300);
  static constexpr absl::Duration kRulesJitter = absl::Seconds(5);
  static constexpr absl::Duration kRulesRetryInterval = absl::Seconds(10);
  static constexpr absl::Duration kTargetsInterval = absl::Seconds(10);
  static constexpr absl::Duration kTargetsJitter = absl::Milliseconds(100);
  static constexpr absl::Duration kCacheTtl = absl::Hours(1);

  // Fails without an api.
  static absl::StatusOr<std::unique_ptr<CentralizedSampler>> Create(
      CentralizedSamplerOptions options);
  ~CentralizedSampler() override;  // stops the poller
  CentralizedSampler(const CentralizedSampler&) = delete;
  CentralizedSampler& operator=(const CentralizedSampler&) = delete;

  // A centralized decision carries the rule's name in rule_name when sampled (the name only
  // matters on recorded segments, and leaving it out keeps unsampled requests allocation-free).
  SamplingDecision ShouldTrace(const SamplingRequest& request) override;

  // Runs PollOnce on a background thread until Stop(). Both are idempotent; Stop() cancels a
  // poll in flight (SamplingApi::Cancel) and returns once the thread has ended. Fails only when
  // no thread can be created.
  absl::Status Start();
  void Stop();

  // One poller step at the clock's time: whatever is due. Returns when the next step is due.
  absl::Time PollOnce();
  // Fetches the rules now (a rule keeps its reservoir and counters across refreshes).
  absl::Status RefreshRules();
  // Reports the statistics of rules that are due and applies the targets; OK without a call
  // when there is nothing to report.
  absl::Status RefreshTargets();

  // 24 random hex digits identifying this sampler in statistics reports.
  const std::string& client_id() const { return client_id_; }
  CentralizedSamplerStats stats() const;

 private:
  explicit CentralizedSampler(CentralizedSamplerOptions options);
  absl::Status RefreshRulesLocked(absl::Time now);
  absl::Status RefreshTargetsLocked(absl::Time now);
  void Run();
  // In a forked child (see internal::AfterForkHook): a client of its own to the sampling API, and
  // a poller thread again if the parent's was running.
  void ResetInChild();
  void StartInChild();

  const std::shared_ptr<SamplingApi> api_;
  const std::shared_ptr<Sampler> fallback_;
  const std::string origin_;
  const std::function<absl::Time()> clock_;
  std::string client_id_;  // replaced only in a forked child

  // What decisions read: the rules, swapped whole on refresh (null until the first one).
  internal::ReadMostly<std::shared_ptr<const internal::RuleSet>> rules_;

  std::atomic<uint64_t> rule_polls_ok_{0};
  std::atomic<uint64_t> rule_polls_failed_{0};
  std::atomic<uint64_t> target_polls_ok_{0};
  std::atomic<uint64_t> target_polls_failed_{0};

  // Poller state: one poll at a time.
  std::mutex poll_mu_;
  std::shared_ptr<const internal::RuleSet> current_rules_;  // the one in rules_
  absl::Time next_rules_poll_ = absl::InfinitePast();
  absl::Time next_targets_poll_ = absl::InfinitePast();
  absl::Time rules_refreshed_at_ = absl::InfinitePast();
  bool rules_outdated_ = false;  // the service changed rules after our last fetch
  bool rules_failing_ = false;   // log transitions only, not every failed poll
  bool targets_failing_ = false;

  // The background thread.
  std::mutex lifecycle_mu_;  // serializes Start and Stop
  std::thread poller_;
  std::mutex wait_mu_;
  std::condition_variable wake_;  // the poller's waits, and Stop's wait for its end
  bool stopping_ = false;
  bool poller_ended_ = false;
  bool start_in_child_ = false;
  internal::AfterForkHook after_fork_{[this] { ResetInChild(); },
                                      [this] { StartInChild(); }};  // last: goes first
};

}  // namespace xraysink::core

#endif  // XRAYSINK_CORE_CENTRALIZED_SAMPLER_H_
