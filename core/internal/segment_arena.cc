#include "core/internal/segment_arena.h"

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <new>

namespace xraysink::core::internal {
namespace {

// The first block holds a small segment whole (an HTTP segment with a few subsegments); blocks
// double up to the largest size, which stays under glibc's mmap threshold so that big segments
// do not pay a page fault per block.
constexpr size_t kFirstBlockBytes = 2048;
constexpr size_t kLargestBlockBytes = 64 * 1024;

}  // namespace

struct SegmentArena::Block {
  Block* next;
  size_t bytes;  // header included
};

SegmentArena::~SegmentArena() {
  owned_.Free();
  std::lock_guard<SpinLock> lock(mu_);
  shared_.Free();
}

size_t SegmentArena::reserved_bytes() const {
  std::lock_guard<SpinLock> lock(mu_);
  return owned_.reserved + shared_.reserved;
}

void* SegmentArena::do_allocate(size_t bytes, size_t alignment) {
  if (pthread_equal(pthread_self(), owner_)) return owned_.Allocate(bytes, alignment);
  std::lock_guard<SpinLock> lock(mu_);
  return shared_.Allocate(bytes, alignment);
}

void SegmentArena::Chain::Free() {
  for (Block* block = blocks; block != nullptr;) {
    Block* following = block->next;
    ::operator delete(block, block->bytes);
    block = following;
  }
  blocks = nullptr;
}

void* SegmentArena::Chain::AllocateSlow(size_t bytes, size_t alignment) {
  const size_t header = (sizeof(Block) + alignment - 1) & ~(alignment - 1);
  const size_t needed = header + bytes;
  const size_t standard = next_block_size == 0 ? kFirstBlockBytes : next_block_size;
  const bool oversize = needed > standard;
  const size_t block_bytes = oversize ? needed : standard;
  // Plain operator new aligns to __STDCPP_DEFAULT_NEW_ALIGNMENT__: enough for every type the
  // tree holds; over-aligned requests get their own block at the alignment they ask for.
  static_assert(alignof(Block) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__);
  const size_t padded =
      alignment > __STDCPP_DEFAULT_NEW_ALIGNMENT__ ? block_bytes + alignment : block_bytes;
  auto* block = static_cast<Block*>(::operator new(padded));
  block->bytes = padded;
  reserved += padded;
  char* const data = AlignUp(reinterpret_cast<char*>(block) + sizeof(Block), alignment);
  if (oversize) {
    // Kept behind the current block so that its free space stays in use.
    if (blocks == nullptr) {
      block->next = nullptr;
      blocks = block;
    } else {
      block->next = blocks->next;
      blocks->next = block;
    }
    return data;
  }
  block->next = blocks;
  blocks = block;
  next = data + bytes;
  end = reinterpret_cast<char*>(block) + padded;
  next_block_size = std::min(2 * standard, kLargestBlockBytes);
  return data;
}

}  // namespace xraysink::core::internal
