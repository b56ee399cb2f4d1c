// The emitter end to end (issue 2): Configure() -> recorder -> UdpEmitter -> real UDP on
// 127.0.0.1 -> FakeDaemon, which parses every datagram as the X-Ray daemon does.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/default_sampler.h"
#include "core/entity.h"
#include "core/recorder.h"
#include "core/serialization.h"
#include "core/testing/schema_validator.h"
#include "emitter/testing/udp_receiver.h"
#include "integration_tests/fake_daemon.h"
#include "tools/local_daemon/trace.h"
#include "xraysink.h"

namespace xraysink::integration_tests {
namespace {

// Generous: a loaded 2-core machine under TSan. Waits return as soon as the data is there.
constexpr absl::Duration kTimeout = absl::Seconds(120);
constexpr size_t kHeaderLength = sizeof(core::kDaemonHeader) - 1;

// Every datagram starts with the daemon's header line and carries a document the official
// schema accepts.
void ExpectDaemonDatagrams(const std::vector<std::string>& datagrams) {
  for (const std::string& datagram : datagrams) {
    EXPECT_LE(datagram.size(), core::kMaxDatagramBytes);
    ASSERT_EQ(datagram.substr(0, kHeaderLength), core::kDaemonHeader);
    const std::string body = datagram.substr(kHeaderLength);
    const absl::Status valid = core::testing::ValidateSegmentDocument(body);
    EXPECT_TRUE(valid.ok()) << valid.message() << "\n" << body.substr(0, 2000);
  }
}

const rapidjson::Value& Json(const tools::TraceNode& node) { return *node.entity->json; }

class EmitterIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The test environment points AWS_XRAY_DAEMON_ADDRESS at a dead port; it would win.
    unsetenv("AWS_XRAY_DAEMON_ADDRESS");
    absl::StatusOr<std::unique_ptr<FakeDaemon>> daemon = FakeDaemon::Start();
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    daemon_ = *std::move(daemon);
  }

  // Tracing to `address`, its sampler keeping the `rate` fraction of new traces.
  static std::unique_ptr<Tracing> Start(const std::string& address, double rate) {
    TracingOptions options;
    options.service_name = "integration";
    options.daemon_address = address;
    options.recorder.read_environment = false;
    options.recorder.sampler = std::make_shared<core::DefaultSampler>(0, rate);
    absl::StatusOr<std::unique_ptr<Tracing>> tracing = Configure(std::move(options));
    EXPECT_TRUE(tracing.ok()) << tracing.status();
    return tracing.ok() ? *std::move(tracing) : nullptr;
  }

  std::unique_ptr<FakeDaemon> daemon_;
};

TEST_F(EmitterIntegrationTest, SegmentsArriveAsSchemaValidDaemonDatagrams) {
  const std::unique_ptr<Tracing> tracing = Start(daemon_->address(), 1.0);
  ASSERT_NE(tracing, nullptr);
  core::Recorder& recorder = tracing->recorder();

  core::Segment* segment = recorder.BeginSegment("checkout");
  const std::string trace_id = segment->trace_id().ToString();
  const std::string segment_id = segment->id().ToString();
  segment->http().request.emplace().url = "http://shop.example.com/cart?id=1";
  segment->ApplyStatusCode(503);
  recorder.PutAnnotation("order", 42);
  recorder.PutMetadata("cart",
                       core::JsonValue::Object({{"items", core::JsonValue::Array({1, 2})}}));
  core::Subsegment* query = recorder.BeginSubsegment("inventory", core::Namespace::kRemote);
  const std::string query_id = query->id().ToString();
  query->AddException(std::runtime_error("inventory timed out"));
  recorder.EndSubsegment();
  recorder.EndSegment();

  ASSERT_TRUE(daemon_->WaitFor(1, kTimeout));
  ASSERT_TRUE(tracing->Flush(kTimeout));
  const std::vector<std::string> datagrams = daemon_->datagrams();
  ASSERT_EQ(datagrams.size(), 1u);
  ExpectDaemonDatagrams(datagrams);
  EXPECT_EQ(daemon_->malformed_count(), 0u);

  const std::optional<tools::Trace> trace = daemon_->trace(trace_id);
  ASSERT_TRUE(trace.has_value());
  EXPECT_TRUE(trace->complete());
  ASSERT_EQ(trace->roots().size(), 1u);
  const tools::TraceNode& root = trace->roots()[0];
  EXPECT_EQ(root.entity->id, segment_id);
  EXPECT_EQ(root.entity->name, "checkout");
  EXPECT_EQ(Json(root)["annotations"]["order"].GetInt(), 42);
  EXPECT_EQ(Json(root)["metadata"]["default"]["cart"]["items"].Size(), 2u);
  EXPECT_EQ(Json(root)["http"]["response"]["status"].GetInt(), 503);
  EXPECT_TRUE(Json(root)["fault"].GetBool());
  const tools::TraceNode* received_query = trace->Find(query_id);
  ASSERT_NE(received_query, nullptr);
  EXPECT_EQ(trace->ParentOf(query_id), &root);
  EXPECT_STREQ(Json(*received_query)["namespace"].GetString(), "remote");
  EXPECT_STREQ(Json(*received_query)["cause"]["exceptions"][0]["message"].GetString(),
               "inventory timed out");
}

