#include "context/handoff.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "context/testing/test_recorder.h"
#include "core/recorder.h"

namespace xraysink::context {
namespace {

using core::Recorder;
using testing::TestRecorder;

class HandoffTest : public ::testing::Test {
 protected:
  TestRecorder t_;
  Recorder& recorder_ = *t_.recorder;
  ScopedRestore fresh_{CapturedContext()};  // whatever the thread had is left alone
};

TEST_F(HandoffTest, ThreadRunsUnderTheCapturedEntityWithoutTouchingTheCaller) {
  recorder_.BeginSegment("main");
  core::Subsegment* outer = recorder_.BeginSubsegment("outer");
  const CapturedContext captured = Capture();
  EXPECT_EQ(captured.entity(), outer);

  core::Entity* before_restore = outer;
  core::Entity* inside = nullptr;
  core::Entity* after_end = nullptr;
  core::Entity* after_restore = outer;
  std::thread worker([&] {
    before_restore = Recorder::PeekCurrentEntity();
    {
      ScopedRestore restore(captured);
      recorder_.BeginSubsegment("in-thread");
      inside = Recorder::PeekCurrentEntity();
      recorder_.EndSubsegment();
      after_end = Recorder::PeekCurrentEntity();
    }
    after_restore = Recorder::PeekCurrentEntity();
  });
  worker.join();

  EXPECT_EQ(before_restore, nullptr);  // threads inherit nothing
  ASSERT_NE(inside, nullptr);
  EXPECT_EQ(inside->parent(), outer);
  EXPECT_EQ(after_end, outer);
  EXPECT_EQ(after_restore, nullptr);
  EXPECT_EQ(Recorder::PeekCurrentEntity(), outer);
  recorder_.EndSubsegment();
  recorder_.EndSegment();

  auto documents = t_.Documents();
  ASSERT_EQ(documents.size(), 1u);
  EXPECT_STREQ(documents[0]["subsegments"][0]["subsegments"][0]["name"].GetString(), "in-thread");
}

TEST_F(HandoffTest, RestoreRebuildsTheWholeStack) {
  core::Segment* segment = recorder_.BeginSegment("main");
  core::Subsegment* a = recorder_.BeginSubsegment("a");
  core::Subsegment* b = recorder_.BeginSubsegment("b");
  core::Subsegment* c = recorder_.BeginSubsegment("c");
  const CapturedContext captured = Capture();

  std::vector<core::Entity*> seen;
  std::thread worker([&] {
    ScopedRestore restore(captured);
    for (int i = 0; i < 3; ++i) {
      seen.push_back(Recorder::PeekCurrentEntity());
      core::CurrentContext().Pop(Recorder::PeekCurrentEntity());
    }
    seen.push_back(Recorder::PeekCurrentEntity());
  });
  worker.join();

  EXPECT_EQ(seen, (std::vector<core::Entity*>{c, b, a, segment}));
  EXPECT_EQ(Recorder::PeekCurrentEntity(), c);  // the caller's stack is its own
}

TEST_F(HandoffTest, WrappedCallableRunsUnderTheContextOfItsCreationEachTime) {
  recorder_.BeginSegment("main");
  core::Subsegment* outer = recorder_.BeginSubsegment("outer");
  auto wrapped = Wrap([&](int x) {
    recorder_.BeginSubsegment("wrapped");
    const core::Entity* parent = Recorder::PeekCurrentEntity()->parent();
    recorder_.EndSubsegment();
    return parent == outer ? x + 1 : -1;
  });
  recorder_.EndSubsegment();  // later calls still run under `outer`

  int first = 0;
  int second = 0;
  std::thread worker([&] {
    first = wrapped(1);
    second = wrapped(2);
  });
  worker.join();
  EXPECT_EQ(first, 2);
  EXPECT_EQ(second, 3);
  recorder_.EndSegment();

  auto documents = t_.Documents();
  ASSERT_EQ(documents.size(), 1u);
  EXPECT_EQ(documents[0]["subsegments"][0]["subsegments"].Size(), 2u);
}

TEST_F(HandoffTest, EmptyCaptureRestoresAnEmptyContextAndKeepsWhatItBeginsInside) {
  const CapturedContext nothing = Capture();
  EXPECT_EQ(nothing.entity(), nullptr);

  core::Segment* outside = recorder_.BeginSegment("outside");
  {
    ScopedRestore restore(nothing);
    EXPECT_EQ(Recorder::PeekCurrentEntity(), nullptr);
    EXPECT_EQ(recorder_.BeginSubsegment("orphan"), nullptr);
    EXPECT_EQ(recorder_.stats().context_missing, 1u);
    recorder_.BeginSegment("inside");
    recorder_.EndSegment();
  }
  EXPECT_EQ(Recorder::PeekCurrentEntity(), outside);
  recorder_.EndSegment();
  EXPECT_EQ(t_.Documents().size(), 2u);
}

TEST_F(HandoffTest, ThreadsRestoringOneCaptureNeverShareAStack) {
  recorder_.BeginSegment("main");
  core::Subsegment* parent = recorder_.BeginSubsegment("parent");
  const CapturedContext captured = Capture();
  constexpr int kThreads = 4;
  constexpr int kRounds = 200;
  std::atomic<int> crossed{0};
  std::vector<std::thread> workers;
  for (int i = 0; i < kThreads; ++i) {
    workers.emplace_back([&] {
      ScopedRestore restore(captured);
      for (int round = 0; round < kRounds; ++round) {
        core::Subsegment* mine = recorder_.BeginSubsegment("work");
        if (Recorder::PeekCurrentEntity() != mine || mine->parent() != parent) ++crossed;
        recorder_.EndSubsegment();
        if (Recorder::PeekCurrentEntity() != parent) ++crossed;
      }
    });
  }
  for (std::thread& worker : workers) worker.join();
  EXPECT_EQ(crossed.load(), 0);
  recorder_.EndSubsegment();
  recorder_.EndSegment();
  EXPECT_EQ(recorder_.stats().context_missing, 0u);
  EXPECT_FALSE(t_.Documents().empty());
}

}  // namespace
}  // namespace xraysink::context
