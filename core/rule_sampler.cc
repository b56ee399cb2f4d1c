#include "core/rule_sampler.h"

#include <memory>
#include <utility>
#include <vector>

#include "core/ids.h"
#include "core/internal/reservoir.h"
#include "core/internal/wildcard_pattern.h"

namespace xraysink::core {

// Rules as matched: the custom ones in order, then the default one with `*` patterns, so the
// search always ends on a match.
struct RuleSampler::RuleSet {
  struct Rule {
    internal::WildcardPattern host, method, path;
    int fixed_target;
    uint64_t rate_threshold;
  };
  // Own cache lines: threads hitting different rules do not contend.
  struct alignas(64) PaddedReservoir {
    internal::Reservoir reservoir;
  };

  explicit RuleSet(const LocalRules& local)
      : reservoirs(std::make_unique<PaddedReservoir[]>(local.rules.size() + 1)) {
    rules.reserve(local.rules.size() + 1);
    for (const LocalRule& rule : local.rules) {
      rules.push_back({internal::WildcardPattern(rule.host),
                       internal::WildcardPattern(rule.http_method),
                       internal::WildcardPattern(rule.url_path), rule.fixed_target,
                       internal::RateThreshold(rule.rate)});
    }
    const internal::WildcardPattern any("*");
    rules.push_back({any, any, any, local.default_rule.fixed_target,
                     internal::RateThreshold(local.default_rule.rate)});
  }

  std::vector<Rule> rules;
  std::unique_ptr<PaddedReservoir[]> reservoirs;  // by rule index
};

RuleSampler::RuleSampler(Clock now_seconds, Random random)
    : now_seconds_(now_seconds ? std::move(now_seconds) : Clock(&internal::RealEpochSeconds)),
      random_(random ? std::move(random) : Random(&internal::RandomU64)),
      rules_(std::make_unique<const RuleSet>(LocalRules())) {}

RuleSampler::~RuleSampler() = default;

SamplingDecision RuleSampler::ShouldTrace(const SamplingRequest& request) {
  const bool sampled = rules_.Read([&](const RuleSet& set) {
    for (size_t i = 0;; ++i) {
      const RuleSet::Rule& rule = set.rules[i];
      // A missing attribute is empty text, which only `*` patterns match (spec 3.2 quirk fixed).
      // Paths tell rules apart best, so they are checked first.
      if (!rule.path.Matches(request.path) || !rule.method.Matches(request.method) ||
          !rule.host.Matches(request.host)) {
        continue;
      }
      if (set.reservoirs[i].reservoir.Take(now_seconds_(), rule.fixed_target)) return true;
      return rule.rate_threshold != 0 && internal::WithinRate(random_(), rule.rate_threshold);
    }
  });
  return {sampled, ""};
}

absl::Status RuleSampler::SetRules(const LocalRules& rules) {
  if (absl::Status status = ValidateLocalRules(rules); !status.ok()) return status;
  rules_.Replace(std::make_unique<const RuleSet>(rules));
  return absl::OkStatus();
}

absl::Status RuleSampler::LoadString(std::string_view json) {
  absl::StatusOr<LocalRules> rules = ParseLocalRules(json);
  return rules.ok() ? SetRules(*rules) : rules.status();
}

absl::Status RuleSampler::LoadFile(const std::string& path) {
  absl::StatusOr<LocalRules> rules = LoadLocalRulesFile(path);
  return rules.ok() ? SetRules(*rules) : rules.status();
}

}  // namespace xraysink::core
