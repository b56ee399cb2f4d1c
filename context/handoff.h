#ifndef XRAYSINK_CONTEXT_HANDOFF_H_
#define XRAYSINK_CONTEXT_HANDOFF_H_

#include <functional>
#include <memory>
#include <utility>

#include "core/context_slot.h"
#include "core/entity.h"

namespace xraysink::context {

// Where a flow stands in its trace: its innermost open entity, keeping the segment alive.
// Copying one costs a shared_ptr copy. A flow's stack is always the parent chain of its
// innermost entity (the recorder begins each subsegment under the current entity), so the
// position is all a child flow or a continuation needs to rebuild its own stack: nothing mutable
// is ever shared between two pieces of work.
class CapturedContext {
 public:
  // No segment: restoring it installs an empty context.
  CapturedContext() = default;

  // The innermost entity (the segment when no subsegment is open), or null.
  core::Entity* entity() const { return innermost_.get(); }

  friend bool operator==(const CapturedContext& a, const CapturedContext& b) noexcept {
    return a.innermost_ == b.innermost_;
  }

 private:
  friend CapturedContext Capture();
  friend class ScopedRestore;
  explicit CapturedContext(std::shared_ptr<core::Entity> innermost)
      : innermost_(std::move(innermost)) {}

  std::shared_ptr<core::Entity> innermost_;  // shares ownership of the segment
};

// The current flow's position (core::CurrentContext()), e.g. to hand it to another thread.
CapturedContext Capture();

// Installs a fresh context rebuilt from `captured` as the current one for its lifetime, then
// restores the previous context. What the code under it begins or ends changes only this copy.
// Use at the top of a std::thread, a foreign (C) callback or a pool task; do not keep one
// across a coroutine suspension (it installs per thread).
class ScopedRestore {
 public:
  explicit ScopedRestore(CapturedContext captured);
  ScopedRestore(const ScopedRestore&) = delete;
  ScopedRestore& operator=(const ScopedRestore&) = delete;

 private:
  static core::TraceContext Rebuild(CapturedContext captured);

  core::TraceContext context_;     // no allocation: a segment reference and an entity
  core::ScopedContext installed_;  // declared last: uninstalled before context_ lets go
};

// Returns a callable that runs `f` under the context current now, each time it is called (from
// any thread).
template <typename F>
auto Wrap(F&& f) {
  return [captured = Capture(), f = std::forward<F>(f)](auto&&... args) mutable -> decltype(auto) {
    ScopedRestore restore(captured);
    return std::invoke(f, std::forward<decltype(args)>(args)...);
  };
}

}  // namespace xraysink::context

#endif  // XRAYSINK_CONTEXT_HANDOFF_H_
