#include "tasks/task.h"

#include "context/scopes.h"

namespace xraysink::tasks::internal {
namespace {

constexpr char kUserAgent[] = "BackgroundTask xraysink-cpp/";

}  // namespace

TaskStart Prepare(std::string_view name, const TaskOptions& options) {
  core::Recorder& recorder =
      options.recorder != nullptr ? *options.recorder : core::GlobalRecorder();
  TaskStart start;
  start.name = std::string(name.empty() ? "task" : name);
  if (!recorder.enabled()) return start;
  start.recorder = &recorder;
  core::TraceContext& context = core::CurrentContext();
  core::Entity* parent = context.current();
  if (parent == nullptr) return start;  // a new trace
  // Inside a trace: a `Create Task` subsegment in this flow, ended at once; the job's segment
  // hangs under it.
  core::Subsegment* created = context.segment()->BeginSubsegmentUnder(
      *parent, "Create Task: " + start.name, core::Namespace::kLocal);
  created->http().request.emplace().url = "task://localhost/" + start.name;
  core::BeginSegmentOptions& in_trace = start.in_trace.emplace();
  in_trace.trace_id = context.segment()->trace_id();
  in_trace.parent_id = created->id();
  in_trace.sampling = core::SamplingDecision{created->sampled(), ""};
  in_trace.propagated_header_keys = context.segment()->propagated_header_keys();
  created->End();
  return start;
}

std::shared_ptr<core::Segment> BeginTaskSegment(const TaskStart& start,
                                                const TaskOptions& options) {
  if (start.recorder == nullptr) return nullptr;
  core::Recorder& recorder = *start.recorder;
  std::string name = start.name;
  if (!start.in_trace) {
    name = !options.segment_name.empty()      ? options.segment_name
           : !recorder.service_name().empty() ? recorder.service_name()
                                              : start.name;
  }
  std::shared_ptr<core::Segment> segment =
      recorder.CreateSegment(name, start.in_trace ? *start.in_trace : core::BeginSegmentOptions{});
  if (!segment) return nullptr;
  auto& request = segment->http().request.emplace();
  request.url = "task://localhost/" + start.name;
  request.client_ip = "127.0.0.1";
  request.user_agent = std::string(kUserAgent) + core::kSdkVersion;
  if (!options.origin.empty()) segment->set_origin(options.origin);
  for (const auto& [key, value] : options.annotations) segment->PutAnnotation(key, value);
  return segment;
}

void FinishTask(core::Segment* segment, const std::exception_ptr& error) {
  if (segment == nullptr) return;
  if (error) context::RecordException(*segment, error);
  segment->End();
}

}  // namespace xraysink::tasks::internal
