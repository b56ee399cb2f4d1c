#ifndef XRAYSINK_CONTEXT_SCOPES_H_
#define XRAYSINK_CONTEXT_SCOPES_H_

#include <exception>
#include <memory>
#include <string_view>

#include "core/entity.h"
#include "core/recorder.h"

namespace xraysink::context {

// Records on `entity` how `exception` ended it. A cancellation (boost::system::system_error with
// asio::error::operation_aborted, which Asio throws from an operation cancelled by cancel(), a
// cancellation slot or an awaitable_operators race) is not a fault: it is recorded as the
// annotation `cancelled = true` (searchable) with neither fault nor error. Anything else is
// recorded as fault + cause with its type, message and stack. The scopes and tasks::Traced
// record what they catch through this, so they agree. A null `exception` (what co_spawn's
// completion handler gets when the coroutine succeeded) records nothing.
void RecordException(core::Entity& entity, const std::exception_ptr& exception);

namespace internal {

// What both scopes share: the entity begun (null when the recorder is disabled or nothing
// could be begun), kept alive with its segment, and what happened to exceptions.
class EntityScope {
 public:
  EntityScope(const EntityScope&) = delete;
  EntityScope& operator=(const EntityScope&) = delete;

  // Records `exception` (by default the one being handled: call it from a catch block) as
  // context::RecordException does: a cancellation as `cancelled = true`, anything else as fault
  // + cause. The scope then adds nothing when it unwinds.
  void RecordException(const std::exception_ptr& exception = std::current_exception());

 protected:
  EntityScope(core::Recorder& recorder, core::Entity* entity);
  // Records fault + cause of unknown type when an exception is unwinding the scope and none was
  // recorded: C++ gives a destructor no access to the exception unwinding it, so it cannot tell
  // a cancellation from an error.
  void RecordEscapingException();

  core::Recorder& recorder_;
  const std::shared_ptr<core::Entity> entity_;  // shares ownership of the segment
  const int uncaught_at_begin_;
  bool recorded_ = false;
};

}  // namespace internal

// Begins a segment (on `recorder`, by default core::GlobalRecorder()) and ends it when the
// scope ends, on every path. An exception recorded with RecordException() is a fault + cause, or
// `cancelled = true` when it is a cancellation (see context::RecordException); one escaping the
// scope unrecorded is a fault of unknown type (a destructor cannot see which exception it is).
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
// ends, on every path. Exceptions are recorded as for SegmentScope: an escaping one is a fault
// of unknown type, so record it from a catch for its type and message, and to have a
// cancellation (e.g. of an awaited timer or socket operation) recorded as `cancelled = true`
// rather than as a fault; the exception propagates unchanged either way:
//
//   SubsegmentScope scope("query");
//   try { co_await ...; } catch (...) { scope.RecordException(); throw; }
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
