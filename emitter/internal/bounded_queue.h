#ifndef XRAYSINK_EMITTER_INTERNAL_BOUNDED_QUEUE_H_
#define XRAYSINK_EMITTER_INTERNAL_BOUNDED_QUEUE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>

namespace xraysink::emitter::internal {

// A bounded lock-free multi-producer multi-consumer queue (Vyukov's ring with per-cell sequence
// numbers): a push or a pop is one CAS and two stores, never a lock or a system call, and fails
// instead of waiting when the ring is full (or empty).
template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(size_t capacity)
      : capacity_(capacity), cells_(std::make_unique<Cell[]>(capacity)) {
    for (size_t i = 0; i < capacity; ++i) cells_[i].sequence.store(i, std::memory_order_relaxed);
  }
  BoundedQueue(const BoundedQueue&) = delete;
  BoundedQueue& operator=(const BoundedQueue&) = delete;

  // Any thread. False (and `value` untouched) when the queue is full. The publishing store is
  // sequentially consistent so that a consumer that announced it is going to sleep (a seq_cst
  // store) and then found the queue empty is always seen as asleep by the pusher.
  // `pushed_at`, when given, receives the item's position (the count of items pushed before it).
  bool TryPush(T&& value, uint64_t* pushed_at = nullptr) {
    uint64_t position = tail_.load(std::memory_order_relaxed);
    while (true) {
      Cell& cell = cells_[position % capacity_];
      const uint64_t sequence = cell.sequence.load(std::memory_order_acquire);
      const int64_t lag = static_cast<int64_t>(sequence - position);
      if (lag == 0) {
        if (tail_.compare_exchange_weak(position, position + 1, std::memory_order_relaxed)) {
          cell.value.emplace(std::move(value));
          cell.sequence.store(position + 1, std::memory_order_seq_cst);
          if (pushed_at != nullptr) *pushed_at = position;
          return true;
        }
      } else if (lag < 0) {
        return false;  // the cell still holds the item of the previous lap
      } else {
        position = tail_.load(std::memory_order_relaxed);
      }
    }
  }

  // Any thread. False when the next item is not published yet (empty queue, or its producer is
  // between claiming the cell and publishing it).
  bool TryPop(T& out) {
    uint64_t position = head_.load(std::memory_order_relaxed);
    while (true) {
      Cell& cell = cells_[position % capacity_];
      const uint64_t sequence = cell.sequence.load(std::memory_order_acquire);
      const int64_t lag = static_cast<int64_t>(sequence - (position + 1));
      if (lag == 0) {
        if (head_.compare_exchange_weak(position, position + 1, std::memory_order_relaxed)) {
          out = std::move(*cell.value);
          cell.value.reset();
          cell.sequence.store(position + capacity_, std::memory_order_release);
          return true;
        }
      } else if (lag < 0) {
        return false;
      } else {
        position = head_.load(std::memory_order_relaxed);
      }
    }
  }

  // See TryPush for why this load is sequentially consistent. Exact only when no other thread
  // pops at the same time (the sender thread before it sleeps).
  bool Empty() const {
    const uint64_t head = head_.load(std::memory_order_relaxed);
    return cells_[head % capacity_].sequence.load(std::memory_order_seq_cst) != head + 1;
  }

  // Items ever pushed (successfully). Pushes are ordered by this count: items [0, pushed())
  // were accepted before the call returned.
  uint64_t pushed() const { return tail_.load(std::memory_order_acquire); }
  // Items ever popped. pushed() - popped() is the backlog, approximate while others work on it.
  uint64_t popped() const { return head_.load(std::memory_order_relaxed); }
  // Items still queued up to and including the one pushed at `position` (see TryPush): 0 once
  // consumers have popped past it, which they may have done by the time a producer asks.
  uint64_t BacklogAt(uint64_t position) const {
    const uint64_t popped_now = popped();
    return popped_now > position ? 0 : position + 1 - popped_now;
  }

 private:
  struct Cell {
    std::atomic<uint64_t> sequence{0};
    std::optional<T> value;
  };

  const size_t capacity_;
  const std::unique_ptr<Cell[]> cells_;
  // Producers hammer tail_; keep it off the consumers' cache line.
  alignas(64) std::atomic<uint64_t> tail_{0};
  alignas(64) std::atomic<uint64_t> head_{0};
};

}  // namespace xraysink::emitter::internal

#endif  // XRAYSINK_EMITTER_INTERNAL_BOUNDED_QUEUE_H_
