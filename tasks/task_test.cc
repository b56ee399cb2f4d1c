#include "tasks/task.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <chrono>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "context/testing/test_recorder.h"
#include "context/traced_executor.h"
#include "core/log.h"
#include "tasks/periodic_task.h"

namespace xraysink::tasks {
namespace {

namespace asio = boost::asio;
using context::testing::RunPool;
using context::testing::TestRecorder;

// Documents by name (segments and independently sent subsegments alike).
std::multimap<std::string, rapidjson::Document> ByName(const TestRecorder& test) {
  std::multimap<std::string, rapidjson::Document> out;
  for (auto& document : test.Documents()) {
    const std::string name = document["name"].GetString();
    out.emplace(name, std::move(document));
  }
  return out;
}

class TaskTest : public ::testing::Test {
 protected:
  TaskTest() {
    core::RecorderOptions options;
    options.service_name = "context-test";
    test_ = std::make_unique<TestRecorder>(options);
    task_options_.recorder = test_->recorder.get();
  }
  void TearDown() override { core::CurrentContext().Reset(); }

  std::unique_ptr<TestRecorder> test_;
  TaskOptions task_options_;
};

TEST_F(TaskTest, WithoutATraceAJobStartsANewTrace) {
  task_options_.origin = "AWS::ECS::Container";
  task_options_.annotations.emplace_back("batch", int64_t{7});
  const int result = RunTraced(
      "nightly_report",
      [&] {
        test_->recorder->BeginSubsegment("query");
        test_->recorder->EndSubsegment();
        return 42;
      },
      task_options_);
  EXPECT_EQ(result, 42);
  auto docs = ByName(*test_);
  ASSERT_EQ(docs.size(), 1u);
  const auto& segment = docs.find("context-test")->second;
  EXPECT_FALSE(segment.HasMember("parent_id"));
  EXPECT_STREQ(segment["http"]["request"]["url"].GetString(), "task://localhost/nightly_report");
  EXPECT_STREQ(segment["http"]["request"]["client_ip"].GetString(), "127.0.0.1");
  EXPECT_EQ(std::string(segment["http"]["request"]["user_agent"].GetString())
                .rfind("BackgroundTask xraysink-cpp/", 0),
            0u);
  EXPECT_STREQ(segment["origin"].GetString(), "AWS::ECS::Container");
  EXPECT_EQ(segment["annotations"]["batch"].GetInt(), 7);
  EXPECT_STREQ(segment["subsegments"][0]["name"].GetString(), "query");
  EXPECT_EQ(core::CurrentContext().current(), nullptr);  // the caller's context is untouched
}

TEST_F(TaskTest, ExceptionsAreFaultsAndRethrown) {
  EXPECT_THROW(RunTraced(
                   "fails", [] { throw std::runtime_error("disk full"); }, task_options_),
               std::runtime_error);
  auto docs = ByName(*test_);
  const auto& segment = docs.begin()->second;
  EXPECT_TRUE(segment["fault"].GetBool());
  EXPECT_STREQ(segment["cause"]["exceptions"][0]["message"].GetString(), "disk full");
}

TEST_F(TaskTest, CancellationIsNotAFault) {
  EXPECT_THROW(
      RunTraced(
          "cancelled", [] { throw boost::system::system_error(asio::error::operation_aborted); },
          task_options_),
      boost::system::system_error);
  auto docs = ByName(*test_);
  const auto& segment = docs.begin()->second;
  EXPECT_FALSE(segment.HasMember("fault"));
  EXPECT_TRUE(segment["annotations"]["cancelled"].GetBool());
}

// One job cancelled by timer.cancel() from another handler, one losing a timeout race (Asio
// cancels it through its cancellation slot): neither is a fault, and the job's exception leaves
// Traced unchanged.
TEST_F(TaskTest, CancelledAwaitableJobsAreNotFaults) {
  using asio::experimental::awaitable_operators::operator||;
  asio::io_context io;
  auto executor = context::MakeTracedExecutor(io.get_executor());
  std::map<std::string, std::exception_ptr> thrown;  // only touched on the strand
  auto wait = [&](std::string name, bool cancel) -> asio::awaitable<void> {
    const auto on = co_await asio::this_coro::executor;
    asio::steady_timer forever(on, std::chrono::hours(1));
    // On the strand, the cancel runs once the wait has begun.
    if (cancel) asio::post(on, [&forever] { forever.cancel(); });
    try {
      co_await forever.async_wait(asio::use_awaitable);
    } catch (...) {
      thrown[name] = std::current_exception();
      throw;
    }
  };
  const TaskOptions options = task_options_;
  auto strand = asio::make_strand(executor);
  std::exception_ptr escaped;
  asio::co_spawn(strand, Traced("cancelled", wait("cancelled", true), options),
                 [&](std::exception_ptr e) { escaped = e; });
  bool timed_out = false;
  asio::co_spawn(
      strand,
      [&]() -> asio::awaitable<void> {
        asio::steady_timer timeout(co_await asio::this_coro::executor,
                                   std::chrono::milliseconds(1));
        auto winner = co_await (Traced("raced", wait("raced", false), options) ||
                                timeout.async_wait(asio::use_awaitable));
        timed_out = winner.index() == 1;
      },
      asio::detached);
  ASSERT_TRUE(RunPool(io, 4));
  EXPECT_TRUE(timed_out);
  ASSERT_EQ(thrown.size(), 2u);
  EXPECT_EQ(escaped, thrown["cancelled"]);  // the very same exception object
  for (const auto& [name, error] : thrown) {
    try {
      std::rethrow_exception(error);
    } catch (const boost::system::system_error& e) {
      EXPECT_EQ(e.code(), asio::error::operation_aborted) << name;
    }
  }
  auto docs = ByName(*test_);
  ASSERT_EQ(docs.size(), 2u);
  for (const auto& [name, segment] : docs) {
    EXPECT_EQ(name, "context-test");
    EXPECT_FALSE(segment.HasMember("fault"));
    EXPECT_FALSE(segment.HasMember("error"));
    EXPECT_FALSE(segment.HasMember("cause"));
    EXPECT_TRUE(segment["annotations"]["cancelled"].GetBool());
  }
}

TEST_F(TaskTest, InsideATraceAJobIsItsOwnSegmentUnderCreateTask) {
  const std::string trace_id = test_->recorder->BeginSegment("request")->trace_id().ToString();
  RunTraced(
      "send_email", [] {}, task_options_);
  test_->recorder->EndSegment();
  auto docs = ByName(*test_);
  ASSERT_EQ(docs.size(), 2u);
  const auto& request_json = docs.find("request")->second;
  const auto& created = request_json["subsegments"][0];
  EXPECT_STREQ(created["name"].GetString(), "Create Task: send_email");
  EXPECT_STREQ(created["http"]["request"]["url"].GetString(), "task://localhost/send_email");
  const auto& job = docs.find("send_email")->second;
  EXPECT_EQ(job["trace_id"].GetString(), trace_id);
  EXPECT_STREQ(job["parent_id"].GetString(), created["id"].GetString());
}

// A request coroutine starts a job that outlives it: the request's segment goes out first, the
// job's later, linked to it; three levels of nested jobs, on a 4-thread pool.
TEST_F(TaskTest, AwaitableJobsOutliveTheirStarterThreeLevelsDeep) {
  asio::io_context io;
  auto executor = context::MakeTracedExecutor(io.get_executor());
  std::atomic<int> finished{0};
  core::Recorder& recorder = *test_->recorder;
  const TaskOptions options = task_options_;

  std::function<asio::awaitable<void>(int)> job = [&](int level) -> asio::awaitable<void> {
    recorder.BeginSubsegment("step-" + std::to_string(level));
    asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(5));
    co_await timer.async_wait(asio::use_awaitable);
    if (level < 3) {
      asio::co_spawn(co_await asio::this_coro::executor,
                     Traced("level" + std::to_string(level + 1), job(level + 1), options),
                     asio::detached);
    }
    recorder.EndSubsegment();
    ++finished;
  };
  asio::co_spawn(
      executor,
      [&]() -> asio::awaitable<void> {
        recorder.BeginSegment("request");
        asio::co_spawn(co_await asio::this_coro::executor, Traced("level1", job(1), options),
                       asio::detached);
        recorder.EndSegment();  // the request is done before its job
        co_return;
      },
      asio::detached);
  ASSERT_TRUE(RunPool(io, 4));
  EXPECT_EQ(finished.load(), 3);

