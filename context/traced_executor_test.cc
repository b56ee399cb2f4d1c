#include "context/traced_executor.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/defer.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "context/handoff.h"
#include "context/scopes.h"
#include "context/testing/test_recorder.h"
#include "core/recorder.h"

namespace xraysink::context {
namespace {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using core::Recorder;
using testing::RunPool;
using testing::TestRecorder;
using IoExecutor = asio::io_context::executor_type;
using Traced = TracedExecutor<IoExecutor>;
using TracedStrand = asio::strand<Traced>;
using Event = asio::experimental::concurrent_channel<void(boost::system::error_code)>;

constexpr int kThreads = 4;

static_assert(asio::execution::is_executor<Traced>::value);
static_assert(asio::execution::is_executor<TracedExecutor<IoExecutor, true>>::value);
static_assert(asio::execution::is_executor<TracedStrand>::value);
static_assert(sizeof(Traced) == sizeof(IoExecutor));
// Bound executors over an io_context stay within any_io_executor's inline storage.
static_assert(sizeof(TracedExecutor<IoExecutor, true>) <= 3 * sizeof(void*));

class TracedExecutorTest : public ::testing::Test {
 protected:
  explicit TracedExecutorTest(core::RecorderOptions options = {}) : t_(options) {}

  // Notes a handler that found another flow's entity current (tests assert there is none).
  void Check(bool same_flow) {
    if (!same_flow) ++crossed_;
  }

