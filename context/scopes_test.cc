#include "context/scopes.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "context/handoff.h"
#include "context/testing/test_recorder.h"
#include "core/recorder.h"

namespace xraysink::context {
namespace {

using core::Recorder;
using testing::TestRecorder;

class ScopesTest : public ::testing::Test {
 protected:
  TestRecorder t_;
  Recorder& recorder_ = *t_.recorder;
  ScopedRestore fresh_{CapturedContext()};
};

TEST_F(ScopesTest, ScopesBeginAndEndOnEveryPath) {
  auto work = [&](bool early) {
    SubsegmentScope scope(recorder_, early ? "early" : "late");
    EXPECT_EQ(Recorder::PeekCurrentEntity(), scope.subsegment());
    if (early) return;
    scope.subsegment()->PutAnnotation("late", true);
  };
  core::Segment* segment = nullptr;
  {
    SegmentScope scope(recorder_, "request");
    segment = scope.segment();
    ASSERT_NE(segment, nullptr);
    work(true);
    EXPECT_EQ(Recorder::PeekCurrentEntity(), segment);
    work(false);
    EXPECT_EQ(t_.sink->size(), 0u);
  }
  EXPECT_EQ(Recorder::PeekCurrentEntity(), nullptr);

  auto documents = t_.Documents();
  ASSERT_EQ(documents.size(), 1u);
  const auto& subsegments = documents[0]["subsegments"];
  ASSERT_EQ(subsegments.Size(), 2u);
  EXPECT_STREQ(subsegments[0]["name"].GetString(), "early");
  EXPECT_STREQ(subsegments[1]["name"].GetString(), "late");
  EXPECT_FALSE(documents[0].HasMember("fault"));
}

TEST_F(ScopesTest, EscapingExceptionIsRecordedAsFaultAndCauseOnEveryScopeItLeaves) {
  try {
    SegmentScope segment(recorder_, "request");
    SubsegmentScope subsegment(recorder_, "failing");
    throw std::runtime_error("boom");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(Recorder::PeekCurrentEntity(), nullptr);

  auto documents = t_.Documents();
  ASSERT_EQ(documents.size(), 1u);
  const auto& failing = documents[0]["subsegments"][0];
  EXPECT_TRUE(failing["fault"].GetBool());
  ASSERT_EQ(failing["cause"]["exceptions"].Size(), 1u);
  EXPECT_STREQ(failing["cause"]["exceptions"][0]["type"].GetString(), "unknown");
  EXPECT_TRUE(documents[0]["fault"].GetBool());
}

TEST_F(ScopesTest, ExceptionRecordedFromACatchKeepsItsTypeAndIsRecordedOnce) {
  {
    SegmentScope segment(recorder_, "request");
    try {
      SubsegmentScope scope(recorder_, "query");
      try {
        throw std::out_of_range("no such row");
      } catch (...) {
        scope.RecordException();
        throw;
      }
    } catch (const std::out_of_range&) {
    }
  }
  auto documents = t_.Documents();
  ASSERT_EQ(documents.size(), 1u);
  const auto& query = documents[0]["subsegments"][0];
  EXPECT_TRUE(query["fault"].GetBool());
  ASSERT_EQ(query["cause"]["exceptions"].Size(), 1u);
  EXPECT_STREQ(query["cause"]["exceptions"][0]["type"].GetString(), "std::out_of_range");
  EXPECT_STREQ(query["cause"]["exceptions"][0]["message"].GetString(), "no such row");
  EXPECT_FALSE(documents[0].HasMember("fault"));  // caught inside the segment's scope
}

TEST_F(ScopesTest, ScopeOpenedWhileAnotherExceptionUnwindsIsNotAFault) {
  struct OnUnwind {
    Recorder& recorder;
    ~OnUnwind() { SubsegmentScope cleanup(recorder, "cleanup"); }
  };
  {
    SegmentScope segment(recorder_, "request");
    try {
      OnUnwind on_unwind{recorder_};
      throw std::runtime_error("elsewhere");
    } catch (const std::runtime_error&) {
    }
  }
  auto documents = t_.Documents();
  ASSERT_EQ(documents.size(), 1u);
  EXPECT_STREQ(documents[0]["subsegments"][0]["name"].GetString(), "cleanup");
  EXPECT_FALSE(documents[0]["subsegments"][0].HasMember("fault"));
}

// What co_spawn's completion handler passes after a success: nothing to record.
TEST_F(ScopesTest, RecordingANullExceptionRecordsNothing) {
  {
    SegmentScope segment(recorder_, "request");
    ASSERT_NE(segment.segment(), nullptr);
    RecordException(*segment.segment(), std::exception_ptr());
  }
  auto documents = t_.Documents();
  ASSERT_EQ(documents.size(), 1u);
  EXPECT_FALSE(documents[0].HasMember("fault"));
  EXPECT_FALSE(documents[0].HasMember("cause"));
  EXPECT_FALSE(documents[0].HasMember("annotations"));
}

TEST_F(ScopesTest, ScopesUseTheGlobalRecorderByDefault) {
  core::SetGlobalRecorder(t_.recorder);
  {
    SegmentScope segment("global");
    SubsegmentScope subsegment("step");
    EXPECT_NE(subsegment.subsegment(), nullptr);
  }
  core::SetGlobalRecorder(nullptr);
  auto documents = t_.Documents();
  ASSERT_EQ(documents.size(), 1u);
  EXPECT_STREQ(documents[0]["name"].GetString(), "global");
}

TEST_F(ScopesTest, DisabledRecorderAndMissingSegmentGiveNullScopes) {
  core::RecorderOptions options;
  options.enabled = false;
  TestRecorder disabled(options);
  try {
    SegmentScope segment(*disabled.recorder, "off");
    SubsegmentScope subsegment(*disabled.recorder, "off");
    EXPECT_EQ(segment.segment(), nullptr);
    EXPECT_EQ(subsegment.subsegment(), nullptr);
    throw std::runtime_error("still no-op");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(disabled.sink->size(), 0u);

  {
    SubsegmentScope orphan(recorder_, "orphan");
    EXPECT_EQ(orphan.subsegment(), nullptr);
  }
  EXPECT_EQ(recorder_.stats().context_missing, 1u);
}

TEST_F(ScopesTest, SubsegmentScopeEndsOnlyItsOwnEntity) {
  core::Subsegment* forgotten = nullptr;
  {
    SegmentScope segment(recorder_, "request");
    {
      SubsegmentScope scope(recorder_, "outer");
      forgotten = recorder_.BeginSubsegment("forgotten");
    }
    EXPECT_EQ(Recorder::PeekCurrentEntity(), forgotten);  // the flow's stack is left alone
    recorder_.EndSubsegment();
  }
  auto documents = t_.Documents();
  ASSERT_EQ(documents.size(), 1u);
  EXPECT_STREQ(documents[0]["subsegments"][0]["subsegments"][0]["name"].GetString(), "forgotten");
}

}  // namespace
}  // namespace xraysink::context
