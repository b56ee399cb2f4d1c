#ifndef XRAYSINK_CONTEXT_SCOPES_H_
#define XRAYSINK_CONTEXT_SCOPES_H_

#include <exception>
#include <memory>
#include <string_view>

#include "core/entity.h"
#include "core/recorder.h"

namespace xraysink::context {
namespace internal {

// What both scopes share: the entity begun (null when the recorder is disabled or nothing
// could be begun), kept alive with its segment, and what happened to exceptions.
class EntityScope {
 public:
  EntityScope(const EntityScope&) = delete;
  EntityScope& operator=(const EntityScope&) = delete;

  // Records `exception` (by default the one being handled: call it from a catch block) as fault
  // + cause with its type, message and stack. The scope then adds nothing when it unwinds.
  void RecordException(const std::exception_ptr& exception = std::current_exception());

 protected:
  EntityScope(core::Recorder& recorder, core::Entity* entity);
  // Records fault + cause when an exception is unwinding the scope and none was recorded (the
  // destructor cannot see which one it is).
  void RecordEscapingException();

  core::Recorder& recorder_;
  const std::shared_ptr<core::Entity> entity_;  // shares ownership of the segment
  const int uncaught_at_begin_;
  bool recorded_ = false;
};

}  // namespace internal

// Begins a segment (on `recorder`, by default core::GlobalRecorder()) and ends it when the
// scope ends, on every path; an exception escaping the scope is recorded as fault + cause.
class SegmentScope : public internal::EntityScope {
 public:
  explicit SegmentScope(std::string_view name = "", core::BeginSegmentOptions options = {});
  SegmentScope(core::Recorder& recorder, std::string_view name = "",
               core::BeginSegmentOptions options = {});
  ~SegmentScope();

  // Null when the recorder is disabled.
  core::Segment* segment() const { return static_cast<core::Segment*>(entity_.get()); }
};

// Begins a subsegment under the current flow's innermost entity and ends it when the scope
// ends, on every path; an exception escaping the scope is recorded as fault + cause:
//
//   SubsegmentScope scope("query");
//   try { ... } catch (...) { scope.RecordException(); throw; }  // optional: type and message
class SubsegmentScope : public internal::EntityScope {
 public:
  explicit SubsegmentScope(std::string_view name, core::Namespace ns = core::Namespace::kLocal);
  SubsegmentScope(core::Recorder& recorder, std::string_view name,
                  core::Namespace ns = core::Namespace::kLocal);
  ~SubsegmentScope();

  // Null when the recorder is disabled or the flow has no segment (context missing).
  core::Subsegment* subsegment() const { return static_cast<core::Subsegment*>(entity_.get()); }
};

}  // namespace xraysink::context

#endif  // XRAYSINK_CONTEXT_SCOPES_H_
