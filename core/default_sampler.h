#ifndef XRAYSINK_CORE_DEFAULT_SAMPLER_H_
#define XRAYSINK_CORE_DEFAULT_SAMPLER_H_

#include <atomic>
#include <cstdint>
#include <functional>

#include "core/sampler.h"

namespace xraysink::core {

// The SDKs' built-in rule (spec 3.2): the first `fixed_target` traces of each epoch second,
// then `rate` of the rest. Lock-free; never grants more than fixed_target in one second, even
// under concurrent calls. If the clock steps back, the latest second seen keeps the reservoir
// (one fixed_target in all) until the clock passes it, rather than refilling it.
// fixed_target is clamped to [0, 2^24 - 1], rate to [0, 1] (NaN = 0).
class DefaultSampler : public Sampler {
 public:
  using Clock = std::function<int64_t()>;  // epoch seconds; null = the real-time clock

  explicit DefaultSampler(int fixed_target = 1, double rate = 0.05, Clock now_seconds = nullptr);

  SamplingDecision ShouldTrace(const SamplingRequest& request) override;

 private:
  // Takes one trace from this second's reservoir.
  bool TakeFromReservoir(int64_t second);

  const int fixed_target_;
  const uint64_t rate_threshold_;  // sampled when a random u64 is below it
  const Clock now_seconds_;
  // High 40 bits: the second; low 24 bits: traces taken in it.
  std::atomic<uint64_t> reservoir_{0};
};

}  // namespace xraysink::core

#endif  // XRAYSINK_CORE_DEFAULT_SAMPLER_H_
