#ifndef XRAYSINK_MIDDLEWARE_BEAST_SERVER_H_
#define XRAYSINK_MIDDLEWARE_BEAST_SERVER_H_

#include <array>
#include <atomic>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "context/traced_executor.h"
#include "core/context_slot.h"
#include "middleware/request_tracer.h"

namespace xraysink::middleware {
namespace internal {

// A TCP peer's address as text (what http.request.client_ip records): made once per
// connection by ServeTraced rather than once per request.
class PeerAddress {
 public:
  explicit PeerAddress(const boost::asio::ip::tcp::endpoint& peer);
  std::string_view view() const { return std::string_view(text_.data(), size_); }

 private:
  std::array<char, 46> text_;  // INET6_ADDRSTRLEN
  size_t size_ = 0;
};

// Begins the request's segment from its header and the TCP peer; `keep_alive`, when given,
// receives what message::keep_alive() would say, found in the same pass over the fields.
TracedRequest BeginBeast(const RequestTracer& tracer,
                         const boost::beast::http::request_header<>& request,
                         std::string_view peer_address, std::string_view scheme,
                         bool* keep_alive = nullptr);
inline TracedRequest BeginBeast(const RequestTracer& tracer,
                                const boost::beast::http::request_header<>& request,
                                const boost::asio::ip::tcp::endpoint& peer, std::string_view scheme,
                                bool* keep_alive = nullptr) {
  return BeginBeast(tracer, request, PeerAddress(peer).view(), scheme, keep_alive);
}

// Which framing fields a response has (a lookup by name walks Beast's field tree with
// case-insensitive compares: one pass over the few fields of a response is cheaper).
struct ResponseFraming {
  bool content_length = false;
  bool transfer_encoding = false;      // chunked or not: response.chunked() tells
  bool write_flat = false;             // for AsyncWriteFlat (see FinishBeast's `flat_write`)
  bool trace_header_to_write = false;  // X-Amzn-Trace-Id is the flat write's to add
};
// Adds X-Amzn-Trace-Id to the response (replacing one the handler set) and ends the segment with
// its status; returns what it saw of the response's framing in the same pass. With `flat_write`
// (a caller that can write the response with AsyncWriteFlat), a response without
// Transfer-Encoding is left to that write (write_flat), which adds the header itself
// (trace_header_to_write) unless the handler's was replaced; one with Transfer-Encoding goes to
// Beast's serializer, which frames its body, with the header in its fields.
ResponseFraming FinishBeast(TracedRequest& traced, boost::beast::http::response_header<>& response,
                            std::optional<int64_t> content_length, bool flat_write = false);

// Whether AsyncWriteFlat can write `Response`: a string body with Beast's own fields.
template <typename Response>
inline constexpr bool kWritesFlat =
    std::conjunction_v<std::is_same<typename Response::body_type, boost::beast::http::string_body>,
                       std::is_same<typename Response::fields_type, boost::beast::http::fields>>;

// Writes `response` (without Transfer-Encoding) as one gather write of its header, copied flat into
// `scratch` with `trace_header` (when not empty) as X-Amzn-Trace-Id, and its body (unless `head`):
// the bytes Beast's serializer would write, since the header comes from the same Fields::writer.
// http::async_write of a message allocates its serializer and walks its buffer sequence (one
// buffer per field) several times per write: a hello-world response costs ~13 500 instructions
// more that way (tools/bench/request_instructions.sh), and the trace header, added as a field,
// ~1 500 more (an allocation, a link into the fields' tree, one more buffer to walk), against a
// copy of ~60 bytes here. `scratch` must outlive the write; it keeps its capacity from one
// response to the next.
template <typename Stream, typename Token>
auto AsyncWriteFlat(Stream& stream,
                    const boost::beast::http::response<boost::beast::http::string_body>& response,
                    std::string_view trace_header, bool head, std::string& scratch, Token&& token) {
  static constexpr std::string_view kName = "X-Amzn-Trace-Id: ";
  scratch.clear();
  {
    const boost::beast::http::fields::writer header(response.base(), response.version(),
                                                    response.result_int());
    const auto pieces = header.get();  // named: the range below only refers to it
    for (const boost::asio::const_buffer piece : boost::beast::buffers_range_ref(pieces)) {
      scratch.append(static_cast<const char*>(piece.data()), piece.size());
    }
  }
  if (!trace_header.empty()) {
    scratch.resize(scratch.size() - 2);  // before the blank line that ends the header
    scratch.append(kName).append(trace_header).append("\r\n\r\n");
  }
  const std::array<boost::asio::const_buffer, 2> buffers{
      boost::asio::buffer(scratch),
      head ? boost::asio::const_buffer() : boost::asio::buffer(response.body())};
  return boost::asio::async_write(stream, buffers, std::forward<Token>(token));
}

// Whether `io` was made for one thread (concurrency hint 1).
bool RunsOnOneThread(boost::asio::io_context& io);

// The status that answers a request http::async_read could not read (`error`): 431 for a header
// over the parser's limit, 413 for a body over it, 400 for anything malformed; none when there
// is nothing to answer (the peer closed, reset or went quiet, or the read was cancelled).
std::optional<boost::beast::http::status> RefusalFor(const boost::system::error_code& error);

// The connections of one ServeTraced: once it stops accepting (its accept cancelled, or the
// acceptor closed), a connection waiting for a request closes at once, and one answering a
// request closes after its response (`Connection: close`), so that a service shutting down is
// not held by kept-alive connections until their idle timeout. Thread-safe.
class ConnectionSet {
 public:
  // While it lives, `close_if_idle` is called (from Stop, on any thread) to have the connection
  // close if it waits for a request. A connection checks stopping() before each read, so one
  // registered as (or after) Stop() runs needs no call.
  class Registration {
   public:
    Registration(std::shared_ptr<ConnectionSet> set, std::function<void()> close_if_idle);
    ~Registration();
    Registration(const Registration&) = delete;
    Registration& operator=(const Registration&) = delete;

