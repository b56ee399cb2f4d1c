#include "middleware/request_tracer.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_replace.h"
#include "core/testing/collecting_sink.h"

namespace xraysink::middleware {
namespace {

// Records what it was asked; samples everything unless told otherwise.
struct RecordingSampler : core::Sampler {
  core::SamplingDecision ShouldTrace(const core::SamplingRequest& request) override {
    ++asked;
    host = std::string(request.host);
    method = std::string(request.method);
    path = std::string(request.path);
    service = std::string(request.service);
    return {answer, ""};
  }
  bool answer = true;
  int asked = 0;
  std::string host, method, path, service;
};

std::shared_ptr<core::Recorder> MakeRecorder(std::shared_ptr<core::Sampler> sampler,
                                             bool enabled = true) {
  core::RecorderOptions options;
  options.service_name = "fallback-service";
  options.read_environment = false;
  options.enabled = enabled;
  options.sampler = std::move(sampler);
  options.sink = std::make_shared<core::testing::CollectingSink>();
  return *core::Recorder::Create(std::move(options));
}

IncomingRequest Request(std::string_view host) {
  IncomingRequest request;
  request.method = "POST";
  request.host = host;
  request.target = "/api/orders?id=7";
  request.peer_address = "10.0.0.9";
  return request;
}

TEST(RequestTracerTest, AsksTheSamplerWithHostMethodPathAndName) {
  auto sampler = std::make_shared<RecordingSampler>();
  RequestTracer tracer(MakeRecorder(sampler), SegmentNaming::Fixed("orders"));
  TracedRequest traced = tracer.Begin(Request("shop.example:8080"));
  ASSERT_NE(traced.segment(), nullptr);
  EXPECT_EQ(sampler->host, "shop.example:8080");
  EXPECT_EQ(sampler->method, "POST");
  EXPECT_EQ(sampler->path, "/api/orders");
  EXPECT_EQ(sampler->service, "orders");
  EXPECT_EQ(traced.segment()->http().request->url, "http://shop.example:8080/api/orders?id=7");
  EXPECT_EQ(traced.segment()->http().request->client_ip, "10.0.0.9");
  EXPECT_FALSE(traced.segment()->http().request->x_forwarded_for);

  IncomingRequest fragment = Request("shop.example");
  fragment.target = "/api/items?id=7#top";
  TracedRequest with_fragment = tracer.Begin(fragment);
  EXPECT_EQ(sampler->path, "/api/items");
  EXPECT_EQ(with_fragment.segment()->http().request->url, "http://shop.example/api/items?id=7");
  fragment.target = "/api/items";
  tracer.Begin(fragment);
  EXPECT_EQ(sampler->path, "/api/items");
}

TEST(RequestTracerTest, DynamicNamingByHost) {
  RequestTracer tracer(MakeRecorder(std::make_shared<RecordingSampler>()),
                       SegmentNaming::Dynamic("*.example.com", "fallback"));
  EXPECT_EQ(tracer.Begin(Request("api.example.com:443")).segment()->name(), "api.example.com");
  EXPECT_EQ(tracer.Begin(Request("evil.org")).segment()->name(), "fallback");
  EXPECT_EQ(tracer.Begin(Request("")).segment()->name(), "fallback");  // Host: localhost
  RequestTracer no_fallback(MakeRecorder(std::make_shared<RecordingSampler>()),
                            SegmentNaming::Dynamic("*.example.com", ""));
  EXPECT_EQ(no_fallback.Begin(Request("x.org")).segment()->name(), "fallback-service");
}

TEST(RequestTracerTest, MissingHostIsLocalhost) {
  RequestTracer tracer(MakeRecorder(std::make_shared<RecordingSampler>()),
                       SegmentNaming::Fixed(""));
  TracedRequest traced = tracer.Begin(Request(""));
  EXPECT_EQ(traced.segment()->name(), "fallback-service");
  EXPECT_EQ(traced.segment()->http().request->url, "http://localhost/api/orders?id=7");
}

TEST(RequestTracerTest, EnvironmentNameWins) {
  setenv("AWS_XRAY_TRACING_NAME", "from-env", 1);
  RequestTracer tracer(MakeRecorder(std::make_shared<RecordingSampler>()),
                       SegmentNaming::Fixed("from-code"));
  unsetenv("AWS_XRAY_TRACING_NAME");
  EXPECT_EQ(tracer.Begin(Request("h")).segment()->name(), "from-env");
}

// An unsampled request keeps its ids for propagation, but nothing of it is built to be sent.
TEST(RequestTracerTest, UnsampledRequestRecordsNoFields) {
  RequestTracer tracer(MakeRecorder(std::make_shared<RecordingSampler>()),
                       SegmentNaming::Fixed("x"));
  IncomingRequest request = Request("h");
  request.trace_header = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0";
  TracedRequest traced = tracer.Begin(request);
  ASSERT_NE(traced.segment(), nullptr);
  EXPECT_FALSE(traced.segment()->sampled());
  EXPECT_EQ(traced.segment()->trace_id().view(), "1-5759e988-bd862e3fe1be46a994272793");
  EXPECT_FALSE(traced.segment()->http().request.has_value());
  traced.Finish(503, /*content_length=*/12);
  EXPECT_FALSE(traced.segment()->http().response.has_value());
  EXPECT_FALSE(traced.segment()->fault());
}

// The caller's Sampled=1/0 stands even when there is no Root to continue (spec 3.1): a Python
// SDK sends its no-op Root with Sampled=0 for every request it did not sample, and an invalid
// Root is treated as absent. The trace is a new one either way.
TEST(RequestTracerTest, TheCallersDecisionStandsWithoutARootToContinue) {
  auto sampler = std::make_shared<RecordingSampler>();
  RequestTracer tracer(MakeRecorder(sampler), SegmentNaming::Fixed("x"));
  for (const char* header :
       {"Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0",
        "Root=not-a-trace-id;Sampled=0", "Sampled=0", "Parent=53995c3f42cd8ad8;Sampled=0"}) {
    SCOPED_TRACE(header);
    IncomingRequest request = Request("h");
    request.trace_header = header;
    sampler->answer = true;
    TracedRequest traced = tracer.Begin(request);
    ASSERT_NE(traced.segment(), nullptr);
    EXPECT_FALSE(traced.segment()->sampled());
    EXPECT_EQ(sampler->asked, 0) << "the caller decided";
    EXPECT_NE(traced.segment()->trace_id().view(), "1-00000000-000000000000000000000000");
    EXPECT_TRUE(traced.segment()->parent_id().empty());
    EXPECT_EQ(traced.response_header(), "Root=" + std::string(traced.segment()->trace_id().view()));

    const std::string sampled_header = absl::StrReplaceAll(header, {{"Sampled=0", "Sampled=1"}});
    request.trace_header = sampled_header;
    sampler->answer = false;
    TracedRequest sampled = tracer.Begin(request);
    ASSERT_NE(sampled.segment(), nullptr);
    EXPECT_TRUE(sampled.segment()->sampled());
    EXPECT_EQ(sampler->asked, 0) << "the caller decided";
    EXPECT_TRUE(sampled.segment()->parent_id().empty());
  }
  // Sampled=? without a Root asks the sampler, and the answer says what it decided.
  IncomingRequest request = Request("h");
  request.trace_header = "Root=1-00000000-000000000000000000000000;Sampled=?";
  sampler->answer = false;
  TracedRequest asked = tracer.Begin(request);
  EXPECT_EQ(sampler->asked, 1);
  EXPECT_EQ(asked.response_header(),
            "Root=" + std::string(asked.segment()->trace_id().view()) + ";Sampled=0");
}

// A status that is not an HTTP one records no response: its length has nowhere to go (an
// empty std::optional was written through; the ASan config's library assertions catch that).
TEST(RequestTracerTest, FinishingWithoutAStatusRecordsNoResponse) {
  RequestTracer tracer(MakeRecorder(std::make_shared<RecordingSampler>()),
                       SegmentNaming::Fixed("x"));
  TracedRequest traced = tracer.Begin(Request("h"));
  ASSERT_NE(traced.segment(), nullptr);
  ASSERT_TRUE(traced.segment()->sampled());
  traced.Finish(0, /*content_length=*/12);
  EXPECT_TRUE(traced.segment()->ended());
  EXPECT_FALSE(traced.segment()->http().response.has_value());
}

struct NeverSampler : core::Sampler {
  core::SamplingDecision ShouldTrace(const core::SamplingRequest&) override { return {}; }
};

// An unsampled request's segment is made only when the flow asks for it, once, from the
// request's trace, the caller's entity and the name; the response header does not need it.
TEST(RequestTracerTest, AnUnsampledRequestsSegmentIsMadeOnlyWhenAskedFor) {
  auto recorder = MakeRecorder(std::make_shared<NeverSampler>());
  RequestTracer tracer(recorder, SegmentNaming::Dynamic("*.example.com", "fallback"));
  std::string host = "api.example.com:443";
  IncomingRequest request = Request(host);
  request.trace_header =
      "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=?";
  TracedRequest traced = tracer.Begin(request);
  host.assign(host.size(), 'x');  // the request is gone before the segment is made
  EXPECT_TRUE(traced.context().deferred());
  EXPECT_EQ(recorder->stats().segments_unsampled, 1u);
  EXPECT_EQ(traced.response_header(), "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0");

  // Moved (constructed, then assigned) and the originals gone: the deferral moved along.
  auto moved = std::make_unique<TracedRequest>(std::move(traced));
  TracedRequest assigned;
  assigned = std::move(*moved);
  moved.reset();
  EXPECT_TRUE(assigned.context().deferred());
  core::Segment* segment = assigned.segment();
  ASSERT_NE(segment, nullptr);
  EXPECT_EQ(assigned.segment(), segment);
  EXPECT_FALSE(segment->sampled());
  EXPECT_EQ(segment->name(), "api.example.com");
  EXPECT_EQ(segment->trace_id().view(), "1-5759e988-bd862e3fe1be46a994272793");
  EXPECT_EQ(segment->parent_id().ToString(), "53995c3f42cd8ad8");
  EXPECT_EQ(recorder->stats().segments_begun, 1u);  // counted once, when deferred
}

// Finishing never makes the segment; one made afterwards (a flow that outlived the response)
// has ended.
TEST(RequestTracerTest, AnUnsampledRequestFinishesWithoutItsSegment) {
  RequestTracer tracer(MakeRecorder(std::make_shared<NeverSampler>()), SegmentNaming::Fixed("x"));
  TracedRequest traced = tracer.Begin(Request("h"));
  ASSERT_TRUE(traced.context().deferred());
  traced.Finish(200, 5);
  EXPECT_TRUE(traced.context().deferred());
  ASSERT_NE(traced.segment(), nullptr);
  EXPECT_TRUE(traced.segment()->ended());
  EXPECT_EQ(traced.response_header().substr(0, 5), "Root=");
  EXPECT_EQ(traced.response_header().substr(5), traced.segment()->trace_id().view());
}

TEST(RequestTracerTest, DisabledRecorderTracesNothing) {
  RequestTracer tracer(MakeRecorder(std::make_shared<RecordingSampler>(), /*enabled=*/false),
                       SegmentNaming::Fixed("x"));
  TracedRequest traced = tracer.Begin(Request("h"));
  EXPECT_EQ(traced.segment(), nullptr);
  EXPECT_TRUE(traced.response_header().empty());
  traced.Finish(200);  // harmless
}

}  // namespace
}  // namespace xraysink::middleware
