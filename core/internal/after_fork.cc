#include "core/internal/after_fork.h"

#include <pthread.h>

#include <mutex>
#include <new>
#include <utility>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

namespace xraysink::core::internal {

std::atomic<uint32_t> forks_as_child{0};

namespace {

// The hooks, oldest first. Locked across fork() (from the prepare handler to the parent's), so
// that the child's copy of the list is whole.
constinit std::mutex hooks_mu;
constinit AfterForkHook* first_hook = nullptr;
constinit AfterForkHook* last_hook = nullptr;

}  // namespace

void RunAfterForkHooks() {
  // The child's copy of the lock is held by the thread that forked, which the child's one
  // thread continues; a fresh lock lets the hooks make objects that have hooks of their own (an
  // emitter's new state has a name resolver), which the child's list then holds as well.
  new (&hooks_mu) std::mutex;
  std::vector<AfterForkHook*> hooks;
  {
    std::lock_guard lock(hooks_mu);
    for (AfterForkHook* hook = first_hook; hook != nullptr; hook = hook->next_) {
      hooks.push_back(hook);
    }
  }
  for (AfterForkHook* hook : hooks) hook->reset_();
  for (AfterForkHook* hook : hooks) {
    if (hook->restart_) hook->restart_();
  }
}

namespace {

[[maybe_unused]] const bool handlers_installed = [] {
  pthread_atfork([] { hooks_mu.lock(); }, [] { hooks_mu.unlock(); },
                 [] {
                   forks_as_child.fetch_add(1, std::memory_order_relaxed);
                   RunAfterForkHooks();
                 });
  return true;
}();

}  // namespace

AfterForkHook::AfterForkHook(std::function<void()> reset, std::function<void()> restart)
    : reset_(std::move(reset)), restart_(std::move(restart)) {
  std::lock_guard lock(hooks_mu);
  previous_ = last_hook;
  (previous_ != nullptr ? previous_->next_ : first_hook) = this;
  last_hook = this;
}

AfterForkHook::~AfterForkHook() {
  std::lock_guard lock(hooks_mu);
  (previous_ != nullptr ? previous_->next_ : first_hook) = next_;
  (next_ != nullptr ? next_->previous_ : last_hook) = previous_;
}

void IgnoreLeak([[maybe_unused]] const void* object) {
#if defined(__SANITIZE_ADDRESS__)
  __lsan_ignore_object(object);
#endif
}

}  // namespace xraysink::core::internal
