// The middleware's own cost per request, without the server around it:
//   bazel run -c opt //tools/bench:middleware_benchmark
// A Beast request is begun (header lookups, trace header, sampling, segment) and finished
// (X-Amzn-Trace-Id on the response, status, end); sampled segments go to a sink that lets go
// of them at once, so serializing and sending (//emitter's thread) are not counted here.
#include <benchmark/benchmark.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <memory>
#include <optional>

#include "core/recorder.h"
#include "core/segment_sink.h"
#include "middleware/beast_server.h"
#include "middleware/request_tracer.h"

namespace xraysink::middleware {
namespace {

namespace http = boost::beast::http;

struct FixedSampler : core::Sampler {
  explicit FixedSampler(bool sampled) : sampled(sampled) {}
  core::SamplingDecision ShouldTrace(const core::SamplingRequest&) override {
    return {sampled, ""};
  }
  bool sampled;
};

struct DiscardingSink : core::SegmentSink {
  bool Accept(core::DocumentRef) override { return true; }
};

std::shared_ptr<const RequestTracer> Tracer(std::shared_ptr<core::Sampler> sampler) {
  core::RecorderOptions options;
  options.service_name = "bench";
  options.read_environment = false;
  options.sampler = std::move(sampler);
  options.sink = std::make_shared<DiscardingSink>();
  return std::make_shared<RequestTracer>(*core::Recorder::Create(std::move(options)),
                                         SegmentNaming::Fixed("hello"));
}

http::request<http::string_body> HelloRequest(const char* trace_header) {
  http::request<http::string_body> request(http::verb::get, "/hello", 11);
  request.set(http::field::host, "127.0.0.1:8080");
  request.set(http::field::user_agent, "http_load");
  if (trace_header != nullptr) request.set("X-Amzn-Trace-Id", trace_header);
  return request;
}

// What ServeTraced adds to one request with a plain-function handler: BeginBeast, the context
// installed around the handler, FinishBeast. state.range(0): 1 sampled, 0 not.
void BM_BeastRequest(benchmark::State& state) {
  const auto tracer = Tracer(std::make_shared<FixedSampler>(state.range(0) != 0));
  const auto request = HelloRequest(nullptr);
  const boost::asio::ip::tcp::endpoint peer(boost::asio::ip::make_address_v4("127.0.0.1"), 51234);
  http::response<http::string_body> response(http::status::ok, 11);
  response.body() = "hello";
  response.prepare_payload();
  for (auto _ : state) {
    TracedRequest traced = internal::BeginBeast(*tracer, request, peer, "http");
    {
      core::ScopedContext scope(traced.context());
      benchmark::DoNotOptimize(&core::CurrentContext());
    }
    internal::FinishBeast(traced, response, internal::ContentLength(response));
    benchmark::DoNotOptimize(response);
    response.erase("X-Amzn-Trace-Id");  // each request has a response of its own
  }
}
BENCHMARK(BM_BeastRequest)->ArgName("sampled")->Arg(0)->Arg(1);

// The same with the caller's trace continued (Root, Parent, Sampled=0): no sampler, the header
// parsed instead.
void BM_BeastRequestContinuingATrace(benchmark::State& state) {
  const auto tracer = Tracer(std::make_shared<FixedSampler>(true));
  const auto request =
      HelloRequest("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0");
  const boost::asio::ip::tcp::endpoint peer(boost::asio::ip::make_address_v4("127.0.0.1"), 51234);
  http::response<http::string_body> response(http::status::ok, 11);
  for (auto _ : state) {
    TracedRequest traced = internal::BeginBeast(*tracer, request, peer, "http");
    internal::FinishBeast(traced, response, std::nullopt);
    benchmark::DoNotOptimize(response);
    response.erase("X-Amzn-Trace-Id");
  }
}
BENCHMARK(BM_BeastRequestContinuingATrace);

}  // namespace
}  // namespace xraysink::middleware