   private:
    std::shared_ptr<ConnectionSet> set_;
    uint64_t id_;
  };

  void Stop();
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }

 private:
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  uint64_t next_id_ = 0;
  std::map<uint64_t, std::function<void()>> close_if_idle_;
};

// What ServeTraced's ConnectionSet knows of one connection, on the connection's executor.
struct ConnectionState {
  boost::beast::tcp_stream* stream = nullptr;
  bool idle = false;  // waiting for a request, nothing of it received
};

// Whether `request` waits for a 100 Continue before sending its body (`Expect: 100-continue`,
// HTTP/1.1 only: RFC 9110 has 1.0 requests' expectations ignored).
bool ExpectsContinue(const boost::beast::http::request_header<>& request);
inline boost::asio::const_buffer ContinueBuffer() {
  static constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
  return boost::asio::const_buffer(kContinue, sizeof(kContinue) - 1);
}

// Answers a request that could not be read with `status` and `Connection: close` (no segment:
// no request reached the middleware), then reads and throws away what the client still sends,
// at most 1 MiB for at most 1 s: closing with unread data makes the kernel reset the connection,
// which can destroy the answer before the client reads it. `token()` makes the completion token
// of the connection's I/O, which stores its error in `error`.
template <typename MakeToken>
boost::asio::awaitable<void> Refuse(boost::beast::tcp_stream& stream,
                                    boost::beast::http::status status, MakeToken& token,
                                    boost::system::error_code& error) {
  namespace http = boost::beast::http;
  http::response<http::empty_body> refusal(status, 11);
  refusal.keep_alive(false);
  refusal.prepare_payload();
  error = {};
  stream.expires_after(std::chrono::seconds(1));
  co_await http::async_write(stream, refusal, token());
  if (error) co_return;
  stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_send, error);
  std::array<char, 4096> scrap;
  for (size_t drained = 0; !error && drained < (size_t{1} << 20);) {
    drained += co_await stream.async_read_some(boost::asio::buffer(scrap), token());
  }
}

// After the `failures`-th accept failure in a row (counted up here): logs the first of a run,
// then waits 10 ms, doubling up to 1 s.
boost::asio::awaitable<void> PauseAfterAcceptFailure(boost::asio::any_io_executor executor,
                                                     boost::system::error_code error,
                                                     int& failures);

template <typename Body>
std::optional<int64_t> ContentLength(const boost::beast::http::response<Body>& response) {
  if (const auto size = response.payload_size()) return static_cast<int64_t>(*size);
  return std::nullopt;
}

