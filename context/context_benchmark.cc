// Cost of making the X-Ray context follow async work: a handler posted through a
// TracedExecutor vs the plain io_context executor, and a coroutine resumption, on a single
// thread run loop. Each flow has a segment and one open subsegment, as a request would. Then the
// cost of tracing a background job (tasks::Traced): its segment begun and ended, and its
// hand-off to a coroutine of its own, vs the same job spawned untraced.
//
//   bazel run -c opt //context:context_benchmark

#include <benchmark/benchmark.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <memory>
#include <utility>

#include "context/traced_executor.h"
#include "core/recorder.h"
#include "tasks/task.h"

namespace xraysink::context {
namespace {

namespace asio = boost::asio;

class SampleAll : public core::Sampler {
 public:
  core::SamplingDecision ShouldTrace(const core::SamplingRequest&) override { return {true, ""}; }
};

// A recorder sampling everything whose finished segments go nowhere (serializing and sending
// them is the emitter's cost, measured there).
std::shared_ptr<core::Recorder> NowhereRecorder() {
  core::RecorderOptions options;
  options.read_environment = false;
  options.sampler = std::make_shared<SampleAll>();
  return *core::Recorder::Create(std::move(options));
}

// A recorder as above, and an open segment + subsegment installed.
class OpenFlow {
 public:
  OpenFlow() : restore_(CapturedContext()), recorder_(NowhereRecorder()) {
    recorder_->BeginSegment("benchmark");
    recorder_->BeginSubsegment("work");
  }
  ~OpenFlow() {
    recorder_->EndSubsegment();
    recorder_->EndSegment();
  }

 private:
  ScopedRestore restore_;
  std::shared_ptr<core::Recorder> recorder_;
};

// Posts batches of `kBatch` handlers through `executor` and runs them.
constexpr int kBatch = 1000;

template <typename Executor>
void PostAndRun(benchmark::State& state, asio::io_context& io, const Executor& executor) {
  int ran = 0;
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) asio::post(executor, [&ran] { ++ran; });
    io.restart();
    io.run();
  }
  benchmark::DoNotOptimize(ran);
  state.SetItemsProcessed(state.iterations() * kBatch);
}

void BM_PostPlain(benchmark::State& state) {
  OpenFlow flow;
  asio::io_context io(1);
  PostAndRun(state, io, io.get_executor());
}
BENCHMARK(BM_PostPlain);

// Unbound: each handler forks the poster's context.
void BM_PostTraced(benchmark::State& state) {
  OpenFlow flow;
  asio::io_context io(1);
  PostAndRun(state, io, MakeTracedExecutor(io.get_executor()));
}
BENCHMARK(BM_PostTraced);

void BM_PostTracedBound(benchmark::State& state) {
  OpenFlow flow;
  asio::io_context io(1);
  PostAndRun(state, io, Fork(io.get_executor()));
}
BENCHMARK(BM_PostTracedBound);

// One coroutine suspending `kBatch` times per iteration on a post: without an executor, the
// function submitted forks the coroutine's context; to an executor, Asio first binds the
// coroutine's executor to its context for the completion (as for any I/O operation).
asio::awaitable<void> Posts() {
  for (int i = 0; i < kBatch; ++i) co_await asio::post(asio::use_awaitable);
}

asio::awaitable<void> PostsTo() {
  auto executor = co_await asio::this_coro::executor;
  for (int i = 0; i < kBatch; ++i) co_await asio::post(executor, asio::use_awaitable);
}

template <typename Executor>
void Resume(benchmark::State& state, asio::awaitable<void> (*coroutine)(), const Executor& executor,
            asio::io_context& io) {
  for (auto _ : state) {
    asio::co_spawn(executor, coroutine(), asio::detached);
    io.restart();
    io.run();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

void BM_ResumeOnPostPlain(benchmark::State& state) {
  OpenFlow flow;
  asio::io_context io(1);
  Resume(state, Posts, io.get_executor(), io);
}
BENCHMARK(BM_ResumeOnPostPlain);

void BM_ResumeOnPostTraced(benchmark::State& state) {
  OpenFlow flow;
  asio::io_context io(1);
  Resume(state, Posts, MakeTracedExecutor(io.get_executor()), io);
}
BENCHMARK(BM_ResumeOnPostTraced);

void BM_ResumeOnPostToPlain(benchmark::State& state) {
  OpenFlow flow;
  asio::io_context io(1);
  Resume(state, PostsTo, io.get_executor(), io);
}
BENCHMARK(BM_ResumeOnPostToPlain);

void BM_ResumeOnPostToTraced(benchmark::State& state) {
  OpenFlow flow;
  asio::io_context io(1);
  Resume(state, PostsTo, MakeTracedExecutor(io.get_executor()), io);
}
BENCHMARK(BM_ResumeOnPostToTraced);

// The same on a strand, as on an io_context run by several threads (ServeTraced's connections):
// the bound traced executor over a strand does not fit any_io_executor's inline storage.
void BM_ResumeOnPostToStrandPlain(benchmark::State& state) {
  OpenFlow flow;
  asio::io_context io(1);
  Resume(state, PostsTo, asio::make_strand(io.get_executor()), io);
}
BENCHMARK(BM_ResumeOnPostToStrandPlain);

void BM_ResumeOnPostToStrandTraced(benchmark::State& state) {
  OpenFlow flow;
  asio::io_context io(1);
  Resume(state, PostsTo, MakeTracedExecutor(asio::make_strand(io.get_executor())), io);
}
BENCHMARK(BM_ResumeOnPostToStrandTraced);

// ---------------------------------------------------------------------------- tasks

asio::awaitable<void> Job() { co_return; }

// Batches of kJobs jobs spawned on the traced executor and run to completion; per job. With
// argument 1 they are started by a request's flow (its segment is begun and ended around each
// batch, whose size keeps it under the streaming threshold): traced, each job records a
// `Create Task` subsegment in the request and runs as its own segment, begun and ended in its
// coroutine. With argument 0 there is no request: each traced job begins a new trace.
constexpr int kJobs = 10;

template <typename MakeJob>
void SpawnJobs(benchmark::State& state, MakeJob make_job) {
  const bool in_request = state.range(0) != 0;
  ScopedRestore fresh{CapturedContext()};
  const std::shared_ptr<core::Recorder> recorder = NowhereRecorder();
  tasks::TaskOptions options;
  options.recorder = recorder.get();
  asio::io_context io(1);
  const auto executor = MakeTracedExecutor(io.get_executor());
  for (auto _ : state) {
    if (in_request) recorder->BeginSegment("request");
    for (int i = 0; i < kJobs; ++i) asio::co_spawn(executor, make_job(options), asio::detached);
    if (in_request) recorder->EndSegment();
    io.restart();
    io.run();
  }
  state.SetItemsProcessed(state.iterations() * kJobs);
}

void BM_SpawnJobUntraced(benchmark::State& state) {
  SpawnJobs(state, [](const tasks::TaskOptions&) { return Job(); });
}
BENCHMARK(BM_SpawnJobUntraced)->Arg(0)->Arg(1);

void BM_SpawnJobTraced(benchmark::State& state) {
  SpawnJobs(state,
            [](const tasks::TaskOptions& options) { return tasks::Traced("job", Job(), options); });
}
BENCHMARK(BM_SpawnJobTraced)->Arg(0)->Arg(1);

}  // namespace
}  // namespace xraysink::context
