// xray_local: a stand-in for the X-Ray daemon on a developer machine. Listens for segment
// datagrams on UDP, checks them as the daemon and the service would, and prints every finished
// trace as a tree. See kUsage.
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tools/local_daemon/datagram.h"
#include "tools/local_daemon/trace_assembler.h"
#include "tools/local_daemon/trace_printer.h"
#include "tools/local_daemon/udp_listener.h"

namespace {

using xraysink::tools::Trace;
using xraysink::tools::TraceAssembler;
using xraysink::tools::UdpListener;

constexpr char kUsage[] =
    R"(usage: xray_local [--address HOST:PORT] [--jsonl FILE] [--quiet-ms N]
                  [--pending-timeout-s N] [--exit-after-traces N] [--stats]

Receives X-Ray segment documents over UDP like the X-Ray daemon and prints each finished trace
as a tree on stdout. Malformed datagrams are reported on stderr. SIGINT/SIGTERM read the datagrams
already received (a second signal stops that), print the traces still pending (those not complete
marked "incomplete at exit") and exit.

  --address HOST:PORT     where to listen (default 127.0.0.1:2000; port 0 picks a free one).
                          The first line printed is "listening on HOST:PORT".
  --jsonl FILE            append every received document to FILE, one JSON per line
  --quiet-ms N            a complete trace is printed after N ms without new documents
                          (default 1000), leaving time for its late segments
  --pending-timeout-s N   a trace still incomplete after N s without new documents (a
                          segment never ended, a parent never sent) is printed anyway, its
                          first line marked (incomplete: no document for N s), and
                          forgotten (default 300, at least 1)
  --exit-after-traces N   exit after printing N traces
  --stats                 print counters on stderr at exit
)";

struct Options {
  std::string host = "127.0.0.1";
  uint16_t port = 2000;
  std::string jsonl;
  absl::Duration quiet = absl::Seconds(1);
  int64_t pending_timeout_s = 300;
  std::optional<int64_t> exit_after_traces;
  bool stats = false;
  bool help = false;
};

absl::Status BadValue(std::string_view flag, std::string_view value, std::string_view expected) {
  return absl::InvalidArgumentError(absl::StrCat(
      "bad ", std::string(flag), " '", std::string(value), "': expected ", std::string(expected)));
}

absl::Status ParseAddress(std::string_view value, Options& options) {
  const size_t colon = value.rfind(':');
  uint32_t port = 0;
  if (colon == std::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(absl::string_view(value.data() + colon + 1, value.size() - colon - 1),
                        &port) ||
      port > 65535) {
    return BadValue("--address", value, "HOST:PORT with a port from 0 to 65535");
  }
  options.host = std::string(value.substr(0, colon));
  options.port = static_cast<uint16_t>(port);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ParseCount(std::string_view flag, std::string_view value, int64_t min) {
  int64_t number = 0;
  if (!absl::SimpleAtoi(absl::string_view(value.data(), value.size()), &number) || number < min) {
    return BadValue(flag, value, absl::StrCat("an integer >= ", min));
  }
  return number;
}

// Flags as `--name value` or `--name=value`.
absl::StatusOr<Options> ParseArguments(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string_view flag = argv[i];
    std::optional<std::string_view> inline_value;
    if (const size_t equals = flag.find('='); equals != std::string_view::npos) {
      inline_value = flag.substr(equals + 1);
      flag = flag.substr(0, equals);
    }
    if (flag == "--help" || flag == "-h" || flag == "--stats") {
      if (inline_value)
        return absl::InvalidArgumentError(absl::StrCat(argv[i], ": takes no value"));
      (flag == "--stats" ? options.stats : options.help) = true;
      continue;
    }
    if (flag != "--address" && flag != "--jsonl" && flag != "--quiet-ms" &&
        flag != "--pending-timeout-s" && flag != "--exit-after-traces") {
      return absl::InvalidArgumentError(absl::StrCat("unknown argument '", argv[i], "'"));
    }
    if (!inline_value && i + 1 == argc) {
      return absl::InvalidArgumentError(absl::StrCat(std::string(flag), " needs a value"));
    }
    const std::string_view value = inline_value ? *inline_value : argv[++i];
    if (flag == "--address") {
      if (absl::Status s = ParseAddress(value, options); !s.ok()) return s;
    } else if (flag == "--jsonl") {
      if (value.empty()) return BadValue(flag, value, "a file name");
      options.jsonl = std::string(value);
    } else {
      absl::StatusOr<int64_t> count = ParseCount(flag, value, flag == "--quiet-ms" ? 0 : 1);
      if (!count.ok()) return count.status();
      if (flag == "--quiet-ms") {
        options.quiet = absl::Milliseconds(*count);
      } else if (flag == "--pending-timeout-s") {
        options.pending_timeout_s = *count;
      } else {
        options.exit_after_traces = *count;
      }
    }
  }
  return options;
}