// Runs `handler` as the request's flow: spawned on a traced executor, this coroutine starts in
// its own copy of the spawner's context, which it replaces with the request's segment; the
// executor then carries that flow across every co_await of the handler.
template <typename T>
boost::asio::awaitable<T> RunInSegment(std::shared_ptr<core::Segment> segment,
                                       boost::asio::awaitable<T> handler) {
  core::CurrentContext().Reset(std::move(segment));
  co_return co_await std::move(handler);
}

template <typename T>
struct IsResponse : std::false_type {};
template <typename Body, typename Fields>
struct IsResponse<boost::beast::http::message<false, Body, Fields>> : std::true_type {};

// A handler returns its response (synchronous) or asio::awaitable<response> (a coroutine).
template <typename Result>
struct HandlerResult {
  using Type = Result;
  static constexpr bool kCoroutine = false;
};
template <typename Response>
struct HandlerResult<boost::asio::awaitable<Response>> {
  using Type = Response;
  static constexpr bool kCoroutine = true;
};
template <typename Handler, typename Body>
using HandlerResultOf =
    HandlerResult<std::invoke_result_t<Handler&, boost::beast::http::request<Body>&&>>;
template <typename Handler, typename Body>
using ResponseOf = typename HandlerResultOf<Handler, Body>::Type;
template <typename Handler, typename Body>
inline constexpr bool kIsCoroutine = HandlerResultOf<Handler, Body>::kCoroutine;
template <typename Handler, typename Body>
inline constexpr bool kReturnsResponse = IsResponse<ResponseOf<Handler, Body>>::value;

// Completes at once, invoking its handler inline with `context` current until the handler
// returns: a coroutine awaiting it with use_awaitable resumes in `context` and keeps it until
// its next suspension (where a traced executor captures it). `context` must outlive that.
template <typename CompletionToken>
auto ResumeIn(core::TraceContext& context, CompletionToken&& token) {
  return boost::asio::async_initiate<CompletionToken, void()>(
      [](auto handler, core::TraceContext* context) {
        core::ScopedContext scope(*context);
        std::move(handler)();
      },
      token, &context);
}

// Converts to what `make` returns, made by `make` in place: optional::emplace(Invoked{...}) then
// constructs the handler's response where it lives instead of moving it there (a response's
// fields and body cost ~200 instructions to move, each request).
template <typename Make>
struct Invoked {
  Make make;
  operator std::invoke_result_t<Make&>() { return make(); }
};
template <typename Make>
Invoked(Make) -> Invoked<Make>;

// Calls a handler that is a plain function, with the request's context installed on this
// thread (it never suspends); what it throws goes to `error`.
template <typename Response, typename Handler, typename Request>
void CallPlainHandler(TracedRequest& traced, Handler& handler, Request&& request,
                      std::optional<Response>& response, std::exception_ptr& error) {
  core::ScopedContext scope(traced.context());
  try {
    response.emplace(Invoked{
        [&]() -> Response { return std::invoke(handler, std::forward<Request>(request)); }});
  } catch (...) {
    error = std::current_exception();
  }
}

// The handler threw: the segment gets fault + cause, the client an empty 500. Out of line, as
// CompleteFraming below: what every request runs stays small in the instruction cache, which a
// server's request path (mostly Beast's) already overflows.
template <typename Response>
[[gnu::cold, gnu::noinline]] void AnswerHandlerError(TracedRequest& traced,
                                                     std::optional<Response>& response,
                                                     const std::exception_ptr& error,
                                                     unsigned version, bool keep_alive) {
  traced.FinishWithException(error);
  response.emplace(boost::beast::http::status::internal_server_error, version);
  response->keep_alive(keep_alive);
  response->prepare_payload();
}
// Closes the connection after `response` when the request asked for that, and prepares the
// payload of a response without Content-Length or chunked encoding (both rare).
template <typename Response>
[[gnu::noinline]] void CompleteFraming(Response& response, bool keep_alive,
                                       ResponseFraming framing) {
  if (!keep_alive) response.keep_alive(false);
  if (!framing.content_length && !(framing.transfer_encoding && response.chunked())) {
    response.prepare_payload();
  }
}

// Ends the request's segment with `response`, which gets X-Amzn-Trace-Id; when the handler
// threw (`error`), with fault + cause, and the response is an empty 500.
template <typename Response>
ResponseFraming FinishResponse(TracedRequest& traced, std::optional<Response>& response,
                               const std::exception_ptr& error, unsigned version, bool keep_alive,
                               bool flat_write = false) {
  if (error) AnswerHandlerError(traced, response, error, version, keep_alive);
  return FinishBeast(traced, *response, ContentLength(*response), flat_write);
}

