#ifndef XRAYSINK_MIDDLEWARE_BEAST_CLIENT_H_
#define XRAYSINK_MIDDLEWARE_BEAST_CLIENT_H_

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/recorder.h"
#include "middleware/outgoing_call.h"

namespace xraysink::middleware {

// Traces a Boost.Beast request about to be sent from the current flow, over any stream (plain,
// TLS, sync or async): begins a `remote` subsegment named after the Host header (without port)
// with method and url (`scheme`://Host target), and sets the request's X-Amzn-Trace-Id
// (Root;Parent;Sampled). Outside a trace nothing is begun and no header is set (see
// OutgoingCall). End the call with FinishBeastCall or FailBeastCall; it ends on destruction.
OutgoingCall BeginBeastCall(boost::beast::http::request_header<>& request,
                            core::Recorder* recorder = nullptr, std::string_view scheme = "http");

// The response arrived: its status (4xx error, 429 throttle, 5xx fault) and body size.
template <typename Body>
void FinishBeastCall(OutgoingCall& call, const boost::beast::http::response<Body>& response) {
  std::optional<int64_t> content_length;
  if (const auto size = response.payload_size()) content_length = static_cast<int64_t>(*size);
  call.Finish(response.result_int(), content_length);
}

// The call failed without a response (resolution, connection, timeout, I/O): fault + a remote
// cause carrying the error's message and code.
void FailBeastCall(OutgoingCall& call, const boost::system::error_code& error);

// How TracedFetch calls.
struct FetchOptions {
  core::Recorder* recorder = nullptr;  // null: the global recorder
  // For connecting, sending and receiving together (beast::error::timeout past it).
  std::chrono::steady_clock::duration timeout = std::chrono::seconds(30);
};

// One traced HTTP/1.1 exchange on a new connection to `host`:`port`, from the current flow
// (co_await it in a traced handler): resolves, connects, sends `request` (Host set from `host`
// and `port` when missing) with X-Amzn-Trace-Id, reads the response and closes. Failures are
// returned, never thrown, and recorded as fault + cause.
boost::asio::awaitable<
    boost::system::result<boost::beast::http::response<boost::beast::http::string_body>>>
TracedFetch(std::string host, std::string port,
            boost::beast::http::request<boost::beast::http::string_body> request,
            FetchOptions options = {});

}  // namespace xraysink::middleware

#endif  // XRAYSINK_MIDDLEWARE_BEAST_CLIENT_H_
