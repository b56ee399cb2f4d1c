#include "middleware/beast_client.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <utility>

namespace xraysink::middleware {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

// "host:port" -> "host"; "[v6]:port" -> "[v6]".
std::string_view HostWithoutPort(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    const size_t close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(0, close + 1);
  }
  return host.substr(0, host.find(':'));
}

// Resolves, connects, sends `request` and reads `response` within `timeout` (resolving aside).
// Run it on a strand: a Beast stream's timer completes on the caller's executor, and must not
// race the stream's own completions on a thread pool.
asio::awaitable<boost::system::error_code> Exchange(const std::string& host,
                                                    const std::string& port,
                                                    http::request<http::string_body>& request,
                                                    http::response<http::string_body>& response,
                                                    std::chrono::steady_clock::duration timeout) {
  const auto executor = co_await asio::this_coro::executor;
  boost::system::error_code error;
  tcp::resolver resolver(executor);
  const auto endpoints =
      co_await resolver.async_resolve(host, port, asio::redirect_error(asio::use_awaitable, error));
  if (error) co_return error;
  beast::tcp_stream stream(executor);
  stream.expires_after(timeout);
  co_await stream.async_connect(endpoints, asio::redirect_error(asio::use_awaitable, error));
  if (error) co_return error;
  co_await http::async_write(stream, request, asio::redirect_error(asio::use_awaitable, error));
  if (error) co_return error;
  beast::flat_buffer buffer;
  co_await http::async_read(stream, buffer, response,
                            asio::redirect_error(asio::use_awaitable, error));
  if (error) co_return error;
  stream.socket().shutdown(tcp::socket::shutdown_both, error);
  co_return boost::system::error_code();
}

}  // namespace

OutgoingCall BeginBeastCall(http::request_header<>& request, core::Recorder* recorder,
                            std::string_view scheme) {
  const std::string_view host = request[http::field::host];
  const std::string_view target = request.target();
  std::string url;
  url.reserve(scheme.size() + 3 + host.size() + target.size());
  url.append(scheme).append("://").append(host).append(target);
  OutgoingCall call =
      OutgoingCall::Begin(recorder, HostWithoutPort(host), request.method_string(), url);
  if (!call.trace_header().empty()) request.set("X-Amzn-Trace-Id", call.trace_header());
  return call;
}

void FailBeastCall(OutgoingCall& call, const boost::system::error_code& error) {
  call.Fail("boost::system::system_error", error.message() + " [" + error.to_string() + "]");
}

asio::awaitable<boost::system::result<http::response<http::string_body>>> TracedFetch(
    std::string host, std::string port, http::request<http::string_body> request,
    FetchOptions options) {
  if (request[http::field::host].empty()) {
    std::string value = host.find(':') == std::string::npos ? host : "[" + host + "]";
    if (port != "80") value.append(":").append(port);
    request.set(http::field::host, value);
  }
  OutgoingCall call = BeginBeastCall(request, options.recorder);
  http::response<http::string_body> response;
  const boost::system::error_code error = co_await asio::co_spawn(
      asio::make_strand(co_await asio::this_coro::executor),
      Exchange(host, port, request, response, options.timeout), asio::use_awaitable);
  if (error) {
    FailBeastCall(call, error);
    co_return error;
  }
  FinishBeastCall(call, response);
  co_return response;
}

}  // namespace xraysink::middleware
