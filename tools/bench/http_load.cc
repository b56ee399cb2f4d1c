// The load side of the HTTP middleware benchmark (run_http_bench.sh).
//
//   http_load --url http://HOST:PORT/PATH [--connections C] [--duration-s D] [--warmup-s W]
//             [--requests N] [--rate R]
//
// An HTTP/1.1 keep-alive generator: C connections on one epoll thread, one request in flight on
// each. Closed loop by default: each connection sends its next GET as soon as the previous
// response is complete, so the server, not a request schedule, sets the pace (for requests/s
// at saturation). With --rate R, open loop: R requests a second in all, on a fixed schedule;
// a request due while every connection is busy waits for one, and each request is timed from
// when it was due, so a server that falls behind is charged for the wait (no coordinated
// omission, as in wrk2). That measures the latency a server adds at a given load, which at
// saturation is drowned in queueing. Requests sent and answered inside the measured window
// (after the warm-up) are timed one by one; the result is one JSON line
// {requests, seconds, rps, p50_us, p99_us, service_p99_us, errors, unanswered}. With --requests N
// the window also ends once N requests were answered in it (for tests: a count to reach, not a time
// to fill). Errors: non-2xx answers, malformed responses, connections lost mid-request; a
// connection that cannot be re-opened is given up. Unanswered: requests written and never
// answered (lost with a connection, or still waiting a second after the window closed).
//
//   http_load --url URL_A --versus URL_B [--rounds R] [--slice-ms M] [--slice-warmup-ms W]
//             [--connections C] [--warmup-s W] [--rate R]
//
// A/B: the same load alternates between two servers in R rounds of one slice on each (A then B
// in odd rounds, B then A in even ones), every connection to both kept open throughout, so that
// neighbouring slices see the same machine: on a shared VM whose speed drifts from one second to
// the next, that is what makes a small difference measurable. Each slice starts with W ms of
// load that is not counted, and ends by waiting for the responses in flight. The result is one
// JSON line: each server's median requests/s over its slices, its p50, p99 and service p99
// over every timed request, and B's overheads over A per round (requests/s in %, p50, p99 and
// service p99 in us) as the median and the bounds of its 95 % confidence interval over rounds
// (order statistics: no assumption about how the rounds scatter). Service times run from when a
// request was written rather than due: the same in a closed loop; in an open loop they leave
// out the load generator's own delays in sending (on a VM, stalls of milliseconds, which the
// open loop charges to every request due meanwhile).
//
//   http_load --udp-sink
//
// A stand-in X-Ray daemon that only counts: prints "listening on PORT" (UDP, 127.0.0.1), counts
// datagrams until SIGINT/SIGTERM, then prints {"datagrams":N,"bytes":B}. It lives here so the
// script can run it on the load generator's core, leaving the server's core to the server.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
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
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tools/stop_signals.h"

namespace {

constexpr char kUsage[] =
    R"(usage: http_load --url http://HOST:PORT/PATH [--connections C] [--duration-s D]
                 [--warmup-s W] [--requests N] [--rate R]
       http_load --url URL_A --versus URL_B [--rounds R] [--slice-ms M]
                 [--slice-warmup-ms W] [--connections C] [--warmup-s W] [--rate R]
       http_load --udp-sink

  --url URL          the GET target (plain http, IPv4 or a resolvable host name)
  --connections C    keep-alive connections, each with one request in flight (default 16)
  --duration-s D     length of the measured window in seconds (default 10)
  --warmup-s W       seconds of load before the window, not counted (default 2); A/B: on
                     each server once, before the first round
  --requests N       end the window early once N requests were answered in it
  --rate R           open loop: R requests a second on a fixed schedule, each timed from when
                     it was due (default: closed loop, as fast as the server answers)
  --versus URL       A/B: alternate the load between --url and URL, slice by slice
  --rounds R         A/B: rounds of one slice on each server (default 50)
  --slice-ms M       A/B: length of a slice in milliseconds (default 200)
  --slice-warmup-ms W  A/B: load at the start of each slice not counted (default 20)
  --udp-sink         count UDP datagrams on 127.0.0.1 instead (a stand-in X-Ray daemon)
)";

// Where the load goes.
struct Target {
  std::string host;
  std::string port;
  std::string path;
};

struct Options {
  Target target;
  std::optional<Target> versus;  // A/B against this one
  int rounds = 50;
  int slice_ms = 200;
  int slice_warmup_ms = 20;
  int connections = 16;
  double duration_s = 10;
  double warmup_s = 2;
  size_t requests = 0;  // 0: no limit
  double rate = 0;      // requests a second; 0: closed loop
  bool udp_sink = false;
};

