#ifndef XRAYSINK_CORE_INTERNAL_SPIN_LOCK_H_
#define XRAYSINK_CORE_INTERNAL_SPIN_LOCK_H_

#include <atomic>
#include <thread>

namespace xraysink::core::internal {

// A lock for critical sections of a few dozen instructions that are rarely contended (a
// segment's tree: only flows of the same request meet there). Unlike std::mutex, unlocking is a
// plain store, and nothing leaves the inline path when uncontended. A waiter yields its thread
// after a short spin, so a preempted holder is never spun against for a whole time slice.
// Built on std::atomic, so ThreadSanitizer sees the synchronisation.
class SpinLock {
 public:
  void lock() {
    if (!locked_.exchange(true, std::memory_order_acquire)) return;
    LockSlow();
  }
  bool try_lock() { return !locked_.exchange(true, std::memory_order_acquire); }
  void unlock() { locked_.store(false, std::memory_order_release); }

 private:
  void LockSlow() {
    for (int spins = 0;; ++spins) {
      if (!locked_.load(std::memory_order_relaxed) &&
          !locked_.exchange(true, std::memory_order_acquire)) {
        return;
      }
      if (spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
      } else {
        std::this_thread::yield();
      }
    }
  }

  std::atomic<bool> locked_{false};
};

}  // namespace xraysink::core::internal

#endif  // XRAYSINK_CORE_INTERNAL_SPIN_LOCK_H_