  auto docs = ByName(*test_);
  ASSERT_EQ(docs.size(), 4u);
  const std::string trace = docs.find("request")->second["trace_id"].GetString();
  std::string parent_created = docs.find("request")->second["subsegments"][0]["id"].GetString();
  for (int level = 1; level <= 3; ++level) {
    const auto& segment = docs.find("level" + std::to_string(level))->second;
    EXPECT_EQ(segment["trace_id"].GetString(), trace);
    EXPECT_EQ(segment["parent_id"].GetString(), parent_created) << level;
    const auto& step = segment["subsegments"][0];
    EXPECT_EQ(std::string(step["name"].GetString()), "step-" + std::to_string(level));
    if (level < 3) {
      const auto& created = step["subsegments"][0];
      EXPECT_EQ(std::string(created["name"].GetString()),
                "Create Task: level" + std::to_string(level + 1));
      parent_created = created["id"].GetString();
    }
  }
}

// co_awaited (not spawned), a traced job runs in its caller's flow: the caller's context comes
// back when it is done, so what the caller records next lands in its own segment, which is
// sent.
TEST_F(TaskTest, ACoAwaitedJobGivesItsCallerItsContextBack) {
  asio::io_context io;
  auto executor = context::MakeTracedExecutor(io.get_executor());
  core::Entity* before = nullptr;
  core::Entity* after = nullptr;
  asio::co_spawn(
      executor,
      [&]() -> asio::awaitable<void> {
        test_->recorder->BeginSegment("request");
        before = core::CurrentContext().current();
        co_await Traced(
            "job", []() -> asio::awaitable<void> { co_return; }(), task_options_);
        after = core::CurrentContext().current();
        test_->recorder->BeginSubsegment("after-job");
        test_->recorder->EndSubsegment();
        test_->recorder->EndSegment();
      },
      asio::detached);
  ASSERT_TRUE(RunPool(io, 1));
  EXPECT_EQ(after, before);
  auto docs = ByName(*test_);
  ASSERT_EQ(docs.count("request"), 1u);
  const auto& request = docs.find("request")->second;
  ASSERT_TRUE(request.HasMember("subsegments"));
  bool after_job = false;
  for (const auto& sub : request["subsegments"].GetArray()) {
    after_job = after_job || std::string(sub["name"].GetString()) == "after-job";
  }
  EXPECT_TRUE(after_job);
  EXPECT_EQ(docs.count("job"), 1u);
}

TEST_F(TaskTest, PeriodicRunsAreSeparateTracesAndNeverOverlap) {
  asio::io_context io;
  auto executor = context::MakeTracedExecutor(io.get_executor());
  std::atomic<int> active{0}, max_active{0}, completed{0};
  std::shared_ptr<PeriodicTask> periodic;
  PeriodicTask::Options options;
  options.task = task_options_;
  options.run_immediately = true;
  // Each run lasts 3 periods: overlapping ticks must be skipped.
  periodic = PeriodicTask::Start(
      executor, "poll", std::chrono::milliseconds(2),
      [&]() -> asio::awaitable<void> {
        const int now = ++active;
        int seen = max_active.load();
        while (now > seen && !max_active.compare_exchange_weak(seen, now)) {
        }
        asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(6));
        co_await timer.async_wait(asio::use_awaitable);
        --active;
        if (++completed == 3) periodic->Stop();
      },
      options);
  ASSERT_TRUE(RunPool(io, 4));
  EXPECT_EQ(max_active.load(), 1);
  EXPECT_GE(periodic->ticks_skipped(), 1u);
  EXPECT_EQ(periodic->runs_started(), 3u);
  auto docs = ByName(*test_);
  ASSERT_EQ(docs.size(), 3u);
  std::set<std::string> traces;
  for (auto& [name, doc] : docs) {
    EXPECT_EQ(name, "context-test");
    EXPECT_FALSE(doc.HasMember("parent_id"));
    traces.insert(doc["trace_id"].GetString());
  }
  EXPECT_EQ(traces.size(), 3u);
}