absl::Status BadValue(std::string_view flag, std::string_view value, std::string_view expected) {
  return absl::InvalidArgumentError(absl::StrCat(
      "bad ", std::string(flag), " '", std::string(value), "': expected ", std::string(expected)));
}

absl::Status ParseUrl(std::string_view flag, std::string_view url, Target& target) {
  constexpr std::string_view kScheme = "http://";
  const auto bad = [flag, url] { return BadValue(flag, url, "http://HOST:PORT/PATH"); };
  if (url.substr(0, kScheme.size()) != kScheme) return bad();
  const std::string_view rest = url.substr(kScheme.size());
  const size_t slash = rest.find('/');
  const std::string_view authority = rest.substr(0, slash);
  const size_t colon = authority.rfind(':');
  uint32_t port = 0;
  if (colon == std::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(
          absl::string_view(authority.data() + colon + 1, authority.size() - colon - 1), &port) ||
      port == 0 || port > 65535) {
    return bad();
  }
  target.host = std::string(authority.substr(0, colon));
  target.port = std::to_string(port);
  target.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  return absl::OkStatus();
}

absl::StatusOr<Options> ParseFlags(int argc, char** argv) {
  Options options;
  bool have_url = false;
  bool load_flags = false;    // any flag of the load mode
  bool window_flags = false;  // --duration-s or --requests: not for A/B
  bool versus_flags = false;  // --rounds, --slice-ms or --slice-warmup-ms: only for A/B
  for (int i = 1; i < argc; ++i) {
    std::string_view flag = argv[i];
    if (flag == "--udp-sink") {
      options.udp_sink = true;
      continue;
    }
    load_flags = true;
    std::string_view value;
    if (const size_t equals = flag.find('='); equals != std::string_view::npos) {
      value = flag.substr(equals + 1);
      flag = flag.substr(0, equals);
    } else if (i + 1 < argc) {
      value = argv[++i];
    }  // else empty: rejected below as a bad value, or an unknown flag
    const absl::string_view text(value.data(), value.size());
    if (flag == "--url") {
      if (absl::Status status = ParseUrl(flag, value, options.target); !status.ok()) return status;
      have_url = true;
    } else if (flag == "--versus") {
      options.versus.emplace();
      if (absl::Status status = ParseUrl(flag, value, *options.versus); !status.ok()) {
        return status;
      }
    } else if (flag == "--rounds") {
      versus_flags = true;
      if (!absl::SimpleAtoi(text, &options.rounds) || options.rounds < 1 ||
          options.rounds > 100000) {
        return BadValue(flag, value, "an integer from 1 to 100000");
      }
    } else if (flag == "--slice-ms") {
      versus_flags = true;
      if (!absl::SimpleAtoi(text, &options.slice_ms) || options.slice_ms < 1 ||
          options.slice_ms > 3600000) {
        return BadValue(flag, value, "milliseconds, 1 to 3600000");
      }
    } else if (flag == "--slice-warmup-ms") {
      versus_flags = true;
      if (!absl::SimpleAtoi(text, &options.slice_warmup_ms) || options.slice_warmup_ms < 0 ||
          options.slice_warmup_ms > 3600000) {
        return BadValue(flag, value, "milliseconds, 0 to 3600000");
      }
    } else if (flag == "--connections") {
      if (!absl::SimpleAtoi(text, &options.connections) || options.connections < 1 ||
          options.connections > 10000) {
        return BadValue(flag, value, "an integer from 1 to 10000");
      }
    } else if (flag == "--duration-s") {
      window_flags = true;
      if (!absl::SimpleAtod(text, &options.duration_s) || !(options.duration_s > 0) ||
          options.duration_s > 86400) {
        return BadValue(flag, value, "seconds > 0");
      }
    } else if (flag == "--warmup-s") {
      if (!absl::SimpleAtod(text, &options.warmup_s) || !(options.warmup_s >= 0) ||
          options.warmup_s > 86400) {
        return BadValue(flag, value, "seconds >= 0");
      }
    } else if (flag == "--requests") {
      window_flags = true;
      if (!absl::SimpleAtoi(text, &options.requests) || options.requests < 1) {
        return BadValue(flag, value, "an integer >= 1");
      }
    } else if (flag == "--rate") {
      if (!absl::SimpleAtod(text, &options.rate) || !(options.rate >= 1) || options.rate > 1e7) {
        return BadValue(flag, value, "requests a second, 1 to 10000000");
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag ", std::string(flag)));
    }
  }
  if (!options.udp_sink && !have_url) return absl::InvalidArgumentError("--url is required");
  if (options.udp_sink && load_flags) {
    return absl::InvalidArgumentError("--udp-sink takes no other flag");
  }
  if (options.versus && window_flags) {
    return absl::InvalidArgumentError(
        "--versus times slices (--rounds, --slice-ms), not --duration-s or --requests");
  }
  if (options.versus && options.slice_warmup_ms >= options.slice_ms) {
    return absl::InvalidArgumentError("--slice-warmup-ms must be shorter than --slice-ms");
  }
  if (!options.versus && versus_flags) {
    return absl::InvalidArgumentError("--rounds, --slice-ms and --slice-warmup-ms need --versus");
  }
  return options;
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// One complete response at the front of a connection's input.
struct Response {
  size_t size = 0;  // head and body
  int status = 0;
  bool close = false;  // the server ends the connection after it
};

// nullopt: incomplete so far. Bodies must be framed by Content-Length (what both servers of
// the benchmark send); chunked or close-delimited bodies are reported as errors.
absl::StatusOr<std::optional<Response>> ParseResponse(std::string_view data) {
  const size_t head_end = data.find("\r\n\r\n");
  if (head_end == std::string_view::npos) return std::nullopt;
  const std::string_view head = data.substr(0, head_end);
  Response response;
  if (head.size() < 12 || head.substr(0, 7) != "HTTP/1." || head[8] != ' ' ||
      !absl::SimpleAtoi(absl::string_view(head.data() + 9, 3), &response.status)) {
    return absl::DataLossError("malformed status line");
  }
  std::optional<size_t> content_length;
  size_t line_start = head.find("\r\n");
  while (line_start != std::string_view::npos) {
    line_start += 2;
    const size_t line_end = head.find("\r\n", line_start);
    const std::string_view line = head.substr(line_start, line_end - line_start);
    line_start = line_end;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const absl::string_view name(line.data(), colon);
    const absl::string_view value = absl::StripAsciiWhitespace(
        absl::string_view(line.data() + colon + 1, line.size() - colon - 1));
    size_t length = 0;
    if (absl::EqualsIgnoreCase(name, "content-length")) {
      if (!absl::SimpleAtoi(value, &length)) return absl::DataLossError("bad Content-Length");
      content_length = length;
    } else if (absl::EqualsIgnoreCase(name, "connection")) {
      response.close = absl::StrContains(absl::AsciiStrToLower(value), "close");
    } else if (absl::EqualsIgnoreCase(name, "transfer-encoding")) {
      return absl::DataLossError("Transfer-Encoding is not supported");
    }
  }
  if (!content_length) return absl::DataLossError("response without Content-Length");
  response.size = head_end + 4 + *content_length;
  if (data.size() < response.size) return std::nullopt;
  return response;
}

// Keep-alive connections with one request in flight each, on one epoll set; closed loop, or
// open loop on a schedule (interval_ns_ > 0). Run may be called again (A/B slices): the
// connections stay open between runs, with nothing in flight.
class LoadGenerator {
 public:
  LoadGenerator(const Options& options, const Target& target, const addrinfo& address)
      : address_(address),
        request_(absl::StrCat("GET ", target.path, " HTTP/1.1\r\nHost: ", target.host, ":",
                              target.port, "\r\nUser-Agent: http_load\r\n\r\n")),
        connections_(options.connections),
        requests_(options.requests),
        interval_ns_(options.rate > 0 ? static_cast<int64_t>(1e9 / options.rate) : 0),
        epoll_(epoll_create1(EPOLL_CLOEXEC)) {}
  ~LoadGenerator() {
    for (Connection& connection : connections_) {
      if (connection.fd >= 0) close(connection.fd);
    }
    close(epoll_);
  }

  // Opens every connection; the error names the first that failed.
  absl::Status Connect() {
    for (size_t i = 0; i < connections_.size(); ++i) {
      if (absl::Status status = Open(i); !status.ok()) return status;
    }
    return absl::OkStatus();
  }

  // Runs the load until `end_ns`, timing requests due at or after `window_ns` and answered by
  // `end_ns`; then waits (a second at most) for the answers still in flight, untimed, so that
  // the next run starts with none.
  void Run(int64_t window_ns, int64_t end_ns) {
    window_ns_ = window_ns;
    stopping_ = false;
    idle_.clear();
    for (Connection& connection : connections_) connection.idle = false;
    next_due_ns_ = NowNs();
    for (size_t i = 0; i < connections_.size(); ++i) Ready(i);
    epoll_event events[256];
    int64_t now = NowNs();
    while (now < end_ns && open_ > 0 && (requests_ == 0 || latencies_ns_.size() < requests_)) {
      if (interval_ns_ > 0) SendDue(now);
      // Open loop: wake when the next request is due, unless no connection is free for it.
      const int64_t wake_ns =
          interval_ns_ > 0 && !idle_.empty() ? std::min(next_due_ns_, end_ns) : end_ns;
      const int64_t wait_ns = std::max<int64_t>(wake_ns - now, 0);
      const timespec timeout{static_cast<time_t>(wait_ns / 1000000000),
                             static_cast<long>(wait_ns % 1000000000)};
      const int ready = epoll_pwait2(epoll_, events, 256, &timeout, nullptr);
      for (int i = 0; i < ready; ++i) Receive(events[i].data.u32, end_ns);
      now = NowNs();
    }
    Drain(end_ns, now + kDrainTimeoutNs);
  }

  std::vector<int64_t>& latencies_ns() { return latencies_ns_; }
  // The same requests' service times: from when each was written, not when it was due (the same
  // in a closed loop). Below saturation, what the server took, without the load generator's own
  // delays in sending (on a VM, stalls of milliseconds that the open loop charges to the requests
  // due meanwhile).
  std::vector<int64_t>& service_ns() { return service_ns_; }
  uint64_t errors() const { return errors_; }
  // Requests written and never answered, over every run so far (lost with their connection, or
  // still unanswered when a drain gave up).
  uint64_t unanswered() const { return sent_ - answered_; }

 private:
  static constexpr int64_t kDrainTimeoutNs = 1000000000;

  struct Connection {
    int fd = -1;
    std::string input;       // bytes of the response in flight received so far
    int64_t sent_ns = 0;     // when the request in flight was sent (open loop: was due)
    int64_t written_ns = 0;  // when it was written
    bool idle = false;       // open loop: in idle_, nothing in flight
    bool in_flight = false;
  };

  // Sends nothing more, and receives until no request is in flight or `deadline_ns`; a
  // connection still waiting then is replaced.
  void Drain(int64_t end_ns, int64_t deadline_ns) {
    stopping_ = true;
    const auto waiting = [this] {
      return std::any_of(connections_.begin(), connections_.end(),
                         [](const Connection& connection) { return connection.in_flight; });
    };
    epoll_event events[256];
    for (int64_t now = NowNs(); now < deadline_ns && waiting(); now = NowNs()) {
      const int64_t wait_ns = deadline_ns - now;
      const timespec timeout{static_cast<time_t>(wait_ns / 1000000000),
                             static_cast<long>(wait_ns % 1000000000)};
      const int ready = epoll_pwait2(epoll_, events, 256, &timeout, nullptr);
      for (int i = 0; i < ready; ++i) Receive(events[i].data.u32, end_ns);
    }
    for (size_t i = 0; i < connections_.size(); ++i) {
      if (connections_[i].in_flight) Restart(i);
    }
  }

  absl::Status Open(size_t index) {
    Connection& connection = connections_[index];
    if (connection.fd >= 0) {
      close(connection.fd);  // also leaves the epoll set
      --open_;
    }
    connection.input.clear();
    connection.in_flight = false;
    connection.fd = socket(address_.ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connection.fd < 0) return absl::ErrnoToStatus(errno, "socket");
    // Blocking connect: on loopback it completes at once, and it keeps the loop simple.
    if (connect(connection.fd, address_.ai_addr, address_.ai_addrlen) != 0) {
      const int error = errno;
      close(connection.fd);
      connection.fd = -1;
      return absl::ErrnoToStatus(error, "connect");
    }
    const int one = 1;
    setsockopt(connection.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(connection.fd, F_SETFL, O_NONBLOCK);
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u32 = static_cast<uint32_t>(index);
    epoll_ctl(epoll_, EPOLL_CTL_ADD, connection.fd, &event);
    ++open_;
    return absl::OkStatus();
  }

  // A connection with nothing in flight: the closed loop sends on it at once, the open loop
  // keeps it for the next request due.
  void Ready(size_t index) {
    if (stopping_) return;
    if (interval_ns_ == 0) {
      if (!Send(index, NowNs())) Fail(index);
    } else if (!std::exchange(connections_[index].idle, true)) {
      idle_.push_back(index);
    }
  }

  // Open loop: sends every request due by `now` that a free connection can take.
  void SendDue(int64_t now) {
    while (next_due_ns_ <= now && !idle_.empty()) {
      const size_t index = idle_.back();
      idle_.pop_back();
      connections_[index].idle = false;
      const int64_t due_ns = std::exchange(next_due_ns_, next_due_ns_ + interval_ns_);
      if (!Send(index, due_ns)) Fail(index);
    }
  }

  // False when the request could not be written. It is timed from `timed_from_ns`.
  bool Send(size_t index, int64_t timed_from_ns) {
    Connection& connection = connections_[index];
    connection.sent_ns = timed_from_ns;
    connection.written_ns = interval_ns_ > 0 ? NowNs() : timed_from_ns;
    connection.in_flight = true;  // also when the write fails: the request is lost (see Fail)
    ++sent_;
    // The request is far smaller than a fresh socket's send buffer: a short write means trouble.
    return send(connection.fd, request_.data(), request_.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(request_.size());
  }

  // Replaces the connection and makes the new one ready (see Ready); false when that failed,
  // and the connection is given up (the server no longer accepts).
  bool Restart(size_t index) {
    if (Open(index).ok()) {
      if (interval_ns_ > 0 || stopping_) {
        Ready(index);
        return true;
      }
      if (Send(index, NowNs())) return true;
    }
    Connection& connection = connections_[index];
    if (connection.fd >= 0) {
      close(connection.fd);
      connection.fd = -1;
      --open_;
    }
    return false;
  }

  // The request in flight failed: counted (inside the window), and the connection replaced. An
  // idle connection the server closed is only replaced.
  void Fail(size_t index) {
    if (connections_[index].in_flight && connections_[index].sent_ns >= window_ns_) ++errors_;
    Restart(index);
  }

  void Receive(size_t index, int64_t end_ns) {
    Connection& connection = connections_[index];
    if (connection.fd < 0) return;  // given up earlier in this batch of events
    char buffer[16384];
    bool closed = false;  // the server closed or reset the connection, maybe after answering
    while (true) {
      const ssize_t received = recv(connection.fd, buffer, sizeof(buffer), 0);
      if (received > 0) {
        connection.input.append(buffer, static_cast<size_t>(received));
      } else if (received < 0 && errno == EINTR) {
        continue;
      } else {
        closed = received == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
        break;
      }
    }
    absl::StatusOr<std::optional<Response>> response = ParseResponse(connection.input);
    if (!response.ok() || (!response->has_value() && closed)) return Fail(index);
    if (!response->has_value()) return;
    const int64_t done_ns = NowNs();
    if (connection.sent_ns >= window_ns_ && done_ns <= end_ns) {
      latencies_ns_.push_back(done_ns - connection.sent_ns);
      service_ns_.push_back(done_ns - connection.written_ns);
      if ((*response)->status < 200 || (*response)->status > 299) ++errors_;
    }
    // One request in flight: anything after the response is a protocol error.
    if ((*response)->size != connection.input.size()) return Fail(index);
    connection.input.clear();
    connection.in_flight = false;
    ++answered_;
    if ((*response)->close || closed) {
      Restart(index);
    } else {
      Ready(index);
    }
  }

  const addrinfo& address_;
  const std::string request_;
  std::vector<Connection> connections_;
  const size_t requests_;      // 0: no limit
  const int64_t interval_ns_;  // open loop: between requests due; 0: closed loop
  const int epoll_;
  int64_t next_due_ns_ = 0;   // open loop: when the next request is due
  std::vector<size_t> idle_;  // open loop: connections with nothing in flight
  int open_ = 0;
  int64_t window_ns_ = 0;
  bool stopping_ = false;  // draining: nothing more is sent
  std::vector<int64_t> latencies_ns_;
  std::vector<int64_t> service_ns_;
  uint64_t errors_ = 0;
  uint64_t sent_ = 0;
  uint64_t answered_ = 0;
};

// Nearest-rank percentile of sorted values, in microseconds.
double PercentileUs(const std::vector<int64_t>& sorted_ns, double fraction) {
  if (sorted_ns.empty()) return 0;
  const size_t rank = static_cast<size_t>(std::ceil(fraction * sorted_ns.size()));
  return static_cast<double>(sorted_ns[std::max<size_t>(rank, 1) - 1]) / 1e3;
}

// The median of `values` and the bounds of its 95 % confidence interval: the order statistics
// whose ranks a Binomial(n, 1/2) brackets (normal approximation), clamped to the sample.
struct MedianInterval {
  double median = 0;
  double low = 0;
  double high = 0;
};

MedianInterval MedianWithInterval(std::vector<double> values) {
  MedianInterval result;
  if (values.empty()) return result;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  result.median = n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
  const double half_width = 1.96 * std::sqrt(static_cast<double>(n)) / 2;
  const double center = static_cast<double>(n) / 2;
  const auto rank = [n](double r) {  // 1-based rank, clamped
    return static_cast<size_t>(std::clamp(r, 1.0, static_cast<double>(n)));
  };
  result.low = values[rank(std::floor(center - half_width)) - 1];
  result.high = values[rank(std::ceil(center + half_width + 1)) - 1];
  return result;
}

// One run's (or slice's) figures.
struct Slice {
  double rps = 0;
  double p50_us = 0;
  double p99_us = 0;
  double service_p99_us = 0;  // see LoadGenerator::service_ns
};

// Sorts both.
Slice Summarize(std::vector<int64_t>& latencies_ns, std::vector<int64_t>& service_ns,
                double seconds) {
  std::sort(latencies_ns.begin(), latencies_ns.end());
  std::sort(service_ns.begin(), service_ns.end());
  return {seconds > 0 ? static_cast<double>(latencies_ns.size()) / seconds : 0.0,
          PercentileUs(latencies_ns, 0.50), PercentileUs(latencies_ns, 0.99),
          PercentileUs(service_ns, 0.99)};
}

// A resolved and connected load generator for one target; nullptr (after a message) when it
// cannot be had.
struct Endpoint {
  addrinfo* addresses = nullptr;
  std::unique_ptr<LoadGenerator> generator;
  ~Endpoint() {
    generator.reset();
    if (addresses != nullptr) freeaddrinfo(addresses);
  }
};

std::unique_ptr<Endpoint> OpenEndpoint(const Options& options, const Target& target) {
  auto endpoint = std::make_unique<Endpoint>();
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  if (const int error =
          getaddrinfo(target.host.c_str(), target.port.c_str(), &hints, &endpoint->addresses);
      error != 0) {
    endpoint->addresses = nullptr;
    std::fprintf(stderr, "http_load: cannot resolve %s: %s\n", target.host.c_str(),
                 gai_strerror(error));
    return nullptr;
  }
  endpoint->generator = std::make_unique<LoadGenerator>(options, target, *endpoint->addresses);
  if (absl::Status status = endpoint->generator->Connect(); !status.ok()) {
    std::fprintf(stderr, "http_load: cannot connect to %s:%s: %s\n", target.host.c_str(),
                 target.port.c_str(), std::string(status.message()).c_str());
    return nullptr;
  }
  return endpoint;
}

int RunOne(const Options& options, LoadGenerator& generator) {
  const int64_t start = NowNs();
  const int64_t window = start + static_cast<int64_t>(options.warmup_s * 1e9);
  const int64_t end = window + static_cast<int64_t>(options.duration_s * 1e9);
  generator.Run(window, end);
  std::vector<int64_t>& latencies = generator.latencies_ns();
  const double seconds = static_cast<double>(std::min(NowNs(), end) - window) / 1e9;
  const size_t requests = latencies.size();
  const Slice slice = Summarize(latencies, generator.service_ns(), seconds);
  std::printf(
      "{\"requests\":%zu,\"seconds\":%.3f,\"rps\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
      "\"service_p99_us\":%.1f,\"errors\":%llu,\"unanswered\":%llu}\n",
      requests, seconds, slice.rps, slice.p50_us, slice.p99_us, slice.service_p99_us,
      static_cast<unsigned long long>(generator.errors()),
      static_cast<unsigned long long>(generator.unanswered()));
  if (requests == 0) {
    std::fprintf(stderr, "http_load: no request completed in the window\n");
    return 1;
  }
  return 0;
}

// A/B (see the top of this file).
int RunVersus(const Options& options, LoadGenerator& a, LoadGenerator& b) {
  const int64_t slice_ns = int64_t{options.slice_ms} * 1000000;
  const int64_t slice_warmup_ns = int64_t{options.slice_warmup_ms} * 1000000;
  // Every timed request of one server, over all its slices.
  struct Timed {
    std::vector<int64_t> latencies_ns;
    std::vector<int64_t> service_ns;
  };
  // Runs one slice of `generator` (after `warmup_ns` of uncounted load); adds its timed requests
  // to `all`.
  const auto run_slice = [](LoadGenerator& generator, int64_t warmup_ns, int64_t measured_ns,
                            Timed& all) {
    const int64_t window = NowNs() + warmup_ns;
    const int64_t end = window + measured_ns;
    generator.Run(window, end);
    std::vector<int64_t>& latencies = generator.latencies_ns();
    std::vector<int64_t>& service = generator.service_ns();
    const Slice slice = Summarize(latencies, service, static_cast<double>(end - window) / 1e9);
    all.latencies_ns.insert(all.latencies_ns.end(), latencies.begin(), latencies.end());
    all.service_ns.insert(all.service_ns.end(), service.begin(), service.end());
    latencies.clear();
    service.clear();
    return slice;
  };
  Timed all_a;
  Timed all_b;
  // Both warm up once at length (the --warmup-s), untimed.
  const int64_t warmup_ns = static_cast<int64_t>(options.warmup_s * 1e9);
  if (warmup_ns > 0) {
    Timed discarded;
    run_slice(a, warmup_ns, 0, discarded);
    run_slice(b, warmup_ns, 0, discarded);
  }
  std::vector<double> rps_a;
  std::vector<double> rps_b;
  std::vector<double> rps_overhead_pct;
  std::vector<double> p50_overhead_us;
  std::vector<double> p99_overhead_us;
  std::vector<double> service_p99_overhead_us;
  int empty_slices = 0;
  for (int round = 1; round <= options.rounds; ++round) {
    Slice slice_a;
    Slice slice_b;
    // Which goes first alternates, so that a machine speeding up or slowing down through a
    // round favours neither.
    if (round % 2) {
      slice_a = run_slice(a, slice_warmup_ns, slice_ns - slice_warmup_ns, all_a);
      slice_b = run_slice(b, slice_warmup_ns, slice_ns - slice_warmup_ns, all_b);
    } else {
      slice_b = run_slice(b, slice_warmup_ns, slice_ns - slice_warmup_ns, all_b);
      slice_a = run_slice(a, slice_warmup_ns, slice_ns - slice_warmup_ns, all_a);
    }
    if (slice_a.rps == 0 || slice_b.rps == 0) {
      ++empty_slices;  // a server answered nothing in its slice: no pair to compare
      continue;
    }
    rps_a.push_back(slice_a.rps);
    rps_b.push_back(slice_b.rps);
    rps_overhead_pct.push_back((slice_a.rps - slice_b.rps) * 100 / slice_a.rps);
    p50_overhead_us.push_back(slice_b.p50_us - slice_a.p50_us);
    p99_overhead_us.push_back(slice_b.p99_us - slice_a.p99_us);
    service_p99_overhead_us.push_back(slice_b.service_p99_us - slice_a.service_p99_us);
  }
  const double measured_s =
      static_cast<double>(options.rounds) * static_cast<double>(slice_ns - slice_warmup_ns) / 1e9;
  const Slice total_a = Summarize(all_a.latencies_ns, all_a.service_ns, measured_s);
  const Slice total_b = Summarize(all_b.latencies_ns, all_b.service_ns, measured_s);
  const MedianInterval rps = MedianWithInterval(rps_overhead_pct);
  const MedianInterval p50 = MedianWithInterval(p50_overhead_us);
  const MedianInterval p99 = MedianWithInterval(p99_overhead_us);
  const MedianInterval service_p99 = MedianWithInterval(service_p99_overhead_us);
  std::printf(
      "{\"rounds\":%zu,\"requests_a\":%zu,\"requests_b\":%zu,\"rps_a\":%.0f,\"rps_b\":%.0f,"
      "\"p50_a_us\":%.1f,\"p50_b_us\":%.1f,\"p99_a_us\":%.1f,\"p99_b_us\":%.1f,"
      "\"rps_overhead_pct\":%.2f,\"rps_overhead_low\":%.2f,\"rps_overhead_high\":%.2f,"
      "\"p50_overhead_us\":%.1f,\"p50_overhead_low\":%.1f,\"p50_overhead_high\":%.1f,"
      "\"p99_overhead_us\":%.1f,\"p99_overhead_low\":%.1f,\"p99_overhead_high\":%.1f,"
      "\"service_p99_a_us\":%.1f,\"service_p99_b_us\":%.1f,\"service_p99_overhead_us\":%.1f,"
      "\"service_p99_overhead_low\":%.1f,\"service_p99_overhead_high\":%.1f,"
      "\"errors_a\":%llu,\"errors_b\":%llu,\"unanswered_a\":%llu,\"unanswered_b\":%llu}\n",
      rps_overhead_pct.size(), all_a.latencies_ns.size(), all_b.latencies_ns.size(),
      MedianWithInterval(rps_a).median, MedianWithInterval(rps_b).median, total_a.p50_us,
      total_b.p50_us, total_a.p99_us, total_b.p99_us, rps.median, rps.low, rps.high, p50.median,
      p50.low, p50.high, p99.median, p99.low, p99.high, total_a.service_p99_us,
      total_b.service_p99_us, service_p99.median, service_p99.low, service_p99.high,
      static_cast<unsigned long long>(a.errors()), static_cast<unsigned long long>(b.errors()),
      static_cast<unsigned long long>(a.unanswered()),
      static_cast<unsigned long long>(b.unanswered()));
  if (rps_overhead_pct.empty()) {
    std::fprintf(stderr, "http_load: no round where both servers answered\n");
    return 1;
  }
  if (empty_slices > 0) {
    std::fprintf(stderr, "http_load: %d round(s) left out: a server answered nothing\n",
                 empty_slices);
  }
  return 0;
}

int RunLoad(const Options& options) {
  // The open loop's schedule needs wake-ups on time, not within the default 50 us of slack.
  if (options.rate > 0) prctl(PR_SET_TIMERSLACK, 1000UL);
  const std::unique_ptr<Endpoint> a = OpenEndpoint(options, options.target);
  if (a == nullptr) return 1;
  if (!options.versus) return RunOne(options, *a->generator);
  const std::unique_ptr<Endpoint> b = OpenEndpoint(options, *options.versus);
  if (b == nullptr) return 1;
  return RunVersus(options, *a->generator, *b->generator);
}

int RunUdpSink() {
  const sigset_t signals = xraysink::tools::StopSignals();
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  const int signal_fd = signalfd(-1, &signals, SFD_CLOEXEC);
  const int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  // Room for a burst while this process waits for its core; needs CAP_NET_ADMIN to exceed
  // rmem_max, else the plain request is capped by the kernel.
  const int buffer_bytes = 64 << 20;
  if (setsockopt(sock, SOL_SOCKET, SO_RCVBUFFORCE, &buffer_bytes, sizeof(buffer_bytes)) != 0) {
    setsockopt(sock, SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof(buffer_bytes));
  }
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (signal_fd < 0 || sock < 0 ||
      bind(sock, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      getsockname(sock, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    std::fprintf(stderr, "http_load: cannot open the UDP sink: %s\n", std::strerror(errno));
    return 1;
  }
  std::printf("listening on %u\n", ntohs(address.sin_port));
  std::fflush(stdout);

  constexpr int kBatch = 32;
  static char buffers[kBatch][65536];
  mmsghdr messages[kBatch];
  iovec vectors[kBatch];
  uint64_t datagrams = 0;
  uint64_t bytes = 0;
  // Reads what is queued; false once the socket is empty.
  const auto drain_batch = [&] {
    for (int i = 0; i < kBatch; ++i) {
      vectors[i] = {buffers[i], sizeof(buffers[i])};
      messages[i] = {};
      messages[i].msg_hdr.msg_iov = &vectors[i];
      messages[i].msg_hdr.msg_iovlen = 1;
    }
    const int received = recvmmsg(sock, messages, kBatch, MSG_DONTWAIT, nullptr);
    for (int i = 0; i < received; ++i) bytes += messages[i].msg_len;
    if (received > 0) datagrams += static_cast<uint64_t>(received);
    return received > 0;
  };
  while (true) {
    pollfd fds[2] = {{sock, POLLIN, 0}, {signal_fd, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) drain_batch();
    // Stop only after what the sender flushed before signalling has been counted.
    if (fds[1].revents & POLLIN) {
      while (drain_batch()) {
      }
      break;
    }
  }
  std::printf("{\"datagrams\":%llu,\"bytes\":%llu}\n", static_cast<unsigned long long>(datagrams),
              static_cast<unsigned long long>(bytes));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::StatusOr<Options> options = ParseFlags(argc, argv);
  if (!options.ok()) {
    std::fprintf(stderr, "http_load: %s\n%s", std::string(options.status().message()).c_str(),
                 kUsage);
    return 2;
  }
  return options->udp_sink ? RunUdpSink() : RunLoad(*options);
}
