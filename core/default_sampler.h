#ifndef XRAYSINK_CORE_DEFAULT_SAMPLER_H_
#define XRAYSINK_CORE_DEFAULT_SAMPLER_H_

#include <cstdint>
#include <functional>

#include "core/internal/reservoir.h"
#include "core/sampler.h"

namespace xraysink::core {

// The SDKs' built-in rule (spec 3.2): the first `fixed_target` traces of each epoch second,
// then `rate` of the rest. Lock-free; never grants more than fixed_target in one second, even
// under concurrent calls (internal::Reservoir). fixed_target is clamped to [0, 2^24 - 1], rate to
// [0, 1] (NaN = 0).
class DefaultSampler : public Sampler {
 public:
  using Clock = std::function<int64_t()>;  // epoch seconds; null = the real-time clock

  explicit DefaultSampler(int fixed_target = 1, double rate = 0.05, Clock now_seconds = nullptr);

  SamplingDecision ShouldTrace(const SamplingRequest& request) override;

 private:
  const int fixed_target_;
  const uint64_t rate_threshold_;
  const Clock now_seconds_;
  internal::Reservoir reservoir_;
};

}  // namespace xraysink::core

#endif  // XRAYSINK_CORE_DEFAULT_SAMPLER_H_
