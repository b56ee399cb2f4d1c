#ifndef XRAYSINK_MIDDLEWARE_OUTGOING_CALL_H_
#define XRAYSINK_MIDDLEWARE_OUTGOING_CALL_H_

#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

#include "core/recorder.h"

namespace xraysink::middleware {

// One outgoing HTTP call from the current flow: a `remote` subsegment named after the host,
// with http.request/response, and the X-Amzn-Trace-Id value to send (Root;Parent;Sampled plus
// the incoming request's extra keys). The subsegment is not pushed on the flow's stack, so the
// call may complete in another handler or thread. Without a current segment the call is not
// traced (context-missing is reported) and no header is sent. Move-only; ends on destruction.
class OutgoingCall {
 public:
  // `recorder` null: the global recorder.
  static OutgoingCall Begin(core::Recorder* recorder, std::string_view host,
                            std::string_view method, std::string_view url);

  OutgoingCall(OutgoingCall&& other) noexcept;
  OutgoingCall& operator=(OutgoingCall&&) = delete;
  ~OutgoingCall();

  // The header value to send; empty when the call is not traced.
  const std::string& trace_header() const { return trace_header_; }
  core::Subsegment* subsegment() const { return subsegment_; }

  // The response arrived: status flags (4xx error, 429 throttle, 5xx fault), then ends.
  void Finish(int status, std::optional<int64_t> content_length = std::nullopt);
  // The call failed without a response (connection refused, timeout, ...): fault + a remote
  // cause of `type` and `message`, then ends.
  void Fail(std::string_view type, std::string_view message);
  void Fail(const std::exception_ptr& exception);

 private:
  OutgoingCall() = default;
  void End();

  std::shared_ptr<core::Segment> segment_;  // keeps the tree alive until the call ends
  core::Subsegment* subsegment_ = nullptr;
  std::string trace_header_;
};

}  // namespace xraysink::middleware

#endif  // XRAYSINK_MIDDLEWARE_OUTGOING_CALL_H_