// An executor blocked through many ticks runs the job once when it wakes, not once per missed
// tick in a burst, and counts the missed ones.
TEST_F(TaskTest, APeriodicTaskSkipsTheTicksAStalledExecutorMissed) {
  constexpr auto kPeriod = std::chrono::milliseconds(20);
  asio::io_context io;
  std::mutex mu;
  std::vector<std::chrono::steady_clock::time_point> starts;
  std::shared_ptr<PeriodicTask> periodic = PeriodicTask::Start(
      io.get_executor(), "tick", kPeriod,
      [&]() -> asio::awaitable<void> {
        std::lock_guard<std::mutex> lock(mu);
        starts.push_back(std::chrono::steady_clock::now());
        if (starts.size() == 4) periodic->Stop();
        co_return;
      },
      PeriodicTask::Options{.task = task_options_});
  // The stall under test: the only thread is busy through ten periods.
  asio::post(io, [&] { std::this_thread::sleep_for(10 * kPeriod); });
  ASSERT_TRUE(RunPool(io, 1));
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(starts.size(), 4u);
  int within_a_period_of_waking = 0;
  for (const auto start : starts) within_a_period_of_waking += start - starts[0] < kPeriod;
  EXPECT_LE(within_a_period_of_waking, 2) << "missed ticks were replayed back to back";
  EXPECT_GE(periodic->ticks_skipped(), 5u);
}