// Runs the handler as its own flow: a coroutine spawned on a traced executor over the calling
// coroutine's, which starts in a copy of the caller's context and replaces it with the request's
// segment (the caller's executor may not carry the context: any coroutine can call Traced).
// The handler is held by value: the awaitable may be spawned rather than awaited at once.
template <typename Body, typename Handler>
boost::asio::awaitable<ResponseOf<Handler, Body>> TraceRequest(
    const RequestTracer& tracer, boost::beast::http::request<Body> request,
    boost::asio::ip::tcp::endpoint peer, Handler handler, std::string scheme) {
  namespace asio = boost::asio;
  using Response = ResponseOf<Handler, Body>;

  static_assert(kReturnsResponse<Handler, Body>,
                "a handler must return http::response<...> or asio::awaitable of one");

  bool keep_alive = false;
  TracedRequest traced = BeginBeast(tracer, request, peer, scheme, &keep_alive);
  const unsigned version = request.version();
  std::exception_ptr error;
  std::optional<Response> response;  // not default-constructed only to be replaced
  if constexpr (kIsCoroutine<Handler, Body>) {
    try {
      const auto executor = context::MakeTracedExecutor(co_await asio::this_coro::executor);
      response.emplace(co_await asio::co_spawn(
          executor,
          RunInSegment(traced.context().segment_ptr(), std::invoke(handler, std::move(request))),
          asio::use_awaitable));
    } catch (...) {
      error = std::current_exception();
    }
  } else {
    CallPlainHandler(traced, handler, std::move(request), response, error);
  }
  FinishResponse(traced, response, error, version, keep_alive);
  co_return std::move(*response);
}

}  // namespace internal

// Traces one request of a Boost.Beast server whose handler is a coroutine or a plain function,
// e.g.
//
//   asio::awaitable<http::response<http::string_body>> Handle(http::request<http::string_body>);
//   auto response = co_await Traced(tracer, std::move(request), peer, Handle);
//
// The request gets a segment (as RequestTracer decides), current for the handler across all its
// co_awaits on any number of threads: a coroutine handler runs as its own flow on a
// context::TracedExecutor over the calling coroutine's executor; a plain function (returning
// http::response<...>) runs in place with the segment current. The response gets
// X-Amzn-Trace-Id and its status and body size are recorded. An exception escaping the handler
// is recorded as fault + cause and answered with an empty 500 (never rethrown). `scheme` goes
// into the recorded url: "https" for a server behind TLS (beast::ssl_stream). The handler is
// copied (or moved) into the awaitable, which may be spawned instead of awaited at once;
// `tracer` must outlive it.
template <typename Body, typename Handler>
boost::asio::awaitable<internal::ResponseOf<Handler, Body>> Traced(
    const RequestTracer& tracer, boost::beast::http::request<Body> request,
    boost::asio::ip::tcp::endpoint peer, Handler&& handler, std::string scheme = "http") {
  return internal::TraceRequest<Body, std::decay_t<Handler>>(
      tracer, std::move(request), peer, std::forward<Handler>(handler), std::move(scheme));
}

// How long ServeTraced keeps a connection without a complete request by default. Longer than an
// AWS load balancer's idle timeout (60 s unless changed): a server that closes an idle
// kept-alive connection first races the balancer's next request on it, which the balancer then
// answers 502 (ELB's docs ask targets for a longer timeout than theirs). 75 s, as nginx.
inline constexpr std::chrono::seconds kDefaultIdleTimeout{75};
static_assert(kDefaultIdleTimeout > std::chrono::seconds(60));

