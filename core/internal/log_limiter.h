#ifndef XRAYSINK_CORE_INTERNAL_LOG_LIMITER_H_
#define XRAYSINK_CORE_INTERNAL_LOG_LIMITER_H_

#include <atomic>
#include <chrono>
#include <cstdint>

namespace xraysink::core::internal {

// Lets a diagnostic that can repeat once per call (a missing context in a loop that is never
// traced) through at most once per interval: the first at once, then the first one after each
// interval has passed, which says how many were held back meanwhile. A service that logs to a
// pipe or a terminal must not be slowed down, or blocked, by thousands of identical lines a
// second; the counts (RecorderStats) still see every occurrence. Thread-safe, lock-free.
class LogLimiter {
 public:
  // Monotonic nanoseconds (steady_clock unless a test passes its own).
  using Clock = int64_t (*)();
  static int64_t SteadyNanos() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  explicit LogLimiter(std::chrono::nanoseconds interval, Clock clock = &SteadyNanos)
      : interval_ns_(interval.count()), clock_(clock) {}

  // True when this occurrence is to be logged; `held_back` then gets how many were not since the
  // last one that was.
  bool Admit(uint64_t& held_back) {
    const int64_t now = clock_();
    int64_t next = next_ns_.load(std::memory_order_relaxed);
    if (now < next ||
        !next_ns_.compare_exchange_strong(next, now + interval_ns_, std::memory_order_relaxed)) {
      held_back_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    held_back = held_back_.exchange(0, std::memory_order_relaxed);
    return true;
  }

 private:
  const int64_t interval_ns_;
  const Clock clock_;
  std::atomic<int64_t> next_ns_{INT64_MIN};
  std::atomic<uint64_t> held_back_{0};
};

}  // namespace xraysink::core::internal

#endif  // XRAYSINK_CORE_INTERNAL_LOG_LIMITER_H_
