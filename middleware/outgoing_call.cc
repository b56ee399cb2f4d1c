#include "middleware/outgoing_call.h"

#include <utility>

#include "core/trace_header.h"

namespace xraysink::middleware {

OutgoingCall OutgoingCall::Begin(core::Recorder* recorder, std::string_view host,
                                 std::string_view method, std::string_view url) {
  core::Recorder& tracing = recorder != nullptr ? *recorder : core::GlobalRecorder();
  OutgoingCall call;
  if (!tracing.enabled()) return call;
  core::TraceContext& context = core::CurrentContext();
  core::Entity* parent = context.current();
  if (parent == nullptr) {
    tracing.ReportContextMissing("outgoing HTTP call");
    return call;
  }
  call.segment_ = context.segment_ptr();
  call.subsegment_ = call.segment_->BeginSubsegmentUnder(
      *parent, host.empty() ? "unknown-host" : host, core::Namespace::kRemote);
  auto& request = call.subsegment_->http().request.emplace();
  request.method = std::string(method);
  request.url = std::string(url);
  core::TraceHeader::AppendOutgoing(call.segment_->trace_id(), call.subsegment_->id(),
                                    call.subsegment_->sampled(),
                                    call.segment_->propagated_header_keys(), call.trace_header_);
  return call;
}

OutgoingCall::OutgoingCall(OutgoingCall&& other) noexcept
    : segment_(std::move(other.segment_)),
      subsegment_(std::exchange(other.subsegment_, nullptr)),
      trace_header_(std::move(other.trace_header_)) {}

OutgoingCall::~OutgoingCall() { End(); }

void OutgoingCall::Finish(int status, std::optional<int64_t> content_length) {
  if (subsegment_ == nullptr) return;
  subsegment_->ApplyStatusCode(status);
  if (content_length && subsegment_->http().response) {
    subsegment_->http().response->content_length = *content_length;
  }
  End();
}

void OutgoingCall::Fail(std::string_view type, std::string_view message) {
  if (subsegment_ == nullptr) return;
  core::ExceptionData exception;
  exception.type = std::string(type);
  exception.message = std::string(message);
  exception.remote = true;
  subsegment_->AddException(std::move(exception));
  End();
}

void OutgoingCall::Fail(const std::exception_ptr& exception) {
  if (subsegment_ == nullptr) return;
  subsegment_->AddException(exception, /*remote=*/true);
  End();
}

void OutgoingCall::End() {
  if (subsegment_ == nullptr) return;
  std::exchange(subsegment_, nullptr)->End();
  segment_.reset();
}

}  // namespace xraysink::middleware
