// Cost of making the X-Ray context follow async work: a handler posted through a
// TracedExecutor vs the plain io_context executor, and a coroutine resumption, on a single
// thread run loop. Each flow has a segment and one open subsegment, as a request would.
//
//   bazel run -c opt //context:context_benchmark

#include <benchmark/benchmark.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <memory>

#include "context/traced_executor.h"
#include "core/recorder.h"

namespace xraysink::context {
namespace {

namespace asio = boost::asio;

class SampleAll : public core::Sampler {
 public:
  core::SamplingDecision ShouldTrace(const core::SamplingRequest&) override { return {true, ""}; }
};

// A recorder whose finished segments go nowhere, and an open segment + subsegment installed.
class OpenFlow {
 public:
  OpenFlow() : restore_(CapturedContext()) {
    core::RecorderOptions options;
    options.read_environment = false;
    options.sampler = std::make_shared<SampleAll>();
    recorder_ = *core::Recorder::Create(std::move(options));
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

}  // namespace
}  // namespace xraysink::context
