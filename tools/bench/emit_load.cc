// End-to-end throughput, the workload of ../shared/bench/peers (node_bench.js, py_bench.py):
// N segments (http request/response, 1 annotation, 1 metadata entry), each with K subsegments
// opened and closed in turn (1 numeric annotation, 1 metadata object each), sent over UDP to a
// counting receiver in another process on 127.0.0.1.
//
//   bazel run -c opt //tools/bench:emit_load -- N K [--json] [--raw] [--warmup=W] [--stats]
//
// --raw sends the same number of pre-serialized datagrams of the same size through the same
// emitter with no tracing at all: the machine's limit for this transport. --stats prints the
// emitter's counters to stderr (stdout keeps the peer scripts' one line).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "core/recorder.h"
#include "core/serialization.h"
#include "emitter/udp_emitter.h"

namespace {

using xraysink::core::JsonValue;

struct ReceiverReport {
  uint64_t datagrams = 0;
  uint64_t bytes = 0;
};

// The counting receiver: a child process bound to 127.0.0.1:0. It answers each 8-byte request
// (the number of datagrams to expect) on `control` once that many arrived or nothing arrived
// for a second, then resets its counters.
[[noreturn]] void RunReceiver(int control, int port_out) {
  const int sock = socket(AF_INET, SOCK_DGRAM, 0);
  const int buffer = 64 << 20;
  if (setsockopt(sock, SOL_SOCKET, SO_RCVBUFFORCE, &buffer, sizeof(buffer)) != 0) {
    setsockopt(sock, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof(buffer));
  }
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(sock, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) _exit(3);
  socklen_t length = sizeof(address);
  getsockname(sock, reinterpret_cast<sockaddr*>(&address), &length);
  const uint16_t port = ntohs(address.sin_port);
  if (write(port_out, &port, sizeof(port)) != sizeof(port)) _exit(3);

  constexpr int kBatch = 64;
  static char buffers[kBatch][65536];
  mmsghdr messages[kBatch];
  iovec vectors[kBatch];
  ReceiverReport report;
  uint64_t expected = UINT64_MAX;
  auto last_arrival = std::chrono::steady_clock::now();
  while (true) {
    pollfd fds[2] = {{sock, POLLIN, 0}, {control, POLLIN, 0}};
    poll(fds, 2, 100);
    if (fds[0].revents & POLLIN) {
      for (int i = 0; i < kBatch; ++i) {
        vectors[i] = {buffers[i], sizeof(buffers[i])};
        messages[i] = {};
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
      }
      const int received = recvmmsg(sock, messages, kBatch, MSG_DONTWAIT, nullptr);
      for (int i = 0; i < received; ++i) {
        ++report.datagrams;
        report.bytes += messages[i].msg_len;
      }
      if (received > 0) last_arrival = std::chrono::steady_clock::now();
    }
    if (fds[1].revents & (POLLIN | POLLHUP)) {
      uint64_t request;
      if (read(control, &request, sizeof(request)) != sizeof(request)) _exit(0);
      expected = request;
      last_arrival = std::chrono::steady_clock::now();
    }
    if (expected != UINT64_MAX &&
        (report.datagrams >= expected ||
         std::chrono::steady_clock::now() - last_arrival > std::chrono::seconds(1))) {
      if (write(control, &report, sizeof(report)) != sizeof(report)) _exit(0);
      report = {};
      expected = UINT64_MAX;
    }
  }
}

struct Receiver {
  pid_t pid = -1;
  int control = -1;
  uint16_t port = 0;

  static Receiver Start() {
    int control[2], port_pipe[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, control) != 0 || pipe(port_pipe) != 0) std::exit(3);
    Receiver receiver;
    receiver.pid = fork();
    if (receiver.pid == 0) {
      close(control[0]);
      RunReceiver(control[1], port_pipe[1]);
    }
    close(control[1]);
    receiver.control = control[0];
    if (read(port_pipe[0], &receiver.port, sizeof(receiver.port)) != sizeof(receiver.port)) {
      std::fprintf(stderr, "emit_load: receiver failed to start\n");
      std::exit(3);
    }
    return receiver;
  }

