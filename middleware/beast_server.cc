#include "middleware/beast_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <boost/asio/detail/scheduler.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <chrono>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/log.h"

namespace xraysink::middleware::internal {
namespace {

// As message::keep_alive() decides, from the first Connection field's tokens. Out of line:
// most requests have none, and the token parser is long.
[[gnu::noinline]] bool KeepAlive(unsigned version, std::string_view connection_tokens) {
  boost::beast::http::token_list tokens(connection_tokens);  // exists() is not const
  return version < 11 ? tokens.exists("keep-alive") : !tokens.exists("close");
}

// The method's name: the common ones from a short switch here rather than through Beast's
// to_string(verb), a long one that the untraced request path never runs (so it misses the
// instruction cache on every request).
std::string_view MethodName(const boost::beast::http::request_header<>& request) {
  namespace http = boost::beast::http;
  switch (request.method()) {
    case http::verb::get:
      return "GET";
    case http::verb::post:
      return "POST";
    case http::verb::put:
      return "PUT";
    case http::verb::delete_:
      return "DELETE";
    case http::verb::head:
      return "HEAD";
    case http::verb::patch:
      return "PATCH";
    case http::verb::options:
      return "OPTIONS";
    default:
      return request.method_string();
  }
}

}  // namespace

// By hand for IPv4: address::to_string goes through inet_ntop, sprintf and a std::string.
PeerAddress::PeerAddress(const boost::asio::ip::tcp::endpoint& peer) {
  static_assert(std::tuple_size_v<decltype(text_)> == INET6_ADDRSTRLEN);
  const boost::asio::ip::address address = peer.address();
  if (address.is_v4()) {
    char* out = text_.data();
    bool first = true;
    for (const unsigned char byte : address.to_v4().to_bytes()) {
      if (!first) *out++ = '.';
      first = false;
      if (byte >= 100) *out++ = static_cast<char>('0' + byte / 100);
      if (byte >= 10) *out++ = static_cast<char>('0' + byte / 10 % 10);
      *out++ = static_cast<char>('0' + byte % 10);
    }
    size_ = static_cast<size_t>(out - text_.data());
    return;
  }
  const auto bytes = address.to_v6().to_bytes();
  if (inet_ntop(AF_INET6, bytes.data(), text_.data(), text_.size()) != nullptr) {
    size_ = std::string_view(text_.data()).size();
  }
}

TracedRequest BeginBeast(const RequestTracer& tracer,
                         const boost::beast::http::request_header<>& request,
                         std::string_view peer_address, std::string_view scheme, bool* keep_alive) {
  namespace http = boost::beast::http;
  IncomingRequest incoming;
  incoming.scheme = scheme;
  incoming.method = MethodName(request);
  incoming.target = request.target();
  // One pass over the fields rather than a lookup per header (two of them by name, as Beast
  // has no enum for them); the first of repeated fields counts, as with request[name].
  bool host = false, user_agent = false, trace_header = false, forwarded_for = false;
  bool connection = false;
  std::string_view connection_tokens;
  for (const auto& field : request) {
    switch (field.name()) {
      case http::field::connection:
        if (!std::exchange(connection, true)) connection_tokens = field.value();
        break;
      case http::field::host:
        if (!std::exchange(host, true)) incoming.host = field.value();
        break;
      case http::field::user_agent:
        if (!std::exchange(user_agent, true)) incoming.user_agent = field.value();
        break;
      case http::field::unknown:
        if (boost::beast::iequals(field.name_string(), "X-Amzn-Trace-Id")) {
          if (!std::exchange(trace_header, true)) incoming.trace_header = field.value();
        } else if (boost::beast::iequals(field.name_string(), "X-Forwarded-For")) {
          if (!std::exchange(forwarded_for, true)) incoming.forwarded_for = field.value();
        } else if (!trace_header && incoming.trace_header.empty() &&
                   boost::beast::iequals(field.name_string(), kRewrittenTraceHeader)) {
          incoming.trace_header = field.value();  // X-Amzn-Trace-Id, when it comes, wins
        }
        break;
      default:
        break;
    }
  }
  incoming.peer_address = peer_address;
  if (keep_alive != nullptr) {
    *keep_alive =
        connection ? KeepAlive(request.version(), connection_tokens) : request.version() >= 11;
  }
  return tracer.Begin(incoming);
}

bool RunsOnOneThread(boost::asio::io_context& io) {
  // Asio keeps the hint in its scheduler (the io_context's implementation on POSIX), where hint
  // 1 makes it run handlers posted from a handler on the posting thread.
#if defined(BOOST_ASIO_HAS_IOCP)
  return false;
#else
  return boost::asio::use_service<boost::asio::detail::scheduler>(io).concurrency_hint() == 1;
#endif
}

boost::asio::awaitable<void> PauseAfterAcceptFailure(boost::asio::any_io_executor executor,
                                                     boost::system::error_code error,
                                                     int& failures) {
  if (failures++ == 0) {
    core::Log(core::LogLevel::kError,
              absl::StrCat("ServeTraced: accepting a connection failed (", error.message(),
                           "); retrying, with pauses of up to a second"));
  }
  boost::asio::steady_timer pause(
      executor,
      std::min<std::chrono::milliseconds>(
          std::chrono::milliseconds(10 << std::min(failures - 1, 7)), std::chrono::seconds(1)));
  boost::system::error_code ignored;
  co_await pause.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ignored));
}

