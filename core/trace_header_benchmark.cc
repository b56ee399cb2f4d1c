// Parsing an incoming X-Amzn-Trace-Id and writing an outgoing one: both run once per request.
#include <benchmark/benchmark.h>

#include <string>

#include "core/trace_header.h"

namespace xraysink::core {
namespace {

constexpr char kHeader[] =
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

void BM_Parse(benchmark::State& state) {
  for (auto _ : state) {
    absl::StatusOr<TraceHeader> header = TraceHeader::Parse(kHeader);
    benchmark::DoNotOptimize(header);
  }
}
BENCHMARK(BM_Parse);

void BM_AppendOutgoing(benchmark::State& state) {
  const TraceId root = *TraceId::Parse("1-5759e988-bd862e3fe1be46a994272793");
  const EntityId parent = *EntityId::Parse("53995c3f42cd8ad8");
  std::string out;
  for (auto _ : state) {
    out.clear();  // keeps the capacity, as a reused header buffer would
    TraceHeader::AppendOutgoing(root, parent, true, "Lineage=12326a9d:0", out);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_AppendOutgoing);

}  // namespace
}  // namespace xraysink::core
