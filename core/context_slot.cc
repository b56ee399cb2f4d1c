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

void TraceContext::Reset(std::shared_ptr<Segment> segment) {
  segment_ = std::move(segment);
  current_ = segment_.get();
}

bool TraceContext::Pop(const Entity* entity) {
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
