#include "core/default_sampler.h"

#include <algorithm>
#include <utility>

#include "core/ids.h"

namespace xraysink::core {

DefaultSampler::DefaultSampler(int fixed_target, double rate, Clock now_seconds)
    : fixed_target_(std::clamp(fixed_target, 0, internal::kMaxFixedTarget)),
      rate_threshold_(internal::RateThreshold(rate)),
      now_seconds_(now_seconds ? std::move(now_seconds) : Clock(&internal::RealEpochSeconds)) {}

SamplingDecision DefaultSampler::ShouldTrace(const SamplingRequest&) {
  if (reservoir_.Take(now_seconds_(), fixed_target_)) return {true, ""};
  return {internal::WithinRate(internal::RandomU64(), rate_threshold_), ""};
}

}  // namespace xraysink::core
