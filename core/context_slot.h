#ifndef XRAYSINK_CORE_CONTEXT_SLOT_H_
#define XRAYSINK_CORE_CONTEXT_SLOT_H_

#include <memory>

#include "core/entity.h"

namespace xraysink::core {

// Makes a context's segment when something first asks for it (see TraceContext::Defer).
class SegmentBuilder {
 public:
  // Called at most once per deferral; null when no segment can be made (recorder disabled).
  virtual std::shared_ptr<Segment> BuildSegment() const = 0;

 protected:
  ~SegmentBuilder() = default;
};

// The stack of open entities that counts as "current" for the code running now: a segment and
// the subsegments begun under it by this flow. Copying a context gives a child flow its own
// stack over the same entities, so what the child begins or ends never changes what the parent
// sees (the bug of aws_xray_sdk's shared AsyncContext). Not thread-safe: one flow uses it.
//
// The segment may be deferred: an unsampled request's segment is never sent and usually never
// looked at, so the middleware has it built only when the flow first asks for its segment or
// entity, or copies the context (the copy and the original then share the one segment).
class TraceContext {
 public:
  TraceContext() = default;
  explicit TraceContext(std::shared_ptr<Segment> segment);
  // `innermost`: `segment` or one of its open subsegments; the stack is its parent chain.
  TraceContext(std::shared_ptr<Segment> segment, Entity* innermost)
      : segment_(std::move(segment)), current_(innermost) {}
  // Copies and moves build a deferred segment first: the builder belongs to `other`'s owner.
  TraceContext(const TraceContext& other);
  TraceContext& operator=(const TraceContext& other);
  TraceContext(TraceContext&& other);
  TraceContext& operator=(TraceContext&& other);

  // The innermost open entity, or null.
  Entity* current() const {
    if (deferred_ != nullptr) BuildDeferred();
    return current_;
  }
  Segment* segment() const { return segment_ptr().get(); }
  const std::shared_ptr<Segment>& segment_ptr() const {
    if (deferred_ != nullptr) BuildDeferred();
    return segment_;
  }
  bool empty() const { return segment_ == nullptr && deferred_ == nullptr; }
  // Whether the segment is still deferred (not built yet).
  bool deferred() const { return deferred_ != nullptr; }

  // Replaces everything with `segment` (null clears).
  void Reset(std::shared_ptr<Segment> segment = nullptr);
  // Replaces everything with a segment that `builder` makes when first needed. `builder` must
  // outlive this context, or hand it over with TakeFrom when it moves.
  void Defer(const SegmentBuilder* builder);
  // Takes `other`'s state (leaving it empty), a deferred segment to be made by `builder`: for
  // the owner of both a context and its builder, when the owner moves.
  void TakeFrom(TraceContext& other, const SegmentBuilder* builder);
  // `subsegment` must be a child of current().
  void Push(Subsegment* subsegment) { current_ = subsegment; }
  // Pops `entity` if it is the innermost subsegment (returns false otherwise, changing nothing).
  bool Pop(const Entity* entity);

 private:
  void BuildDeferred() const;

  // Mutable: building a deferred segment is not a change anybody can see.
  mutable std::shared_ptr<Segment> segment_;
  // The stack is always the parent chain of its innermost entity (a subsegment is pushed only
  // as a child of the current entity), so the innermost entity is all it takes: copying a
  // context, or rebuilding one on another thread, costs one shared_ptr copy.
  mutable Entity* current_ = nullptr;                 // segment_, or a subsegment it owns
  mutable const SegmentBuilder* deferred_ = nullptr;  // set while the segment is not built
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
