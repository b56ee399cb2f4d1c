#include "logs/trace_id.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstdlib>
#include <new>
#include <string>

#include "context/handoff.h"
#include "context/scopes.h"
#include "context/testing/test_recorder.h"
#include "context/traced_executor.h"
#include "core/recorder.h"

// Counts this thread's allocations, to show the append forms allocate nothing.
namespace {
thread_local int allocations = 0;
}  // namespace

void* operator new(std::size_t size) {
  ++allocations;
  if (void* memory = std::malloc(size == 0 ? 1 : size)) return memory;
  throw std::bad_alloc();
}
void operator delete(void* memory) noexcept { std::free(memory); }
void operator delete(void* memory, std::size_t) noexcept { std::free(memory); }

namespace xraysink::logs {
namespace {

namespace asio = boost::asio;
using context::SegmentScope;
using context::SubsegmentScope;

constexpr char kTrace[] = "1-5759e988-bd862e3fe1be46a994272793";
constexpr char kEntity[] = "53995c3f42cd8ad8";

TraceIds Known() { return {*core::TraceId::Parse(kTrace), *core::EntityId::Parse(kEntity), true}; }

class TraceIdTest : public ::testing::Test {
 protected:
  context::testing::TestRecorder t_;
  core::Recorder& recorder_ = *t_.recorder;
  context::ScopedRestore fresh_{context::CapturedContext()};  // no context left by others
};

TEST_F(TraceIdTest, FormsOfTheIds) {
  const std::string value = std::string(kTrace) + "@" + kEntity;
  EXPECT_EQ(TraceIdValue(Known()).view(), value);
  EXPECT_EQ(FormatTraceId(Known()), "AWS-XRAY-TRACE-ID: " + value);
  std::string text = "line ";
  AppendTraceId(Known(), text);
  EXPECT_EQ(text, "line AWS-XRAY-TRACE-ID: " + value);
  std::string json = "{";
  AppendTraceIdJsonField(Known(), json);
  EXPECT_EQ(json, "{\"traceId\":\"" + value + "\"");
}

TEST_F(TraceIdTest, NoContextIsTheEmptyValueAndFormatsAsNothing) {
  const TraceIds ids = CurrentTraceIds();
  EXPECT_TRUE(ids.empty());
  EXPECT_TRUE(ids.entity_id.empty());
  EXPECT_FALSE(ids.sampled);
  EXPECT_EQ(TraceIdValue(ids).view(), "");
  EXPECT_EQ(FormatTraceId(ids), "");
  std::string text = "line";
  AppendTraceId(ids, text);
  EXPECT_EQ(text, "line");
  std::string json;
  AppendTraceIdJsonField(ids, json);
  EXPECT_EQ(json, "\"traceId\":\"\"");
}

TEST_F(TraceIdTest, IdsAreThoseOfTheInnermostEntity) {
  {
    SegmentScope segment(recorder_, "request");
    const core::TraceId& trace = segment.segment()->trace_id();
    TraceIds ids = CurrentTraceIds();
    EXPECT_EQ(ids.trace_id, trace);
    EXPECT_EQ(ids.entity_id, segment.segment()->id());
    EXPECT_TRUE(ids.sampled);
    {
      SubsegmentScope outer(recorder_, "outer");
      SubsegmentScope inner(recorder_, "inner");
      ids = CurrentTraceIds();
      EXPECT_EQ(ids.trace_id, trace);
      EXPECT_EQ(ids.entity_id, inner.subsegment()->id());
    }
    EXPECT_EQ(CurrentTraceIds().entity_id, segment.segment()->id());
  }
  EXPECT_TRUE(CurrentTraceIds().empty());
}

TEST_F(TraceIdTest, UnsampledTracesKeepTheirIdsForCorrelation) {
  core::BeginSegmentOptions options;
  options.trace_id = *core::TraceId::Parse(kTrace);
  options.sampling = core::SamplingDecision{.sampled = false};
  SegmentScope segment(recorder_, "request", options);
  const TraceIds ids = CurrentTraceIds();
  EXPECT_EQ(ids.trace_id.view(), kTrace);
  EXPECT_EQ(ids.entity_id, segment.segment()->id());
  EXPECT_FALSE(ids.sampled);
}

TEST_F(TraceIdTest, ReadingAndAppendingAllocateNothing) {
  SegmentScope segment(recorder_, "request");
  SubsegmentScope work(recorder_, "work");
  std::string out;
  out.reserve(256);
  const int before = allocations;
  const TraceIds ids = CurrentTraceIds();
  AppendTraceId(ids, out);
  AppendTraceIdJsonField(ids, out);
  EXPECT_EQ(allocations, before);
  EXPECT_NE(out.find(TraceIdValue(ids).view()), std::string::npos);
}

TEST_F(TraceIdTest, CoroutinesSeeTheirOwnIdsAfterThreadHops) {
  constexpr int kFlows = 200;
  asio::io_context io(4);
  const auto ex = context::MakeTracedExecutor(io.get_executor());
  std::atomic<int> checked{0};
  std::atomic<int> wrong{0};
  const auto expect = [&](const core::Entity& entity) {
    const TraceIds ids = CurrentTraceIds();
    if (ids.trace_id != entity.segment().trace_id() || ids.entity_id != entity.id()) ++wrong;
    ++checked;
  };
  auto flow = [&](int n) -> asio::awaitable<void> {
    SegmentScope segment(recorder_, "flow");
    for (int hop = 0; hop < 3; ++hop) {
      co_await asio::post(ex, asio::use_awaitable);
      expect(*segment.segment());
      SubsegmentScope work(recorder_, "work");
      asio::steady_timer timer(ex, std::chrono::microseconds((n * 7 + hop) % 500));
      co_await timer.async_wait(asio::use_awaitable);
      expect(*work.subsegment());
      co_await asio::post(ex, asio::use_awaitable);
      expect(*work.subsegment());
    }
  };
  for (int n = 0; n < kFlows; ++n) asio::co_spawn(ex, flow(n), asio::detached);
  ASSERT_TRUE(context::testing::RunPool(io, 4));
  EXPECT_EQ(checked.load(), kFlows * 9);
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace xraysink::logs
