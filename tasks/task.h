#ifndef XRAYSINK_TASKS_TASK_H_
#define XRAYSINK_TASKS_TASK_H_

#include <boost/asio/awaitable.hpp>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/context_slot.h"
#include "core/entity.h"
#include "core/recorder.h"

namespace xraysink::tasks {

// How a traced background job is recorded.
struct TaskOptions {
  core::Recorder* recorder = nullptr;  // null: core::GlobalRecorder()
  // Name of the job's segment when it starts a new trace; empty: the recorder's service name,
  // else the task name. (Inside a trace the job's segment is named after the task.)
  std::string segment_name;
  std::string origin;  // e.g. "AWS::ECS::Container"
  std::vector<std::pair<std::string, core::AnnotationValue>> annotations;  // on the job's segment
};

// Tracing a background job, as Python's xraysink does (spec 6.3):
//
// - Started with no current entity (a scheduler, main): the job begins a NEW TRACE; the
//   recorder's sampler decides. Its segment carries http.request {url: task://localhost/<name>,
//   client_ip: 127.0.0.1, user_agent: BackgroundTask xraysink-cpp/<version>}.
// - Started inside a trace (a request handler): a `Create Task: <name>` subsegment is recorded
//   in the starting flow and ended at once, and the job runs as ITS OWN SEGMENT of the same trace
//   whose parent_id is that subsegment (sampled as it is). A long job therefore never holds back
//   the request's segment.
// - Inside the job, awaited sub-operations are plain subsegments of the job's segment.
// - An exception escaping the job is recorded on the job's segment as fault + cause and
//   rethrown unchanged. A cancellation (boost::system::system_error with
//   asio::error::operation_aborted, e.g. an awaited timer cancelled or the job losing an
//   awaitable_operators race) is recorded as the annotation `cancelled = true`, with neither
//   fault nor error, and rethrown too (context::RecordException, as the scopes record it).
//
// The decision between the two cases is taken when RunTraced/Traced is CALLED, in the calling
// flow (as xraysink's decorator captures the context at call time).

namespace internal {

// Where a job's segment goes, decided in the starting flow.
struct TaskStart {
  core::Recorder* recorder = nullptr;  // null: tracing disabled, run untraced
  std::string name;
  std::optional<core::BeginSegmentOptions> in_trace;  // set: the job continues this trace
};

TaskStart Prepare(std::string_view name, const TaskOptions& options);
std::shared_ptr<core::Segment> BeginTaskSegment(const TaskStart& start, const TaskOptions& options);
// Records how the job ended and ends its segment.
void FinishTask(core::Segment* segment, const std::exception_ptr& error);

template <typename T, typename Executor>
boost::asio::awaitable<T, Executor> RunAwaitable(TaskStart start, TaskOptions options,
                                                 boost::asio::awaitable<T, Executor> job) {
  std::shared_ptr<core::Segment> segment = BeginTaskSegment(start, options);
  // Spawned on a //context TracedExecutor, this coroutine has a context of its own; co_awaited,
  // or on a plain executor, it shares its caller's flow or thread: the caller gets its context
  // back when the job is done.
  core::TraceContext caller = core::CurrentContext();
  core::CurrentContext().Reset(segment);
  std::exception_ptr error;
  if constexpr (std::is_void_v<T>) {
    try {
      co_await std::move(job);
    } catch (...) {
      error = std::current_exception();
    }
    FinishTask(segment.get(), error);
    core::CurrentContext() = std::move(caller);
    if (error) std::rethrow_exception(error);
  } else {
    std::optional<T> result;
    try {
      result.emplace(co_await std::move(job));
    } catch (...) {
      error = std::current_exception();
    }
    FinishTask(segment.get(), error);
    core::CurrentContext() = std::move(caller);
    if (error) std::rethrow_exception(error);
    co_return std::move(*result);
  }
}

}  // namespace internal

// Runs `job` (a callable taking no arguments) now, on this thread, traced as task `name`.
// Returns what it returns; rethrows what it throws.
template <typename F>
std::invoke_result_t<F> RunTraced(std::string_view name, F&& job, TaskOptions options = {}) {
  internal::TaskStart start = internal::Prepare(name, options);
  core::TraceContext context(internal::BeginTaskSegment(start, options));
  core::ScopedContext scope(context);
  try {
    if constexpr (std::is_void_v<std::invoke_result_t<F>>) {
      std::forward<F>(job)();
      internal::FinishTask(context.segment(), nullptr);
    } else {
      auto result = std::forward<F>(job)();
      internal::FinishTask(context.segment(), nullptr);
      return result;
    }
  } catch (...) {
    internal::FinishTask(context.segment(), std::current_exception());
    throw;
  }
}

// The awaitable `job` traced as task `name`, to co_spawn (or co_await) on an executor wrapped
// by context::MakeTracedExecutor:
//
//   co_spawn(traced_executor, tasks::Traced("send-email", SendEmail(order)), detached);
//
// With g++ 12, do not call it in a full-expression that also holds a co_await, such as
// `co_spawn(co_await this_coro::executor, tasks::Traced(...), detached)`: g++ then destroys a
// stale copy of the by-value arguments (a double free; seen with ASan). Fetch the executor in a
// statement of its own first.
template <typename T, typename Executor>
boost::asio::awaitable<T, Executor> Traced(std::string_view name,
                                           boost::asio::awaitable<T, Executor> job,
                                           TaskOptions options = {}) {
  internal::TaskStart start = internal::Prepare(name, options);
  return internal::RunAwaitable(std::move(start), std::move(options), std::move(job));
}

}  // namespace xraysink::tasks

#endif  // XRAYSINK_TASKS_TASK_H_
