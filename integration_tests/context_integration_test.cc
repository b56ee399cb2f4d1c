// The async context on the real pipeline (issue 3): flows on a 4-thread io_context through the
// traced executor -> recorder -> UdpEmitter -> real UDP -> FakeDaemon, which assembles what it
// receives into traces. Every check is on what the daemon got.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/defer.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <chrono>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "context/handoff.h"
#include "context/scopes.h"
#include "context/testing/test_recorder.h"
#include "context/traced_executor.h"
#include "core/default_sampler.h"
#include "core/entity.h"
#include "core/recorder.h"
#include "emitter/udp_emitter.h"
#include "integration_tests/fake_daemon.h"
#include "tasks/periodic_task.h"
#include "tasks/task.h"
#include "tools/local_daemon/trace.h"

namespace xraysink::integration_tests {
namespace {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using context::SubsegmentScope;
using context::testing::RunPool;
using Traced = context::TracedExecutor<asio::io_context::executor_type>;
using TracedStrand = asio::strand<Traced>;
using Event = asio::experimental::concurrent_channel<void(boost::system::error_code)>;

constexpr int kThreads = 4;
// Generous: a loaded 2-core machine under TSan. Waits return as soon as the data is there.
constexpr absl::Duration kTimeout = absl::Seconds(120);

const rapidjson::Value& Json(const tools::TraceNode& node) { return *node.entity->json; }

// The id of the entity `id` hangs under in `trace`; empty for a root or an unknown id.
std::string ParentIdOf(const tools::Trace& trace, const std::string& id) {
  const tools::TraceNode* parent = trace.ParentOf(id);
  return parent == nullptr ? "" : parent->entity->id;
}

class ContextIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The test environment points AWS_XRAY_DAEMON_ADDRESS at a dead port; it would win.
    unsetenv("AWS_XRAY_DAEMON_ADDRESS");
    absl::StatusOr<std::unique_ptr<FakeDaemon>> daemon = FakeDaemon::Start();
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    daemon_ = *std::move(daemon);

    emitter::EmitterOptions emitter_options;
    emitter_options.daemon_address = daemon_->address();
    emitter_options.queue_capacity = 1 << 16;  // every flow's document may end at once
    absl::StatusOr<std::shared_ptr<emitter::UdpEmitter>> emitter =
        emitter::UdpEmitter::Create(emitter_options);
    ASSERT_TRUE(emitter.ok()) << emitter.status();
    emitter_ = *emitter;

    core::RecorderOptions options;
    options.service_name = "context-integration";
    options.read_environment = false;
    options.sampler = std::make_shared<core::DefaultSampler>(0, 1.0);
    options.sink = emitter_;
    absl::StatusOr<std::shared_ptr<core::Recorder>> recorder =
        core::Recorder::Create(std::move(options));
    ASSERT_TRUE(recorder.ok()) << recorder.status();
    recorder_ = *recorder;
    task_options_.recorder = recorder_.get();
  }

  // Checks what every test expects of the pipeline once its work is done: everything sent,
  // nothing malformed, no flow without its context.
  void ExpectCleanPipeline() {
    EXPECT_TRUE(emitter_->Flush(absl::Now() + kTimeout));
    const emitter::UdpEmitter::Stats stats = emitter_->stats();
    EXPECT_EQ(stats.dropped_queue_full, 0u);
    EXPECT_EQ(stats.send_errors, 0u);
    EXPECT_EQ(daemon_->malformed_count(), 0u);
    EXPECT_EQ(recorder_->stats().context_missing, 0u);
  }

  std::unique_ptr<FakeDaemon> daemon_;
  std::shared_ptr<emitter::UdpEmitter> emitter_;
  std::shared_ptr<core::Recorder> recorder_;
  tasks::TaskOptions task_options_;
  asio::io_context io_{kThreads};
  Traced ex_ = context::MakeTracedExecutor(io_.get_executor());
  context::ScopedRestore fresh_{context::CapturedContext()};  // the test thread's own context
};

// ---------------------------------------------------------------------------- many flows