  ReceiverReport WaitFor(uint64_t datagrams) const {
    ReceiverReport report;
    if (write(control, &datagrams, sizeof(datagrams)) != sizeof(datagrams) ||
        read(control, &report, sizeof(report)) != sizeof(report)) {
      std::fprintf(stderr, "emit_load: receiver died\n");
      std::exit(3);
    }
    return report;
  }

  void Stop() const {
    close(control);
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
  }
};

std::shared_ptr<xraysink::core::Sampler> AlwaysSample() {
  struct Always : xraysink::core::Sampler {
    xraysink::core::SamplingDecision ShouldTrace(const xraysink::core::SamplingRequest&) override {
      return {true, ""};
    }
  };
  return std::make_shared<Always>();
}

// One segment of the workload, through the recorder's current-flow API.
void OneSegment(xraysink::core::Recorder& recorder, int i, int subsegments,
                const std::vector<std::string>& names) {
  xraysink::core::Segment* segment = recorder.BeginSegment("bench-service");
  auto& request = segment->http().request.emplace();
  request.method = "GET";
  request.url = "http://bench.local/items/" + std::to_string(i);
  request.client_ip = "127.0.0.1";
  request.user_agent = "bench-agent/1.0";
  segment->PutAnnotation("request_no", i);
  segment->PutMetadata("debug", JsonValue::Object({{"i", i}, {"tag", "bench"}}));
  for (int k = 0; k < subsegments; ++k) {
    xraysink::core::Subsegment* sub = recorder.BeginSubsegment(names[k]);
    sub->PutAnnotation("k", k);
    sub->PutMetadata("payload", JsonValue::Object({{"k", k}, {"note", "bench"}}));
    recorder.EndSubsegment();
  }
  segment->ApplyStatusCode(200);
  segment->http().response->content_length = 1234;
  recorder.EndSegment();
}

