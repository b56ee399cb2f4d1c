#include "middleware/request_tracer.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>

#include "core/testing/collecting_sink.h"

namespace xraysink::middleware {
namespace {

// Records what it was asked; samples everything.
struct RecordingSampler : core::Sampler {
  core::SamplingDecision ShouldTrace(const core::SamplingRequest& request) override {
    host = std::string(request.host);
    method = std::string(request.method);
    path = std::string(request.path);
    service = std::string(request.service);
    return {true, ""};
  }
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
