#include "context/handoff.h"

#include <utility>

namespace xraysink::context {

CapturedContext Capture() {
  const core::TraceContext& context = core::CurrentContext();
  if (context.empty()) return CapturedContext();
  return CapturedContext(std::shared_ptr<core::Entity>(context.segment_ptr(), context.current()));
}

core::TraceContext ScopedRestore::Rebuild(CapturedContext captured) {
  core::Entity* innermost = captured.entity();
  if (innermost == nullptr) return core::TraceContext();
  return core::TraceContext(
      std::shared_ptr<core::Segment>(std::move(captured.innermost_), &innermost->segment()),
      innermost);
}

ScopedRestore::ScopedRestore(CapturedContext captured)
    : context_(Rebuild(std::move(captured))), installed_(context_) {}

}  // namespace xraysink::context