double PeakRssMb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> positional;
  bool raw = false;
  bool print_stats = false;
  int warmup = 1000;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--json") {
      // Accepted for the peer scripts' interface: the output is always one JSON line.
    } else if (arg == "--raw") {
      raw = true;
    } else if (arg == "--stats") {
      print_stats = true;
    } else if (arg.rfind("--warmup=", 0) == 0) {
      warmup = std::atoi(arg.c_str() + 9);
    } else if (!arg.empty() && arg[0] != '-') {
      positional.push_back(arg);
    } else {
      std::fprintf(stderr,
                   "usage: emit_load [N=20000] [K=10] [--json] [--raw] [--warmup=W] [--stats]\n");
      return 2;
    }
  }
  const int n = positional.size() > 0 ? std::atoi(positional[0].c_str()) : 20000;
  const int k = positional.size() > 1 ? std::atoi(positional[1].c_str()) : 10;
  if (n <= 0 || k < 0 || warmup < 0) {
    std::fprintf(stderr, "emit_load: N must be > 0, K and --warmup >= 0\n");
    return 2;
  }

  const double rss_start = PeakRssMb();
  Receiver receiver = Receiver::Start();
  xraysink::emitter::EmitterOptions emitter_options;
  emitter_options.daemon_address = "127.0.0.1:" + std::to_string(receiver.port);
  emitter_options.queue_capacity = 1 << 16;
  auto emitter = xraysink::emitter::UdpEmitter::Create(emitter_options);
  if (!emitter.ok()) {
    std::fprintf(stderr, "emit_load: %s\n", std::string(emitter.status().message()).c_str());
    return 2;
  }
  xraysink::core::RecorderOptions options;
  options.service_name = "bench-service";
  options.read_environment = false;
  options.sampler = AlwaysSample();
  options.sink = *emitter;
  auto recorder = *xraysink::core::Recorder::Create(std::move(options));
  std::vector<std::string> names;
  for (int i = 0; i < k; ++i) names.push_back("sub-" + std::to_string(i));

  // The raw datagram: the workload's own document, serialized once.
  struct CaptureSink : xraysink::core::SegmentSink {
    bool Accept(xraysink::core::DocumentRef document) override {
      std::vector<std::string> datagrams;
      xraysink::core::SerializationStats stats;
      xraysink::core::SerializeDatagrams(document, xraysink::core::kMaxDatagramBytes, datagrams,
                                         stats);
      datagram = datagrams.at(0);
      return true;
    }
    std::string datagram;
  };
  auto capture_sink = std::make_shared<CaptureSink>();
  {
    xraysink::core::RecorderOptions capture_options;
    capture_options.read_environment = false;
    capture_options.sampler = AlwaysSample();
    capture_options.sink = capture_sink;
    OneSegment(**xraysink::core::Recorder::Create(std::move(capture_options)), 12345, k, names);
  }
  const std::string raw_datagram = capture_sink->datagram;

  const auto run = [&](int count) {
    for (int i = 0; i < count; ++i) {
      if (raw) {
        (*emitter)->SendRaw(raw_datagram);
      } else {
        OneSegment(*recorder, i, k, names);
      }
    }
    (*emitter)->Flush(absl::Now() + absl::Seconds(30));
  };

  if (warmup > 0) {
    run(warmup);
    receiver.WaitFor(static_cast<uint64_t>(warmup));
  }
  const auto start = std::chrono::steady_clock::now();
  run(n);
  const auto end = std::chrono::steady_clock::now();
  const ReceiverReport report = receiver.WaitFor(static_cast<uint64_t>(n));
  receiver.Stop();

  const double wall_ns = std::chrono::duration<double, std::nano>(end - start).count();
  const double wall_s = wall_ns / 1e9;
  char line[1024];
  std::snprintf(
      line, sizeof(line),
      "{\"sdk\":\"xraysink-cpp %s%s\",\"N\":%d,\"K\":%d,\"wall_s\":%.4f,\"segments_per_s\":%.0f,"
      "\"subsegments_per_s\":%.0f,\"ns_per_subsegment\":%.0f,\"us_per_segment\":%.2f,"
      "\"datagrams_received\":%llu,\"expected_datagrams\":%d,\"avg_datagram_bytes\":%.0f,"
      "\"rss_at_start_mb\":%.1f,\"peak_rss_mb\":%.1f}",
      xraysink::core::kSdkVersion, raw ? " (raw UDP)" : "", n, k, wall_s, n / wall_s,
      static_cast<double>(n) * k / wall_s, k > 0 ? wall_ns / (static_cast<double>(n) * k) : 0.0,
      wall_ns / n / 1e3, static_cast<unsigned long long>(report.datagrams), n,
      report.datagrams ? static_cast<double>(report.bytes) / report.datagrams : 0.0, rss_start,
      PeakRssMb());
  std::printf("%s\n", line);
  if (print_stats) {
    const auto stats = (*emitter)->stats();
    std::fprintf(stderr,
                 "emitter: enqueued %llu, sent %llu, serialized by callers %llu of %llu documents, "
                 "dropped (queue full) %llu, send errors %llu, sendmmsg calls %llu\n",
                 static_cast<unsigned long long>(stats.enqueued),
                 static_cast<unsigned long long>(stats.sent),
                 static_cast<unsigned long long>(stats.serialized_by_callers),
                 static_cast<unsigned long long>(stats.serialization.documents),
                 static_cast<unsigned long long>(stats.dropped_queue_full),
                 static_cast<unsigned long long>(stats.send_errors),
                 static_cast<unsigned long long>(stats.send_calls));
  }
  return report.datagrams == static_cast<uint64_t>(n) ? 0 : 1;
}