// Call right after the failed write, while errno tells why.
void ReportWriteError(const std::string& file) {
  std::fprintf(stderr, "xray_local: cannot write %s: %s\n", file.c_str(), std::strerror(errno));
}

// Stop signals received, up to 2: the first stops receiving, the second the final reading.
volatile std::sig_atomic_t g_stop = 0;
UdpListener* g_listener = nullptr;

void OnStopSignal(int) {
  if (g_stop < 2) g_stop = g_stop + 1;
  g_listener->Wake();
}

class LocalDaemon {
 public:
  LocalDaemon(const Options& options, UdpListener& listener, std::FILE* jsonl)
      : options_(options),
        listener_(listener),
        jsonl_(jsonl),
        assembler_(options.quiet, absl::Seconds(options.pending_timeout_s)),
        expired_remark_(
            absl::StrCat("incomplete: no document for ", options.pending_timeout_s, " s")) {}

  // Receives until signalled or done; returns the exit code.
  int Run() {
    while (g_stop == 0) {
      const absl::Time now = absl::Now();
      if (Print(assembler_.TakeFinished(now))) return Exit(0);
      const std::vector<Trace> expired = assembler_.TakeExpired(now);
      printed_incomplete_ += static_cast<int64_t>(expired.size());
      if (Print(expired, expired_remark_)) return Exit(0);
      std::optional<absl::Time> next = assembler_.NextFinishTime();
      if (const std::optional<absl::Time> expiry = assembler_.NextExpiryTime();
          expiry && (!next || *expiry < *next)) {
        next = expiry;
      }
      absl::StatusOr<std::optional<std::string>> datagram =
          listener_.Receive(next ? *next - now : absl::InfiniteDuration());
      if (!datagram.ok()) {
        std::fprintf(stderr, "xray_local: %s\n", std::string(datagram.status().message()).c_str());
        return Exit(1);
      }
      if (datagram->has_value() && !Handle(**datagram)) return Exit(1);
    }
    // What was sent before the signal belongs in the pending traces, however long it takes to
    // handle (a deep trace is slow). A sender that keeps sending could keep this going: a second
    // signal ends it.
    while (g_stop < 2) {
      absl::StatusOr<std::optional<std::string>> datagram = listener_.ReceiveQueued();
      if (!datagram.ok()) {
        std::fprintf(stderr, "xray_local: %s\n", std::string(datagram.status().message()).c_str());
        return Exit(1);
      }
      if (!datagram->has_value()) break;
      if (!Handle(**datagram)) return Exit(1);
    }
    // Marked like an expired trace, so that a reader can tell one cut short by the exit from one
    // that was only waiting out its quiet period.
    for (const Trace& trace : assembler_.TakeAll()) {
      PrintOne(trace, trace.complete() ? "" : "incomplete at exit");
    }
    return Exit(0);
  }