// Serves HTTP/1.1 on `acceptor` with every request traced (see Traced): each connection is
// its own coroutine on a strand of the acceptor's executor (on the executor itself for an
// io_context constructed with concurrency hint 1, which promises Asio a single thread; run such
// a context on one thread only), reading requests (string bodies) and answering them in order
// with `handler` (a coroutine returning asio::awaitable<http::response<...>>, or a plain function
// returning http::response<...> for handlers that never wait), kept alive as the client asks,
// closed after `idle_timeout` without a complete request (or a response it does not read). A
// response without Content-Length or chunked encoding gets its payload prepared. A request that
// cannot be read is answered 400, 413 or 431 (see RefusalFor) before the close. When it stops,
// connections waiting for a request close at once and busy ones after their response (see
// internal::ConnectionSet). Runs until the
// acceptor is closed or its accept cancelled; other accept failures (out of descriptors or
// memory) are logged (core/log.h) and retried after a pause of 10 ms doubling to 1 s. Spawn it
// with co_spawn(executor, ServeTraced(...), asio::detached). A null `tracer` traces with the global
// recorder, segments named after its service.
template <typename Handler>
boost::asio::awaitable<void> ServeTraced(
    boost::asio::ip::tcp::acceptor acceptor, std::shared_ptr<const RequestTracer> tracer,
    Handler handler, std::chrono::steady_clock::duration idle_timeout = kDefaultIdleTimeout) {
  namespace asio = boost::asio;
  namespace beast = boost::beast;
  namespace http = beast::http;
  using asio::ip::tcp;
  using Response = internal::ResponseOf<Handler, http::string_body>;
  static_assert(internal::kReturnsResponse<Handler, http::string_body>,
                "a handler must return http::response<...> or asio::awaitable of one");
  if (tracer == nullptr) tracer = std::make_shared<const RequestTracer>(nullptr, SegmentNaming());
  // Connections may outlive this loop.
  auto shared = std::make_shared<Handler>(std::move(handler));
  auto connections = std::make_shared<internal::ConnectionSet>();
  auto serve = [](tcp::socket socket, std::shared_ptr<const RequestTracer> tracer,
                  std::shared_ptr<Handler> handler,
                  std::chrono::steady_clock::duration idle_timeout,
                  std::shared_ptr<internal::ConnectionSet> connections) -> asio::awaitable<void> {
    boost::system::error_code error;
    const internal::PeerAddress peer(socket.remote_endpoint(error));
    // Reading and writing happen outside any request: their completions go straight to the
    // connection's own executor, which Asio then resumes this coroutine on directly, instead of
    // through the traced executor (type-erased, an allocation and a context switch each, for
    // every I/O and timer completion of Beast's composed operations). With a plain-function
    // handler this coroutine runs on that executor already (see `spawn` below).
    const auto untraced = socket.get_executor();
    const auto io_token = [&] {
      if constexpr (internal::kIsCoroutine<Handler, http::string_body>) {
        return asio::bind_executor(untraced, asio::redirect_error(asio::use_awaitable, error));
      } else {
        return asio::redirect_error(asio::use_awaitable, error);
      }
    };
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    std::string scratch;  // each response's header, flattened (internal::AsyncWriteFlat)
    // Posted to this connection's executor when the server stops: runs between its steps.
    const auto state = std::make_shared<internal::ConnectionState>();
    state->stream = &stream;
    const internal::ConnectionSet::Registration registration(
        connections, [untraced, weak = std::weak_ptr<internal::ConnectionState>(state)] {
          asio::post(untraced, [weak] {
            const auto state = weak.lock();
            if (state != nullptr && state->idle) state->stream->socket().cancel();
          });
        });
    while (!error && !connections->stopping()) {
      http::request_parser<http::string_body> parser;
      stream.expires_after(idle_timeout);
      state->idle = buffer.size() == 0;
      co_await http::async_read_header(stream, buffer, parser, io_token());
      state->idle = false;
      if (!error && !parser.is_done()) {
        // A client that asks before it sends its body waits for the go-ahead (curl a second,
        // others longer).
        if (internal::ExpectsContinue(parser.get())) {
          co_await boost::asio::async_write(stream, internal::ContinueBuffer(), io_token());
        }
        if (!error) co_await http::async_read(stream, buffer, parser, io_token());
      }
      if (error) {
        if (const auto refusal = internal::RefusalFor(error)) {
          co_await internal::Refuse(stream, *refusal, io_token, error);
        }
        break;
      }
      http::request<http::string_body> request = parser.release();
      bool keep_alive = false;
      TracedRequest traced =
          internal::BeginBeast(*tracer, request, peer.view(), "http", &keep_alive);
      const unsigned version = request.version();
      const bool head = request.method() == http::verb::head;
      std::exception_ptr handler_error;
      std::optional<Response> response;
      if constexpr (internal::kIsCoroutine<Handler, http::string_body>) {
        // The request's flow, in place: from here to its next suspension this coroutine runs
        // with the request's context current, and the traced executor it runs on carries that
        // context across every co_await of the handler. No spawn, no coroutine frame of ours per
        // request.
        co_await internal::ResumeIn(traced.context(), asio::use_awaitable);
        try {
          response.emplace(co_await std::invoke(*handler, std::move(request)));
        } catch (...) {
          handler_error = std::current_exception();
        }
      } else {
        internal::CallPlainHandler(traced, *handler, std::move(request), response, handler_error);
      }
      if (connections->stopping()) keep_alive = false;  // the last response of a stopping server
      const internal::ResponseFraming framing = internal::FinishResponse(
          traced, response, handler_error, version, keep_alive, internal::kWritesFlat<Response>);
      if (!keep_alive || !framing.content_length) {
        internal::CompleteFraming(*response, keep_alive, framing);
      }
      stream.expires_after(idle_timeout);
      if constexpr (internal::kWritesFlat<Response>) {
        if (framing.write_flat) {
          co_await internal::AsyncWriteFlat(
              stream, *response,
              framing.trace_header_to_write ? traced.response_header() : std::string_view(), head,
              scratch, io_token());
        }
      }
      if (framing.write_flat) {
        // Written above.
      } else if (head) {
        // The GET's header without its content (RFC 9110 9.3.2): a body after a HEAD's header
        // would be read by the client as the start of the next response.
        http::serializer<false, typename Response::body_type, typename Response::fields_type>
            header_only(*response);
        co_await http::async_write_header(stream, header_only, io_token());
      } else {
        co_await http::async_write(stream, *response, io_token());
      }
      if (!response->keep_alive()) break;
    }
    stream.socket().shutdown(tcp::socket::shutdown_send, error);
  };
  // On an io_context, its concrete executor: a traced executor over it (or over one of its
  // strands) fits any_io_executor's inline storage, and each I/O completion goes through one
  // type-erased executor instead of three nested ones.
  const auto* io_executor =
      acceptor.get_executor().template target<asio::io_context::executor_type>();
  // A strand per connection (the stream's timer and I/O handlers must not run at once), except
  // on an io_context made for one thread (concurrency hint 1), where Asio itself runs every
  // handler on the thread that calls run(), as Beast's own examples assume.
  const bool one_thread =
      io_executor != nullptr && internal::RunsOnOneThread(io_executor->context());
  int accept_failures = 0;  // in a row
  for (;;) {
    boost::system::error_code error;
    const auto accept = [&](const auto& executor) {
      return acceptor.async_accept(executor, asio::redirect_error(asio::use_awaitable, error));
    };
    tcp::socket socket(acceptor.get_executor());
    if (one_thread) {
      socket = co_await accept(*io_executor);
    } else if (io_executor != nullptr) {
      socket = co_await accept(asio::make_strand(*io_executor));
    } else {
      socket = co_await accept(asio::make_strand(acceptor.get_executor()));
    }
    if (error == asio::error::connection_aborted) continue;                // the peer gave up first
    if (error == asio::error::operation_aborted || !acceptor.is_open()) {  // closed
      connections->Stop();
      co_return;
    }
    if (error) {
      // Out of descriptors or memory, or another failure: the connections waiting in the
      // kernel's queue stay there. Try again after a pause instead of stopping for good.
      co_await internal::PauseAfterAcceptFailure(acceptor.get_executor(), error, accept_failures);
      continue;
    }
    accept_failures = 0;
    // A coroutine handler is awaited in place, in the request's flow: the connection runs on a
    // traced executor over its own, which carries the flow across the handler's co_awaits. A
    // plain-function handler never suspends, and runs with the request's context installed
    // around the call: the connection runs on its own executor, like an untraced one.
    const auto spawn = [&](const auto& executor) {
      if constexpr (internal::kIsCoroutine<Handler, http::string_body>) {
        asio::co_spawn(context::MakeTracedExecutor(executor),
                       serve(std::move(socket), tracer, shared, idle_timeout, connections),
                       asio::detached);
      } else {
        asio::co_spawn(executor,
                       serve(std::move(socket), tracer, shared, idle_timeout, connections),
                       asio::detached);
      }
    };
    if (one_thread) {
      spawn(*io_executor);
    } else if (io_executor != nullptr) {
      spawn(
          *socket.get_executor().template target<asio::strand<asio::io_context::executor_type>>());
    } else {
      spawn(socket.get_executor());
    }
  }
}

}  // namespace xraysink::middleware

#endif  // XRAYSINK_MIDDLEWARE_BEAST_SERVER_H_
