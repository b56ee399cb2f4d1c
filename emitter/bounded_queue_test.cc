#include "emitter/internal/bounded_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

namespace xraysink::emitter::internal {
namespace {

TEST(BoundedQueueTest, KeepsOrderAndRefusesWhenFullOrEmpty) {
  BoundedQueue<int> queue(3);
  int out = -1;
  EXPECT_TRUE(queue.Empty());
  EXPECT_FALSE(queue.TryPop(out));
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(queue.TryPush(int{i}));
  EXPECT_FALSE(queue.TryPush(7));
  EXPECT_EQ(queue.pushed(), 3u);
  for (int lap = 0; lap < 5; ++lap) {  // wraps around the ring
    ASSERT_TRUE(queue.TryPop(out));
    EXPECT_EQ(out, lap);
    EXPECT_TRUE(queue.TryPush(lap + 3));
  }
  EXPECT_FALSE(queue.Empty());
}

TEST(BoundedQueueTest, FailedPushLeavesTheValueToTheCaller) {
  BoundedQueue<std::unique_ptr<int>> queue(2);
  ASSERT_TRUE(queue.TryPush(std::make_unique<int>(1)));
  ASSERT_TRUE(queue.TryPush(std::make_unique<int>(2)));
  auto value = std::make_unique<int>(3);
  EXPECT_FALSE(queue.TryPush(std::move(value)));
  ASSERT_NE(value, nullptr);
  EXPECT_EQ(*value, 3);
}

// A producer asks about its own item after others may have popped past it: that is no backlog,
// never an unsigned wrap-around read as a huge one.
TEST(BoundedQueueTest, BacklogAtCountsUpToTheItemAndIsZeroOncePoppedPast) {
  BoundedQueue<int> queue(8);
  uint64_t positions[4];
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(queue.TryPush(int{i}, &positions[i]));
  EXPECT_EQ(positions[0], 0u);
  EXPECT_EQ(positions[3], 3u);
  EXPECT_EQ(queue.BacklogAt(positions[3]), 4u);
  EXPECT_EQ(queue.BacklogAt(positions[1]), 2u);
  int out = -1;
  ASSERT_TRUE(queue.TryPop(out));
  ASSERT_TRUE(queue.TryPop(out));
  EXPECT_EQ(queue.BacklogAt(positions[3]), 2u);
  EXPECT_EQ(queue.BacklogAt(positions[1]), 0u);
  EXPECT_EQ(queue.BacklogAt(positions[0]), 0u);
}

// Many producers and many consumers: every item comes out exactly once.
TEST(BoundedQueueTest, ManyProducersAndConsumersSeeEachItemOnce) {
  constexpr int kProducers = 4;
  constexpr int kConsumers = 3;
  constexpr int kPerProducer = 50000;
  constexpr int kTotal = kProducers * kPerProducer;
  BoundedQueue<int> queue(64);
  std::vector<std::atomic<int>> seen(kTotal);
  std::atomic<int> popped{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        int value = p * kPerProducer + i;
        while (!queue.TryPush(std::move(value))) std::this_thread::yield();
      }
    });
  }
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&] {
      int value;
      while (popped.load() < kTotal) {
        if (queue.TryPop(value)) {
          seen[value].fetch_add(1);
          popped.fetch_add(1);
        } else {
          std::this_thread::yield();
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(popped.load(), kTotal);
  int wrong = 0;
  for (auto& count : seen) wrong += count.load() != 1;
  EXPECT_EQ(wrong, 0);
  EXPECT_TRUE(queue.Empty());
}

}  // namespace
}  // namespace xraysink::emitter::internal
