#ifndef XRAYSINK_CORE_INTERNAL_SEGMENT_ARENA_H_
#define XRAYSINK_CORE_INTERNAL_SEGMENT_ARENA_H_

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
// Thread-safe: the flows of one segment may allocate at the same time. Nothing is allocated
// until first use: an unsampled segment takes memory only for the subsegments begun under it
// (outgoing calls propagate their ids) and for an `http()` block someone asks for; its
// annotations and metadata are ignored.
class SegmentArena final : public std::pmr::memory_resource {
 public:
  SegmentArena() = default;
  SegmentArena(const SegmentArena&) = delete;
  SegmentArena& operator=(const SegmentArena&) = delete;
  ~SegmentArena() override;

  // Bytes obtained from the heap so far (blocks, headers included).
  size_t reserved_bytes() const;

 private:
  struct Block;

  void* do_allocate(size_t bytes, size_t alignment) override;
  void do_deallocate(void*, size_t, size_t) override {}
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    return this == &other;
  }
  void* AllocateSlow(size_t bytes, size_t alignment) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable SpinLock mu_;
  Block* blocks_ ABSL_GUARDED_BY(mu_) = nullptr;  // newest first
  char* next_ ABSL_GUARDED_BY(mu_) = nullptr;
  char* end_ ABSL_GUARDED_BY(mu_) = nullptr;
  size_t next_block_size_ ABSL_GUARDED_BY(mu_) = 0;
  size_t reserved_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace xraysink::core::internal

#endif  // XRAYSINK_CORE_INTERNAL_SEGMENT_ARENA_H_
