#include "emitter/udp_emitter.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <stdlib.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/entity.h"
#include "core/serialization.h"
#include "core/testing/threads.h"
#include "emitter/testing/udp_receiver.h"
#include "rapidjson/document.h"

namespace xraysink::emitter {
namespace {

using testing::UdpReceiver;

constexpr size_t kHeaderLength = sizeof(core::kDaemonHeader) - 1;

class UdpEmitterTest : public ::testing::Test {
 protected:
  // The test environment points AWS_XRAY_DAEMON_ADDRESS at a dead port; it would win.
  void SetUp() override { unsetenv("AWS_XRAY_DAEMON_ADDRESS"); }

  std::shared_ptr<UdpEmitter> NewEmitter() {
    EmitterOptions options;
    options.daemon_address = absl::StrCat("127.0.0.1:", receiver_.port());
    absl::StatusOr<std::shared_ptr<UdpEmitter>> emitter = UdpEmitter::Create(options);
    EXPECT_TRUE(emitter.ok()) << emitter.status();
    return emitter.ok() ? *std::move(emitter) : nullptr;
  }

  // A segment whose documents go to `emitter`, streaming nothing ahead of its end.
  static std::shared_ptr<core::Segment> NewSegment(std::shared_ptr<UdpEmitter> emitter) {
    auto settings = std::make_shared<core::SegmentSettings>();
    settings->sink = std::move(emitter);
    settings->streaming_threshold = 1000;
    core::SegmentOptions options;
    options.name = "checkout";
    return core::Segment::Create(std::move(options), std::move(settings), nullptr);
  }

  // Checks the header line; returns the document after it.
  static rapidjson::Document Body(const std::string& datagram) {
    EXPECT_EQ(datagram.substr(0, kHeaderLength), core::kDaemonHeader);
    const std::string body = datagram.substr(kHeaderLength);
    rapidjson::Document document;
    // Sized: the NUL-terminated form scans past the end with SSE2 (ASan reports it).
    document.Parse(body.data(), body.size());
    EXPECT_FALSE(document.HasParseError()) << body;
    return document;
  }

