#ifndef XRAYSINK_CORE_INTERNAL_AFTER_FORK_H_
#define XRAYSINK_CORE_INTERNAL_AFTER_FORK_H_

#include <atomic>
#include <cstdint>
#include <functional>

namespace xraysink::core::internal {

// Counts the forks this process came out of as the child (installed before main). State seeded
// before a fork, such as a random generator, compares this with the count it was made under.
extern std::atomic<uint32_t> forks_as_child;
inline uint32_t ForksAsChild() { return forks_as_child.load(std::memory_order_relaxed); }

// While alive, runs `reset` and then `restart` in every child this process forks, before fork()
// returns there: first every hook's `reset`, in the order the hooks were made, then every
// `restart`. Threads do not survive a fork: the child has only the thread that forked, and an
// object that owns a thread (the emitter's sender, the sampling poller) would otherwise wait
// forever for it, on its next flush or at its destruction. Its `reset` lets go of the vanished
// thread and resets what that thread may have left locked or half-done; its `restart` starts a
// new one, once every object such a thread might use has been reset.
//
// `reset` runs while the child has one thread: it needs no locks, and must not take one that
// another thread of the parent might have held at the fork (a logger's, say). Neither may throw.
// Either may make objects with hooks of their own, whose hooks do not run for this fork.
class AfterForkHook {
 public:
  explicit AfterForkHook(std::function<void()> reset, std::function<void()> restart = nullptr);
  ~AfterForkHook();
  AfterForkHook(const AfterForkHook&) = delete;
  AfterForkHook& operator=(const AfterForkHook&) = delete;

 private:
  friend void RunAfterForkHooks();
  std::function<void()> reset_;
  std::function<void()> restart_;
  AfterForkHook* previous_ = nullptr;
  AfterForkHook* next_ = nullptr;
};

// What a hook lets go of in the child (a vanished thread's handle and the state it may have left
// mid-operation) is leaked on purpose: destroying it could touch what that thread was changing.
// Says so to LeakSanitizer, which would report it at the child's exit.
void IgnoreLeak(const void* object);
template <typename T>
T* LeakInChild(T* object) {
  IgnoreLeak(object);
  return object;
}

}  // namespace xraysink::core::internal

#endif  // XRAYSINK_CORE_INTERNAL_AFTER_FORK_H_
