#include "core/internal/log_limiter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace xraysink::core::internal {
namespace {

using std::chrono::seconds;

std::atomic<int64_t> fake_now{0};
int64_t FakeNow() { return fake_now.load(); }

TEST(LogLimiterTest, FirstOccurrenceThenOnePerIntervalWithTheCountHeldBack) {
  fake_now = 1'000'000;  // any start: the first is always let through
  LogLimiter limiter(seconds(10), &FakeNow);
  uint64_t held_back = 99;
  EXPECT_TRUE(limiter.Admit(held_back));
  EXPECT_EQ(held_back, 0u);
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(limiter.Admit(held_back));
  fake_now += seconds(10).count() * 1'000'000'000 - 1;
  EXPECT_FALSE(limiter.Admit(held_back));
  fake_now += 1;
  EXPECT_TRUE(limiter.Admit(held_back));
  EXPECT_EQ(held_back, 1001u);
  // A quiet spell longer than the interval: the next one goes through at once.
  fake_now += seconds(60).count() * 1'000'000'000;
  EXPECT_TRUE(limiter.Admit(held_back));
  EXPECT_EQ(held_back, 0u);
}

TEST(LogLimiterTest, ConcurrentCallersLetOneThroughAndCountTheRest) {
  fake_now = 0;
  LogLimiter limiter(seconds(10), &FakeNow);
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      uint64_t held_back = 0;
      for (int i = 0; i < 1000; ++i) admitted += limiter.Admit(held_back) ? 1 : 0;
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(admitted.load(), 1);
  fake_now += seconds(10).count() * 1'000'000'000;
  uint64_t held_back = 0;
  EXPECT_TRUE(limiter.Admit(held_back));
  EXPECT_EQ(held_back, 3999u);
}

}  // namespace
}  // namespace xraysink::core::internal