// On a plain executor a periodic task runs on threads that have contexts of their own (the
// default one of each thread, used by plain threaded code): it leaves them alone, and its runs
// are new traces all the same. The loop used to reset the context of the thread it started on.
TEST_F(TaskTest, APeriodicTaskOnAPlainExecutorLeavesTheThreadsContextAlone) {
  asio::io_context io;
  std::shared_ptr<PeriodicTask> periodic;
  core::Segment* thread_segment = nullptr;
  std::atomic<bool> context_kept{false};
  asio::post(io, [&] {
    thread_segment = test_->recorder->BeginSegment("thread-work");
    periodic = PeriodicTask::Start(
        io.get_executor(), "tick", std::chrono::milliseconds(1),
        [&]() -> asio::awaitable<void> {
          periodic->Stop();
          // Runs once the run has ended and given the thread its context back.
          asio::post(io, [&] {
            context_kept = test_->recorder->CurrentEntity() == thread_segment;
            test_->recorder->EndSegment();
          });
          co_return;
        },
        PeriodicTask::Options{.task = task_options_, .run_immediately = true});
  });
  ASSERT_TRUE(RunPool(io, 1));
  EXPECT_TRUE(context_kept);
  EXPECT_EQ(periodic->runs_started(), 1u);
  auto docs = ByName(*test_);
  ASSERT_EQ(docs.count("thread-work"), 1u);
  ASSERT_EQ(docs.count("context-test"), 1u);
  const auto& thread_work = docs.find("thread-work")->second;
  const auto& run = docs.find("context-test")->second;
  EXPECT_FALSE(run.HasMember("parent_id"));
  EXPECT_STRNE(run["trace_id"].GetString(), thread_work["trace_id"].GetString());
  EXPECT_FALSE(thread_work.HasMember("subsegments"));  // no "Create Task" under it
}

std::vector<std::string> logged;  // by LogInto, for the test below
void LogInto(core::LogLevel, std::string_view message) { logged.emplace_back(message); }

// A period of zero, or of 30 ns (a units slip), would run the job back to back; the longest
// one would overflow the schedule: the task never runs, and the log says why.
TEST_F(TaskTest, APeriodicTaskWithAPeriodOutOfRangeNeverRuns) {
  for (const std::chrono::steady_clock::duration period :
       {std::chrono::steady_clock::duration(0), std::chrono::steady_clock::duration(30),
        std::chrono::steady_clock::duration::max()}) {
    logged.clear();
    core::SetLogHandler(LogInto);
    asio::io_context io;
    std::atomic<int> runs{0};
    auto periodic = PeriodicTask::Start(
        io.get_executor(), "spin", period,
        [&]() -> asio::awaitable<void> {
          ++runs;
          co_return;
        },
        PeriodicTask::Options{.task = task_options_, .run_immediately = true});
    io.run_for(std::chrono::milliseconds(100));  // returns at once when nothing was scheduled
    core::SetLogHandler(nullptr);
    EXPECT_EQ(runs.load(), 0) << period.count();
    EXPECT_EQ(periodic->runs_started(), 0u);
    ASSERT_EQ(logged.size(), 1u);
    EXPECT_NE(logged[0].find("'spin' not started: its period must be from 1 ms to 366 days"),
              std::string::npos)
        << logged[0];
    periodic->Stop();  // still fine
  }
}

TEST_F(TaskTest, DisabledRecorderRunsTheJobUntraced) {
  core::RecorderOptions options;
  options.enabled = false;
  TestRecorder disabled(options);
  TaskOptions task_options;
  task_options.recorder = disabled.recorder.get();
  EXPECT_EQ(RunTraced(
                "x", [] { return 5; }, task_options),
            5);
  EXPECT_TRUE(disabled.Documents().empty());
}

}  // namespace
}  // namespace xraysink::tasks
