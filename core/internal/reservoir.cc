#include "core/internal/reservoir.h"

#include <time.h>

#include <cmath>

namespace xraysink::core::internal {
namespace {

constexpr int kCountBits = 24;
constexpr uint64_t kCountMask = (uint64_t{1} << kCountBits) - 1;
static_assert(kMaxFixedTarget == kCountMask);

}  // namespace

bool Reservoir::Take(int64_t second, int fixed_target) {
  if (fixed_target <= 0) return false;
  const uint64_t stamp = static_cast<uint64_t>(second) << kCountBits;
  uint64_t current = state_.load(std::memory_order_relaxed);
  while (true) {
    uint64_t next;
    // Windows only move forward: a caller that read the clock just before another thread
    // opened the next second (or a clock stepped back) counts against the newest window
    // instead of reopening an old one, which would grant a second fixed_target.
    if (stamp > (current & ~kCountMask)) {
      next = stamp | 1;
    } else if ((current & kCountMask) < static_cast<uint64_t>(fixed_target)) {
      next = current + 1;
    } else {
      return false;
    }
    if (state_.compare_exchange_weak(current, next, std::memory_order_relaxed)) return true;
  }
}

uint64_t RateThreshold(double rate) {
  if (!(rate > 0)) return 0;  // also NaN
  if (rate >= 1) return UINT64_MAX;
  return static_cast<uint64_t>(std::ldexp(rate, 64));
}

int64_t RealEpochSeconds() {
  timespec now;
  clock_gettime(CLOCK_REALTIME_COARSE, &now);
  return now.tv_sec;
}

}  // namespace xraysink::core::internal
