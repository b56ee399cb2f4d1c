// The demo service: an HTTP service traced with xraysink-cpp, sending to AWS_XRAY_DAEMON_ADDRESS
// (default 127.0.0.1:2000). Each route shows one feature; see kUsage. Run two of them chained
// (--downstream) against xray_local to see connected traces: tools/run_demo.sh does.
#include <pthread.h>
#include <signal.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "context/traced_executor.h"
#include "httplib.h"
#include "logs/log_group.h"
#include "middleware/beast_server.h"
#include "middleware/httplib_server.h"
#include "middleware/request_tracer.h"
#include "tools/demo_routes.h"
#include "tools/listen_until_stopped.h"
#include "tools/stop_signals.h"
#include "xraysink.h"

namespace {

namespace asio = boost::asio;
using xraysink::tools::BlockStopSignals;
using xraysink::tools::WaitForStopSignal;
using xraysink::tools::demo::Reply;
using xraysink::tools::demo::Routes;

constexpr char kUsage[] =
    R"(usage: demo [--port P] [--downstream URL] [--framework httplib|beast] [--name NAME]
            [--sampling-rules FILE] [--log-group NAME_OR_ARN]
       demo --client URL PATH...

Serves these routes, each traced as a segment sent to AWS_XRAY_DAEMON_ADDRESS:
  GET /hello       200, fast
  GET /work        awaits a short timer in a subsegment, starts a traced background task
  GET /downstream  calls --downstream URL + /hello with the traced client (one connected trace)
  GET /fail        500 (fault)     GET /throw   the handler throws (fault + cause, 500)
  GET /limited     429 (throttle)  anything else: 404
Both frameworks route alike: on the path (the query ignored, %XX decoded), GET and HEAD only;
POST, PUT, DELETE, OPTIONS and PATCH get an empty 404, other methods (TRACE...) an empty 400.
At start-up it runs one background job outside any request (a trace of its own).

  --port P              port on 127.0.0.1 (default 8080; 0 picks a free one). The first line
                        printed is "listening on PORT".
  --downstream URL      e.g. http://127.0.0.1:8081 (default: none; /downstream answers 502)
  --framework F         httplib (default) or beast
  --name NAME           segment name (default demo; AWS_XRAY_TRACING_NAME wins)
  --sampling-rules FILE local sampling rules (JSON, version 1 or 2); they decide while the
                        daemon's centralized rules are unavailable
  --local-sampling-only the local rules (or the default) decide; the daemon's sampling API
                        is not polled (xray_local has none)
  --log-group NAME|ARN  CloudWatch log group linked from every segment
  --client URL PATH...  instead of serving: GET each PATH from URL, print the statuses
)";

struct Flags {
  int port = 8080;
  std::string downstream;
  std::string framework = "httplib";
  std::string name = "demo";
  std::string sampling_rules;
  bool centralized_sampling = true;
  std::string log_group;
  std::string client_url;
  std::vector<std::string> client_paths;
};

// Every line goes to stderr in one write (one StrCat): the demo's threads log there too, and
// a line written piecewise can be cut in two by another thread's.
int UsageError(const std::string& message) {
  std::cerr << absl::StrCat("demo: ", message, "\n\n", kUsage);
  return 2;
}

// Parses argv; nullopt after printing the problem.
std::optional<Flags> ParseFlags(int argc, char** argv, int& exit_code) {
  Flags flags;
  exit_code = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const auto value = [&]() -> std::optional<std::string> {
      if (i + 1 >= argc) {
        exit_code = UsageError(absl::StrCat(std::string(arg), " needs a value"));
        return std::nullopt;
      }
      return std::string(argv[++i]);
    };
    std::optional<std::string> v;
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return std::nullopt;
    } else if (arg == "--port") {
      if (!(v = value())) return std::nullopt;
      if (!absl::SimpleAtoi(*v, &flags.port) || flags.port < 0 || flags.port > 65535) {
        exit_code = UsageError("--port must be a number from 0 to 65535, got '" + *v + "'");
        return std::nullopt;
      }
    } else if (arg == "--downstream") {
      if (!(v = value())) return std::nullopt;
      if (v->rfind("http://", 0) != 0) {
        exit_code = UsageError("--downstream must be an http:// URL, got '" + *v + "'");
        return std::nullopt;
      }
      flags.downstream = *v;
    } else if (arg == "--framework") {
      if (!(v = value())) return std::nullopt;
      if (*v != "httplib" && *v != "beast") {
        exit_code = UsageError("--framework must be httplib or beast, got '" + *v + "'");
        return std::nullopt;
      }
      flags.framework = *v;
    } else if (arg == "--name") {
      if (!(v = value())) return std::nullopt;
      flags.name = *v;
    } else if (arg == "--sampling-rules") {
      if (!(v = value())) return std::nullopt;
      flags.sampling_rules = *v;
    } else if (arg == "--local-sampling-only") {
      flags.centralized_sampling = false;
    } else if (arg == "--log-group") {
      if (!(v = value())) return std::nullopt;
      flags.log_group = *v;
    } else if (arg == "--client") {
      if (!(v = value())) return std::nullopt;
      flags.client_url = *v;
      for (++i; i < argc; ++i) flags.client_paths.emplace_back(argv[i]);
      if (flags.client_paths.empty()) {
        exit_code = UsageError("--client needs at least one PATH");
        return std::nullopt;
      }
    } else {
      exit_code = UsageError("unknown argument '" + std::string(arg) + "'");
      return std::nullopt;
    }
  }
  return flags;
}

