#include "context/scopes.h"

#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>
#include <utility>

#include "core/context_slot.h"

namespace xraysink::context {
namespace {

bool IsCancellation(const std::exception_ptr& exception) {
  try {
    std::rethrow_exception(exception);
  } catch (const boost::system::system_error& e) {
    return e.code() == boost::asio::error::operation_aborted;
  } catch (...) {
    return false;
  }
}

}  // namespace

void RecordException(core::Entity& entity, const std::exception_ptr& exception) {
  if (!exception) return;  // e.g. co_spawn's completion handler after a success
  if (IsCancellation(exception)) {
    entity.PutAnnotation("cancelled", true);
  } else {
    entity.AddException(exception);
  }
}

namespace internal {
namespace {

std::shared_ptr<core::Entity> KeepAlive(core::Entity* entity) {
  if (entity == nullptr) return nullptr;
  // Just begun on the current flow, whose context owns the segment.
  return std::shared_ptr<core::Entity>(core::CurrentContext().segment_ptr(), entity);
}

}  // namespace

EntityScope::EntityScope(core::Recorder& recorder, core::Entity* entity)
    : recorder_(recorder),
      entity_(KeepAlive(entity)),
      uncaught_at_begin_(std::uncaught_exceptions()) {}

void EntityScope::RecordException(const std::exception_ptr& exception) {
  if (entity_ == nullptr || exception == nullptr) return;
  context::RecordException(*entity_, exception);
  recorded_ = true;
}

void EntityScope::RecordEscapingException() {
  if (recorded_ || std::uncaught_exceptions() <= uncaught_at_begin_) return;
  core::ExceptionData escaped;
  escaped.type = "unknown";
  escaped.message =
      "an exception escaped the scope (record it from a catch for its type, and for a "
      "cancellation not to be a fault)";
  entity_->AddException(std::move(escaped));
}

}  // namespace internal

SegmentScope::SegmentScope(std::string_view name, core::BeginSegmentOptions options)
    : SegmentScope(core::GlobalRecorder(), name, std::move(options)) {}

SegmentScope::SegmentScope(core::Recorder& recorder, std::string_view name,
                           core::BeginSegmentOptions options)
    : EntityScope(recorder, recorder.BeginSegment(name, std::move(options))) {}

SegmentScope::~SegmentScope() {
  if (entity_ == nullptr) return;
  RecordEscapingException();
  // The flow may have moved on (e.g. another segment began in it): end ours only.
  if (core::CurrentContext().segment() == segment()) {
    recorder_.EndSegment();
  } else {
    entity_->End();
  }
}

SubsegmentScope::SubsegmentScope(std::string_view name, core::Namespace ns)
    : SubsegmentScope(core::GlobalRecorder(), name, ns) {}

SubsegmentScope::SubsegmentScope(core::Recorder& recorder, std::string_view name,
                                 core::Namespace ns)
    : EntityScope(recorder, recorder.BeginSubsegment(name, ns)) {}

SubsegmentScope::~SubsegmentScope() {
  if (entity_ == nullptr) return;
  RecordEscapingException();
  if (core::CurrentContext().current() == entity_.get()) {
    recorder_.EndSubsegment();
  } else {
    entity_->End();  // something begun under it is still open: leave the flow's stack alone
  }
}

}  // namespace xraysink::context
