#ifndef XRAYSINK_MIDDLEWARE_REQUEST_TRACER_H_
#define XRAYSINK_MIDDLEWARE_REQUEST_TRACER_H_

#include <array>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/context_slot.h"
#include "core/recorder.h"

namespace xraysink::middleware {

// How incoming-request segments are named, as the SDKs' fixed and dynamic naming do. When
// AWS_XRAY_TRACING_NAME is set it replaces the fixed name and the fallback; an empty name means
// the recorder's service name.
struct SegmentNaming {
  // Fixed: every segment gets this name (AWS_XRAY_TRACING_NAME, when set, wins).
  static SegmentNaming Fixed(std::string name);
  // Dynamic: the request's Host (without port) when it matches `host_pattern` (wildcards * and
  // ?), else `fallback`.
  static SegmentNaming Dynamic(std::string host_pattern, std::string fallback);

  std::string fixed_name;
  std::string host_pattern;
  std::string fallback_name;
};

// The name a proxy or gateway that rewrites header names CGI-style gives X-Amzn-Trace-Id (spec
// 2.1); adapters read it only when X-Amzn-Trace-Id itself is absent.
inline constexpr std::string_view kRewrittenTraceHeader = "HTTP_X_AMZN_TRACE_ID";

// What the middleware reads from an incoming request; adapters fill it from their framework.
// Views must stay valid during Begin().
struct IncomingRequest {
  std::string_view method;
  std::string_view scheme = "http";
  std::string_view host;    // Host header, port included; empty: "localhost"
  std::string_view target;  // path and query, e.g. "/items/1?x=1"
  std::string_view user_agent;
  std::string_view trace_header;   // X-Amzn-Trace-Id (or kRewrittenTraceHeader); empty: absent
  std::string_view forwarded_for;  // X-Forwarded-For; empty when absent
  std::string_view peer_address;   // the TCP peer
};

// One traced request: its segment and the flow context its handler must run in. Ending is
// explicit (Finish / FinishWithException); a TracedRequest destroyed unfinished ends its segment
// without a status. Move-only; must not outlive its RequestTracer.
//
// An unsampled request's segment (never sent; writes to it are ignored) is made only when the
// handler's flow asks for it (core::TraceContext::Defer): its trace id goes out in the response
// header all the same, and a caller's Parent and Sampled=0 still reach downstream calls. The
// segment's start time is then when it was made.
class TracedRequest : private core::SegmentBuilder {
 public:
  TracedRequest() = default;
  TracedRequest(TracedRequest&& other) noexcept;
  TracedRequest& operator=(TracedRequest&& other) noexcept;
  ~TracedRequest();

  // Null when the recorder is disabled. Makes a deferred segment.
  core::Segment* segment() const { return context_.segment(); }
  // The handler's flow: install it (core::ScopedContext, or //context's executor) while the
  // handler runs so its subsegments land under this request's segment.
  core::TraceContext& context() { return context_; }
  // The response's X-Amzn-Trace-Id value: Root (and Sampled when the caller asked with
  // Sampled=?). Empty when there is no segment. Never echoes anything unvalidated.
  std::string_view response_header() const {
    return std::string_view(response_header_.data(), response_header_size_);
  }

  // Records the response (status flags: 4xx error, 429 error+throttle, 5xx fault) and ends the
  // segment.
  void Finish(int status, std::optional<int64_t> content_length = std::nullopt);
  // The handler threw: status 500, fault and the exception as cause; ends the segment.
  void FinishWithException(const std::exception_ptr& exception);
  // The handler threw and something else answers: the exception becomes the segment's cause,
  // and the Finish that follows records the status it answered with.
  void RecordException(const std::exception_ptr& exception);

 private:
  friend class RequestTracer;
  // The segment whose end is still to record, or null (none, ended, or deferred: then never).
  core::Segment* Unfinished();
  void End();
  // "Root=<trace id>", and ";Sampled=1|0" when the caller asked with Sampled=?.
  void SetResponseHeader(const core::TraceId& trace_id, bool caller_asked, bool sampled);
  // An unsampled request: its segment is made only if the handler's flow asks for it.
  void BeginDeferred(core::Recorder& recorder, const core::TraceId& trace_id,
                     core::EntityId parent_id, std::string_view name, bool name_from_host,
                     bool caller_asked);
  std::shared_ptr<core::Segment> BuildSegment() const override;

  core::TraceContext context_;
  // What a deferred segment is made from: the recorder (which outlives the tracer's requests),
  // the trace, the caller's entity and the name (a view of the tracer's or the recorder's
  // names, or a copy of the request's host).
  core::Recorder* recorder_ = nullptr;
  core::TraceId trace_id_;
  core::EntityId parent_id_;
  std::string_view name_;
  std::string host_name_;
  // "Root=<35-character trace id>;Sampled=1" at most: kept inline, not allocated per request.
  std::array<char, 64> response_header_;
  size_t response_header_size_ = 0;
  bool finished_ = false;
};

// Turns incoming requests into segments (framework-neutral, like xraysink's ASGI middleware):
// continues the caller's trace from a valid X-Amzn-Trace-Id (Root, Parent, Sampled=1/0), asks
// the sampler (host, method, path) when the header says `?` or is absent, starts a new trace
// when it is malformed, and fills http.request (method, url, user_agent, client_ip from the
// first X-Forwarded-For entry or the peer). Thread-safe.
class RequestTracer {
 public:
  // `recorder` null: the global recorder at each request.
  RequestTracer(std::shared_ptr<core::Recorder> recorder, SegmentNaming naming);

  TracedRequest Begin(const IncomingRequest& request) const;
  const SegmentNaming& naming() const { return naming_; }

 private:
  // `from_host`: the name is (a view of) the request's host.
  std::string_view SegmentName(std::string_view host, const core::Recorder& recorder,
                               bool& from_host) const;
  // Begin's path for a request with an X-Amzn-Trace-Id (out of line, as BeginRecorded).
  [[gnu::noinline]] void BeginFromHeader(core::Recorder& recorder, const IncomingRequest& request,
                                         std::string_view host, std::string_view name,
                                         bool name_from_host, TracedRequest& traced) const;
  // Begin's path for a segment made now (sampled, or carrying a caller's extra header keys).
  [[gnu::noinline]] static void BeginRecorded(core::Recorder& recorder,
                                              const IncomingRequest& request, std::string_view host,
                                              std::string_view name,
                                              core::BeginSegmentOptions&& options,
                                              bool caller_asked, TracedRequest& traced);

  std::shared_ptr<core::Recorder> recorder_;
  SegmentNaming naming_;
};

}  // namespace xraysink::middleware

#endif  // XRAYSINK_MIDDLEWARE_REQUEST_TRACER_H_