// Where a hop may go besides the coroutine's own executor.
struct Elsewhere {
  std::vector<TracedStrand> strands;         // traced strands shared by all flows
  asio::thread_pool::executor_type foreign;  // a plain executor of another pool
};

// One random hop: a timer wait of 0-2 ms, a post or defer to the coroutine's executor, a
// dispatch or post to a shared strand, or a post through another pool's plain executor.
awaitable<void> Hop(std::minstd_rand& random, const Elsewhere& elsewhere) {
  auto executor = co_await asio::this_coro::executor;
  const TracedStrand& strand = elsewhere.strands[random() % elsewhere.strands.size()];
  switch (random() % 6) {
    case 0: {
      asio::steady_timer timer(executor, std::chrono::microseconds(random() % 2001));
      co_await timer.async_wait(use_awaitable);
      break;
    }
    case 1:
      co_await asio::post(executor, use_awaitable);
      break;
    case 2:
      co_await asio::defer(executor, use_awaitable);
      break;
    case 3:
      co_await asio::dispatch(strand, use_awaitable);
      break;
    case 4:
      co_await asio::post(strand, use_awaitable);
      break;
    default:
      co_await asio::post(elsewhere.foreign, use_awaitable);
      break;
  }
}

int HopsOf(int flow) { return 2 + flow % 4; }

TEST_F(ContextIntegrationTest, ConcurrentFlowsArriveWholeUnderTheirOwnSegments) {
  constexpr int kFlows = 2000;
  asio::thread_pool foreign(2);
  Elsewhere elsewhere{{}, foreign.get_executor()};
  for (int i = 0; i < 8; ++i) elsewhere.strands.push_back(asio::make_strand(ex_));
  struct Begun {
    std::string trace_id, segment_id;
  };
  std::vector<Begun> begun(kFlows);  // each flow writes its own slot

  auto run_flow = [&](int flow) -> awaitable<void> {
    std::minstd_rand random(flow + 1);
    core::Segment* segment = recorder_->BeginSegment("flow");
    begun[flow] = {segment->trace_id().ToString(), segment->id().ToString()};
    recorder_->PutAnnotation("flow", flow);
    for (int hop = 0; hop < HopsOf(flow); ++hop) {
      SubsegmentScope outer(*recorder_, "hop");
      co_await Hop(random, elsewhere);
      // Annotates whatever is current after the hop: another flow's entity if it crossed.
      recorder_->PutAnnotation("flow", flow);
      {
        SubsegmentScope inner(*recorder_, "inner");
        co_await Hop(random, elsewhere);
        recorder_->PutAnnotation("flow", flow);
      }
    }
    recorder_->EndSegment();
  };
  std::atomic<int> failed{0};
  for (int flow = 0; flow < kFlows; ++flow) {
    // Half start on the pool, half on strands (then every resumption goes through a strand).
    asio::any_io_executor executor = flow % 2 == 0
                                         ? asio::any_io_executor(ex_)
                                         : asio::any_io_executor(elsewhere.strands[flow % 8]);
    asio::co_spawn(executor, run_flow(flow), [&](std::exception_ptr e) {
      if (e) ++failed;
    });
  }
  ASSERT_TRUE(RunPool(io_, kThreads));
  foreign.join();
  EXPECT_EQ(failed.load(), 0);

  ASSERT_TRUE(daemon_->WaitFor(kFlows, kTimeout)) << daemon_->documents().size();
  ExpectCleanPipeline();
  EXPECT_EQ(daemon_->documents().size(), static_cast<size_t>(kFlows));
  EXPECT_EQ(daemon_->trace_ids().size(), static_cast<size_t>(kFlows));
  for (int flow = 0; flow < kFlows; ++flow) {
    SCOPED_TRACE(absl::StrCat("flow ", flow));
    const std::optional<tools::Trace> trace = daemon_->trace(begun[flow].trace_id);
    ASSERT_TRUE(trace.has_value());
    ASSERT_TRUE(trace->complete());
    ASSERT_EQ(trace->roots().size(), 1u);
    const tools::TraceNode& segment = trace->roots()[0];
    EXPECT_EQ(segment.entity->id, begun[flow].segment_id);
    EXPECT_EQ(Json(segment)["annotations"]["flow"].GetInt(), flow);
    ASSERT_EQ(segment.children.size(), static_cast<size_t>(HopsOf(flow)));
    for (const tools::TraceNode& hop : segment.children) {
      EXPECT_EQ(hop.entity->name, "hop");
      EXPECT_EQ(hop.entity->parent_id, segment.entity->id);
      EXPECT_EQ(Json(hop)["annotations"]["flow"].GetInt(), flow);
      ASSERT_EQ(hop.children.size(), 1u);
      const tools::TraceNode& inner = hop.children[0];
      EXPECT_EQ(inner.entity->name, "inner");
      EXPECT_EQ(inner.entity->parent_id, hop.entity->id);
      EXPECT_EQ(Json(inner)["annotations"]["flow"].GetInt(), flow);
      EXPECT_TRUE(inner.children.empty());
    }
  }
}

