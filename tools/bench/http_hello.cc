// The server side of the HTTP middleware benchmark (run_http_bench.sh): GET /hello answers
// "Hello, World!" on cpp-httplib or Boost.Beast, with or without xraysink's middleware.
//
//   http_hello --framework httplib|beast --traced 0|1 [--port 0] [--threads N]
//              [--daemon HOST:PORT]
//
// Prints "listening on PORT" once it accepts connections. Traced mode samples every request, so
// each one pays the full cost (segment, serialization, one datagram), and sends to --daemon
// (AWS_XRAY_DAEMON_ADDRESS wins, as in Configure; default 127.0.0.1:2000). SIGINT/SIGTERM stop
// the server, flush the emitter and print one JSON line of counters:
// {"requests":N,"segments_sent":S,"datagrams_sent":D,"dropped":X,"send_calls":C} (all but the
// first when traced; D / C is the emitter's batch size).
#include <httplib.h>
#include <signal.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/default_sampler.h"
#include "middleware/beast_server.h"
#include "middleware/httplib_server.h"
#include "middleware/request_tracer.h"
#include "tools/listen_until_stopped.h"
#include "tools/stop_signals.h"
#include "xraysink.h"

namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using xraysink::middleware::RequestTracer;
using xraysink::tools::BlockStopSignals;
using xraysink::tools::WaitForStopSignal;

constexpr char kUsage[] =
    R"(usage: http_hello --framework httplib|beast --traced 0|1 [--port P] [--threads N]
                  [--daemon HOST:PORT] [--sampling all|default|none]
                  [--sender-priority normal|idle] [--batch-delay-ms MS]

  --framework F      httplib (thread per connection) or beast (C++20 coroutines)
  --traced 0|1       1: xraysink middleware
  --sampling S       traced mode: all (every request sampled and sent; the default) or
                     default (the SDKs' default rule: 1 a second, then 5 %) or none
                     (every request traced and unsampled: the cost of the unsampled path)
  --port P           port on 127.0.0.1 (default 0: a free one)
  --threads N        httplib: worker threads, more than the load's connections, as each
                     keep-alive connection holds one (default 32); beast: io_context threads
                     (default 1)
  --daemon HOST:PORT where traced mode sends segments (default 127.0.0.1:2000)
  --sender-priority  traced mode: how the emitter's thread is scheduled: normal (the default)
                     or idle (SCHED_IDLE; EmitterOptions::sender_priority)
  --batch-delay-ms   traced mode: EmitterOptions::batch_delay in ms, 0 to 60000 (default: the
                     library's)
)";
constexpr char kHello[] = "Hello, World!";
constexpr auto kIdleTimeout = xraysink::middleware::kDefaultIdleTimeout;  // as ServeTraced

struct Options {
  bool beast = false;
  bool traced = false;
  // Sampler's fixed target and rate: every request (all), the default rule, or none.
  int sampling_fixed_target = 0;
  double sampling_rate = 1.0;
  int port = 0;
  int threads = 0;  // 0: the framework's default above
  std::string daemon;
  bool idle_sender = false;
  int batch_delay_ms = -1;  // -1: the library's default
};

absl::Status BadValue(std::string_view flag, std::string_view value, std::string_view expected) {
  return absl::InvalidArgumentError(absl::StrCat(
      "bad ", std::string(flag), " '", std::string(value), "': expected ", std::string(expected)));
}

absl::StatusOr<Options> ParseFlags(int argc, char** argv) {
  Options options;
  bool have_framework = false;
  bool have_traced = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view flag = argv[i];
    std::string_view value;
    if (const size_t equals = flag.find('='); equals != std::string_view::npos) {
      value = flag.substr(equals + 1);
      flag = flag.substr(0, equals);
    } else if (i + 1 < argc) {
      value = argv[++i];
    }  // else empty: rejected below as a bad value, or an unknown flag
    const absl::string_view text(value.data(), value.size());
    if (flag == "--framework") {
      if (value != "httplib" && value != "beast") return BadValue(flag, value, "httplib|beast");
      options.beast = value == "beast";
      have_framework = true;
    } else if (flag == "--traced") {
      if (value != "0" && value != "1") return BadValue(flag, value, "0|1");
      options.traced = value == "1";
      have_traced = true;
    } else if (flag == "--sender-priority") {
      if (value != "normal" && value != "idle") return BadValue(flag, value, "normal|idle");
      options.idle_sender = value == "idle";
    } else if (flag == "--batch-delay-ms") {
      if (!absl::SimpleAtoi(text, &options.batch_delay_ms) || options.batch_delay_ms < 0 ||
          options.batch_delay_ms > 60000) {
        return BadValue(flag, value, "milliseconds from 0 to 60000");
      }
    } else if (flag == "--port") {
      if (!absl::SimpleAtoi(text, &options.port) || options.port < 0 || options.port > 65535) {
        return BadValue(flag, value, "a port from 0 to 65535");
      }
    } else if (flag == "--threads") {
      if (!absl::SimpleAtoi(text, &options.threads) || options.threads < 1 ||
          options.threads > 4096) {
        return BadValue(flag, value, "an integer from 1 to 4096");
      }
    } else if (flag == "--sampling") {
      if (value == "all") {
        options.sampling_fixed_target = 0;
        options.sampling_rate = 1.0;
      } else if (value == "default") {
        options.sampling_fixed_target = 1;
        options.sampling_rate = 0.05;
      } else if (value == "none") {
        options.sampling_fixed_target = 0;
        options.sampling_rate = 0.0;
      } else {
        return BadValue(flag, value, "all|default|none");
      }
    } else if (flag == "--daemon") {
      if (value.empty()) return BadValue(flag, value, "HOST:PORT");
      options.daemon = std::string(value);
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag ", std::string(flag)));
    }
  }
  if (!have_framework || !have_traced) {
    return absl::InvalidArgumentError("--framework and --traced are required");
  }
  if (options.threads == 0) options.threads = options.beast ? 1 : 32;
  return options;
}

