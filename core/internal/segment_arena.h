#ifndef XRAYSINK_CORE_INTERNAL_SEGMENT_ARENA_H_
#define XRAYSINK_CORE_INTERNAL_SEGMENT_ARENA_H_

#include <pthread.h>

#include <cstddef>
#include <memory_resource>

#include "absl/base/thread_annotations.h"
#include "core/internal/spin_lock.h"

namespace xraysink::core::internal {

// The memory of one segment's tree: its subsegments and the vectors and strings of every entity
// in it. Bump-allocated from a few growing blocks and freed all at once with the segment, so
// building a segment costs a handful of mallocs rather than dozens, the segment is read from
// contiguous memory when serialized (usually on another core), and letting it go is a few frees.
// Deallocation does nothing: a vector that grows leaves its old buffer behind, which geometric
// growth bounds to the size of the final one.
//
// Thread-safe: the flows of one segment may allocate at the same time. The thread that created
// the arena (the segment's, which usually builds most of the tree) allocates from blocks of its
// own without any atomic instruction; other threads share a second chain of blocks under a
// lock. (A locked instruction per allocation was ~15 % of building a segment of ten
// subsegments: each waits for the stores before it, into fresh memory, to complete.)
// Nothing is allocated until first use: an unsampled segment takes memory only for the
// subsegments begun under it (outgoing calls propagate their ids) and for an `http()` block
// someone asks for; its annotations and metadata are ignored.
class SegmentArena final : public std::pmr::memory_resource {
 public:
  SegmentArena() = default;
  SegmentArena(const SegmentArena&) = delete;
  SegmentArena& operator=(const SegmentArena&) = delete;
  ~SegmentArena() override;

  // Bytes obtained from the heap so far (blocks, headers included). Call it on the thread that
  // created the arena, or while no thread allocates: the creating thread's blocks are unlocked.
  size_t reserved_bytes() const;

 private:
  struct Block;
  // Blocks bump-allocated in turn, growing in size.
  struct Chain {
    void* Allocate(size_t bytes, size_t alignment) {
      char* start = AlignUp(next, alignment);
      if (next != nullptr && start + bytes <= end) {
        next = start + bytes;
        return start;
      }
      return AllocateSlow(bytes, alignment);
    }
    void* AllocateSlow(size_t bytes, size_t alignment);
    void Free();
    static char* AlignUp(char* p, size_t alignment) {
      const auto address = reinterpret_cast<uintptr_t>(p);
      return reinterpret_cast<char*>((address + alignment - 1) & ~(uintptr_t{alignment} - 1));
    }

    Block* blocks = nullptr;  // newest first
    char* next = nullptr;
    char* end = nullptr;
    size_t next_block_size = 0;
    size_t reserved = 0;
  };

  void* do_allocate(size_t bytes, size_t alignment) override;
  void do_deallocate(void*, size_t, size_t) override {}
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    return this == &other;
  }

  const pthread_t owner_ = pthread_self();
  Chain owned_;  // the owner thread's only
  mutable SpinLock mu_;
  Chain shared_ ABSL_GUARDED_BY(mu_);
};

}  // namespace xraysink::core::internal

#endif  // XRAYSINK_CORE_INTERNAL_SEGMENT_ARENA_H_