// ---------------------------------------------------------------------------- tasks

TEST_F(ContextIntegrationTest, NestedJobsOutliveTheirStartersAndHangUnderCreateTask) {
  constexpr int kLevels = 3;
  // release[level - 1] lets job `level` go on: sent once its starter's segment has arrived.
  std::vector<std::unique_ptr<Event>> release;
  for (int level = 1; level <= kLevels; ++level) release.push_back(std::make_unique<Event>(ex_, 1));

  std::function<awaitable<void>(int)> job = [&](int level) -> awaitable<void> {
    co_await release[level - 1]->async_receive(use_awaitable);
    SubsegmentScope step(*recorder_, absl::StrCat("step-", level));
    co_await asio::post(use_awaitable);
    if (level < kLevels) {
      asio::co_spawn(co_await asio::this_coro::executor,
                     tasks::Traced(absl::StrCat("level", level + 1), job(level + 1), task_options_),
                     asio::detached);
    }
  };
  asio::co_spawn(
      ex_,
      [&]() -> awaitable<void> {
        recorder_->BeginSegment("request");
        asio::co_spawn(co_await asio::this_coro::executor,
                       tasks::Traced("level1", job(1), task_options_), asio::detached);
        recorder_->EndSegment();
      },
      asio::detached);
  std::future<bool> pool = std::async(std::launch::async, [&] { return RunPool(io_, kThreads); });
  bool starters_arrived = true;
  for (int level = 1; level <= kLevels; ++level) {
    // The request, then each job, is at the daemon before the job it started may finish.
    starters_arrived = starters_arrived && daemon_->WaitFor(level, kTimeout);
    release[level - 1]->try_send(boost::system::error_code());
  }
  ASSERT_TRUE(pool.get());
  ASSERT_TRUE(starters_arrived);
  ASSERT_TRUE(daemon_->WaitFor(kLevels + 1, kTimeout));
  ExpectCleanPipeline();

  const std::vector<tools::ReceivedDocument> documents = daemon_->documents();
  ASSERT_EQ(documents.size(), static_cast<size_t>(kLevels + 1));
  EXPECT_EQ(documents[0].entity().name, "request");
  const std::string trace_id = documents[0].entity().trace_id;
  ASSERT_EQ(daemon_->trace_ids(), std::vector<std::string>{trace_id});
  const std::optional<tools::Trace> trace = daemon_->trace(trace_id);
  ASSERT_TRUE(trace.has_value());
  EXPECT_TRUE(trace->complete());
  ASSERT_EQ(trace->roots().size(), 1u);  // everything hangs under the request

  std::string starter_id = documents[0].entity().id;  // where the next Create Task hangs
  for (int level = 1; level <= kLevels; ++level) {
    SCOPED_TRACE(absl::StrCat("level ", level));
    const std::string name = absl::StrCat("level", level);
    EXPECT_EQ(documents[level].entity().name, name);  // arrived after its starter
    EXPECT_EQ(documents[level].entity().trace_id, trace_id);
    const tools::TraceNode* created = trace->FindByName(absl::StrCat("Create Task: ", name));
    const tools::TraceNode* segment = trace->FindByName(name);
    ASSERT_NE(created, nullptr);
    ASSERT_NE(segment, nullptr);
    EXPECT_TRUE(segment->entity->is_segment);
    EXPECT_EQ(ParentIdOf(*trace, created->entity->id), starter_id);
    EXPECT_EQ(segment->entity->parent_id, created->entity->id);
    EXPECT_EQ(trace->ParentOf(segment->entity->id), created);
    const tools::TraceNode* step = trace->FindByName(absl::StrCat("step-", level));
    ASSERT_NE(step, nullptr);
    EXPECT_EQ(trace->ParentOf(step->entity->id), segment);
    starter_id = step->entity->id;
  }
}

