#include "core/internal/segment_arena.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory_resource>
#include <string>
#include <thread>
#include <vector>

namespace xraysink::core::internal {
namespace {

bool AlignedTo(const void* p, size_t alignment) {
  return reinterpret_cast<uintptr_t>(p) % alignment == 0;
}

TEST(SegmentArenaTest, TakesNoMemoryUntilFirstUse) {
  SegmentArena arena;
  EXPECT_EQ(arena.reserved_bytes(), 0u);
  EXPECT_NE(arena.allocate(1, 1), nullptr);
  EXPECT_GT(arena.reserved_bytes(), 0u);
}

TEST(SegmentArenaTest, AllocationsAreAlignedAndDisjoint) {
  SegmentArena arena;
  struct Range {
    char* begin;
    size_t size;
  };
  std::vector<Range> ranges;
  const size_t alignments[] = {1, 2, 8, 16, 64, 4096};
  for (int round = 0; round < 200; ++round) {
    for (const size_t alignment : alignments) {
      const size_t size = 1 + (round * 37 + alignment) % 300;
      auto* p = static_cast<char*>(arena.allocate(size, alignment));
      ASSERT_TRUE(AlignedTo(p, alignment)) << alignment;
      std::memset(p, round & 0xFF, size);
      ranges.push_back({p, size});
    }
  }
  // Every byte still holds what was written to it: no allocation overlapped another.
  for (size_t i = 0; i < ranges.size(); ++i) {
    const int round = static_cast<int>(i / std::size(alignments));
    for (size_t j = 0; j < ranges[i].size; ++j) {
      ASSERT_EQ(static_cast<unsigned char>(ranges[i].begin[j]), round & 0xFF) << i;
    }
  }
}

TEST(SegmentArenaTest, OversizeAllocationsGetTheirOwnBlockAndTheCurrentOneStaysInUse) {
  SegmentArena arena;
  auto* small = static_cast<char*>(arena.allocate(64, 8));
  const size_t first_block = arena.reserved_bytes();
  auto* big = static_cast<char*>(arena.allocate(1 << 20, 16));
  std::memset(big, 1, 1 << 20);
  EXPECT_GE(arena.reserved_bytes(), first_block + (1 << 20));
  EXPECT_LT(arena.reserved_bytes(), first_block + (1 << 20) + 4096);
  // The next small allocation comes from the first block, right after the first one.
  auto* next = static_cast<char*>(arena.allocate(64, 8));
  EXPECT_EQ(next, small + 64);
}

TEST(SegmentArenaTest, GrowingContainersWasteBoundedMemory) {
  SegmentArena arena;
  std::pmr::vector<uint64_t> numbers(&arena);
  for (uint64_t i = 0; i < 100000; ++i) numbers.push_back(i);
  // Geometric growth leaves the earlier buffers behind: together less than the final one.
  EXPECT_LT(arena.reserved_bytes(), 3 * numbers.capacity() * sizeof(uint64_t));
  std::pmr::string text(&arena);
  for (int i = 0; i < 1000; ++i) text.assign(std::string(100, 'x'));  // reuses its buffer
  EXPECT_LT(arena.reserved_bytes(), 3 * numbers.capacity() * sizeof(uint64_t) + 4096);
}

// The creating thread bump-allocates from blocks of its own, without the lock other threads
// take: an allocation by another thread in between does not land in its run.
TEST(SegmentArenaTest, OtherThreadsAllocateOutsideTheCreatingThreadsBlocks) {
  SegmentArena arena;
  auto* first = static_cast<char*>(arena.allocate(24, 8));
  char* other = nullptr;
  std::thread([&] { other = static_cast<char*>(arena.allocate(24, 8)); }).join();
  auto* second = static_cast<char*>(arena.allocate(24, 8));
  EXPECT_EQ(second, first + 24);
  EXPECT_NE(other, first + 24);
}

// The creating thread (this one) allocates without a lock, the others under one, all at once.
TEST(SegmentArenaTest, ConcurrentAllocationsNeverOverlap) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 5000;
  SegmentArena arena;
  std::vector<std::vector<char*>> taken(kThreads);
  const auto allocate = [&](int t) {
    for (int i = 0; i < kPerThread; ++i) {
      auto* p = static_cast<char*>(arena.allocate(24, 8));
      std::memset(p, 'a' + t, 24);
      taken[t].push_back(p);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 1; t < kThreads; ++t) threads.emplace_back(allocate, t);
  allocate(0);
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    for (char* p : taken[t]) {
      ASSERT_EQ(std::string(p, 24), std::string(24, 'a' + t));
    }
  }
}

}  // namespace
}  // namespace xraysink::core::internal