  UdpReceiver receiver_;
};

TEST_F(UdpEmitterTest, EndedSegmentsArriveAsDaemonDatagrams) {
  auto emitter = NewEmitter();
  ASSERT_NE(emitter, nullptr);
  auto segment = NewSegment(emitter);
  segment->PutAnnotation("customer", "c-42");
  core::Subsegment* child = segment->BeginSubsegment("load-cart");
  child->End();
  segment->End();
  ASSERT_TRUE(emitter->Flush(absl::Now() + absl::Seconds(20)));

  const std::vector<std::string> received = receiver_.Receive(1);
  ASSERT_EQ(received.size(), 1u);
  const rapidjson::Document document = Body(received[0]);
  ASSERT_TRUE(document.IsObject());
  EXPECT_EQ(std::string(document["name"].GetString()), "checkout");
  EXPECT_EQ(std::string(document["id"].GetString()), segment->id().ToString());
  EXPECT_EQ(std::string(document["trace_id"].GetString()), segment->trace_id().ToString());
  EXPECT_EQ(std::string(document["annotations"]["customer"].GetString()), "c-42");
  ASSERT_EQ(document["subsegments"].Size(), 1u);
  EXPECT_EQ(std::string(document["subsegments"][0]["name"].GetString()), "load-cart");

  const UdpEmitter::Stats stats = emitter->stats();
  EXPECT_EQ(stats.enqueued, 1u);
  EXPECT_EQ(stats.sent, 1u);
  EXPECT_EQ(stats.bytes_sent, received[0].size());
  EXPECT_EQ(stats.serialization.documents, 1u);
}

TEST_F(UdpEmitterTest, OversizeSegmentGoesOutSplitAndIsCounted) {
  auto emitter = NewEmitter();
  ASSERT_NE(emitter, nullptr);
  auto segment = NewSegment(emitter);
  for (int i = 0; i < 40; ++i) {
    core::Subsegment* sub = segment->BeginSubsegment(absl::StrCat("chunk-", i));
    sub->PutMetadata("blob", std::string(4000, 'x'));
    sub->End();
  }
  segment->End();
  ASSERT_TRUE(emitter->Flush(absl::Now() + absl::Seconds(20)));

  const UdpEmitter::Stats stats = emitter->stats();
  EXPECT_EQ(stats.serialization.split_documents, 1u);
  EXPECT_EQ(stats.send_errors, 0u);
  ASSERT_GT(stats.sent, 1u);
  const std::vector<std::string> received = receiver_.Receive(stats.sent);
  ASSERT_EQ(received.size(), stats.sent);
  int subsegments = 0;
  for (const std::string& datagram : received) {
    EXPECT_LE(datagram.size(), core::kMaxDatagramBytes);
    const rapidjson::Document document = Body(datagram);
    if (document.HasMember("type")) ++subsegments;  // a subtree sent as its own document
    if (document.HasMember("subsegments")) subsegments += document["subsegments"].Size();
  }
  EXPECT_EQ(subsegments, 40);
}

TEST_F(UdpEmitterTest, EnvironmentAddressWinsAndRawDatagramsGoAsGiven) {
  setenv("AWS_XRAY_DAEMON_ADDRESS", absl::StrCat("127.0.0.1:", receiver_.port()).c_str(), 1);
  EmitterOptions options;
  options.daemon_address = absl::StrCat("127.0.0.1:", testing::UnusedUdpPort());
  absl::StatusOr<std::shared_ptr<UdpEmitter>> emitter = UdpEmitter::Create(options);
  ASSERT_TRUE(emitter.ok()) << emitter.status();
  const std::string raw = std::string(core::kDaemonHeader) + R"({"raw":true})";
  ASSERT_TRUE((*emitter)->SendRaw(raw));
  ASSERT_TRUE((*emitter)->Flush(absl::Now() + absl::Seconds(20)));
  EXPECT_EQ(receiver_.Receive(1), std::vector<std::string>{raw});
}

// A daemon given by host name, as in a container setup (xray-daemon:2000): looked up by the
// system's resolver on the emitter's thread, and sent to.
TEST_F(UdpEmitterTest, ADaemonGivenByHostNameIsSentTo) {
  EmitterOptions options;
  options.daemon_address = absl::StrCat("localhost:", receiver_.port());
  absl::StatusOr<std::shared_ptr<UdpEmitter>> emitter = UdpEmitter::Create(options);
  ASSERT_TRUE(emitter.ok()) << emitter.status();
  const std::string raw = std::string(core::kDaemonHeader) + R"({"by":"name"})";
  ASSERT_TRUE((*emitter)->SendRaw(raw));
  ASSERT_TRUE((*emitter)->Flush(absl::Now() + absl::Seconds(20)));
  EXPECT_EQ(receiver_.Receive(1), std::vector<std::string>{raw});
  EXPECT_EQ((*emitter)->stats().resolve_failures, 0u);
}

// The sender's scheduling option reaches the emitter's thread.
TEST_F(UdpEmitterTest, AnIdlePrioritySenderRunsUnderSchedIdle) {
  EmitterOptions options;
  options.daemon_address = absl::StrCat("127.0.0.1:", receiver_.port());
  options.sender_priority = DatagramSenderOptions::Priority::kIdle;
  const std::vector<pid_t> before = core::testing::ThreadIdsNamed("xraysink-send");
  absl::StatusOr<std::shared_ptr<UdpEmitter>> emitter = UdpEmitter::Create(options);
  ASSERT_TRUE(emitter.ok()) << emitter.status();
  const std::string raw = std::string(core::kDaemonHeader) + "{}";
  ASSERT_TRUE((*emitter)->SendRaw(raw));
  ASSERT_EQ(receiver_.Receive(1), std::vector<std::string>{raw});  // the thread is past its setup
  int idle = 0;
  for (const pid_t id : core::testing::ThreadIdsNamed("xraysink-send")) {
    if (std::find(before.begin(), before.end(), id) == before.end()) {
      idle += sched_getscheduler(id) == SCHED_IDLE;
    }
  }
  EXPECT_EQ(idle, 1);
}

TEST_F(UdpEmitterTest, BadAddressesAndOptionsAreConfigurationErrors) {
  EmitterOptions options;
  options.daemon_address = "127.0.0.1";  // no port
  absl::Status status = UdpEmitter::Create(options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;

  options.daemon_address = "127.0.0.1:2000";
  options.queue_capacity = 0;
  EXPECT_EQ(UdpEmitter::Create(options).status().code(), absl::StatusCode::kInvalidArgument);

  // The sender's options are the emitter's: the sender checks them.
  options.queue_capacity = EmitterOptions{}.queue_capacity;
  options.batch_delay = absl::Milliseconds(-1);
  status = UdpEmitter::Create(options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("batch delay"), absl::string_view::npos) << status;
  options.batch_delay = EmitterOptions{}.batch_delay;
  options.idle_delay = absl::Milliseconds(-1);
  status = UdpEmitter::Create(options).status();
  EXPECT_NE(status.message().find("idle delay"), absl::string_view::npos) << status;
  options.idle_delay = EmitterOptions{}.idle_delay;
  options.sleep_after = absl::Milliseconds(-1);
  status = UdpEmitter::Create(options).status();
  EXPECT_NE(status.message().find("sleep-after"), absl::string_view::npos) << status;
  options.sleep_after = EmitterOptions{}.sleep_after;
  options.resolve_interval = absl::ZeroDuration();
  status = UdpEmitter::Create(options).status();
  EXPECT_NE(status.message().find("resolve interval"), absl::string_view::npos) << status;
  options.resolve_interval = EmitterOptions{}.resolve_interval;

  setenv("AWS_XRAY_DAEMON_ADDRESS", "udp:127.0.0.1:2000", 1);
  status = UdpEmitter::Create().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("AWS_XRAY_DAEMON_ADDRESS"), absl::string_view::npos) << status;
}

}  // namespace
}  // namespace xraysink::emitter
