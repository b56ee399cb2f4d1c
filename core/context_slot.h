#ifndef XRAYSINK_CORE_CONTEXT_SLOT_H_
#define XRAYSINK_CORE_CONTEXT_SLOT_H_

#include <memory>

#include "core/entity.h"

namespace xraysink::core {

// The stack of open entities that counts as "current" for the code running now: a segment and
// the subsegments begun under it by this flow. Copying a context gives a child flow its own
// stack over the same entities, so what the child begins or ends never changes what the parent
// sees (the bug of aws_xray_sdk's shared AsyncContext). Not thread-safe: one flow uses it.
class TraceContext {
 public:
  TraceContext() = default;
  explicit TraceContext(std::shared_ptr<Segment> segment);
  // `innermost`: `segment` or one of its open subsegments; the stack is its parent chain.
  TraceContext(std::shared_ptr<Segment> segment, Entity* innermost)
      : segment_(std::move(segment)), current_(innermost) {}

  // The innermost open entity, or null.
  Entity* current() const { return current_; }
  Segment* segment() const { return segment_.get(); }
  const std::shared_ptr<Segment>& segment_ptr() const { return segment_; }
  bool empty() const { return segment_ == nullptr; }

  // Replaces everything with `segment` (null clears).
  void Reset(std::shared_ptr<Segment> segment = nullptr);
  // `subsegment` must be a child of current().
  void Push(Subsegment* subsegment) { current_ = subsegment; }
  // Pops `entity` if it is the innermost subsegment (returns false otherwise, changing nothing).
  bool Pop(const Entity* entity);

 private:
  std::shared_ptr<Segment> segment_;
  // The stack is always the parent chain of its innermost entity (a subsegment is pushed only
  // as a child of the current entity), so the innermost entity is all it takes: copying a
  // context, or rebuilding one on another thread, costs one shared_ptr copy.
  Entity* current_ = nullptr;  // segment_, or a subsegment it owns
};

// The context of the code running on this thread: the one installed by the innermost live
// ScopedContext, else a per-thread default (plain threaded code then behaves as in the SDKs).
TraceContext& CurrentContext();

// Installs `context` as this thread's current context for its lifetime, then restores the
// previous one. Asynchronous code (//context) installs a flow's context around each handler.
class ScopedContext {
 public:
  explicit ScopedContext(TraceContext& context);
  ~ScopedContext();
  ScopedContext(const ScopedContext&) = delete;
  ScopedContext& operator=(const ScopedContext&) = delete;

 private:
  TraceContext* previous_;
};

}  // namespace xraysink::core

#endif  // XRAYSINK_CORE_CONTEXT_SLOT_H_