void AnnounceListening(int port) {
  std::printf("listening on %d\n", port);
  std::fflush(stdout);
}

absl::Status ServeHttplib(const Options& options, std::shared_ptr<const RequestTracer> tracer,
                          std::atomic<uint64_t>& requests) {
  httplib::Server server;
  const size_t threads = static_cast<size_t>(options.threads);
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // httplib closes a connection after 5 requests by default: the benchmark measures requests,
  // not connection set-up.
  server.set_keep_alive_max_count(SIZE_MAX);
  server.set_tcp_nodelay(true);
  server.Get("/hello", [&requests](const httplib::Request&, httplib::Response& response) {
    requests.fetch_add(1, std::memory_order_relaxed);
    response.set_content(kHello, "text/plain");
  });
  if (tracer) xraysink::middleware::InstallTracing(server, std::move(tracer));
  int port = options.port;
  if (port == 0) {
    port = server.bind_to_any_port("127.0.0.1");
  } else if (!server.bind_to_port("127.0.0.1", port)) {
    port = -1;
  }
  if (port < 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on 127.0.0.1:", options.port));
  }
  AnnounceListening(port);
  if (!xraysink::tools::ListenUntilStopSignal(server)) {
    return absl::UnavailableError(absl::StrCat("accepting on 127.0.0.1:", port, " failed"));
  }
  return absl::OkStatus();
}

http::response<http::string_body> BeastHello(const http::request<http::string_body>& request,
                                             std::atomic<uint64_t>& requests) {
  requests.fetch_add(1, std::memory_order_relaxed);
  const bool found = request.target() == "/hello";
  http::response<http::string_body> response(found ? http::status::ok : http::status::not_found,
                                             request.version());
  response.set(http::field::content_type, "text/plain");
  response.body() = found ? kHello : "Not Found";
  response.keep_alive(request.keep_alive());
  response.prepare_payload();
  return response;
}

// The connection loop of Beast's coroutine examples, reading as the traced adapter
// (middleware::ServeTraced) does (a parser in the coroutine's frame, the header first, a 100
// Continue when asked for), writing as it does (the header flattened into one buffer: see
// middleware::internal::AsyncWriteFlat) and with the timeouts it sets (idle before a request, and
// on writing the response), so that the two differ by tracing only. (Beast's http::async_read of
// a whole message allocates its parser per request: ~1 200 instructions more than this; its
// http::async_write of a message ~13 500 more than the flat write.)
asio::awaitable<void> BeastSession(tcp::socket socket, std::atomic<uint64_t>& requests) {
  namespace internal = xraysink::middleware::internal;
  boost::system::error_code error;
  boost::beast::tcp_stream stream(std::move(socket));
  boost::beast::flat_buffer buffer;
  std::string scratch;
  const auto token = [&] { return asio::redirect_error(asio::use_awaitable, error); };
  while (true) {
    http::request_parser<http::string_body> parser;
    stream.expires_after(kIdleTimeout);
    co_await http::async_read_header(stream, buffer, parser, token());
    if (!error && !parser.is_done()) {
      if (internal::ExpectsContinue(parser.get())) {
        co_await asio::async_write(stream, internal::ContinueBuffer(), token());
      }
      if (!error) co_await http::async_read(stream, buffer, parser, token());
    }
    if (error) break;
    http::request<http::string_body> request = parser.release();
    http::response<http::string_body> response = BeastHello(request, requests);
    stream.expires_after(kIdleTimeout);  // a client that does not read, as ServeTraced does
    co_await internal::AsyncWriteFlat(stream, response, "", false, scratch, token());
    if (error || !response.keep_alive()) break;
  }
  stream.socket().shutdown(tcp::socket::shutdown_send, error);
}

