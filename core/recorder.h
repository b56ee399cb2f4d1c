#ifndef XRAYSINK_CORE_RECORDER_H_
#define XRAYSINK_CORE_RECORDER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/config.h"
#include "core/context_slot.h"
#include "core/entity.h"
#include "core/internal/log_limiter.h"
#include "core/sampler.h"
#include "core/segment_sink.h"
#include "core/trace_header.h"

namespace xraysink::core {

// How a recorder is set up. Environment variables, as the AWS SDKs read them, win over these
// unless `read_environment` is false: AWS_XRAY_SDK_ENABLED, AWS_XRAY_CONTEXT_MISSING,
// AWS_XRAY_TRACING_NAME.
struct RecorderOptions {
  std::string service_name;  // name of segments begun without one
  ContextMissing context_missing = ContextMissing::kLogError;
  bool enabled = true;
  bool read_environment = true;
  std::shared_ptr<Sampler> sampler;   // null: 1 trace a second, then 5 %
  std::shared_ptr<SegmentSink> sink;  // where finished documents go; null: nowhere
  int streaming_threshold = 30;       // subsegments held before completed ones are streamed
  int max_stack_depth = 10;           // frames recorded per exception
  std::string origin;                 // e.g. "AWS::EC2::Instance"
  ServiceData service;                // e.g. the application version
  AwsData aws;                        // resource metadata and CloudWatch log groups
  // Deepest nesting of subsegments recorded (1 to 256); deeper ones are begun unrecorded and
  // counted (RecorderStats::subsegments_too_deep).
  int max_subsegment_depth = 64;
};

// How a segment begins.
struct BeginSegmentOptions {
  TraceId trace_id;    // empty: a new trace
  EntityId parent_id;  // the caller's entity (from the trace header), if any
  // Set: this decision (from a trace header, or the middleware's sampler call). Unset: the
  // recorder's sampler decides with only the segment's name and the recorder's origin.
  std::optional<SamplingDecision> sampling;
  std::string propagated_header_keys;  // extra trace header keys to forward downstream
  double start_time = 0;
};

// Raised by the recorder only under AWS_XRAY_CONTEXT_MISSING=RUNTIME_ERROR (the user asked for
// it), when an entity is needed and the current flow has none.
class ContextMissingError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Counters of one recorder.
struct RecorderStats {
  uint64_t segments_begun = 0;
  uint64_t segments_unsampled = 0;
  uint64_t segments_sent = 0;
  uint64_t subtrees_streamed = 0;
  uint64_t documents_not_accepted = 0;
  uint64_t context_missing = 0;
  uint64_t annotations_dropped = 0;
  uint64_t metadata_dropped = 0;
  uint64_t mutations_after_end = 0;
  // Subsegments begun deeper than max_subsegment_depth, left out of their segments: usually a
  // flow that leaks an open subsegment per unit of work, each nesting under the last.
  uint64_t subsegments_too_deep = 0;
  // Now: segments ended whose subsegments are not all ended yet. Each is kept in memory, unsent,
  // until they are: one that only grows means subsegments begun and never ended (e.g. an
  // exception skipped EndSubsegment; the scopes of //context end theirs on every path).
  uint64_t segments_waiting_for_subsegments = 0;
};

// Begins and ends segments and subsegments on the current flow's context (core/context_slot.h)
// and hands finished segments to the sink. Thread-safe. When disabled every call is a cheap
// no-op returning null.
class Recorder {
 public:
  static absl::StatusOr<std::shared_ptr<Recorder>> Create(RecorderOptions options);

  bool enabled() const { return enabled_; }
  const std::string& service_name() const { return service_name_; }
  ContextMissing context_missing() const { return context_missing_; }
  Sampler& sampler() const { return *sampler_; }

  // Begins a segment (name empty: the service name) and makes it the current flow's only
  // entity. Returns null when disabled. Unsampled segments are returned too (they keep their
  // ids for propagation) but send nothing.
  Segment* BeginSegment(std::string_view name = "", BeginSegmentOptions options = {});
  // Ends the current flow's segment and clears the context.
  void EndSegment(double end_time = 0);

  // Begins a subsegment under the current entity and makes it current. Null when disabled or
  // when the flow has no segment (reported per the context-missing strategy).
  Subsegment* BeginSubsegment(std::string_view name, Namespace ns = Namespace::kLocal);
  // Ends the current subsegment (warns and does nothing when the current entity is a segment).
  void EndSubsegment(double end_time = 0);

  // The current flow's innermost entity / segment (context-missing strategy applies).
  Entity* CurrentEntity();
  Segment* CurrentSegment();
  // Same, without reporting a missing context.
  static Entity* PeekCurrentEntity() { return CurrentContext().current(); }

  // Act on the current entity; false when there is none or the value was dropped.
  bool PutAnnotation(std::string_view key, AnnotationValue value);
  bool PutMetadata(std::string_view key, JsonValue value, std::string_view ns = "default");

  // A segment that is not made current (for code that manages entities by hand, and tasks).
  std::shared_ptr<Segment> CreateSegment(std::string_view name, BeginSegmentOptions options);
  // An unsampled segment made only if something asks for it (see TraceContext::Defer): counted
  // as begun by CountDeferredSegment, when deferred; made, uncounted, by CreateDeferredSegment.
  void CountDeferredSegment() { segments_unsampled_.fetch_add(1, std::memory_order_relaxed); }
  std::shared_ptr<Segment> CreateDeferredSegment(std::string_view name, const TraceId& trace_id,
                                                 EntityId parent_id);
  // Asks the sampler (never called when disabled); an empty service_type is the origin's.
  SamplingDecision Sample(const SamplingRequest& request);

  // Reports that an entity was needed and the flow has none (per the strategy). Logged (under
  // kLogError) at most once per kRepeatedLogInterval, with how many were not; all are counted.
  void ReportContextMissing(std::string_view operation);
  static constexpr std::chrono::seconds kRepeatedLogInterval{10};

  RecorderStats stats() const;

 private:
  explicit Recorder(RecorderOptions options, EnvironmentSettings environment);
  std::shared_ptr<Segment> MakeSegment(std::string_view name, BeginSegmentOptions options,
                                       bool count);

  const bool enabled_;
  const std::string service_name_;
  const ContextMissing context_missing_;
  const std::shared_ptr<Sampler> sampler_;
  const std::shared_ptr<const SegmentSettings> settings_;
  const std::shared_ptr<EntityCounters> counters_;
  std::atomic<uint64_t> segments_sampled_{0};
  std::atomic<uint64_t> segments_unsampled_{0};
  std::atomic<uint64_t> context_missing_count_{0};
  // A flow that is never traced (a background loop calling a traced client) reports a missing
  // context on every call: logged once per interval, counted every time.
  internal::LogLimiter context_missing_log_{kRepeatedLogInterval};
  internal::LogLimiter end_on_segment_log_{kRepeatedLogInterval};
};

// The process-wide recorder that middleware, tasks and logs use when given none. Until one is
// set it is a disabled recorder (every call a no-op).
Recorder& GlobalRecorder();
std::shared_ptr<Recorder> GlobalRecorderPtr();
void SetGlobalRecorder(std::shared_ptr<Recorder> recorder);

// The SDK version written to aws.xray.sdk_version.
inline constexpr char kSdkVersion[] = "0.1.0";

}  // namespace xraysink::core

#endif  // XRAYSINK_CORE_RECORDER_H_