 private:
  // False when the document could not be appended to --jsonl (reported).
  bool Handle(const std::string& datagram) {
    ++datagrams_;
    absl::StatusOr<xraysink::tools::ReceivedDocument> document =
        xraysink::tools::ParseDatagram(datagram);
    if (!document.ok()) {
      ++malformed_;
      std::fprintf(stderr, "xray_local: malformed datagram #%llu (%zu bytes): %s\n",
                   static_cast<unsigned long long>(malformed_), datagram.size(),
                   std::string(document.status().message()).c_str());
      return true;
    }
    // Flushed at once, so that a full disk is reported with the document that did not fit.
    if (jsonl_ != nullptr && (std::fprintf(jsonl_, "%s\n", document->CompactJson().c_str()) < 0 ||
                              std::fflush(jsonl_) != 0)) {
      ReportWriteError(options_.jsonl);
      return false;
    }
    assembler_.Add(*std::move(document), absl::Now());
    return true;
  }

  // Prints `traces`, each marked with `remark` if not empty; true when --exit-after-traces is
  // reached.
  bool Print(const std::vector<Trace>& traces, std::string_view remark = "") {
    for (const Trace& trace : traces) PrintOne(trace, remark);
    return ExitAfterTracesReached();
  }
  bool PrintOne(const Trace& trace, std::string_view remark) {
    std::fputs(xraysink::tools::FormatTrace(trace, remark).c_str(), stdout);
    ++printed_;
    std::fflush(stdout);
    return ExitAfterTracesReached();
  }
  bool ExitAfterTracesReached() const {
    return options_.exit_after_traces && printed_ >= *options_.exit_after_traces;
  }

  int Exit(int code) {
    if (options_.stats) {
      std::fprintf(
          stderr,
          "xray_local: %llu datagrams, %llu malformed, %llu traces printed (%llu "
          "incomplete after --pending-timeout-s), %zu pending, %llu dropped by the "
          "kernel (receive buffer full)\n",
          static_cast<unsigned long long>(datagrams_), static_cast<unsigned long long>(malformed_),
          static_cast<unsigned long long>(printed_),
          static_cast<unsigned long long>(printed_incomplete_), assembler_.TraceIds().size(),
          static_cast<unsigned long long>(listener_.dropped()));
    }
    return code;
  }

  const Options& options_;
  UdpListener& listener_;
  std::FILE* const jsonl_;
  TraceAssembler assembler_;
  const std::string expired_remark_;
  uint64_t datagrams_ = 0;
  uint64_t malformed_ = 0;
  int64_t printed_ = 0;
  // Of printed_, those printed because --pending-timeout-s passed.
  int64_t printed_incomplete_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  absl::StatusOr<Options> options = ParseArguments(argc, argv);
  if (!options.ok()) {
    std::fprintf(stderr, "xray_local: %s\nRun xray_local --help for usage.\n",
                 std::string(options.status().message()).c_str());
    return 2;
  }
  if (options->help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  absl::StatusOr<std::unique_ptr<UdpListener>> listener =
      UdpListener::Bind(options->host, options->port);
  if (!listener.ok()) {
    std::fprintf(stderr, "xray_local: %s\n", std::string(listener.status().message()).c_str());
    return 1;
  }
  std::FILE* jsonl = nullptr;
  if (!options->jsonl.empty()) {
    jsonl = std::fopen(options->jsonl.c_str(), "a");
    if (jsonl == nullptr) {
      std::perror(absl::StrCat("xray_local: cannot open ", options->jsonl).c_str());
      return 1;
    }
  }
  g_listener = listener->get();
  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  // One handler at a time, so that a SIGINT during a SIGTERM's handler is still counted.
  sigemptyset(&action.sa_mask);
  sigaddset(&action.sa_mask, SIGINT);
  sigaddset(&action.sa_mask, SIGTERM);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);

  std::printf("listening on %s:%u\n", options->host.c_str(), (*listener)->port());
  std::fflush(stdout);
  int code = LocalDaemon(*options, **listener, jsonl).Run();
  // The handlers use the listener, which is about to go.
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  // Everything was flushed already, but some file systems (NFS) report errors only on close.
  if (jsonl != nullptr && std::fclose(jsonl) != 0 && code == 0) {
    ReportWriteError(options->jsonl);
    code = 1;
  }
  return code;
}