// --client: GETs each path in turn (untraced: it plays an outside caller).
int RunClient(const Flags& flags) {
  httplib::Client client(flags.client_url);
  client.set_connection_timeout(5);
  client.set_read_timeout(10);
  int failures = 0;
  for (const std::string& path : flags.client_paths) {
    httplib::Result result = client.Get(path.c_str());
    if (!result) {
      std::cout << "GET " << path << " -> error: " << httplib::to_string(result.error()) << "\n";
      ++failures;
      continue;
    }
    std::cout << "GET " << path << " -> " << result->status
              << "  X-Amzn-Trace-Id: " << result->get_header_value("X-Amzn-Trace-Id") << "\n";
  }
  return failures == 0 ? 0 : 1;
}

// Serves the routes with cpp-httplib: its worker threads run the handlers; each handler runs
// the route's coroutine on the demo's io_context and waits for it. The traced executor carries
// the request's context into the coroutine.
int ServeHttplib(const Flags& flags, Routes& routes, asio::io_context& io) {
  httplib::Server server;
  // httplib sends a response's headers and body apart: with Nagle's algorithm, every response
  // on a kept-alive connection but the first would wait ~40 ms for the client's delayed ACK.
  server.set_tcp_nodelay(true);
  auto tracer = std::make_shared<xraysink::middleware::RequestTracer>(
      nullptr, xraysink::middleware::SegmentNaming::Fixed(flags.name));
  server.Get(R"(/.*)", [&](const httplib::Request& request, httplib::Response& response) {
    std::future<Reply> reply =
        asio::co_spawn(xraysink::context::MakeTracedExecutor(io.get_executor()),
                       routes.Handle(request.path), asio::use_future);
    const Reply result = reply.get();  // rethrows what the route threw: traced as a fault
    response.status = result.status;
    response.set_content(result.body, "text/plain");
  });
  xraysink::middleware::InstallTracing(server, tracer);
  const int port = flags.port == 0
                       ? server.bind_to_any_port("127.0.0.1")
                       : (server.bind_to_port("127.0.0.1", flags.port) ? flags.port : -1);
  if (port < 0) {
    std::cerr << absl::StrCat("demo: cannot listen on 127.0.0.1:", flags.port, " (port taken?)\n");
    return 1;
  }
  std::cout << "listening on " << port << std::endl;
  const bool served = xraysink::tools::ListenUntilStopSignal(server);
  if (!served) {
    std::cerr << absl::StrCat("demo: accepting connections on 127.0.0.1:", port, " failed\n");
    return 1;
  }
  return 0;
}

// The request target's path, as httplib's request.path has it: without the query or fragment,
// its %XX escapes decoded by httplib's own decoder (a '+' stays a '+' in a path).
std::string PathOf(std::string_view target) {
  return httplib::detail::decode_url(std::string(target.substr(0, target.find_first_of("?#"))),
                                     /*convert_plus_to_space=*/false);
}

// Beast routes as ServeHttplib's server does, whose routes are all GET routes: GET and HEAD
// (httplib serves HEAD with the GET handlers) reach the routes; httplib answers POST, PUT,
// DELETE, OPTIONS and PATCH 404 (no handler for the method: not 405) and any other method 400.
// nullopt: routed.
std::optional<int> UnroutedStatus(boost::beast::http::verb method) {
  namespace http = boost::beast::http;
  switch (method) {
    case http::verb::get:
    case http::verb::head:
      return std::nullopt;
    case http::verb::post:
    case http::verb::put:
    case http::verb::delete_:
    case http::verb::options:
    case http::verb::patch:
      return 404;
    default:
      return 400;
  }
}

