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

TraceContext::TraceContext(std::shared_ptr<Segment> segment) : segment_(std::move(segment)) {}

void TraceContext::Reset(std::shared_ptr<Segment> segment) {
  segment_ = std::move(segment);
  stack_.clear();
}

bool TraceContext::Pop(const Entity* entity) {
  if (stack_.empty() || stack_.back() != entity) return false;
  stack_.pop_back();
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