TEST_F(EmitterIntegrationTest, BigSegmentGoesOutInPiecesAndArrivesWhole) {
  constexpr int kItems = 300;
  constexpr int kParts = 5;  // under every tenth item
  constexpr size_t kPayloadBytes = 5000;
  const std::unique_ptr<Tracing> tracing = Start(daemon_->address(), 1.0);
  ASSERT_NE(tracing, nullptr);
  core::Recorder& recorder = tracing->recorder();

  core::Segment* segment = recorder.BeginSegment("bulk-import");
  const std::string trace_id = segment->trace_id().ToString();
  const std::string segment_id = segment->id().ToString();
  std::map<std::string, std::string> parent_of;  // every subsegment id -> its parent's
  auto begin = [&](const std::string& name, const std::string& parent_id) {
    const std::string id = recorder.BeginSubsegment(name)->id().ToString();
    recorder.PutMetadata("payload", std::string(kPayloadBytes, 'x'));
    parent_of[id] = parent_id;
    return id;
  };
  // First a subtree too big for one datagram (but under the streaming threshold): streamed
  // whole once the items below push the segment over the threshold, then split.
  const std::string batch_id = begin("batch", segment_id);
  for (int i = 0; i < 15; ++i) {
    begin(absl::StrCat("batch-", i), batch_id);
    recorder.EndSubsegment();
  }
  recorder.EndSubsegment();
  for (int item = 0; item < kItems; ++item) {
    const std::string item_id = begin(absl::StrCat("item-", item), segment_id);
    for (int part = 0; item % 10 == 0 && part < kParts; ++part) {
      begin(absl::StrCat("part-", item, "-", part), item_id);
      recorder.EndSubsegment();
    }
    recorder.EndSubsegment();
  }
  recorder.EndSegment();

  ASSERT_TRUE(tracing->Flush(kTimeout));
  const emitter::UdpEmitter::Stats stats = tracing->emitter().stats();
  EXPECT_EQ(stats.send_errors, 0u);
  EXPECT_EQ(stats.sent, stats.serialization.documents);
  // Completed subtrees were streamed ahead, the batch was split, and nothing had to be cut.
  EXPECT_GT(recorder.stats().subtrees_streamed, 0u);
  EXPECT_GT(stats.serialization.split_documents, 0u);
  EXPECT_EQ(stats.serialization.trimmed_documents, 0u);
  EXPECT_EQ(stats.serialization.dropped_documents, 0u);

  ASSERT_TRUE(daemon_->WaitForDatagrams(stats.sent, kTimeout));
  const std::vector<std::string> datagrams = daemon_->datagrams();
  EXPECT_GT(datagrams.size(), 10u);
  for (const std::string& datagram : datagrams) EXPECT_LE(datagram.size(), size_t{64} << 10);
  ExpectDaemonDatagrams(datagrams);
  EXPECT_EQ(daemon_->malformed_count(), 0u);

  const std::optional<tools::Trace> trace = daemon_->trace(trace_id);
  ASSERT_TRUE(trace.has_value());
  EXPECT_TRUE(trace->complete());
  ASSERT_EQ(trace->roots().size(), 1u);
  EXPECT_EQ(trace->roots()[0].entity->name, "bulk-import");
  EXPECT_EQ(trace->Entities().size(), 1 + parent_of.size());
  for (const auto& [id, parent_id] : parent_of) {
    const tools::TraceNode* node = trace->Find(id);
    ASSERT_NE(node, nullptr) << id;
    const tools::TraceNode* parent = trace->ParentOf(id);
    ASSERT_NE(parent, nullptr) << id;
    EXPECT_EQ(parent->entity->id, parent_id) << node->entity->name;
    EXPECT_EQ(Json(*node)["metadata"]["default"]["payload"].GetStringLength(), kPayloadBytes);
  }
}

TEST_F(EmitterIntegrationTest, UnsampledTracesSendNothing) {
  constexpr int kTraces = 200;
  const std::unique_ptr<Tracing> tracing = Start(daemon_->address(), 0.0);
  ASSERT_NE(tracing, nullptr);
  core::Recorder& recorder = tracing->recorder();

  for (int trace = 0; trace < kTraces; ++trace) {
    core::BeginSegmentOptions options;
    if (trace % 2 == 0) options.sampling = core::SamplingDecision{false, ""};  // Sampled=0
    recorder.BeginSegment("unsampled", options);  // otherwise the sampler says no
    recorder.PutAnnotation("trace", trace);
    // More than the streaming threshold: nothing is streamed either.
    for (int i = 0; i < 40; ++i) {
      recorder.BeginSubsegment("step");
      recorder.PutMetadata("payload", std::string(1000, 'x'));
      recorder.EndSubsegment();
    }
    recorder.EndSegment();
  }
  core::BeginSegmentOptions sampled;
  sampled.sampling = core::SamplingDecision{true, ""};
  recorder.BeginSegment("marker", sampled);
  recorder.EndSegment();

  // Sent after everything above, from the same queue and socket: once it is here, anything
  // sent before it would be too.
  ASSERT_TRUE(daemon_->WaitFor(1, kTimeout));
  ASSERT_TRUE(tracing->Flush(kTimeout));
  EXPECT_EQ(tracing->emitter().stats().enqueued, 1u);
  const std::vector<tools::ReceivedDocument> documents = daemon_->documents();
  ASSERT_EQ(documents.size(), 1u);
  EXPECT_EQ(documents[0].entity().name, "marker");
  EXPECT_EQ(daemon_->datagrams().size(), 1u);
  EXPECT_EQ(recorder.stats().segments_unsampled, static_cast<uint64_t>(kTraces));
}