ConnectionSet::Registration::Registration(std::shared_ptr<ConnectionSet> set,
                                          std::function<void()> close_if_idle)
    : set_(std::move(set)) {
  // Registered after Stop(), it is never called: the connection sees stopping() before it reads.
  std::lock_guard lock(set_->mu_);
  id_ = set_->next_id_++;
  set_->close_if_idle_.emplace(id_, std::move(close_if_idle));
}

ConnectionSet::Registration::~Registration() {
  std::lock_guard lock(set_->mu_);
  set_->close_if_idle_.erase(id_);
}

void ConnectionSet::Stop() {
  std::vector<std::function<void()>> to_call;
  {
    std::lock_guard lock(mu_);
    stopping_.store(true, std::memory_order_release);
    for (auto& [id, close_if_idle] : close_if_idle_) to_call.push_back(close_if_idle);
  }
  for (const auto& close_if_idle : to_call) close_if_idle();
}

bool ExpectsContinue(const boost::beast::http::request_header<>& request) {
  if (request.version() < 11) return false;
  const auto expect = request.find(boost::beast::http::field::expect);
  return expect != request.end() && boost::beast::iequals(expect->value(), "100-continue");
}

std::optional<boost::beast::http::status> RefusalFor(const boost::system::error_code& error) {
  namespace http = boost::beast::http;
  if (error.category() != http::make_error_code(http::error::bad_method).category()) {
    return std::nullopt;  // I/O: reset, timeout, cancellation
  }
  switch (static_cast<http::error>(error.value())) {
    case http::error::end_of_stream:    // closed between requests
    case http::error::partial_message:  // closed inside one
      return std::nullopt;
    case http::error::header_limit:
      return http::status::request_header_fields_too_large;
    case http::error::body_limit:
      return http::status::payload_too_large;
    default:
      return http::status::bad_request;
  }
}

ResponseFraming FinishBeast(TracedRequest& traced, boost::beast::http::response_header<>& response,
                            std::optional<int64_t> content_length, bool flat_write) {
  namespace http = boost::beast::http;
  static constexpr std::string_view kName = "X-Amzn-Trace-Id";
  ResponseFraming framing;
  bool trace_header = false;
  for (const auto& field : response) {
    switch (field.name()) {
      case http::field::content_length:
        framing.content_length = true;
        break;
      case http::field::transfer_encoding:
        framing.transfer_encoding = true;
        break;
      case http::field::unknown:
        trace_header = trace_header || boost::beast::iequals(field.name_string(), kName);
        break;
      default:
        break;
    }
  }
  framing.write_flat = flat_write && !framing.transfer_encoding;
  if (!traced.response_header().empty()) {
    // Inserted, not set: set() looks the name up among Beast's known fields first, and only a
    // handler that added the header itself needs it replaced.
    if (trace_header) {
      response.set(kName, traced.response_header());
    } else if (framing.write_flat) {
      framing.trace_header_to_write = true;
    } else {
      response.insert(http::field::unknown, kName, traced.response_header());
    }
  }
  traced.Finish(response.result_int(), content_length);
  return framing;
}

}  // namespace xraysink::middleware::internal
