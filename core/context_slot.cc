#include "core/context_slot.h"

#include <utility>

namespace xraysink::core {
namespace {

thread_local TraceContext* installed_context = nullptr;

TraceContext& ThreadDefaultContext() {
  thread_local TraceContext context;
  return context;
}

}  // namespace

TraceContext::TraceContext(std::shared_ptr<Segment> segment)
    : segment_(std::move(segment)), current_(segment_.get()) {}

TraceContext::TraceContext(const TraceContext& other)
    : segment_(other.segment_ptr()), current_(other.current_) {}

TraceContext& TraceContext::operator=(const TraceContext& other) {
  if (this != &other) {
    segment_ = other.segment_ptr();
    current_ = other.current_;
    deferred_ = nullptr;
  }
  return *this;
}

TraceContext::TraceContext(TraceContext&& other) { *this = std::move(other); }

TraceContext& TraceContext::operator=(TraceContext&& other) {
  if (this != &other) {
    other.segment_ptr();
    segment_ = std::move(other.segment_);
    current_ = std::exchange(other.current_, nullptr);
    deferred_ = nullptr;
  }
  return *this;
}

void TraceContext::Reset(std::shared_ptr<Segment> segment) {
  segment_ = std::move(segment);
  current_ = segment_.get();
  deferred_ = nullptr;
}

void TraceContext::Defer(const SegmentBuilder* builder) {
  segment_ = nullptr;
  current_ = nullptr;
  deferred_ = builder;
}

void TraceContext::TakeFrom(TraceContext& other, const SegmentBuilder* builder) {
  segment_ = std::move(other.segment_);
  current_ = std::exchange(other.current_, nullptr);
  deferred_ = other.deferred_ != nullptr ? builder : nullptr;
  other.deferred_ = nullptr;
}

void TraceContext::BuildDeferred() const {
  const SegmentBuilder* builder = std::exchange(deferred_, nullptr);
  segment_ = builder->BuildSegment();
  current_ = segment_.get();
}

bool TraceContext::Pop(const Entity* entity) {
  if (deferred_ != nullptr) return false;  // nothing begun under a segment not built yet
  if (entity != current_ || entity == segment_.get()) return false;
  // Entities are never const objects; the tree only hands out const links to parents.
  current_ = const_cast<Entity*>(entity->parent());
  return true;
}

TraceContext& CurrentContext() {
  TraceContext* context = installed_context;
  return context != nullptr ? *context : ThreadDefaultContext();
}

ScopedContext::ScopedContext(TraceContext& context) : previous_(installed_context) {
  installed_context = &context;
}

ScopedContext::~ScopedContext() { installed_context = previous_; }

}  // namespace xraysink::core
