#include "context/handoff.h"

#include <vector>

namespace xraysink::context {
namespace {

// Enough for the restores nested on one thread; more are freed.
constexpr size_t kSparesPerThread = 16;

std::vector<std::unique_ptr<core::TraceContext>>& Spares() {
  thread_local std::vector<std::unique_ptr<core::TraceContext>> spares;
  return spares;
}

// Pushes the subsegments from the segment down to `entity`, outermost first.
void PushChain(core::TraceContext& context, core::Entity& entity) {
  if (entity.is_segment()) return;
  // Entities are never const objects; the tree only hands out const links to parents.
  PushChain(context, const_cast<core::Entity&>(*entity.parent()));
  context.Push(static_cast<core::Subsegment*>(&entity));
}

}  // namespace

CapturedContext Capture() {
  const core::TraceContext& context = core::CurrentContext();
  if (context.empty()) return CapturedContext();
  return CapturedContext(std::shared_ptr<core::Entity>(context.segment_ptr(), context.current()));
}

ScopedRestore::Recycled ScopedRestore::Rebuild(CapturedContext captured) {
  std::vector<std::unique_ptr<core::TraceContext>>& spares = Spares();
  Recycled context;
  if (spares.empty()) {
    context.reset(new core::TraceContext());
  } else {
    context.reset(spares.back().release());
    spares.pop_back();
  }
  if (core::Entity* innermost = captured.entity()) {
    context->Reset(
        std::shared_ptr<core::Segment>(std::move(captured.innermost_), &innermost->segment()));
    PushChain(*context, *innermost);
  }
  return context;
}

ScopedRestore::ScopedRestore(CapturedContext captured)
    : context_(Rebuild(std::move(captured))), installed_(*context_) {}

void ScopedRestore::Recycle::operator()(core::TraceContext* context) const {
  context->Reset();  // may release the segment's last reference
  std::vector<std::unique_ptr<core::TraceContext>>& spares = Spares();
  if (spares.size() < kSparesPerThread) {
    spares.emplace_back(context);
  } else {
    delete context;
  }
}

}  // namespace xraysink::context