TEST_F(EmitterIntegrationTest, DeadDaemonCostsOnlyCountedDropsAndErrors) {
  constexpr int kSegments = 5000;
  const std::unique_ptr<Tracing> tracing =
      Start(absl::StrCat("127.0.0.1:", emitter::testing::UnusedUdpPort()), 1.0);
  ASSERT_NE(tracing, nullptr);
  core::Recorder& recorder = tracing->recorder();

  for (int i = 0; i < kSegments; ++i) {
    recorder.BeginSegment("nobody-listens");
    recorder.BeginSubsegment("work");
    recorder.PutAnnotation("i", i);
    recorder.EndSubsegment();
    recorder.EndSegment();
  }
  // Every segment was handed over or refused without waiting for the network.
  const core::RecorderStats recorded = recorder.stats();
  EXPECT_EQ(recorded.segments_sent + recorded.documents_not_accepted,
            static_cast<uint64_t>(kSegments));
  // A deadline already passed: returns at once, whatever is still queued.
  tracing->Flush(absl::ZeroDuration());
  ASSERT_TRUE(tracing->Flush(kTimeout));

  const emitter::UdpEmitter::Stats stats = tracing->emitter().stats();
  EXPECT_EQ(stats.enqueued, recorded.segments_sent);
  EXPECT_EQ(stats.dropped_queue_full, recorded.documents_not_accepted);
  // Every datagram is either handed to the kernel or counted as an error: none vanish.
  EXPECT_EQ(stats.sent + stats.send_errors, stats.serialization.documents);
  // The kernel reports the daemon's absence (ICMP port unreachable) on some sends.
  EXPECT_GT(stats.connection_refused, 0u);
  EXPECT_EQ(stats.send_errors, stats.connection_refused + stats.message_too_long +
                                   stats.would_block + stats.other_errors);
  EXPECT_EQ(stats.serialization.documents, stats.enqueued);
  EXPECT_EQ(daemon_->datagrams().size(), 0u);
}

// TracingOptions::emitter reaches the emitter: a bad setting fails Configure, naming it.
TEST_F(EmitterIntegrationTest, EmitterOptionsReachTheEmitter) {
  TracingOptions options;
  options.daemon_address = daemon_->address();
  options.recorder.read_environment = false;
  options.emitter.queue_capacity = 1;
  absl::StatusOr<std::unique_ptr<Tracing>> tracing = Configure(std::move(options));
  ASSERT_FALSE(tracing.ok());
  EXPECT_EQ(tracing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(tracing.status().message().find("queue capacity"), absl::string_view::npos)
      << tracing.status();
}

// The daemon address may be set in TracingOptions::emitter instead: it is used, not overwritten.
// Set in both places with different values, Configure fails, naming both.
TEST_F(EmitterIntegrationTest, TheDaemonAddressMayBeSetInTheEmitterOptions) {
  TracingOptions options;
  options.recorder.read_environment = false;
  options.recorder.sampler = std::make_shared<core::DefaultSampler>(0, 1.0);
  options.emitter.daemon_address = daemon_->address();
  absl::StatusOr<std::unique_ptr<Tracing>> tracing = Configure(options);
  ASSERT_TRUE(tracing.ok()) << tracing.status();
  (*tracing)->recorder().BeginSegment("via-emitter-options");
  (*tracing)->recorder().EndSegment();
  EXPECT_TRUE(daemon_->WaitFor(1, kTimeout));
  tracing->reset();

  options.daemon_address = "127.0.0.1:2000";
  tracing = Configure(options);
  ASSERT_FALSE(tracing.ok());
  EXPECT_EQ(tracing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(tracing.status().message().find(daemon_->address()), absl::string_view::npos)
      << tracing.status();

  options.daemon_address = "";
  options.flush_timeout = absl::Seconds(3);
  options.emitter.flush_timeout = absl::Seconds(2);
  tracing = Configure(options);
  ASSERT_FALSE(tracing.ok());
  EXPECT_NE(tracing.status().message().find("flush timeout"), absl::string_view::npos)
      << tracing.status();
}

}  // namespace
}  // namespace xraysink::integration_tests
