#ifndef XRAYSINK_CORE_RULE_SAMPLER_H_
#define XRAYSINK_CORE_RULE_SAMPLER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "core/internal/read_mostly.h"
#include "core/sampler.h"
#include "core/sampling_rules.h"

namespace xraysink::core {

// Samples by local rules (spec 3.2): the first custom rule whose host, method and path patterns
// match the request decides, else the default rule; each rule takes its own fixed_target per
// epoch second, then `rate` of the rest. Never sets a rule name (only centralized rules do).
// Rules can be replaced at any time; decisions never take a lock, and one that overlaps a
// replacement uses either the old or the new rules as a whole. A new rule set starts with full
// reservoirs, so a replacement may grant a second fixed_target within its second.
class RuleSampler : public Sampler {
 public:
  using Clock = std::function<int64_t()>;    // epoch seconds; null = the real-time clock
  using Random = std::function<uint64_t()>;  // uniform over u64; null = internal::RandomU64

  // Starts with the built-in rules (LocalRules{}: 1 a second, then 5 %).
  explicit RuleSampler(Clock now_seconds = nullptr, Random random = nullptr);
  ~RuleSampler() override;

  SamplingDecision ShouldTrace(const SamplingRequest& request) override;

  // Each replaces the rules if they are valid; on error the current rules stay in force. Waits
  // for decisions in flight on the old rules; never call from inside a decision.
  absl::Status SetRules(const LocalRules& rules);
  absl::Status LoadString(std::string_view json);
  absl::Status LoadFile(const std::string& path);

 private:
  struct RuleSet;

  const Clock now_seconds_;
  const Random random_;
  internal::ReadMostly<RuleSet> rules_;
};

}  // namespace xraysink::core

#endif  // XRAYSINK_CORE_RULE_SAMPLER_H_
