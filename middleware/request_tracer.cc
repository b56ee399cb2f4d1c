#include "middleware/request_tracer.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "core/trace_header.h"
#include "core/wildcard.h"

namespace xraysink::middleware {
namespace {

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

std::string_view HostWithoutPort(std::string_view host) {
  if (!host.empty() && host.front() == '[') {  // [v6]:port
    const size_t close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(0, close + 1);
  }
  const size_t colon = host.find(':');
  return colon == std::string_view::npos ? host : host.substr(0, colon);
}

// A plain loop: find_first_of calls memchr on "?#" once per character of the target.
std::string_view PathOf(std::string_view target) {
  size_t end = 0;
  while (end < target.size() && target[end] != '?' && target[end] != '#') ++end;
  return target.substr(0, end);
}

// Continues the caller's trace from a valid header, and takes the caller's sampling decision
// from any header that parses, with or without a Root to continue: a Python SDK sends its no-op
// Root (1-00000000-...) with Sampled=0 for each request it did not sample, and that request must
// not be sampled here either (spec 3.1: Sampled=1/0 wins). True when the caller asked for a
// decision (Sampled=?). Out of line, as BeginRecorded: the unsampled path stays small in the
// instruction cache, which a busy server's request path already overflows.
[[gnu::noinline]] bool ContinueFromHeader(std::string_view value,
                                          core::BeginSegmentOptions& options) {
  absl::StatusOr<core::TraceHeader> header = core::TraceHeader::Parse(value);
  if (!header.ok()) return false;
  if (header->sampled == core::SampledFlag::kSampled) {
    options.sampling = core::SamplingDecision{true, ""};
  } else if (header->sampled == core::SampledFlag::kNotSampled) {
    options.sampling = core::SamplingDecision{false, ""};
  }
  // Without a Root there is no trace to continue: a Parent alone names an entity of no trace,
  // and the extra keys belonged to the caller's.
  if (header->root) {
    options.trace_id = *header->root;
    if (header->parent) options.parent_id = *header->parent;
    options.propagated_header_keys = header->ExtraKeys();
  }
  return header->sampled == core::SampledFlag::kRequested;
}

}  // namespace

SegmentNaming SegmentNaming::Fixed(std::string name) {
  SegmentNaming naming;
  naming.fixed_name = std::move(name);
  return naming;
}

SegmentNaming SegmentNaming::Dynamic(std::string host_pattern, std::string fallback) {
  SegmentNaming naming;
  naming.host_pattern = std::move(host_pattern);
  naming.fallback_name = std::move(fallback);
  return naming;
}

RequestTracer::RequestTracer(std::shared_ptr<core::Recorder> recorder, SegmentNaming naming)
    : recorder_(std::move(recorder)), naming_(std::move(naming)) {
  // As in the SDKs, the environment's name wins over the configured one.
  if (const char* name = std::getenv("AWS_XRAY_TRACING_NAME"); name != nullptr && *name != 0) {
    naming_.fixed_name = name;
    naming_.fallback_name = name;
  }
}

std::string_view RequestTracer::SegmentName(std::string_view host, const core::Recorder& recorder,
                                            bool& from_host) const {
  from_host = false;
  if (!naming_.host_pattern.empty()) {
    const std::string_view bare = HostWithoutPort(host);
    if (!bare.empty() && core::WildcardMatch(naming_.host_pattern, bare)) {
      from_host = true;
      return bare;
    }
    if (!naming_.fallback_name.empty()) return naming_.fallback_name;
  } else if (!naming_.fixed_name.empty()) {
    return naming_.fixed_name;
  }
  return recorder.service_name();
}

namespace {

core::SamplingRequest SamplingRequestFor(const IncomingRequest& request, std::string_view host,
                                         std::string_view name) {
  return core::SamplingRequest{
      .host = host, .method = request.method, .path = PathOf(request.target), .service = name};
}

}  // namespace

// The path of most requests (no trace header, unsampled under the default rule) touches as little
// code as it can: a busy server's request path already overflows the instruction cache, and
// what tracing adds to it evicts the server's own code.
TracedRequest RequestTracer::Begin(const IncomingRequest& request) const {
  core::Recorder& recorder = recorder_ ? *recorder_ : core::GlobalRecorder();
  TracedRequest traced;
  if (!recorder.enabled()) return traced;

  const std::string_view host = request.host.empty() ? "localhost" : request.host;
  bool name_from_host = false;
  const std::string_view name = SegmentName(host, recorder, name_from_host);
  if (!request.trace_header.empty()) {
    BeginFromHeader(recorder, request, host, name, name_from_host, traced);
    return traced;
  }
  core::SamplingDecision decision = recorder.Sample(SamplingRequestFor(request, host, name));
  if (!decision.sampled) {
    traced.BeginDeferred(recorder, core::TraceId::Generate(), core::EntityId(), name,
                         name_from_host, /*caller_asked=*/false);
    return traced;
  }
  core::BeginSegmentOptions options;
  options.sampling = std::move(decision);
  BeginRecorded(recorder, request, host, name, std::move(options), /*caller_asked=*/false, traced);
  return traced;
}

void RequestTracer::BeginFromHeader(core::Recorder& recorder, const IncomingRequest& request,
                                    std::string_view host, std::string_view name,
                                    bool name_from_host, TracedRequest& traced) const {
  core::BeginSegmentOptions options;
  const bool caller_asked = ContinueFromHeader(request.trace_header, options);
  if (!options.sampling) {
    options.sampling = recorder.Sample(SamplingRequestFor(request, host, name));
  }
  // Unsampled: deferred as above. A caller's extra header keys, rare, take the ordinary path.
  if (!options.sampling->sampled && options.propagated_header_keys.empty()) {
    traced.BeginDeferred(recorder,
                         options.trace_id.empty() ? core::TraceId::Generate() : options.trace_id,
                         options.parent_id, name, name_from_host, caller_asked);
    return;
  }
  BeginRecorded(recorder, request, host, name, std::move(options), caller_asked, traced);
}

void TracedRequest::BeginDeferred(core::Recorder& recorder, const core::TraceId& trace_id,
                                  core::EntityId parent_id, std::string_view name,
                                  bool name_from_host, bool caller_asked) {
  recorder.CountDeferredSegment();
  recorder_ = &recorder;
  trace_id_ = trace_id;
  parent_id_ = parent_id;
  if (name_from_host) {
    host_name_ = std::string(name);
  } else {
    name_ = name;
  }
  context_.Defer(this);
  SetResponseHeader(trace_id_, caller_asked, /*sampled=*/false);
}

void TracedRequest::SetResponseHeader(const core::TraceId& trace_id, bool caller_asked,
                                      bool sampled) {
  // Fixed sizes: copies of a few words, no calls.
  static constexpr std::string_view kRoot = "Root=", kSampled = ";Sampled=1",
                                    kUnsampled = ";Sampled=0";
  static_assert(kRoot.size() + core::TraceId::kLength + kSampled.size() <=
                std::tuple_size_v<decltype(response_header_)>);
  static_assert(kSampled.size() == kUnsampled.size());
  response_header_size_ = 0;
  if (trace_id.empty()) return;  // never: generated, or a caller's valid Root
  char* out = response_header_.data();
  std::memcpy(out, kRoot.data(), kRoot.size());
  std::memcpy(out + kRoot.size(), trace_id.view().data(), core::TraceId::kLength);
  response_header_size_ = kRoot.size() + core::TraceId::kLength;
  if (caller_asked) {
    std::memcpy(out + response_header_size_, (sampled ? kSampled : kUnsampled).data(),
                kSampled.size());
    response_header_size_ += kSampled.size();
  }
}

void RequestTracer::BeginRecorded(core::Recorder& recorder, const IncomingRequest& request,
                                  std::string_view host, std::string_view name,
                                  core::BeginSegmentOptions&& options, bool caller_asked,
                                  TracedRequest& traced) {
  std::shared_ptr<core::Segment> segment = recorder.CreateSegment(name, std::move(options));
  if (!segment) return;

  // An unsampled segment is never sent, and its entities ignore writes (as the SDKs' dummy
  // segments do): the request's fields would be built for nothing.
  if (segment->sampled()) {
    auto& http = segment->http().request.emplace();
    http.method = std::string(request.method);
    // Without a fragment: it names a part of the client's document, not of the request (clients
    // do not send one; httplib drops any that comes, Beast keeps it).
    const std::string_view target = request.target.substr(0, request.target.find('#'));
    http.url.reserve(request.scheme.size() + 3 + host.size() + target.size());
    http.url.append(request.scheme).append("://").append(host).append(target);
    http.user_agent = std::string(request.user_agent);
    if (!request.forwarded_for.empty()) {
      const std::string_view first =
          Trim(request.forwarded_for.substr(0, request.forwarded_for.find(',')));
      http.client_ip = std::string(first);
      http.x_forwarded_for = true;
    } else {
      http.client_ip = std::string(request.peer_address);
    }
  }

  traced.SetResponseHeader(segment->trace_id(), caller_asked, segment->sampled());
  traced.context_.Reset(std::move(segment));
}

TracedRequest::TracedRequest(TracedRequest&& other) noexcept
    : recorder_(other.recorder_),
      trace_id_(other.trace_id_),
      parent_id_(other.parent_id_),
      name_(other.name_),
      host_name_(std::move(other.host_name_)),
      response_header_(other.response_header_),
      response_header_size_(other.response_header_size_),
      finished_(other.finished_) {
  context_.TakeFrom(other.context_, this);
}

TracedRequest& TracedRequest::operator=(TracedRequest&& other) noexcept {
  if (this != &other) {
    End();
    recorder_ = other.recorder_;
    trace_id_ = other.trace_id_;
    parent_id_ = other.parent_id_;
    name_ = other.name_;
    host_name_ = std::move(other.host_name_);
    response_header_ = other.response_header_;
    response_header_size_ = other.response_header_size_;
    finished_ = other.finished_;
    context_.TakeFrom(other.context_, this);
  }
  return *this;
}

TracedRequest::~TracedRequest() { End(); }

std::shared_ptr<core::Segment> TracedRequest::BuildSegment() const {
  std::shared_ptr<core::Segment> segment = recorder_->CreateDeferredSegment(
      host_name_.empty() ? name_ : std::string_view(host_name_), trace_id_, parent_id_);
  // Made after the request ended: it has ended too.
  if (segment != nullptr && finished_) segment->End();
  return segment;
}

core::Segment* TracedRequest::Unfinished() {
  // Not made yet: unsampled, and nothing to record (writes to it would be ignored).
  if (context_.deferred()) finished_ = true;
  return finished_ ? nullptr : context_.segment();
}

void TracedRequest::Finish(int status, std::optional<int64_t> content_length) {
  core::Segment* segment = Unfinished();
  if (segment == nullptr) return;
  segment->ApplyStatusCode(status);
  // Unsampled, or a status ApplyStatusCode ignores (not positive), or an entity already ended:
  // no response to add to.
  if (content_length && segment->sampled() && !segment->ended() && segment->http().response) {
    segment->http().response->content_length = *content_length;
  }
  End();
}

void TracedRequest::FinishWithException(const std::exception_ptr& exception) {
  RecordException(exception);
  Finish(500);
}

void TracedRequest::RecordException(const std::exception_ptr& exception) {
  if (core::Segment* segment = Unfinished(); segment != nullptr) segment->AddException(exception);
}

void TracedRequest::End() {
  core::Segment* segment = Unfinished();
  if (segment == nullptr) return;
  finished_ = true;
  // context_ keeps the segment alive through End().
  segment->End();
}

}  // namespace xraysink::middleware
