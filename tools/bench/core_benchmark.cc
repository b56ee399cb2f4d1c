// Micro-benchmarks of the hot paths: bazel run -c opt //tools/bench:core_benchmark
#include <benchmark/benchmark.h>

#include <climits>
#include <memory>
#include <string>
#include <vector>

#include "core/entity.h"
#include "core/recorder.h"
#include "core/serialization.h"
#include "emitter/udp_emitter.h"

namespace xraysink::core {
namespace {

std::shared_ptr<Sampler> AlwaysSample() {
  struct Always : Sampler {
    SamplingDecision ShouldTrace(const SamplingRequest&) override { return {true, ""}; }
  };
  return std::make_shared<Always>();
}

std::shared_ptr<Recorder> BenchRecorder(std::shared_ptr<SegmentSink> sink, int threshold) {
  RecorderOptions options;
  options.service_name = "bench";
  options.read_environment = false;
  options.sampler = AlwaysSample();
  options.sink = std::move(sink);
  options.streaming_threshold = threshold;
  return *Recorder::Create(std::move(options));
}

// Begin + end of one subsegment on the current flow, nothing emitted. The segment is renewed
// every state.range(0) subsegments (its cost is amortized in).
void SubsegmentBeginEnd(benchmark::State& state, int streaming_threshold) {
  auto recorder = BenchRecorder(nullptr, streaming_threshold);
  recorder->BeginSegment("bench");
  int n = 0;
  for (auto _ : state) {
    recorder->BeginSubsegment("sub");
    recorder->EndSubsegment();
    if (++n == state.range(0)) {
      n = 0;
      recorder->EndSegment();
      recorder->BeginSegment("bench");
    }
  }
  recorder->EndSegment();
}

// No streaming, so the tree stays small. With 1000 the segment's arena outgrows glibc's trim
// threshold, so every renewal returns it to the kernel and page-faults it back: /100 is the
// common case, /1000 shows that effect.
void BM_SubsegmentBeginEnd(benchmark::State& state) { SubsegmentBeginEnd(state, INT_MAX); }
BENCHMARK(BM_SubsegmentBeginEnd)->Arg(100)->Arg(1000);

// The same with streaming at the default threshold (30), as a long-lived segment (a
// connection, a job) does: completed subsegments go out (here to no sink) as the tree grows.
// The per-subsegment cost must not grow with the number the segment has streamed so far.
void BM_StreamedSubsegmentBeginEnd(benchmark::State& state) { SubsegmentBeginEnd(state, 30); }
BENCHMARK(BM_StreamedSubsegmentBeginEnd)->Arg(100)->Arg(10000)->Arg(100000);

// The emit_load workload's segment: http fields, 1 annotation + 1 metadata, K subsegments each
// with 1 numeric annotation and 1 metadata object.
std::shared_ptr<Segment> WorkloadSegment(Recorder& recorder, int subsegments, int i) {
  auto segment = recorder.CreateSegment("bench-service", {});
  auto& request = segment->http().request.emplace();
  request.method = "GET";
  request.url = "http://bench.local/items/" + std::to_string(i);
  request.client_ip = "127.0.0.1";
  request.user_agent = "bench-agent/1.0";
  segment->PutAnnotation("request_no", i);
  segment->PutMetadata("debug", JsonValue::Object({{"i", i}, {"tag", "bench"}}));
  for (int k = 0; k < subsegments; ++k) {
    Subsegment* sub = segment->BeginSubsegment("sub-" + std::to_string(k));
    sub->PutAnnotation("k", k);
    sub->PutMetadata("payload", JsonValue::Object({{"k", k}, {"note", "bench"}}));
    sub->End();
  }
  segment->ApplyStatusCode(200);
  segment->http().response->content_length = 1234;
  segment->End();
  return segment;
}

// The emit_load workload's segment, built and freed on one thread with nothing sent: the
// producer's share of emit_load without the emitter (compare its us_per_segment).
void BM_BuildWorkloadSegment(benchmark::State& state) {
  auto recorder = BenchRecorder(nullptr, INT_MAX);
  int i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(WorkloadSegment(*recorder, 10, ++i));
}
BENCHMARK(BM_BuildWorkloadSegment);

void BM_SerializeSegmentWith10Subsegments(benchmark::State& state) {
  auto recorder = BenchRecorder(nullptr, INT_MAX);
  auto segment = WorkloadSegment(*recorder, 10, 7);
  std::vector<std::string> datagrams;
  SerializationStats stats;
  size_t bytes = 0;
  for (auto _ : state) {
    datagrams.clear();
    SerializeDatagrams(DocumentRef{segment, nullptr}, kMaxDatagramBytes, datagrams, stats);
    bytes = datagrams[0].size();
  }
  state.counters["datagram_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_SerializeSegmentWith10Subsegments);

// The ending thread's cost to hand a finished segment (10 subsegments) to the UDP emitter: the
// End() that completes it and enqueues it. Segments are built, and the queue drained, with the
// clock stopped, 1000 at a time.
void BM_HandSegmentToEmitter(benchmark::State& state) {
  emitter::EmitterOptions emitter_options;
  emitter_options.daemon_address = "127.0.0.1:9";  // discard: nobody listens
  emitter_options.queue_capacity = 4096;
  auto emitter = *emitter::UdpEmitter::Create(emitter_options);
  auto recorder = BenchRecorder(emitter, INT_MAX);
  constexpr int kBatch = 1000;
  std::vector<std::shared_ptr<Segment>> batch;
  int next = kBatch;
  for (auto _ : state) {
    if (next == kBatch) {
      state.PauseTiming();
      emitter->Flush(absl::Now() + absl::Seconds(10));
      batch.clear();
      for (int i = 0; i < kBatch; ++i) {
        auto segment = recorder->CreateSegment("bench-service", {});
        for (int k = 0; k < 10; ++k) segment->BeginSubsegment("sub")->End();
        batch.push_back(std::move(segment));
      }
      next = 0;
      state.ResumeTiming();
    }
    batch[next++]->End();
  }
  emitter->Flush(absl::Now() + absl::Seconds(10));
  state.counters["not_accepted"] = static_cast<double>(recorder->stats().documents_not_accepted);
}
BENCHMARK(BM_HandSegmentToEmitter);

}  // namespace
}  // namespace xraysink::core