  TestRecorder t_;
  Recorder& recorder_ = *t_.recorder;
  asio::io_context io_{kThreads};
  Traced ex_ = MakeTracedExecutor(io_.get_executor());
  std::atomic<int> crossed_{0};
  ScopedRestore fresh_{CapturedContext()};
};

// ---------------------------------------------------------------------------- many flows

// One random hop: a timer wait of 0-2 ms, a post to the coroutine's executor, or a dispatch or
// post to a strand shared with other flows.
awaitable<void> Hop(std::minstd_rand& random, std::vector<TracedStrand>& strands) {
  auto executor = co_await asio::this_coro::executor;
  TracedStrand& strand = strands[random() % strands.size()];
  switch (random() % 4) {
    case 0: {
      asio::steady_timer timer(executor, std::chrono::microseconds(random() % 2001));
      co_await timer.async_wait(use_awaitable);
      break;
    }
    case 1:
      co_await asio::post(executor, use_awaitable);
      break;
    case 2:
      co_await asio::dispatch(strand, use_awaitable);
      break;
    default:
      co_await asio::post(strand, use_awaitable);
      break;
  }
}

int HopsOf(int flow) { return 2 + flow % 4; }

TEST_F(TracedExecutorTest, ConcurrentCoroutineFlowsNeverLoseOrCrossEntities) {
  constexpr int kFlows = 2000;
  std::vector<TracedStrand> strands;
  for (int i = 0; i < 8; ++i) strands.push_back(asio::make_strand(ex_));

  auto run_flow = [&](int flow) -> awaitable<void> {
    std::minstd_rand random(flow + 1);
    recorder_.BeginSegment("flow");
    recorder_.PutAnnotation("flow", flow);
    for (int hop = 0; hop < HopsOf(flow); ++hop) {
      SubsegmentScope outer(recorder_, "hop");
      Check(recorder_.PutAnnotation("flow", flow));
      co_await Hop(random, strands);
      Check(Recorder::PeekCurrentEntity() == outer.subsegment());
      {
        SubsegmentScope inner(recorder_, "inner");
        Check(recorder_.PutAnnotation("flow", flow));
        co_await Hop(random, strands);
        Check(Recorder::PeekCurrentEntity() == inner.subsegment());
      }
      Check(Recorder::PeekCurrentEntity() == outer.subsegment());
    }
    recorder_.EndSegment();
  };
  std::atomic<int> failed{0};
  for (int flow = 0; flow < kFlows; ++flow) {
    // Half run on the pool, half on strands (then every resumption goes through a strand).
    asio::any_io_executor executor =
        flow % 2 == 0 ? asio::any_io_executor(ex_) : asio::any_io_executor(strands[flow % 8]);
    asio::co_spawn(executor, run_flow(flow), [&](std::exception_ptr e) {
      if (e) ++failed;
    });
  }
  ASSERT_TRUE(RunPool(io_, kThreads));
  EXPECT_EQ(failed.load(), 0);
  ASSERT_EQ(crossed_.load(), 0);

  auto documents = t_.Documents();
  ASSERT_EQ(documents.size(), static_cast<size_t>(kFlows));
  std::map<int, int> hops_by_flow;
  for (const auto& document : documents) {
    const int flow = document["annotations"]["flow"].GetInt();
    const auto& hops = document["subsegments"];
    hops_by_flow[flow] = static_cast<int>(hops.Size());
    for (const auto& hop : hops.GetArray()) {
      EXPECT_STREQ(hop["name"].GetString(), "hop");
      EXPECT_EQ(hop["annotations"]["flow"].GetInt(), flow);
      ASSERT_EQ(hop["subsegments"].Size(), 1u);
      EXPECT_EQ(hop["subsegments"][0]["annotations"]["flow"].GetInt(), flow);
    }
  }
  ASSERT_EQ(hops_by_flow.size(), static_cast<size_t>(kFlows));
  for (const auto& [flow, hops] : hops_by_flow) EXPECT_EQ(hops, HopsOf(flow)) << flow;
  EXPECT_EQ(recorder_.stats().context_missing, 0u);
}

// ---------------------------------------------------------------------------- isolation

TEST_F(TracedExecutorTest, ChildrenThreeLevelsDeepAreIsolatedAndOutliveTheirParent) {
  Event begun(ex_, 3);
  Event release(ex_, 3);

  // Level 3: a plain callback posted by the grandchild; it ends its subsegment in the
  // completion of an operation it started, on whatever thread that completes.
  auto post_level = [&] {
    core::Subsegment* mine = recorder_.BeginSubsegment("posted");
    begun.try_send(boost::system::error_code());
    release.async_receive([&, mine](boost::system::error_code) {
      Check(Recorder::PeekCurrentEntity() == mine);
      recorder_.EndSubsegment();
    });
  };
  auto grandchild = [&]() -> awaitable<void> {
    SubsegmentScope mine(recorder_, "grandchild");
    asio::post(ex_, post_level);
    begun.try_send(boost::system::error_code());
    co_await release.async_receive(use_awaitable);
    Check(Recorder::PeekCurrentEntity() == mine.subsegment());
  };
  auto child = [&]() -> awaitable<void> {
    SubsegmentScope mine(recorder_, "child");
    asio::co_spawn(ex_, grandchild(), asio::detached);
    begun.try_send(boost::system::error_code());
    co_await release.async_receive(use_awaitable);
    Check(Recorder::PeekCurrentEntity() == mine.subsegment());
  };
  auto parent = [&]() -> awaitable<void> {
    recorder_.BeginSegment("parent");
    core::Subsegment* work = recorder_.BeginSubsegment("parent-work");
    asio::co_spawn(ex_, child(), asio::detached);
    for (int i = 0; i < 3; ++i) {
      co_await begun.async_receive(use_awaitable);
      Check(Recorder::PeekCurrentEntity() == work);  // the children's begins are theirs
    }
    recorder_.EndSubsegment();
    recorder_.EndSegment();  // first: every child is still open
    EXPECT_EQ(t_.sink->size(), 0u);
    for (int i = 0; i < 3; ++i) release.try_send(boost::system::error_code());
  };
  asio::co_spawn(ex_, parent(), asio::detached);
  ASSERT_TRUE(RunPool(io_, kThreads));
  ASSERT_EQ(crossed_.load(), 0);

  auto documents = t_.Documents();
  ASSERT_EQ(documents.size(), 1u);
  const auto& work = documents[0]["subsegments"][0];
  EXPECT_STREQ(work["name"].GetString(), "parent-work");
  const auto& child_json = work["subsegments"][0];
  EXPECT_STREQ(child_json["name"].GetString(), "child");
  const auto& grandchild_json = child_json["subsegments"][0];
  EXPECT_STREQ(grandchild_json["name"].GetString(), "grandchild");
  EXPECT_STREQ(grandchild_json["subsegments"][0]["name"].GetString(), "posted");
}

TEST_F(TracedExecutorTest, PostDispatchAndDeferGiveTheChildItsOwnCopy) {
  std::string work_id;
  asio::post(ex_, [&] {
    recorder_.BeginSegment("parent");
    core::Subsegment* work = recorder_.BeginSubsegment("work");
    work_id = work->id().ToString();
    // Inline (dispatch from the pool): the child's open subsegment stays the child's.
    asio::dispatch(ex_, [&, work] {
      core::Subsegment* inline_child = recorder_.BeginSubsegment("inline");
      Check(inline_child->parent() == work);
      asio::post(ex_, [&, inline_child] {
        Check(Recorder::PeekCurrentEntity() == inline_child);
        recorder_.EndSubsegment();
      });
    });
    Check(Recorder::PeekCurrentEntity() == work);
    asio::post(ex_, [&, work] {
      Check(Recorder::PeekCurrentEntity() == work);
      SubsegmentScope posted(recorder_, "posted");
    });
    asio::defer(ex_, [&, work] {
      Check(Recorder::PeekCurrentEntity() == work);
      SubsegmentScope deferred(recorder_, "deferred");
    });
    recorder_.EndSubsegment();
    recorder_.EndSegment();
  });
  ASSERT_TRUE(RunPool(io_, kThreads));
  ASSERT_EQ(crossed_.load(), 0);
  int under_work = 0;
  for (const auto& subsegment : t_.Subsegments()) {
    if (subsegment.name != "work") {
      ++under_work;
      EXPECT_EQ(subsegment.parent_id, work_id) << subsegment.name;
    }
  }
  EXPECT_EQ(under_work, 3);
}

TEST_F(TracedExecutorTest, CallbacksStartedTogetherEachGetTheirOwnStack) {
  // What a flow-wide shared stack gets wrong: completions of operations started by one handler
  // run concurrently and each begins and ends its own subsegments.
  constexpr int kTimers = 8;
  constexpr int kRounds = 3;
  std::string fan_out_id;
  asio::post(ex_, [&] {
    recorder_.BeginSegment("fan");
    core::Subsegment* fan_out = recorder_.BeginSubsegment("fan-out");
    fan_out_id = fan_out->id().ToString();
    for (int i = 0; i < kTimers; ++i) {
      auto timer = std::make_shared<asio::steady_timer>(ex_, std::chrono::milliseconds(0));
      timer->async_wait([&, timer, fan_out](boost::system::error_code) {
        for (int round = 0; round < kRounds; ++round) {
          SubsegmentScope scope(recorder_, "callback");
          Check(scope.subsegment() != nullptr && scope.subsegment()->parent() == fan_out);
          Check(Recorder::PeekCurrentEntity() == scope.subsegment());
        }
        Check(Recorder::PeekCurrentEntity() == fan_out);
      });
    }
    recorder_.EndSubsegment();
    recorder_.EndSegment();
  });
  ASSERT_TRUE(RunPool(io_, kThreads));
  ASSERT_EQ(crossed_.load(), 0);
  int callbacks = 0;
  for (const auto& subsegment : t_.Subsegments()) {
    if (subsegment.name != "callback") continue;
    ++callbacks;
    EXPECT_EQ(subsegment.parent_id, fan_out_id);
  }
  EXPECT_EQ(callbacks, kTimers * kRounds);
}

TEST_F(TracedExecutorTest, AwaitingAChildCoroutineResumesTheParentWhereItWas) {
  auto child = [&]() -> awaitable<int> {
    SubsegmentScope mine(recorder_, "child");
    co_await asio::post(use_awaitable);
    co_return 7;
  };
  auto parent = [&]() -> awaitable<void> {
    SegmentScope segment(recorder_, "parent");
    SubsegmentScope work(recorder_, "work");
    const int value = co_await asio::co_spawn(ex_, child(), use_awaitable);
    EXPECT_EQ(value, 7);
    Check(Recorder::PeekCurrentEntity() == work.subsegment());
  };
  asio::co_spawn(ex_, parent(), asio::detached);
  ASSERT_TRUE(RunPool(io_, kThreads));
  ASSERT_EQ(crossed_.load(), 0);
  auto documents = t_.Documents();
  ASSERT_EQ(documents.size(), 1u);
  EXPECT_STREQ(documents[0]["subsegments"][0]["subsegments"][0]["name"].GetString(), "child");
}

// ---------------------------------------------------------------------------- faults

TEST_F(TracedExecutorTest, ExceptionInsideSubsegmentScopeOfACoroutineIsAFaultWithCause) {
  std::exception_ptr escaped;
  asio::co_spawn(
      ex_,
      [&]() -> awaitable<void> {
        SegmentScope segment(recorder_, "request");
        SubsegmentScope failing(recorder_, "failing");
        co_await asio::post(use_awaitable);
        throw std::runtime_error("boom");
      },
      [&](std::exception_ptr e) { escaped = e; });
  ASSERT_TRUE(RunPool(io_, kThreads));
  ASSERT_NE(escaped, nullptr);  // the user's exception still reaches the completion
  auto documents = t_.Documents();
  ASSERT_EQ(documents.size(), 1u);
  const auto& failing = documents[0]["subsegments"][0];
  EXPECT_TRUE(failing["fault"].GetBool());
  EXPECT_EQ(failing["cause"]["exceptions"].Size(), 1u);
  EXPECT_TRUE(documents[0]["fault"].GetBool());
}

TEST_F(TracedExecutorTest, CancelledWaitRecordedByItsScopesIsNotAFault) {
  std::exception_ptr escaped;
  auto request = [&]() -> awaitable<void> {
    SegmentScope segment(recorder_, "request");
    try {
      {
        SubsegmentScope failing(recorder_, "failing");
        try {
          throw std::runtime_error("boom");
        } catch (...) {
          failing.RecordException();
        }
      }
      SubsegmentScope waiting(recorder_, "wait");
      const auto executor = co_await asio::this_coro::executor;
      asio::steady_timer timer(executor, std::chrono::hours(1));
      // On the strand, the cancel runs once the wait has begun.
      asio::post(executor, [&timer] { timer.cancel(); });
      try {
        co_await timer.async_wait(use_awaitable);
      } catch (...) {
        waiting.RecordException();
        throw;
      }
    } catch (...) {
      segment.RecordException();
      throw;
    }
  };
  asio::co_spawn(asio::make_strand(ex_), request(), [&](std::exception_ptr e) { escaped = e; });
  ASSERT_TRUE(RunPool(io_, kThreads));

  // The cancellation reaches the completion unchanged.
  ASSERT_NE(escaped, nullptr);
  try {
    std::rethrow_exception(escaped);
  } catch (const boost::system::system_error& e) {
    EXPECT_EQ(e.code(), asio::error::operation_aborted);
  } catch (...) {
    ADD_FAILURE() << "not the cancellation";
  }
  auto documents = t_.Documents();
  ASSERT_EQ(documents.size(), 1u);
  const rapidjson::Value& segment = documents[0];
  const auto& failing = segment["subsegments"][0];
  const auto& waiting = segment["subsegments"][1];
  EXPECT_STREQ(waiting["name"].GetString(), "wait");
  for (const auto* cancelled : {&segment, &waiting}) {
    EXPECT_FALSE(cancelled->HasMember("fault"));
    EXPECT_FALSE(cancelled->HasMember("error"));
    EXPECT_FALSE(cancelled->HasMember("cause"));
    EXPECT_TRUE((*cancelled)["annotations"]["cancelled"].GetBool());
  }
  // A real exception still is a fault with its cause.
  EXPECT_TRUE(failing["fault"].GetBool());
  EXPECT_FALSE(failing.HasMember("annotations"));
  EXPECT_STREQ(failing["cause"]["exceptions"][0]["type"].GetString(), "std::runtime_error");
  EXPECT_STREQ(failing["cause"]["exceptions"][0]["message"].GetString(), "boom");
}

// ---------------------------------------------------------------------------- any_io_executor

// A traced executor over a type-erased one, itself type-erased again: what code that only knows
// any_io_executor (Beast, libraries, a coroutine's this_coro::executor) ends up with.
using TracedAny = TracedExecutor<asio::any_io_executor>;
static_assert(asio::execution::is_executor<TracedAny>::value);
static_assert(std::is_convertible_v<TracedAny, asio::any_io_executor>);
static_assert(std::is_constructible_v<asio::ip::udp::socket, const TracedAny&>);

TEST_F(TracedExecutorTest, AnyIoExecutorOverATracedOneCarriesEachFlowAcrossTimersAndPosts) {
  constexpr int kFlows = 200;
  constexpr int kHops = 3;
  const TracedAny traced = MakeTracedExecutor(asio::any_io_executor(io_.get_executor()));
  const asio::any_io_executor executor = traced;
  auto run_flow = [&](int flow) -> awaitable<void> {
    Check((co_await asio::this_coro::executor).target<TracedAny>() != nullptr);
    SegmentScope segment(recorder_, "flow");
    segment.segment()->PutAnnotation("flow", flow);
    for (int hop = 0; hop < kHops; ++hop) {
      SubsegmentScope step(recorder_, "hop");
      asio::steady_timer timer(traced, std::chrono::microseconds(flow % 1000));
      co_await timer.async_wait(use_awaitable);
      Check(Recorder::PeekCurrentEntity() == step.subsegment());
      co_await asio::post(use_awaitable);
      Check(Recorder::PeekCurrentEntity() == step.subsegment());
      co_await asio::post(co_await asio::this_coro::executor, use_awaitable);
      Check(Recorder::PeekCurrentEntity() == step.subsegment());
    }
    Check(Recorder::PeekCurrentEntity() == segment.segment());
  };
  std::atomic<int> failed{0};
  for (int flow = 0; flow < kFlows; ++flow) {
    asio::co_spawn(executor, run_flow(flow), [&](std::exception_ptr e) {
      if (e) ++failed;
    });
  }
  ASSERT_TRUE(RunPool(io_, kThreads));
  EXPECT_EQ(failed.load(), 0);
  ASSERT_EQ(crossed_.load(), 0);
  auto documents = t_.Documents();
  ASSERT_EQ(documents.size(), static_cast<size_t>(kFlows));
  std::set<int> flows;
  for (const auto& document : documents) {
    flows.insert(document["annotations"]["flow"].GetInt());
    EXPECT_EQ(document["subsegments"].Size(), static_cast<size_t>(kHops));
  }
  EXPECT_EQ(flows.size(), static_cast<size_t>(kFlows));
  EXPECT_EQ(recorder_.stats().context_missing, 0u);
}

// ---------------------------------------------------------------------------- plain executors

TEST_F(TracedExecutorTest, ContextMissingExactlyWhereAPlainExecutorRunsWork) {
  asio::post(ex_, [&] {
    SegmentScope segment(recorder_, "traced");
    SubsegmentScope work(recorder_, "work");
    // Inline, a plain executor's handler sees whatever is installed: the traced flow.
    asio::dispatch(io_.get_executor(),
                   [&] { Check(Recorder::PeekCurrentEntity() == work.subsegment()); });
    // Queued, it runs with the thread's own (empty) context.
    asio::post(io_.get_executor(),
               [&] { EXPECT_EQ(recorder_.BeginSubsegment("orphan"), nullptr); });
    asio::post(ex_, [&] { SubsegmentScope traced(recorder_, "traced-child"); });
  });
  ASSERT_TRUE(RunPool(io_, kThreads));
  ASSERT_EQ(crossed_.load(), 0);
  EXPECT_EQ(recorder_.stats().context_missing, 1u);
}

// ---------------------------------------------------------------------------- explicit control

TEST_F(TracedExecutorTest, ForkAndBindRunLaterWorkWhereTheyWereTaken) {
  std::string work_id;
  asio::post(ex_, [&] {
    recorder_.BeginSegment("origin");
    core::Subsegment* work = recorder_.BeginSubsegment("work");
    work_id = work->id().ToString();
    auto forked = Fork(io_.get_executor());
    auto bound = Bind(ex_, Capture());
    recorder_.EndSubsegment();
    recorder_.EndSegment();
    // Submitted from a flow that has moved on: still run at `work`.
    asio::post(ex_, [&, forked, work] {
      asio::post(forked, [&, work] {
        Check(Recorder::PeekCurrentEntity() == work);
        SubsegmentScope later(recorder_, "forked");
      });
    });
    asio::post(bound, [&, work] {
      Check(Recorder::PeekCurrentEntity() == work);
      SubsegmentScope later(recorder_, "bound");
    });
  });
  ASSERT_TRUE(RunPool(io_, kThreads));
  ASSERT_EQ(crossed_.load(), 0);
  // Both begun under a segment already sent: they arrive as subsegment documents of `work`.
  int under_work = 0;
  for (const auto& subsegment : t_.Subsegments()) {
    if (subsegment.name == "work") continue;
    ++under_work;
    EXPECT_EQ(subsegment.parent_id, work_id) << subsegment.name;
  }
  EXPECT_EQ(under_work, 2);
}

TEST_F(TracedExecutorTest, SocketCompletionResumesTheInitiatingFlow) {
  asio::ip::udp::socket receiver(ex_,
                                 asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  asio::ip::udp::socket sender(ex_,
                               asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const asio::ip::udp::endpoint to = receiver.local_endpoint();
  auto receive = [&]() -> awaitable<void> {
    SegmentScope segment(recorder_, "receiver");
    SubsegmentScope receiving(recorder_, "receive");
    char buffer[16];
    const size_t size = co_await receiver.async_receive(asio::buffer(buffer), use_awaitable);
    EXPECT_EQ(std::string(buffer, size), "ping");
    Check(Recorder::PeekCurrentEntity() == receiving.subsegment());
  };
  auto send = [&]() -> awaitable<void> {
    SegmentScope segment(recorder_, "sender");
    SubsegmentScope sending(recorder_, "send");
    co_await sender.async_send_to(asio::buffer(std::string_view("ping")), to, use_awaitable);
    Check(Recorder::PeekCurrentEntity() == sending.subsegment());
  };
  asio::co_spawn(ex_, receive(), asio::detached);
  asio::co_spawn(ex_, send(), asio::detached);
  ASSERT_TRUE(RunPool(io_, kThreads));
  ASSERT_EQ(crossed_.load(), 0);
  auto documents = t_.Documents();
  ASSERT_EQ(documents.size(), 2u);
  for (const auto& document : documents) {
    const std::string name = document["name"].GetString();
    EXPECT_STREQ(document["subsegments"][0]["name"].GetString(),
                 name == "receiver" ? "receive" : "send");
  }
}

TEST_F(TracedExecutorTest, StrandRunsEachFlowsHandlersInTheirOwnContextAndInOrder) {
  TracedStrand strand = asio::make_strand(ex_);
  std::vector<int> order;  // only ever touched on the strand
  for (int flow = 0; flow < 4; ++flow) {
    asio::post(ex_, [&, flow] {
      SegmentScope segment(recorder_, "flow");
      segment.segment()->PutAnnotation("flow", flow);
      for (int step = 0; step < 3; ++step) {
        asio::post(strand, [&, flow, step, mine = segment.segment()] {
          Check(strand.running_in_this_thread());
          Check(Recorder::PeekCurrentEntity() == mine);
          order.push_back(flow * 10 + step);
        });
      }
    });
  }
  ASSERT_TRUE(RunPool(io_, kThreads));
  ASSERT_EQ(crossed_.load(), 0);
  ASSERT_EQ(order.size(), 12u);
  std::map<int, int> next_step;
  for (int entry : order) EXPECT_EQ(entry % 10, next_step[entry / 10]++);
  EXPECT_EQ(t_.Documents().size(), 4u);
}

}  // namespace
}  // namespace xraysink::context