// Serves the routes with Boost.Beast: coroutine handlers on the demo's io_context, the request's
// segment current across their co_awaits.
int ServeBeast(const Flags& flags, Routes& routes, asio::io_context& io) {
  namespace http = boost::beast::http;
  boost::system::error_code error;
  asio::ip::tcp::acceptor acceptor(io);
  const asio::ip::tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"),
                                         static_cast<uint16_t>(flags.port));
  acceptor.open(endpoint.protocol(), error);
  if (!error) acceptor.set_option(asio::socket_base::reuse_address(true), error);
  if (!error) acceptor.bind(endpoint, error);
  if (!error) acceptor.listen(asio::socket_base::max_listen_connections, error);
  if (error) {
    std::cerr << absl::StrCat("demo: cannot listen on 127.0.0.1:", flags.port, ": ",
                              error.message(), "\n");
    return 1;
  }
  std::cout << "listening on " << acceptor.local_endpoint().port() << std::endl;
  auto tracer = std::make_shared<xraysink::middleware::RequestTracer>(
      nullptr, xraysink::middleware::SegmentNaming::Fixed(flags.name));
  auto handler = [&routes](http::request<http::string_body> request)
      -> asio::awaitable<http::response<http::string_body>> {
    const http::verb method = request.method();
    const std::optional<int> unrouted = UnroutedStatus(method);
    if (unrouted) {
      // What httplib answers when no handler matches: an empty response.
      co_return http::response<http::string_body>(static_cast<http::status>(*unrouted),
                                                  request.version());
    }
    const Reply reply = co_await routes.Handle(PathOf(request.target()));
    http::response<http::string_body> response(static_cast<http::status>(reply.status),
                                               request.version());
    response.set(http::field::content_type, "text/plain");
    if (method == http::verb::head) {
      response.content_length(reply.body.size());  // the GET's headers, without its body
    } else {
      response.body() = reply.body;
    }
    co_return response;
  };
  asio::co_spawn(io, xraysink::middleware::ServeTraced(std::move(acceptor), tracer, handler),
                 asio::detached);
  WaitForStopSignal();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int exit_code = 0;
  const std::optional<Flags> flags = ParseFlags(argc, argv, exit_code);
  if (!flags) return exit_code;
  if (!flags->client_url.empty()) return RunClient(*flags);
  // Blocked before any thread starts, so every thread inherits the mask and the signals wait
  // for WaitForStopSignal instead of interrupting a thread.
  BlockStopSignals();

  xraysink::TracingOptions options;
  options.service_name = flags->name;
  if (!flags->log_group.empty()) {
    if (absl::Status added = xraysink::logs::AddLogGroup(options.recorder, flags->log_group);
        !added.ok()) {
      return UsageError("--log-group: " + std::string(added.message()));
    }
  }
  options.sampling_rules_file = flags->sampling_rules;
  options.centralized_sampling = flags->centralized_sampling;
  absl::StatusOr<std::unique_ptr<xraysink::Tracing>> tracing = xraysink::Configure(options);
  if (!tracing.ok()) {
    std::cerr << absl::StrCat("demo: ", tracing.status().message(), "\n");
    return 1;
  }

  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::vector<std::thread> pool;
  for (int i = 0; i < 4; ++i) pool.emplace_back([&] { io.run(); });

  Routes routes(io, flags->downstream);
  routes.StartBackgroundJob();  // outside any request: a trace of its own

  const int result = flags->framework == "beast" ? ServeBeast(*flags, routes, io)
                                                 : ServeHttplib(*flags, routes, io);
  work.reset();
  io.stop();
  for (std::thread& thread : pool) thread.join();
  // What reached the socket and what did not: nothing is dropped silently.
  // Closed before counting: what is still queued then (a daemon name that never resolved) is
  // counted as dropped after close.
  (*tracing)->emitter().Flush(absl::Now() + absl::Seconds(2));
  (*tracing)->emitter().Close();
  const auto sent = (*tracing)->emitter().stats();
  std::cerr << absl::StrCat(
      "demo: ", (*tracing)->recorder().stats().segments_sent, " segments sent, ", sent.sent,
      " datagrams sent, dropped: ", sent.dropped_queue_full, " queue full, ", sent.send_errors,
      " send errors, ", sent.serialization.dropped_documents, " too big, ", sent.dropped_closed,
      " after close\n");
  return result;
}