TEST_F(ContextIntegrationTest, AStdThreadContinuesTheCapturedFlow) {
  core::Segment* segment = recorder_->BeginSegment("handoff");
  const std::string trace_id = segment->trace_id().ToString();
  const std::string work_id = recorder_->BeginSubsegment("work")->id().ToString();
  std::promise<void> thread_begun, flow_ended;
  std::thread worker([&, captured = context::Capture()] {
    context::ScopedRestore restore(captured);
    SubsegmentScope on_thread(*recorder_, "on-thread");
    recorder_->PutAnnotation("thread", "worker");
    thread_begun.set_value();
    flow_ended.get_future().wait();
  });
  thread_begun.get_future().wait();
  recorder_->EndSubsegment();
  recorder_->EndSegment();
  EXPECT_EQ(core::Recorder::PeekCurrentEntity(), nullptr);
  // The segment waits for the thread's subsegment: nothing goes out yet.
  EXPECT_EQ(emitter_->stats().enqueued, 0u);
  flow_ended.set_value();
  worker.join();

  ASSERT_TRUE(daemon_->WaitFor(1, kTimeout));
  ExpectCleanPipeline();
  EXPECT_EQ(daemon_->documents().size(), 1u);
  const std::optional<tools::Trace> trace = daemon_->trace(trace_id);
  ASSERT_TRUE(trace.has_value());
  EXPECT_TRUE(trace->complete());
  const tools::TraceNode* on_thread = trace->FindByName("on-thread");
  ASSERT_NE(on_thread, nullptr);
  EXPECT_EQ(ParentIdOf(*trace, on_thread->entity->id), work_id);
  EXPECT_STREQ(Json(*on_thread)["annotations"]["thread"].GetString(), "worker");
}

TEST_F(ContextIntegrationTest, AnExceptionArrivesAsFaultAndCause) {
  auto failing = [&]() -> awaitable<void> {
    SubsegmentScope charge(*recorder_, "charge");
    try {
      co_await asio::post(use_awaitable);
      throw std::runtime_error("card declined");
    } catch (...) {
      charge.RecordException();
      throw;
    }
  };
  std::exception_ptr escaped;
  asio::co_spawn(ex_, tasks::Traced("payment", failing(), task_options_),
                 [&](std::exception_ptr e) { escaped = e; });
  ASSERT_TRUE(RunPool(io_, kThreads));
  ASSERT_NE(escaped, nullptr);  // the job's exception still reaches its completion
  EXPECT_THROW(std::rethrow_exception(escaped), std::runtime_error);

  ASSERT_TRUE(daemon_->WaitFor(1, kTimeout));
  ExpectCleanPipeline();
  const std::vector<tools::ReceivedDocument> documents = daemon_->documents();
  ASSERT_EQ(documents.size(), 1u);
  const rapidjson::Value& segment = documents[0].json();
  EXPECT_TRUE(segment["fault"].GetBool());
  const rapidjson::Value& charge = segment["subsegments"][0];
  EXPECT_STREQ(charge["name"].GetString(), "charge");
  EXPECT_TRUE(charge["fault"].GetBool());
  const rapidjson::Value& exception = charge["cause"]["exceptions"][0];
  EXPECT_STREQ(exception["message"].GetString(), "card declined");
  EXPECT_NE(std::string(exception["type"].GetString()).find("runtime_error"), std::string::npos);
  // The same exception, escaping the job, is referenced on the segment by its id.
  ASSERT_TRUE(segment["cause"].IsString());
  EXPECT_STREQ(segment["cause"].GetString(), exception["id"].GetString());
}

