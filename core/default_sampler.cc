#include "core/default_sampler.h"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "core/ids.h"

namespace xraysink::core {
namespace {

constexpr int kCountBits = 24;
constexpr uint64_t kCountMask = (uint64_t{1} << kCountBits) - 1;

int64_t RealEpochSeconds() {
  timespec now;
  clock_gettime(CLOCK_REALTIME_COARSE, &now);
  return now.tv_sec;
}

uint64_t Threshold(double rate) {
  if (!(rate > 0)) return 0;  // also NaN
  if (rate >= 1) return UINT64_MAX;
  return static_cast<uint64_t>(std::ldexp(rate, 64));
}

}  // namespace

DefaultSampler::DefaultSampler(int fixed_target, double rate, Clock now_seconds)
    : fixed_target_(std::clamp(fixed_target, 0, static_cast<int>(kCountMask))),
      rate_threshold_(Threshold(rate)),
      now_seconds_(now_seconds ? std::move(now_seconds) : Clock(&RealEpochSeconds)) {}

bool DefaultSampler::TakeFromReservoir(int64_t second) {
  if (fixed_target_ == 0) return false;
  const uint64_t stamp = static_cast<uint64_t>(second) << kCountBits;
  uint64_t current = reservoir_.load(std::memory_order_relaxed);
  while (true) {
    uint64_t next;
    // Windows only move forward: a caller that read the clock just before another thread
    // opened the next second (or a clock stepped back) counts against the newest window
    // instead of reopening an old one, which would grant a second fixed_target.
    if (stamp > (current & ~kCountMask)) {
      next = stamp | 1;
    } else if ((current & kCountMask) < static_cast<uint64_t>(fixed_target_)) {
      next = current + 1;
    } else {
      return false;
    }
    if (reservoir_.compare_exchange_weak(current, next, std::memory_order_relaxed)) return true;
  }
}

SamplingDecision DefaultSampler::ShouldTrace(const SamplingRequest&) {
  if (TakeFromReservoir(now_seconds_())) return {true, ""};
  const uint64_t draw = internal::RandomU64();
  return {rate_threshold_ == UINT64_MAX || draw < rate_threshold_, ""};
}

}  // namespace xraysink::core
