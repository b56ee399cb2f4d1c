#include "core/default_sampler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace xraysink::core {
namespace {

TEST(DefaultSamplerTest, ReservoirThenNothingAtRateZero) {
  int64_t now = 1000;
  DefaultSampler sampler(2, 0.0, [&] { return now; });
  // Spec 8.3: fixed_target 2, rate 0 -> T, T, F, F, F within one second.
  EXPECT_TRUE(sampler.ShouldTrace({}).sampled);
  EXPECT_TRUE(sampler.ShouldTrace({}).sampled);
  EXPECT_FALSE(sampler.ShouldTrace({}).sampled);
  EXPECT_FALSE(sampler.ShouldTrace({}).sampled);
  EXPECT_FALSE(sampler.ShouldTrace({}).sampled);
  now = 1001;  // a new second refills the reservoir
  EXPECT_TRUE(sampler.ShouldTrace({}).sampled);
}

TEST(DefaultSamplerTest, AStaleSecondDoesNotRefillTheReservoir) {
  int64_t now = 1001;
  DefaultSampler sampler(1, 0.0, [&] { return now; });
  EXPECT_TRUE(sampler.ShouldTrace({}).sampled);
  now = 1000;  // a caller that read the clock before the second turned, or a clock step back
  EXPECT_FALSE(sampler.ShouldTrace({}).sampled);
  now = 1001;
  EXPECT_FALSE(sampler.ShouldTrace({}).sampled);
  now = 1002;
  EXPECT_TRUE(sampler.ShouldTrace({}).sampled);
}

TEST(DefaultSamplerTest, RateAfterReservoir) {
  int64_t now = 5;
  DefaultSampler sampler(1, 0.05, [&] { return now; });
  EXPECT_TRUE(sampler.ShouldTrace({}).sampled);
  int sampled = 0;
  for (int i = 0; i < 100000; ++i) sampled += sampler.ShouldTrace({}).sampled;
  EXPECT_NEAR(sampled / 100000.0, 0.05, 0.005);
  DefaultSampler all(0, 1.0, [&] { return now; });
  DefaultSampler none(0, 0.0, [&] { return now; });
  for (int i = 0; i < 1000; ++i) {
    EXPECT_TRUE(all.ShouldTrace({}).sampled);
    EXPECT_FALSE(none.ShouldTrace({}).sampled);
  }
}

TEST(DefaultSamplerTest, ConcurrentCallersNeverExceedTheReservoir) {
  const int64_t now = 42;
  DefaultSampler sampler(10, 0.0, [&] { return now; });
  std::atomic<int> sampled{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) sampled += sampler.ShouldTrace({}).sampled;
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(sampled.load(), 10);
}

TEST(DefaultSamplerTest, ConcurrentCallersAcrossSecondsGetOneReservoirPerSecond) {
  // Every 1000th clock read starts a new second, so threads keep straddling boundaries.
  std::atomic<int64_t> reads{0};
  DefaultSampler sampler(10, 0.0, [&] { return reads.fetch_add(1) / 1000; });
  std::atomic<int> sampled{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) sampled += sampler.ShouldTrace({}).sampled;
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(sampled.load(), 80 * 10);  // 80 seconds, each filled exactly once
}

TEST(DefaultSamplerTest, RealClockSamplesTheFirstRequest) {
  DefaultSampler sampler;
  EXPECT_TRUE(sampler.ShouldTrace({}).sampled);
}

}  // namespace
}  // namespace xraysink::core