// On an io_context run by several threads, each connection gets a strand, as in Beast's
// multi-threaded examples and as ServeTraced does: a tcp_stream's timer and I/O handlers must not
// run at once.
asio::awaitable<void> BeastAccept(tcp::acceptor acceptor, std::atomic<uint64_t>& requests,
                                  asio::io_context& io, bool strands) {
  while (true) {
    boost::system::error_code error;
    tcp::socket socket(io);
    // Not one conditional expression with a co_await in each branch: g++ 12 miscompiles it.
    if (strands) {
      socket = co_await acceptor.async_accept(asio::make_strand(io),
                                              asio::redirect_error(asio::use_awaitable, error));
    } else {
      socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, error));
    }
    if (error == asio::error::operation_aborted) co_return;
    if (!error) {
      const auto executor = socket.get_executor();
      asio::co_spawn(executor, BeastSession(std::move(socket), requests), asio::detached);
    }
  }
}

absl::Status ServeBeast(const Options& options, std::shared_ptr<const RequestTracer> tracer,
                        std::atomic<uint64_t>& requests) {
  asio::io_context io(options.threads);
  tcp::acceptor acceptor(io);
  const tcp::endpoint endpoint(asio::ip::address_v4::loopback(),
                               static_cast<uint16_t>(options.port));
  boost::system::error_code error;
  acceptor.open(endpoint.protocol(), error);
  if (!error) acceptor.set_option(tcp::acceptor::reuse_address(true), error);
  if (!error) acceptor.bind(endpoint, error);
  if (!error) acceptor.listen(asio::socket_base::max_listen_connections, error);
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on 127.0.0.1:", options.port, ": ", error.message()));
  }
  const int port = acceptor.local_endpoint().port();
  if (tracer) {
    // A plain function, as in the untraced session: the handler never waits.
    // Takes the request by reference, as BeastSession's handler does: ServeTraced passes it as
    // an rvalue, and a by-value parameter would move its fields once more per request.
    auto hello = [&requests](const http::request<http::string_body>& request) {
      return BeastHello(request, requests);
    };
    asio::co_spawn(io,
                   xraysink::middleware::ServeTraced(std::move(acceptor), std::move(tracer), hello,
                                                     kIdleTimeout),
                   asio::detached);
  } else {
    asio::co_spawn(io, BeastAccept(std::move(acceptor), requests, io, options.threads > 1),
                   asio::detached);
  }
  std::vector<std::thread> threads;
  for (int i = 0; i < options.threads; ++i) threads.emplace_back([&io] { io.run(); });
  AnnounceListening(port);
  WaitForStopSignal();
  io.stop();
  for (std::thread& thread : threads) thread.join();
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::StatusOr<Options> options = ParseFlags(argc, argv);
  if (!options.ok()) {
    std::fprintf(stderr, "http_hello: %s\n%s", std::string(options.status().message()).c_str(),
                 kUsage);
    return 2;
  }
  BlockStopSignals();

  std::unique_ptr<xraysink::Tracing> tracing;
  std::shared_ptr<const RequestTracer> tracer;
  if (options->traced) {
    xraysink::TracingOptions tracing_options;
    tracing_options.service_name = "http_hello";
    tracing_options.daemon_address = options->daemon;
    // Local sampling: the benchmark has no daemon sampling API.
    tracing_options.centralized_sampling = false;
    if (options->idle_sender) {
      tracing_options.emitter.sender_priority =
          xraysink::emitter::DatagramSenderOptions::Priority::kIdle;
    }
    if (options->batch_delay_ms >= 0) {
      tracing_options.emitter.batch_delay = absl::Milliseconds(options->batch_delay_ms);
    }
    tracing_options.recorder.sampler = std::make_shared<xraysink::core::DefaultSampler>(
        options->sampling_fixed_target, options->sampling_rate);
    absl::StatusOr<std::unique_ptr<xraysink::Tracing>> configured =
        xraysink::Configure(std::move(tracing_options));
    if (!configured.ok()) {
      std::fprintf(stderr, "http_hello: %s\n", std::string(configured.status().message()).c_str());
      return 2;
    }
    tracing = *std::move(configured);
    tracer = std::make_shared<const RequestTracer>(
        tracing->recorder_ptr(), xraysink::middleware::SegmentNaming::Fixed("http_hello"));
  }

  std::atomic<uint64_t> requests{0};
  const absl::Status served = options->beast ? ServeBeast(*options, std::move(tracer), requests)
                                             : ServeHttplib(*options, std::move(tracer), requests);
  if (!served.ok()) {
    std::fprintf(stderr, "http_hello: %s\n", std::string(served.message()).c_str());
    return 1;
  }
  std::string counters = absl::StrCat("{\"requests\":", requests.load());
  if (tracing) {
    tracing->Flush(absl::Seconds(10));
    const xraysink::emitter::UdpEmitter::Stats stats = tracing->emitter().stats();
    absl::StrAppend(&counters, ",\"segments_sent\":", tracing->recorder().stats().segments_sent,
                    ",\"datagrams_sent\":", stats.sent,
                    ",\"dropped\":", stats.dropped_queue_full + stats.send_errors,
                    ",\"send_calls\":", stats.send_calls);
  }
  std::printf("%s}\n", counters.c_str());
  return 0;
}
