#include "logs/log_group.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "context/scopes.h"
#include "context/testing/test_recorder.h"
#include "core/recorder.h"
#include "rapidjson/document.h"

namespace xraysink::logs {
namespace {

using ::testing::HasSubstr;

constexpr char kArn[] = "arn:aws:logs:us-west-2:123456789012:log-group:/aws/other:*";

// Every status message is checked to name the problem, so a user can act on it.
std::string ErrorOf(std::string_view name_or_arn) {
  absl::StatusOr<core::LogGroup> group = ParseLogGroup(name_or_arn);
  EXPECT_FALSE(group.ok()) << name_or_arn;
  if (group.ok()) return "";
  EXPECT_EQ(group.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(group.status().message());
}

TEST(ParseLogGroupTest, NameIsTakenAsIsWithoutArn) {
  absl::StatusOr<core::LogGroup> group = ParseLogGroup("/aws/lambda/my-fn_1.x#2");
  ASSERT_TRUE(group.ok()) << group.status();
  EXPECT_EQ(group->log_group, "/aws/lambda/my-fn_1.x#2");
  EXPECT_EQ(group->arn, "");
  EXPECT_TRUE(ParseLogGroup(std::string(512, 'a')).ok());
}

TEST(ParseLogGroupTest, ArnGivesTheNameAndKeepsTheArn) {
  absl::StatusOr<core::LogGroup> group = ParseLogGroup(kArn);
  ASSERT_TRUE(group.ok()) << group.status();
  EXPECT_EQ(group->log_group, "/aws/other");
  EXPECT_EQ(group->arn, kArn);

  group = ParseLogGroup("arn:aws-cn:logs:cn-north-1:123456789012:log-group:svc");
  ASSERT_TRUE(group.ok()) << group.status();
  EXPECT_EQ(group->log_group, "svc");
  EXPECT_EQ(group->arn, "arn:aws-cn:logs:cn-north-1:123456789012:log-group:svc");
}

TEST(ParseLogGroupTest, InvalidNamesSayWhatIsWrong) {
  EXPECT_THAT(ErrorOf(""), HasSubstr("empty"));
  EXPECT_THAT(ErrorOf(std::string(513, 'a')), HasSubstr("513 characters"));
  EXPECT_THAT(ErrorOf("my group"), HasSubstr("character ' ' at position 2"));
  EXPECT_THAT(ErrorOf("a:b"), HasSubstr("character ':'"));
}

TEST(ParseLogGroupTest, InvalidArnsSayWhatIsWrong) {
  EXPECT_THAT(ErrorOf("arn:gcp:logs:us-west-2:123456789012:log-group:g"),
              HasSubstr("no aws partition"));
  EXPECT_THAT(ErrorOf("arn:aws:s3:us-west-2:123456789012:log-group:g"),
              HasSubstr("not a CloudWatch Logs ARN"));
  EXPECT_THAT(ErrorOf("arn:aws:logs::123456789012:log-group:g"), HasSubstr("region"));
  EXPECT_THAT(ErrorOf("arn:aws:logs:us-west-2:1234:log-group:g"), HasSubstr("12-digit account"));
  EXPECT_THAT(ErrorOf("arn:aws:logs:us-west-2:123456789012:log-stream:g"),
              HasSubstr("does not name a log group"));
  EXPECT_THAT(ErrorOf("arn:aws:logs:us-west-2:123456789012:log-group:g:log-stream:s"),
              HasSubstr("text after the log group name"));
  const std::string no_name = ErrorOf("arn:aws:logs:us-west-2:123456789012:log-group:");
  EXPECT_THAT(no_name, HasSubstr("empty"));
  EXPECT_THAT(no_name, HasSubstr("expected arn:aws:logs:REGION:ACCOUNT:log-group:NAME[:*]"));
  EXPECT_THAT(ErrorOf("arn:aws:logs:us-west-2:123456789012:log-group:a b:*"),
              HasSubstr("character ' '"));
}

TEST(AddLogGroupTest, AddsEachGroupOnceAndNothingOnError) {
  core::RecorderOptions options;
  ASSERT_TRUE(AddLogGroup(options, "/my/log/group").ok());
  ASSERT_TRUE(AddLogGroup(options, kArn).ok());
  ASSERT_TRUE(AddLogGroup(options, "/my/log/group").ok());
  EXPECT_FALSE(AddLogGroup(options, "bad group").ok());
  ASSERT_EQ(options.aws.cloudwatch_logs.size(), 2u);
  EXPECT_EQ(options.aws.cloudwatch_logs[0].log_group, "/my/log/group");
  EXPECT_EQ(options.aws.cloudwatch_logs[1].arn, kArn);
}

// What a segment document must carry: both groups in the array form, the ARN only where given.
void ExpectLogGroups(const rapidjson::Value& document) {
  ASSERT_TRUE(document.HasMember("aws"));
  const rapidjson::Value& groups = document["aws"]["cloudwatch_logs"];
  ASSERT_TRUE(groups.IsArray());
  ASSERT_EQ(groups.Size(), 2u);
  EXPECT_STREQ(groups[0]["log_group"].GetString(), "/my/log/group");
  EXPECT_FALSE(groups[0].HasMember("arn"));
  EXPECT_STREQ(groups[1]["log_group"].GetString(), "/aws/other");
  EXPECT_STREQ(groups[1]["arn"].GetString(), kArn);
  EXPECT_TRUE(document["aws"].HasMember("xray"));  // the SDK's own metadata is kept
}

// Subsegments carry no log group (spec 6.4), embedded or sent on their own.
void ExpectNoLogGroupsBelow(const rapidjson::Value& entity) {
  if (!entity.HasMember("subsegments")) return;
  for (const rapidjson::Value& child : entity["subsegments"].GetArray()) {
    EXPECT_FALSE(child.HasMember("aws") && child["aws"].HasMember("cloudwatch_logs"));
    ExpectNoLogGroupsBelow(child);
  }
}

class LogGroupOnSegmentsTest : public ::testing::Test {
 protected:
  static core::RecorderOptions Options(int streaming_threshold) {
    core::RecorderOptions options;
    options.streaming_threshold = streaming_threshold;
    EXPECT_TRUE(AddLogGroup(options, "/my/log/group").ok());
    EXPECT_TRUE(AddLogGroup(options, kArn).ok());
    return options;
  }
};

TEST_F(LogGroupOnSegmentsTest, EverySegmentCarriesTheGroups) {
  context::testing::TestRecorder t(Options(30));
  for (int i = 0; i < 2; ++i) {
    context::SegmentScope segment(*t.recorder, "request");
    context::SubsegmentScope work(*t.recorder, "work");
  }
  const auto documents = t.Documents();  // each one checked against the official schema
  ASSERT_EQ(documents.size(), 2u);
  for (const auto& document : documents) {
    ExpectLogGroups(document);
    ASSERT_EQ(document["subsegments"].Size(), 1u);
    ExpectNoLogGroupsBelow(document);
  }
}

TEST_F(LogGroupOnSegmentsTest, SegmentDocumentsCarryTheGroupsWhenSubsegmentsAreStreamed) {
  context::testing::TestRecorder t(Options(1));
  {
    context::SegmentScope segment(*t.recorder, "request");
    for (int i = 0; i < 5; ++i) {
      context::SubsegmentScope outer(*t.recorder, "outer");
      context::SubsegmentScope inner(*t.recorder, "inner");
    }
  }
  int segments = 0;
  int streamed = 0;
  for (const auto& document : t.Documents()) {
    if (document.HasMember("type")) {
      ++streamed;
      EXPECT_STREQ(document["type"].GetString(), "subsegment");
      EXPECT_FALSE(document.HasMember("aws") && document["aws"].HasMember("cloudwatch_logs"));
    } else {
      ++segments;
      ExpectLogGroups(document);
    }
    ExpectNoLogGroupsBelow(document);
  }
  EXPECT_EQ(segments, 1);
  EXPECT_GT(streamed, 0);
  EXPECT_GT(t.recorder->stats().subtrees_streamed, 0u);
}

}  // namespace
}  // namespace xraysink::logs
