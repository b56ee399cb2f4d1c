#include "core/recorder.h"

#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/default_sampler.h"
#include "core/log.h"

namespace xraysink::core {
namespace {

std::shared_ptr<const SegmentSettings> MakeSettings(RecorderOptions& options) {
  auto settings = std::make_shared<SegmentSettings>();
  settings->sink = std::move(options.sink);
  settings->streaming_threshold = options.streaming_threshold;
  settings->max_stack_depth = options.max_stack_depth;
  settings->max_subsegment_depth = options.max_subsegment_depth;
  settings->origin = std::move(options.origin);
  settings->service = std::move(options.service);
  settings->aws = std::move(options.aws);
  settings->sdk_version = kSdkVersion;
  return settings;
}

// What a message let through by a LogLimiter adds: on the first of its kind, that repeats are
// held back (and where they are counted); after that, how many were.
std::string RepeatNote(uint64_t held_back, const char* counter) {
  const int64_t seconds = Recorder::kRepeatedLogInterval.count();
  if (held_back == 0) {
    return *counter == '\0' ? absl::StrCat(" (repeats logged at most once every ", seconds, " s)")
                            : absl::StrCat(" (repeats logged at most once every ", seconds, " s; ",
                                           counter, " counts them all)");
  }
  return absl::StrCat(" (", held_back, " more like it not logged since the last one)");
}

}  // namespace

absl::StatusOr<std::shared_ptr<Recorder>> Recorder::Create(RecorderOptions options) {
  EnvironmentSettings environment;
  if (options.read_environment) environment = EnvironmentSettings::Read();
  for (const std::string& warning : environment.warnings) Log(LogLevel::kWarning, warning);
  if (options.streaming_threshold < 0) {
    return absl::InvalidArgumentError("streaming_threshold must be >= 0");
  }
  if (options.max_stack_depth < 0) {
    return absl::InvalidArgumentError("max_stack_depth must be >= 0");
  }
  // Bounded above as well: the tree is walked recursively (streaming, serialization).
  if (options.max_subsegment_depth < 1 || options.max_subsegment_depth > 256) {
    return absl::InvalidArgumentError("max_subsegment_depth must be within 1 to 256");
  }
  return std::shared_ptr<Recorder>(new Recorder(std::move(options), std::move(environment)));
}

Recorder::Recorder(RecorderOptions options, EnvironmentSettings environment)
    : enabled_(environment.sdk_enabled.value_or(options.enabled)),
      service_name_(environment.tracing_name.value_or(options.service_name)),
      context_missing_(environment.context_missing.value_or(options.context_missing)),
      sampler_(options.sampler ? options.sampler : std::make_shared<DefaultSampler>()),
      settings_(MakeSettings(options)),
      counters_(std::make_shared<EntityCounters>()) {}

std::shared_ptr<Segment> Recorder::CreateSegment(std::string_view name,
                                                 BeginSegmentOptions options) {
  return MakeSegment(name, std::move(options), /*count=*/true);
}

std::shared_ptr<Segment> Recorder::CreateDeferredSegment(std::string_view name,
                                                         const TraceId& trace_id,
                                                         EntityId parent_id) {
  BeginSegmentOptions options;
  options.trace_id = trace_id;
  options.parent_id = parent_id;
  options.sampling = SamplingDecision{false, ""};
  return MakeSegment(name, std::move(options), /*count=*/false);
}

std::shared_ptr<Segment> Recorder::MakeSegment(std::string_view name, BeginSegmentOptions options,
                                               bool count) {
  if (!enabled_) return nullptr;
  SegmentOptions segment_options;
  segment_options.name = std::string(name.empty() ? std::string_view(service_name_) : name);
  if (segment_options.name.empty()) segment_options.name = "unnamed";
  SamplingDecision decision =
      options.sampling ? std::move(*options.sampling)
                       : sampler_->ShouldTrace(SamplingRequest{.service = segment_options.name,
                                                               .service_type = settings_->origin});
  segment_options.trace_id = options.trace_id;
  segment_options.parent_id = options.parent_id;
  segment_options.sampled = decision.sampled;
  segment_options.sampling_rule_name = std::move(decision.rule_name);
  segment_options.propagated_header_keys = std::move(options.propagated_header_keys);
  segment_options.start_time = options.start_time;
  // One counter per segment: a locked instruction costs more than the rest of an unsampled
  // segment's bookkeeping.
  if (count) {
    (segment_options.sampled ? segments_sampled_ : segments_unsampled_)
        .fetch_add(1, std::memory_order_relaxed);
  }
  return Segment::Create(std::move(segment_options), settings_, counters_);
}

Segment* Recorder::BeginSegment(std::string_view name, BeginSegmentOptions options) {
  if (!enabled_) return nullptr;
  std::shared_ptr<Segment> segment = CreateSegment(name, std::move(options));
  Segment* raw = segment.get();
  CurrentContext().Reset(std::move(segment));
  return raw;
}

void Recorder::EndSegment(double end_time) {
  if (!enabled_) return;
  TraceContext& context = CurrentContext();
  if (context.empty()) {
    ReportContextMissing("end segment");
    return;
  }
  // Keep the segment alive past the reset: ending may hand it to the sink.
  std::shared_ptr<Segment> segment = context.segment_ptr();
  context.Reset();
  segment->End(end_time);
}

Subsegment* Recorder::BeginSubsegment(std::string_view name, Namespace ns) {
  if (!enabled_) return nullptr;
  TraceContext& context = CurrentContext();
  Entity* parent = context.current();
  if (parent == nullptr) {
    ReportContextMissing(std::string("begin subsegment '").append(name).append("'"));
    return nullptr;
  }
  Subsegment* subsegment = context.segment()->BeginSubsegmentUnder(*parent, name, ns);
  context.Push(subsegment);
  return subsegment;
}

void Recorder::EndSubsegment(double end_time) {
  if (!enabled_) return;
  TraceContext& context = CurrentContext();
  Entity* current = context.current();
  if (current == nullptr) {
    ReportContextMissing("end subsegment");
    return;
  }
  if (current->is_segment()) {
    if (uint64_t held_back = 0; end_on_segment_log_.Admit(held_back)) {
      Log(LogLevel::kWarning,
          absl::StrCat("end subsegment: the current entity is a segment; nothing ended",
                       RepeatNote(held_back, "")));
    }
    return;
  }
  // The context still holds the segment while the subsegment ends.
  context.Pop(current);
  current->End(end_time);
}

Entity* Recorder::CurrentEntity() {
  if (!enabled_) return nullptr;
  Entity* entity = CurrentContext().current();
  if (entity == nullptr) ReportContextMissing("current entity");
  return entity;
}

Segment* Recorder::CurrentSegment() {
  if (!enabled_) return nullptr;
  Segment* segment = CurrentContext().segment();
  if (segment == nullptr) ReportContextMissing("current segment");
  return segment;
}

bool Recorder::PutAnnotation(std::string_view key, AnnotationValue value) {
  Entity* entity = CurrentEntity();
  return entity != nullptr && entity->PutAnnotation(key, std::move(value));
}

bool Recorder::PutMetadata(std::string_view key, JsonValue value, std::string_view ns) {
  Entity* entity = CurrentEntity();
  return entity != nullptr && entity->PutMetadata(key, std::move(value), ns);
}

SamplingDecision Recorder::Sample(const SamplingRequest& request) {
  if (!enabled_) return SamplingDecision{};
  SamplingRequest with_origin = request;  // centralized rules match on the service type
  if (with_origin.service_type.empty()) with_origin.service_type = settings_->origin;
  return sampler_->ShouldTrace(with_origin);
}

void Recorder::ReportContextMissing(std::string_view operation) {
  context_missing_count_.fetch_add(1, std::memory_order_relaxed);
  switch (context_missing_) {
    case ContextMissing::kIgnoreError:
      return;
    case ContextMissing::kLogError: {
      uint64_t held_back = 0;
      if (!context_missing_log_.Admit(held_back)) return;
      Log(LogLevel::kError,
          absl::StrCat("cannot find the current segment/subsegment (", std::string(operation),
                       "): make sure a segment is open in this flow",
                       RepeatNote(held_back, "RecorderStats::context_missing")));
      return;
    }
    case ContextMissing::kRuntimeError:
      throw ContextMissingError(std::string("cannot find the current segment/subsegment (")
                                    .append(operation)
                                    .append(")"));
  }
}

RecorderStats Recorder::stats() const {
  RecorderStats stats;
  stats.segments_unsampled = segments_unsampled_.load(std::memory_order_relaxed);
  stats.segments_begun =
      segments_sampled_.load(std::memory_order_relaxed) + stats.segments_unsampled;
  stats.context_missing = context_missing_count_.load(std::memory_order_relaxed);
  stats.segments_sent = counters_->segments_sent.load(std::memory_order_relaxed);
  stats.subtrees_streamed = counters_->subtrees_streamed.load(std::memory_order_relaxed);
  stats.documents_not_accepted = counters_->documents_not_accepted.load(std::memory_order_relaxed);
  stats.annotations_dropped = counters_->annotations_dropped.load(std::memory_order_relaxed);
  stats.metadata_dropped = counters_->metadata_dropped.load(std::memory_order_relaxed);
  stats.mutations_after_end = counters_->mutations_after_end.load(std::memory_order_relaxed);
  stats.subsegments_too_deep = counters_->subsegments_too_deep.load(std::memory_order_relaxed);
  stats.segments_waiting_for_subsegments =
      counters_->segments_waiting_for_subsegments.load(std::memory_order_relaxed);
  return stats;
}

namespace {

struct GlobalSlot {
  std::mutex mu;
  std::shared_ptr<Recorder> recorder;
  std::atomic<Recorder*> fast{nullptr};
};

GlobalSlot& Global() {
  static GlobalSlot* const slot = [] {
    auto* created = new GlobalSlot;
    RecorderOptions options;
    options.enabled = false;
    options.read_environment = false;
    created->recorder = *Recorder::Create(std::move(options));
    created->fast.store(created->recorder.get(), std::memory_order_release);
    return created;
  }();
  return *slot;
}

}  // namespace

Recorder& GlobalRecorder() { return *Global().fast.load(std::memory_order_acquire); }

std::shared_ptr<Recorder> GlobalRecorderPtr() {
  GlobalSlot& slot = Global();
  std::lock_guard<std::mutex> lock(slot.mu);
  return slot.recorder;
}

void SetGlobalRecorder(std::shared_ptr<Recorder> recorder) {
  GlobalSlot& slot = Global();
  if (!recorder) {
    RecorderOptions options;
    options.enabled = false;
    options.read_environment = false;
    recorder = *Recorder::Create(std::move(options));
  }
  std::lock_guard<std::mutex> lock(slot.mu);
  // The previous recorder is kept alive: code may still hold a reference from GlobalRecorder().
  static std::vector<std::shared_ptr<Recorder>>* retired =
      new std::vector<std::shared_ptr<Recorder>>;
  retired->push_back(std::move(slot.recorder));
  slot.recorder = std::move(recorder);
  slot.fast.store(slot.recorder.get(), std::memory_order_release);
}

}  // namespace xraysink::core