TEST_F(ContextIntegrationTest, ACancelledJobIsNotAFault) {
  TracedStrand strand = asio::make_strand(ex_);
  asio::steady_timer timer(io_, std::chrono::hours(1));  // used on `strand` only
  Event waiting(ex_, 1);
  auto job = [&]() -> awaitable<void> {
    { SubsegmentScope prepare(*recorder_, "prepare"); }
    // Sent in the same strand step that starts the wait: the canceller's post to the strand
    // runs after it.
    waiting.try_send(boost::system::error_code());
    co_await timer.async_wait(use_awaitable);
  };
  std::exception_ptr escaped;
  asio::co_spawn(strand, tasks::Traced("cancellable", job(), task_options_),
                 [&](std::exception_ptr e) { escaped = e; });
  asio::co_spawn(
      ex_,
      [&]() -> awaitable<void> {
        co_await waiting.async_receive(use_awaitable);
        asio::post(strand, [&] { timer.cancel(); });
      },
      asio::detached);
  ASSERT_TRUE(RunPool(io_, kThreads));
  ASSERT_NE(escaped, nullptr);
  try {
    std::rethrow_exception(escaped);
  } catch (const boost::system::system_error& error) {
    EXPECT_EQ(error.code(), asio::error::operation_aborted);
  }

  ASSERT_TRUE(daemon_->WaitFor(1, kTimeout));
  ExpectCleanPipeline();
  const std::vector<tools::ReceivedDocument> documents = daemon_->documents();
  ASSERT_EQ(documents.size(), 1u);
  const rapidjson::Value& segment = documents[0].json();
  EXPECT_FALSE(segment.HasMember("fault"));
  EXPECT_FALSE(segment.HasMember("cause"));
  EXPECT_TRUE(segment["annotations"]["cancelled"].GetBool());
  EXPECT_STREQ(segment["subsegments"][0]["name"].GetString(), "prepare");
}

TEST_F(ContextIntegrationTest, PeriodicRunsAreSeparateTraces) {
  constexpr int kRuns = 3;
  std::atomic<int> completed{0};
  std::shared_ptr<tasks::PeriodicTask> periodic;
  tasks::PeriodicTask::Options options;
  options.task = task_options_;
  options.run_immediately = true;
  // Scheduled from inside a trace: the runs still start traces of their own.
  const std::string scheduler_trace = recorder_->BeginSegment("scheduler")->trace_id().ToString();
  periodic = tasks::PeriodicTask::Start(
      ex_, "poll", std::chrono::milliseconds(1),
      [&]() -> awaitable<void> {
        SubsegmentScope step(*recorder_, "poll-step");
        co_await asio::post(use_awaitable);
        if (++completed == kRuns) periodic->Stop();
      },
      options);
  recorder_->EndSegment();
  ASSERT_TRUE(RunPool(io_, kThreads));
  EXPECT_EQ(periodic->runs_started(), static_cast<uint64_t>(kRuns));
  EXPECT_EQ(periodic->runs_failed(), 0u);

  ASSERT_TRUE(daemon_->WaitFor(kRuns + 1, kTimeout));
  ExpectCleanPipeline();
  std::set<std::string> run_traces;
  for (const tools::ReceivedDocument& document : daemon_->documents()) {
    const tools::ReceivedEntity& segment = document.entity();
    EXPECT_TRUE(segment.is_segment);
    if (segment.name == "scheduler") {
      EXPECT_EQ(segment.trace_id, scheduler_trace);
      EXPECT_TRUE(segment.subsegments.empty());  // no Create Task: a run is not its child
      continue;
    }
    EXPECT_EQ(segment.name, "context-integration");
    EXPECT_TRUE(segment.parent_id.empty());
    ASSERT_EQ(segment.subsegments.size(), 1u);
    EXPECT_EQ(segment.subsegments[0].name, "poll-step");
    run_traces.insert(segment.trace_id);
  }
  EXPECT_EQ(run_traces.size(), static_cast<size_t>(kRuns));
  EXPECT_EQ(run_traces.count(scheduler_trace), 0u);
}

}  // namespace
}  // namespace xraysink::integration_tests
