#ifndef XRAYSINK_CORE_INTERNAL_RESERVOIR_H_
#define XRAYSINK_CORE_INTERNAL_RESERVOIR_H_

#include <atomic>
#include <cstdint>

namespace xraysink::core::internal {

// The largest fixed_target a Reservoir can count (the count has 24 bits).
inline constexpr int kMaxFixedTarget = (1 << 24) - 1;

// The "first fixed_target traces of each epoch second" half of a local sampling rule (spec 3.2),
// shared lock-free by every caller. Never grants more than fixed_target in one second, even under
// concurrent calls. If the clock steps back, the latest second seen keeps the reservoir (one
// fixed_target in all) until the clock passes it, rather than refilling it.
class Reservoir {
 public:
  // Takes one trace from `second`'s allowance; fixed_target must be in [0, kMaxFixedTarget].
  bool Take(int64_t second, int fixed_target);

 private:
  // High 40 bits: the second; low 24 bits: traces taken in it.
  std::atomic<uint64_t> state_{0};
};

// The "then `rate` of the rest" half: `rate` (clamped to [0, 1], NaN = 0) as a threshold that a
// uniform random u64 is compared with, so a decision needs no floating point.
uint64_t RateThreshold(double rate);
inline bool WithinRate(uint64_t draw, uint64_t threshold) {
  return threshold == UINT64_MAX || draw < threshold;
}

// Whole seconds of the real-time clock, cheaply (coarse clock, no system call).
int64_t RealEpochSeconds();

}  // namespace xraysink::core::internal

#endif  // XRAYSINK_CORE_INTERNAL_RESERVOIR_H_
