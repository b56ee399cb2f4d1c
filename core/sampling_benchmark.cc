// One local-rule decision per request: 20 custom rules, the request matching the last one or
// none (the default rule), on the real clock and random source.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>

#include "core/rule_sampler.h"

namespace xraysink::core {
namespace {

RuleSampler& TwentyRules() {
  static RuleSampler* const sampler = [] {
    auto* created = new RuleSampler();
    LocalRules rules;
    for (int i = 0; i < 20; ++i) {
      rules.rules.push_back({.host = "*.example.com",
                             .http_method = i % 2 == 0 ? "GET" : "*",
                             .url_path = "/api/v1/service" + std::to_string(i) + "/*",
                             .fixed_target = 1,
                             .rate = 0.05});
    }
    if (!created->SetRules(rules).ok()) std::abort();
    return created;
  }();
  return *sampler;
}

void Decide(benchmark::State& state, const SamplingRequest& request) {
  RuleSampler& sampler = TwentyRules();
  for (auto _ : state) {
    SamplingDecision decision = sampler.ShouldTrace(request);
    benchmark::DoNotOptimize(decision);
  }
}

void BM_MatchLastRule(benchmark::State& state) {
  Decide(state,
         {.host = "shop.example.com", .method = "POST", .path = "/api/v1/service19/orders/42"});
}
BENCHMARK(BM_MatchLastRule)->Threads(1)->Threads(2);

void BM_MatchDefault(benchmark::State& state) {
  Decide(state, {.host = "shop.example.com", .method = "GET", .path = "/health"});
}
BENCHMARK(BM_MatchDefault)->Threads(1)->Threads(2);

}  // namespace
}  // namespace xraysink::core
