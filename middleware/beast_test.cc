// End to end on 127.0.0.1: real Boost.Beast servers on a 4-thread io_context and real clients,
// traced with the Beast adapters.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "context/scopes.h"
#include "context/traced_executor.h"
#include "core/log.h"
#include "core/recorder.h"
#include "core/testing/collecting_sink.h"
#include "core/testing/schema_validator.h"
#include "middleware/beast_client.h"
#include "middleware/beast_server.h"
#include "middleware/testing/trace_header_forms.h"
#include "rapidjson/document.h"

namespace xraysink::middleware {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

constexpr char kT[] = "1-5759e988-bd862e3fe1be46a994272793";
constexpr char kP[] = "53995c3f42cd8ad8";
constexpr int kThreads = 4;
constexpr auto kDeadline = std::chrono::seconds(60);

struct AlwaysSample : core::Sampler {
  core::SamplingDecision ShouldTrace(const core::SamplingRequest&) override { return {true, ""}; }
};

Request Get(unsigned short port, std::string target,
            std::vector<std::pair<std::string, std::string>> headers = {}) {
  Request request(http::verb::get, target, 11);
  request.set(http::field::host, "127.0.0.1:" + std::to_string(port));
  for (const auto& [name, value] : headers) request.set(name, value);
  return request;
}

Response Reply(const Request& request, http::status status, std::string body = "") {
  Response response(status, request.version());
  response.body() = std::move(body);
  response.prepare_payload();
  return response;
}

// A plain (untraced) client: sends `requests` in turn on one keep-alive connection. Run it on a
// strand (the stream's timer completes on the coroutine's executor).
awaitable<std::vector<Response>> Exchange(
    unsigned short port, std::vector<Request> requests,
    asio::ip::address address = asio::ip::address_v4::loopback()) {
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  stream.expires_after(kDeadline);
  co_await stream.async_connect(tcp::endpoint(address, port), use_awaitable);
  beast::flat_buffer buffer;
  std::vector<Response> responses;
  for (Request& request : requests) {
    co_await http::async_write(stream, request, use_awaitable);
    Response& response = responses.emplace_back();
    co_await http::async_read(stream, buffer, response, use_awaitable);
  }
  co_return responses;
}

// Asks for /item/<item> and checks the answer names it.
awaitable<void> ExpectItem(unsigned short port, int item) {
  // GCC 12 cannot hold a braced list across co_await.
  std::vector<Request> requests;
  requests.push_back(Get(port, "/item/" + std::to_string(item)));
  auto responses = co_await Exchange(port, std::move(requests));
  if (responses.at(0).body() != std::to_string(item)) throw std::runtime_error("wrong answer");
}

// A port that was just free: nothing listens there.
unsigned short DeadPort() {
  asio::io_context io;
  tcp::acceptor probe(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  return probe.local_endpoint().port();
}

// A traced server named "one" on an io_context made for one thread (concurrency hint 1), run by
// a thread of its own; stopped when destroyed.
class OneThreadServer {
 public:
  template <typename Handler>
  OneThreadServer(std::shared_ptr<core::Recorder> recorder, Handler handler) {
    tcp::acceptor acceptor(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    port_ = acceptor.local_endpoint().port();
    asio::co_spawn(io_,
                   ServeTraced(std::move(acceptor),
                               std::make_shared<RequestTracer>(std::move(recorder),
                                                               SegmentNaming::Fixed("one")),
                               std::move(handler)),
                   asio::detached);
    runner_ = std::thread([this] { io_.run(); });
  }
  ~OneThreadServer() {
    work_.reset();
    io_.stop();
    runner_.join();
  }

  asio::io_context& io() { return io_; }
  unsigned short port() const { return port_; }

 private:
  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  unsigned short port_ = 0;
  std::thread runner_;
};

class BeastMiddlewareTest : public ::testing::Test {
 protected:
  BeastMiddlewareTest() {
    core::RecorderOptions options;
    options.service_name = "svc";
    options.read_environment = false;
    options.sampler = std::make_shared<AlwaysSample>();
    options.sink = sink_;
    recorder_ = *core::Recorder::Create(std::move(options));
    for (int i = 0; i < kThreads; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  ~BeastMiddlewareTest() override {
    io_.stop();
    for (std::thread& thread : threads_) thread.join();
  }

  // A traced server named `name` on 127.0.0.1 (port picked by the kernel) answering with
  // `handler`; returns its port.
  template <typename Handler>
  unsigned short Serve(const std::string& name, Handler handler) {
    tcp::acceptor acceptor(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    const unsigned short port = acceptor.local_endpoint().port();
    asio::co_spawn(
        io_,
        ServeTraced(std::move(acceptor),
                    std::make_shared<RequestTracer>(recorder_, SegmentNaming::Fixed(name)),
                    std::move(handler)),
        asio::detached);
    return port;
  }

  // Runs `work` as a flow on a strand of the pool (traced executor) and waits for its result;
  // nullopt (a test failure) past the deadline.
  template <typename T>
  std::optional<T> Run(awaitable<T> work) {
    std::future<T> future =
        asio::co_spawn(asio::make_strand(context::MakeTracedExecutor(io_.get_executor())),
                       std::move(work), asio::use_future);
    if (future.wait_for(kDeadline) != std::future_status::ready) {
      ADD_FAILURE() << "no result before the deadline";
      return std::nullopt;
    }
    return future.get();
  }

  std::vector<rapidjson::Document> Documents() {
    std::vector<rapidjson::Document> out;
    for (const std::string& json : sink_->documents()) {
      const absl::Status valid = core::testing::ValidateSegmentDocument(json);
      EXPECT_TRUE(valid.ok()) << valid.message();
      out.emplace_back().Parse(json.c_str());
    }
    return out;
  }

  std::shared_ptr<core::testing::CollectingSink> sink_ =
      std::make_shared<core::testing::CollectingSink>();
  std::shared_ptr<core::Recorder> recorder_;
  asio::io_context io_{kThreads};
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  std::vector<std::thread> threads_;
};

TEST_F(BeastMiddlewareTest, TwoChainedServicesMakeOneTrace) {
  const unsigned short backend = Serve("backend", [&](Request request) -> awaitable<Response> {
    context::SubsegmentScope compute(*recorder_, "compute");
    asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(1));
    co_await timer.async_wait(use_awaitable);
    // Still this request's subsegment after the hop.
    recorder_->PutAnnotation("after_wait", true);
    co_return Reply(request, http::status::ok, "hello");
  });
  const unsigned short frontend = Serve("frontend", [&](Request request) -> awaitable<Response> {
    auto result = co_await TracedFetch("127.0.0.1", std::to_string(backend), Get(backend, "/hello"),
                                       {.recorder = recorder_.get()});
    co_return Reply(request, result ? result->result() : http::status::bad_gateway);
  });

  auto responses =
      Run(Exchange(frontend, {Get(frontend, "/downstream", {{"User-Agent", "test-agent"}})}));
  ASSERT_TRUE(responses);
  const Response& response = responses->at(0);
  EXPECT_EQ(response.result_int(), 200);
  const std::string response_header(response["X-Amzn-Trace-Id"]);
  ASSERT_EQ(response_header.rfind("Root=1-", 0), 0u) << response_header;

  std::map<std::string, rapidjson::Document> segments;
  for (auto& document : Documents()) segments[document["name"].GetString()] = std::move(document);
  ASSERT_EQ(segments.size(), 2u);
  const auto& front = segments.at("frontend");
  const auto& back = segments.at("backend");
  EXPECT_EQ(response_header, std::string("Root=") + front["trace_id"].GetString());
  EXPECT_STREQ(front["trace_id"].GetString(), back["trace_id"].GetString());
  EXPECT_FALSE(front.HasMember("parent_id"));
  const auto& call = front["subsegments"][0];
  EXPECT_STREQ(call["name"].GetString(), "127.0.0.1");
  EXPECT_STREQ(call["namespace"].GetString(), "remote");
  EXPECT_EQ(call["http"]["response"]["status"].GetInt(), 200);
  EXPECT_EQ(call["http"]["response"]["content_length"].GetInt(), 5);
  EXPECT_STREQ(call["http"]["request"]["method"].GetString(), "GET");
  EXPECT_EQ(std::string(call["http"]["request"]["url"].GetString()),
            "http://127.0.0.1:" + std::to_string(backend) + "/hello");
  EXPECT_STREQ(back["parent_id"].GetString(), call["id"].GetString());
  const auto& compute = back["subsegments"][0];
  EXPECT_STREQ(compute["name"].GetString(), "compute");
  EXPECT_TRUE(compute["annotations"]["after_wait"].GetBool());
  EXPECT_STREQ(front["http"]["request"]["method"].GetString(), "GET");
  EXPECT_STREQ(front["http"]["request"]["user_agent"].GetString(), "test-agent");
  EXPECT_STREQ(front["http"]["request"]["client_ip"].GetString(), "127.0.0.1");
  EXPECT_EQ(std::string(front["http"]["request"]["url"].GetString()),
            "http://127.0.0.1:" + std::to_string(frontend) + "/downstream");
  EXPECT_EQ(back["http"]["response"]["content_length"].GetInt(), 5);
  EXPECT_EQ(recorder_->stats().context_missing, 0u);
}

// A null tracer traces with the global recorder, segments named after its service.
TEST_F(BeastMiddlewareTest, ANullTracerTracesWithTheGlobalRecorder) {
  core::SetGlobalRecorder(recorder_);
  tcp::acceptor acceptor(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  const unsigned short port = acceptor.local_endpoint().port();
  asio::co_spawn(io_,
                 ServeTraced(std::move(acceptor), nullptr,
                             [](Request request) { return Reply(request, http::status::ok); }),
                 asio::detached);
  auto responses = Run(Exchange(port, {Get(port, "/hello")}));
  core::SetGlobalRecorder(nullptr);
  ASSERT_TRUE(responses);
  EXPECT_EQ(responses->at(0).result_int(), 200);
  const std::vector<rapidjson::Document> documents = Documents();
  ASSERT_EQ(documents.size(), 1u);
  EXPECT_STREQ(documents[0]["name"].GetString(), "svc");
}

TEST_F(BeastMiddlewareTest, TraceHeaderFormsOnOneKeepAliveConnection) {
  const unsigned short port = Serve("svc", [](Request request) -> awaitable<Response> {
    co_return Reply(request, http::status::ok, "hi");
  });
  const auto with_header = [&](const std::string& header) {
    return Get(port, "/hello", {{"X-Amzn-Trace-Id", header}});
  };
  auto responses = Run(
      Exchange(port, {
                         // Root + Parent + Sampled=1: continue the caller's trace under its parent.
                         with_header(std::string("Root=") + kT + ";Parent=" + kP + ";Sampled=1"),
                         // Sampled=0: nothing sent, the caller's Root kept.
                         with_header(std::string("Root=") + kT + ";Parent=" + kP + ";Sampled=0"),
                         // Sampled=?: the answer says what we decided.
                         with_header(std::string("Root=") + kT + ";Sampled=?;k1=v1"),
                         // Malformed: a new trace; nothing of the request echoed.
                         with_header("Root=evil;<script>"),
                         // Lowercase keys and spaces are accepted (Node rules).
                         with_header(std::string("root=") + kT + "; parent=" + kP + "; sampled=1"),
                     }));
  ASSERT_TRUE(responses);
  ASSERT_EQ(responses->size(), 5u);
  std::vector<std::string> answers;
  for (const Response& response : *responses) {
    EXPECT_EQ(response.body(), "hi");
    answers.emplace_back(response["X-Amzn-Trace-Id"]);
  }
  EXPECT_EQ(answers[0], std::string("Root=") + kT);
  EXPECT_EQ(answers[1], std::string("Root=") + kT);
  EXPECT_EQ(answers[2], std::string("Root=") + kT + ";Sampled=1");
  EXPECT_EQ(answers[3].find("evil"), std::string::npos);
  EXPECT_EQ(answers[3].size(), std::string("Root=").size() + 35);
  EXPECT_EQ(answers[4], std::string("Root=") + kT);

  // In request order (one connection); the Sampled=0 request sent nothing.
  auto documents = Documents();
  ASSERT_EQ(documents.size(), 4u);
  EXPECT_STREQ(documents[0]["trace_id"].GetString(), kT);
  EXPECT_STREQ(documents[0]["parent_id"].GetString(), kP);
  EXPECT_STREQ(documents[1]["trace_id"].GetString(), kT);
  EXPECT_FALSE(documents[1].HasMember("parent_id"));
  EXPECT_EQ("Root=" + std::string(documents[2]["trace_id"].GetString()), answers[3]);
  EXPECT_FALSE(documents[2].HasMember("parent_id"));
  EXPECT_STREQ(documents[3]["trace_id"].GetString(), kT);
  EXPECT_STREQ(documents[3]["parent_id"].GetString(), kP);
}

TEST_F(BeastMiddlewareTest, StatusesAndExceptions) {
  const unsigned short port = Serve("svc", [](Request request) -> awaitable<Response> {
    if (request.target() == "/fail") co_return Reply(request, http::status::internal_server_error);
    if (request.target() == "/limited") co_return Reply(request, http::status::too_many_requests);
    if (request.target() == "/throw") throw std::logic_error("handler bug");
    co_return Reply(request, http::status::not_found, "no such page");
  });
  // One connection: a throwing handler does not cost the client its connection.
  auto responses = Run(Exchange(port, {Get(port, "/fail"), Get(port, "/limited"),
                                       Get(port, "/throw"), Get(port, "/missing")}));
  ASSERT_TRUE(responses);
  ASSERT_EQ(responses->size(), 4u);
  EXPECT_EQ(responses->at(0).result_int(), 500);
  EXPECT_EQ(responses->at(1).result_int(), 429);
  EXPECT_EQ(responses->at(2).result_int(), 500);
  EXPECT_EQ(responses->at(2)["X-Amzn-Trace-Id"].substr(0, 5), "Root=");
  EXPECT_EQ(responses->at(3).result_int(), 404);

  std::map<std::string, int> seen;
  for (const auto& doc : Documents()) {
    const std::string url = doc["http"]["request"]["url"].GetString();
    const std::string path = url.substr(url.rfind('/'));
    const int status = doc["http"]["response"]["status"].GetInt();
    seen[path] = status;
    if (status == 500) {
      EXPECT_TRUE(doc["fault"].GetBool());
      EXPECT_FALSE(doc.HasMember("error"));
    }
    if (status == 429) {
      EXPECT_TRUE(doc["error"].GetBool());
      EXPECT_TRUE(doc["throttle"].GetBool());
    }
    if (status == 404) {
      EXPECT_TRUE(doc["error"].GetBool());
      EXPECT_EQ(doc["http"]["response"]["content_length"].GetInt(), 12);
    }
    if (path == "/throw") {
      EXPECT_STREQ(doc["cause"]["exceptions"][0]["type"].GetString(), "std::logic_error");
      EXPECT_STREQ(doc["cause"]["exceptions"][0]["message"].GetString(), "handler bug");
    } else {
      EXPECT_FALSE(doc.HasMember("cause")) << path;
    }
  }
  EXPECT_EQ(seen, (std::map<std::string, int>{
                      {"/fail", 500}, {"/limited", 429}, {"/throw", 500}, {"/missing", 404}}));
}

// Traced() in a server of the user's own: the handler runs as its own flow on a traced
// executor, still sees the request's segment after a timer (any thread of the pool), and the
// recorded url carries the scheme given (a TLS server passes "https").
TEST_F(BeastMiddlewareTest, TracedWorksInAHandWrittenServer) {
  tcp::acceptor acceptor(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  const unsigned short port = acceptor.local_endpoint().port();
  auto tracer = std::make_shared<RequestTracer>(recorder_, SegmentNaming::Fixed("own"));
  auto serve = [](tcp::acceptor acceptor,
                  std::shared_ptr<RequestTracer> tracer) -> awaitable<void> {
    const auto handler = [](Request request) -> awaitable<Response> {
      const core::Segment* before = core::CurrentContext().segment();
      asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(1));
      co_await timer.async_wait(use_awaitable);
      const bool same = before != nullptr && core::CurrentContext().segment() == before;
      co_return Reply(request, http::status::ok, same ? "same segment" : "lost it");
    };
    tcp::socket socket = co_await acceptor.async_accept(use_awaitable);
    const tcp::endpoint peer = socket.remote_endpoint();
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    Request request;
    co_await http::async_read(stream, buffer, request, use_awaitable);
    Response response = co_await Traced(*tracer, std::move(request), peer, handler, "https");
    co_await http::async_write(stream, response, use_awaitable);
    // Outside the request again.
    if (core::CurrentContext().segment() != nullptr) throw std::logic_error("segment leaked");
  };
  std::future<void> served =
      asio::co_spawn(asio::make_strand(io_), serve(std::move(acceptor), tracer), asio::use_future);

  auto responses = Run(Exchange(port, {Get(port, "/own")}));
  ASSERT_TRUE(responses);
  ASSERT_EQ(responses->size(), 1u);
  EXPECT_EQ(responses->at(0).body(), "same segment");
  EXPECT_EQ(responses->at(0)["X-Amzn-Trace-Id"].substr(0, 5), "Root=");
  ASSERT_EQ(served.wait_for(kDeadline), std::future_status::ready);
  served.get();  // rethrows a leaked segment
  auto documents = Documents();
  ASSERT_EQ(documents.size(), 1u);
  EXPECT_STREQ(documents[0]["name"].GetString(), "own");
  EXPECT_EQ(std::string(documents[0]["http"]["request"]["url"].GetString()),
            "https://127.0.0.1:" + std::to_string(port) + "/own");
  EXPECT_EQ(documents[0]["http"]["response"]["status"].GetInt(), 200);
}

// ServeTraced on an executor other than an io_context's (here a thread pool's) takes the
// general path: strands of the type-erased executor.
TEST_F(BeastMiddlewareTest, ServesOnAnyExecutor) {
  asio::thread_pool pool(2);
  tcp::acceptor acceptor(pool.get_executor(), tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  const unsigned short port = acceptor.local_endpoint().port();
  asio::co_spawn(
      pool,
      ServeTraced(std::move(acceptor),
                  std::make_shared<RequestTracer>(recorder_, SegmentNaming::Fixed("pool")),
                  [](Request request) -> awaitable<Response> {
                    asio::steady_timer timer(co_await asio::this_coro::executor,
                                             std::chrono::milliseconds(1));
                    co_await timer.async_wait(use_awaitable);
                    const bool traced = core::CurrentContext().segment() != nullptr;
                    co_return Reply(request, http::status::ok, traced ? "traced" : "");
                  }),
      asio::detached);
  auto responses = Run(Exchange(port, {Get(port, "/a"), Get(port, "/b")}));
  ASSERT_TRUE(responses);
  ASSERT_EQ(responses->size(), 2u);
  EXPECT_EQ(responses->at(0).body(), "traced");
  EXPECT_EQ(responses->at(1).body(), "traced");
  auto documents = Documents();
  ASSERT_EQ(documents.size(), 2u);
  EXPECT_STREQ(documents[0]["name"].GetString(), "pool");
  pool.stop();
  pool.join();
}

// Connections on the fixture's 4-thread io_context run on strands of its concrete executor.
TEST_F(BeastMiddlewareTest, ConnectionsOfAThreadedIoContextRunOnStrands) {
  const unsigned short port = Serve("svc", [](Request request) -> awaitable<Response> {
    const auto executor = co_await asio::this_coro::executor;
    using OnStrand = context::TracedExecutor<asio::strand<asio::io_context::executor_type>>;
    co_return Reply(request, http::status::ok, executor.target<OnStrand>() ? "strand" : "other");
  });
  auto responses = Run(Exchange(port, {Get(port, "/a")}));
  ASSERT_TRUE(responses);
  EXPECT_EQ(responses->at(0).body(), "strand");
}

// An io_context made for one thread (concurrency hint 1) runs connections on its executor
// itself: no strand, as in Beast's examples. Requests on several connections still overlap and
// keep their own segments.
TEST_F(BeastMiddlewareTest, OneThreadIoContextNeedsNoStrands) {
  OneThreadServer server(recorder_, [&](Request request) -> awaitable<Response> {
    const auto executor = co_await asio::this_coro::executor;
    using Plain = context::TracedExecutor<asio::io_context::executor_type>;
    const std::string item(request.target().substr(1));
    recorder_->PutAnnotation("item", item);
    asio::steady_timer timer(executor, std::chrono::milliseconds(2));
    co_await timer.async_wait(use_awaitable);
    recorder_->PutAnnotation("after_wait", item);
    co_return Reply(request, http::status::ok, executor.target<Plain>() ? "plain" : "other");
  });
  const unsigned short port = server.port();
  constexpr int kConnections = 8;
  std::vector<std::future<std::vector<Response>>> clients;
  for (int i = 0; i < kConnections; ++i) {
    clients.push_back(asio::co_spawn(asio::make_strand(io_),
                                     Exchange(port, {Get(port, "/" + std::to_string(i))}),
                                     asio::use_future));
  }
  for (auto& client : clients) {
    ASSERT_EQ(client.wait_for(kDeadline), std::future_status::ready);
    EXPECT_EQ(client.get().at(0).body(), "plain");
  }
  std::set<std::string> items;
  for (const auto& document : Documents()) {
    const std::string item = document["annotations"]["item"].GetString();
    EXPECT_EQ(document["annotations"]["after_wait"].GetString(), item);
    items.insert(item);
  }
  EXPECT_EQ(items.size(), static_cast<size_t>(kConnections));
}

// The request's context is the handler's only: once a request has been answered, whether its
// handler suspended or not, plain work on the serving thread sees no segment, and neither does
// the next request's handler before it gets its own.
TEST_F(BeastMiddlewareTest, RequestsLeaveNoContextOnTheServingThread) {
  OneThreadServer server(recorder_, [&](Request request) -> awaitable<Response> {
    const core::Segment* const mine = core::CurrentContext().segment();
    if (request.target() == "/wait") {
      asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(1));
      co_await timer.async_wait(use_awaitable);
    }
    const bool own = mine != nullptr && core::CurrentContext().segment() == mine;
    co_return Reply(request, http::status::ok, own ? "own" : "other");
  });
  const unsigned short port = server.port();
  const auto thread_context_is_empty = [&server] {
    std::promise<bool> empty;
    asio::post(server.io(), [&empty] {
      empty.set_value(core::CurrentContext().empty() &&
                      core::CurrentContext().current() == nullptr);
    });
    return empty.get_future().get();
  };
  for (const char* path : {"/now", "/wait", "/now"}) {
    auto responses = Run(Exchange(port, {Get(port, path), Get(port, path)}));
    ASSERT_TRUE(responses) << path;
    EXPECT_EQ(responses->at(0).body(), "own") << path;
    EXPECT_EQ(responses->at(1).body(), "own") << path;
    EXPECT_TRUE(thread_context_is_empty()) << "after " << path;
  }
  EXPECT_EQ(Documents().size(), 6u);
}

// A handler that never waits may be a plain function: it runs with the request's segment
// current, its subsegments land under it, and a throw is a fault answered with a 500, as for a
// coroutine handler; the same through Traced() in a server of the user's own.
TEST_F(BeastMiddlewareTest, PlainFunctionHandlers) {
  const auto handler = [this](Request request) -> Response {
    if (request.target() == "/throw") throw std::runtime_error("plain bug");
    const core::Segment* const segment = core::CurrentContext().segment();
    { context::SubsegmentScope step(*recorder_, "step"); }
    return Reply(request, http::status::ok, segment != nullptr ? "traced" : "untraced");
  };
  const unsigned short port = Serve("plain", handler);

  tcp::acceptor acceptor(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  const unsigned short own_port = acceptor.local_endpoint().port();
  auto serve_own = [](tcp::acceptor acceptor, std::shared_ptr<RequestTracer> tracer,
                      decltype(handler) handler) -> awaitable<void> {
    tcp::socket socket = co_await acceptor.async_accept(use_awaitable);
    const tcp::endpoint peer = socket.remote_endpoint();
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (int i = 0; i < 2; ++i) {
      Request request;
      co_await http::async_read(stream, buffer, request, use_awaitable);
      Response response = co_await Traced(*tracer, std::move(request), peer, handler);
      co_await http::async_write(stream, response, use_awaitable);
    }
  };
  std::future<void> served = asio::co_spawn(
      asio::make_strand(io_),
      serve_own(std::move(acceptor),
                std::make_shared<RequestTracer>(recorder_, SegmentNaming::Fixed("own")), handler),
      asio::use_future);

  for (const unsigned short p : {port, own_port}) {
    auto responses = Run(Exchange(p, {Get(p, "/ok"), Get(p, "/throw")}));
    ASSERT_TRUE(responses);
    ASSERT_EQ(responses->size(), 2u);
    EXPECT_EQ(responses->at(0).result_int(), 200);
    EXPECT_EQ(responses->at(0).body(), "traced");
    EXPECT_EQ(responses->at(1).result_int(), 500);
    EXPECT_EQ(responses->at(1)["X-Amzn-Trace-Id"].substr(0, 5), "Root=");
  }
  ASSERT_EQ(served.wait_for(kDeadline), std::future_status::ready);
  served.get();
  std::map<std::string, int> seen;  // "name path" -> status
  for (const auto& document : Documents()) {
    const std::string name = document["name"].GetString();
    const std::string url = document["http"]["request"]["url"].GetString();
    const std::string path = url.substr(url.rfind('/'));
    seen[name + " " + path] = document["http"]["response"]["status"].GetInt();
    if (path == "/ok") {
      ASSERT_TRUE(document.HasMember("subsegments")) << name;
      EXPECT_STREQ(document["subsegments"][0]["name"].GetString(), "step");
    } else {
      EXPECT_TRUE(document["fault"].GetBool());
      EXPECT_STREQ(document["cause"]["exceptions"][0]["message"].GetString(), "plain bug");
    }
  }
  EXPECT_EQ(seen,
            (std::map<std::string, int>{
                {"plain /ok", 200}, {"plain /throw", 500}, {"own /ok", 200}, {"own /throw", 500}}));
}

// A handler's own X-Amzn-Trace-Id (any case) is replaced: the response carries one, ours.
TEST_F(BeastMiddlewareTest, TheResponseCarriesOneTraceHeaderOurs) {
  const unsigned short port = Serve("own-header", [](Request request) -> Response {
    Response response = Reply(request, http::status::ok);
    response.set("x-amzn-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793");
    return response;
  });
  auto responses = Run(Exchange(port, {Get(port, "/a")}));
  ASSERT_TRUE(responses);
  const Response& response = responses->at(0);
  EXPECT_EQ(response.count("X-Amzn-Trace-Id"), 1u);
  const auto documents = Documents();
  ASSERT_EQ(documents.size(), 1u);
  EXPECT_EQ(std::string(response["X-Amzn-Trace-Id"]),
            std::string("Root=") + documents[0]["trace_id"].GetString());
}

// Sends `requests` on one connection, reads their responses, then reads on: true in `closed`
// when the server closed the connection after the last response.
awaitable<std::vector<Response>> ExchangeAndSeeClose(unsigned short port,
                                                     std::vector<Request> requests, bool& closed) {
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  stream.expires_after(kDeadline);
  co_await stream.async_connect(tcp::endpoint(asio::ip::address_v4::loopback(), port),
                                use_awaitable);
  beast::flat_buffer buffer;
  std::vector<Response> responses;
  for (Request& request : requests) {
    co_await http::async_write(stream, request, use_awaitable);
    co_await http::async_read(stream, buffer, responses.emplace_back(), use_awaitable);
  }
  // A server that keeps the connection would leave this read waiting: end it after a while.
  stream.expires_after(std::chrono::milliseconds(300));
  char byte;
  const auto [error, size] =
      co_await stream.async_read_some(asio::buffer(&byte, 1), asio::as_tuple(use_awaitable));
  closed = error == asio::error::eof;
  co_return responses;
}

// The connection stays open as the client asks, whatever the handler's response says, and a
// response gets the framing it lacks (and keeps the framing it has).
TEST_F(BeastMiddlewareTest, KeepAliveAsTheClientAsksAndFramingAsTheHandlerLeftIt) {
  const unsigned short port = Serve("framing", [](Request request) -> Response {
    Response response(http::status::ok, request.version());
    response.keep_alive(true);  // the middleware decides with the request
    response.body() = "abcd";
    if (request.target() == "/chunked") response.chunked(true);
    return response;  // no payload prepared: the middleware does it
  });
  const auto request = [port](unsigned version, std::string connection) {
    Request get = Get(port, "/plain");
    get.version(version);
    if (!connection.empty()) get.set(http::field::connection, connection);
    return get;
  };
  struct Case {
    unsigned version;
    std::string connection;
    bool kept;
  };
  for (const Case& c : {Case{11, "", true}, Case{11, "close", false}, Case{10, "", false},
                        Case{10, "keep-alive", true}, Case{11, "Upgrade, close", false}}) {
    SCOPED_TRACE(std::to_string(c.version) + " Connection: " + c.connection);
    bool closed = false;
    std::vector<Request> requests;
    requests.push_back(request(c.version, c.connection));
    if (c.kept) requests.push_back(request(c.version, c.connection));  // the same connection
    auto responses = Run(ExchangeAndSeeClose(port, std::move(requests), closed));
    ASSERT_TRUE(responses);
    for (const Response& response : *responses) {
      EXPECT_EQ(response.body(), "abcd");
      EXPECT_EQ(response.keep_alive(), c.kept);
      EXPECT_EQ(response[http::field::content_length], "4");
    }
    EXPECT_EQ(closed, !c.kept);
  }

  bool closed = false;
  std::vector<Request> chunked;
  chunked.push_back(Get(port, "/chunked"));
  auto responses = Run(ExchangeAndSeeClose(port, std::move(chunked), closed));
  ASSERT_TRUE(responses);
  EXPECT_TRUE(responses->at(0).chunked());
  EXPECT_EQ(responses->at(0).count(http::field::content_length), 0u);
  EXPECT_EQ(responses->at(0).body(), "abcd");
  EXPECT_EQ(responses->at(0).count("X-Amzn-Trace-Id"), 1u);  // Beast's serializer writes it
  EXPECT_FALSE(closed);
}

// A string body's response is written flat (its header copied into one buffer with the trace
// header added); any other body goes through Beast's serializer, the trace header in its fields.
// Both arrive whole, with the header once, on one connection.
TEST_F(BeastMiddlewareTest, ResponsesOfEveryBodyTypeCarryTheTraceHeader) {
  const unsigned short flat = Serve("string-body", [](Request request) {
    Response response(http::status::ok, request.version());
    response.set(http::field::content_type, "text/plain");
    response.body() = std::string(100000, 'x');  // more than one write's worth
    response.prepare_payload();
    return response;
  });
  const unsigned short serialized = Serve("vector-body", [](Request request) {
    http::response<http::vector_body<char>> response(http::status::created, request.version());
    response.body() = {'o', 'k'};
    response.prepare_payload();
    return response;
  });
  for (const unsigned short port : {flat, serialized}) {
    SCOPED_TRACE(port == flat ? "string body" : "vector body");
    bool closed = true;
    std::vector<Request> requests;
    requests.push_back(Get(port, "/a"));
    requests.push_back(Get(port, "/b"));
    auto responses = Run(ExchangeAndSeeClose(port, std::move(requests), closed));
    ASSERT_TRUE(responses);
    ASSERT_EQ(responses->size(), 2u);
    for (const Response& response : *responses) {
      EXPECT_EQ(response.count("X-Amzn-Trace-Id"), 1u);
      EXPECT_EQ(std::string(response["X-Amzn-Trace-Id"]).substr(0, 5), "Root=");
      if (port == flat) {
        EXPECT_EQ(response.result(), http::status::ok);
        EXPECT_EQ(response[http::field::content_type], "text/plain");
        EXPECT_EQ(response.body(), std::string(100000, 'x'));
      } else {
        EXPECT_EQ(response.result(), http::status::created);
        EXPECT_EQ(response.body(), "ok");
      }
    }
    EXPECT_FALSE(closed);
  }
}

// Traced() holds its handler by value: its awaitable may be spawned, outliving the temporary
// handler of the full-expression (ASan saw the lambda's capture read after its scope).
TEST_F(BeastMiddlewareTest, TracedMayBeSpawnedWithATemporaryHandler) {
  const RequestTracer tracer(recorder_, SegmentNaming::Fixed("spawned"));
  std::future<Response> answered = asio::co_spawn(
      io_,
      Traced(tracer, Get(80, "/"), tcp::endpoint(),
             [greeting = std::string(64, 'h')](Request request) -> awaitable<Response> {
               co_return Reply(request, http::status::ok, greeting);
             }),
      asio::use_future);
  ASSERT_EQ(answered.wait_for(kDeadline), std::future_status::ready);
  EXPECT_EQ(answered.get().body(), std::string(64, 'h'));
}

std::mutex logged_mu;  // what the library logged, by LogInto (for the test below)
std::condition_variable logged_cv;
std::vector<std::string> logged;
void LogInto(core::LogLevel, std::string_view message) {
  std::lock_guard<std::mutex> lock(logged_mu);
  logged.emplace_back(message);
  logged_cv.notify_all();
}

// Out of descriptors for a while (EMFILE on accept): the server says so and keeps accepting,
// and the connection that waited in the kernel's queue meanwhile is served once it can be.
TEST_F(BeastMiddlewareTest, AcceptingGoesOnAfterRunningOutOfDescriptors) {
#if defined(__SANITIZE_ADDRESS__)
  // UBSan (in the ASan config) checks a vptr it has not seen by writing the memory to a pipe:
  // with no descriptor left it reports a valid object's vptr as invalid.
  GTEST_SKIP() << "the sanitizers' runtime needs descriptors of its own";
#endif
  const unsigned short port = Serve("emfile", [](Request request) -> Response {
    return Reply(request, http::status::ok, "served");
  });
  {
    std::lock_guard<std::mutex> lock(logged_mu);
    logged.clear();
  }
  core::SetLogHandler(LogInto);
  const int client = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(client, 0);
  const timeval receive_timeout{.tv_sec = 20, .tv_usec = 0};  // within the test's timeout
  setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &receive_timeout, sizeof(receive_timeout));
  // No descriptor number left: the lowest free one is the limit.
  const int lowest_free = dup(client);
  close(lowest_free);
  rlimit limits{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limits), 0);
  const rlimit lowered{.rlim_cur = static_cast<rlim_t>(lowest_free), .rlim_max = limits.rlim_max};
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &lowered), 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int connected = connect(client, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  bool reported = false;
  {
    std::unique_lock<std::mutex> lock(logged_mu);
    reported = logged_cv.wait_for(lock, std::chrono::seconds(20), [] {
      for (const std::string& message : logged) {
        if (message.find("ServeTraced: accepting a connection failed") != std::string::npos) {
          return true;
        }
      }
      return false;
    });
  }
  setrlimit(RLIMIT_NOFILE, &limits);
  core::SetLogHandler(nullptr);
  ASSERT_EQ(connected, 0);
  EXPECT_TRUE(reported);
  const std::string request = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(send(client, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  std::string answer;
  char buffer[4096];
  for (ssize_t n; (n = recv(client, buffer, sizeof(buffer), 0)) > 0;) answer.append(buffer, n);
  close(client);
  EXPECT_NE(answer.find("200 OK"), std::string::npos) << answer;
  EXPECT_NE(answer.find("served"), std::string::npos) << answer;
}

// A blocking TCP connection to 127.0.0.1:`port` whose reads give up after 20 s (within the
// test's timeout); -1 when it cannot connect.
int ConnectRaw(unsigned short port) {
  const int client = socket(AF_INET, SOCK_STREAM, 0);
  if (client < 0) return -1;
  const timeval receive_timeout{.tv_sec = 20, .tv_usec = 0};
  setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &receive_timeout, sizeof(receive_timeout));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(client, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(client);
    return -1;
  }
  return client;
}

// Sends `bytes` on a new connection to 127.0.0.1:`port` and returns all that comes back until
// the server closes (or 20 s pass); `half_close`: shut the sending side after the bytes (a
// client that gives up mid-request).
std::string ExchangeRaw(unsigned short port, const std::string& bytes, bool half_close = false) {
  const int client = ConnectRaw(port);
  if (client < 0) return "";
  std::string answer;
  if (send(client, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
      static_cast<ssize_t>(bytes.size())) {
    if (half_close) shutdown(client, SHUT_WR);
    char buffer[4096];
    for (ssize_t n; (n = recv(client, buffer, sizeof(buffer), 0)) > 0;) answer.append(buffer, n);
  }
  close(client);
  return answer;
}

// What Beast cannot read is answered as HTTP servers do (and httplib), then the connection
// closes: 400 malformed, 431 header too large, 413 body over the parser's limit (1 MiB). No
// request reached the middleware, so there is no segment. A client that closes mid-request gets
// nothing.
TEST_F(BeastMiddlewareTest, UnreadableRequestsAreRefusedWithAStatus) {
  const unsigned short port = Serve("refusals", [](Request request) -> Response {
    return Reply(request, http::status::ok, "served");
  });
  struct Case {
    std::string name, bytes, status_line;
  };
  const std::vector<Case> cases = {
      {"garbage", "GARBAGE\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"},
      {"control character in a value",
       "GET / HTTP/1.1\r\nHost: x\r\nX-Amzn-Trace-Id: Root=1\x01\r\n\r\n",
       "HTTP/1.1 400 Bad Request\r\n"},
      {"9 KB header", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(9000, 'a') + "\r\n\r\n",
       "HTTP/1.1 431 Request Header Fields Too Large\r\n"},
      {"2 MB body",
       "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n" +
           std::string(64 * 1024, 'b'),
       "HTTP/1.1 413 Payload Too Large\r\n"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string answer = ExchangeRaw(port, c.bytes);
    EXPECT_EQ(answer.substr(0, c.status_line.size()), c.status_line) << answer;
    EXPECT_NE(answer.find("\r\nConnection: close\r\n"), std::string::npos) << answer;
    EXPECT_NE(answer.find("\r\nContent-Length: 0\r\n"), std::string::npos) << answer;
  }
  EXPECT_EQ(ExchangeRaw(port, "GET / HTTP/1.1\r\nHost: x\r\n", /*half_close=*/true), "");
  EXPECT_TRUE(sink_->documents().empty());
  // And the server goes on serving.
  const std::string served =
      ExchangeRaw(port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_NE(served.find("200 OK"), std::string::npos) << served;
  EXPECT_NE(served.find("served"), std::string::npos) << served;
}

// A client that sends `Expect: 100-continue` holds its body back until the server says to go on
// (curl for a second, others until their own timeout): it is told at once, and only then sends.
TEST_F(BeastMiddlewareTest, AClientThatExpectsContinueIsToldToSendItsBody) {
  const unsigned short port = Serve("continue", [](Request request) -> Response {
    return Reply(request, http::status::ok, "got " + std::to_string(request.body().size()));
  });
  const int client = ConnectRaw(port);
  ASSERT_GE(client, 0);
  const auto send_all = [client](const std::string& bytes) {
    return send(client, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  };
  // Reads until `end` has arrived (or the connection ends, or 20 s pass).
  std::string received;
  const auto receive_until = [&](const std::string& end) {
    char buffer[4096];
    while (received.find(end) == std::string::npos) {
      const ssize_t n = recv(client, buffer, sizeof(buffer), 0);
      if (n <= 0) break;
      received.append(buffer, static_cast<size_t>(n));
    }
  };
  ASSERT_TRUE(send_all(
      "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  receive_until("\r\n\r\n");
  EXPECT_EQ(received, "HTTP/1.1 100 Continue\r\n\r\n");
  received.clear();
  ASSERT_TRUE(send_all("hello"));
  receive_until("got 5");
  close(client);
  EXPECT_EQ(received.substr(0, 17), "HTTP/1.1 200 OK\r\n") << received;
  EXPECT_NE(received.find("got 5"), std::string::npos) << received;
  // HTTP/1.0 has no 100 Continue (RFC 9110 15.2.1): the expectation is ignored.
  const std::string old = ExchangeRaw(
      port, "POST /upload HTTP/1.0\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nhi");
  EXPECT_EQ(old.substr(0, 17), "HTTP/1.0 200 OK\r\n") << old;
  EXPECT_NE(old.find("got 2"), std::string::npos) << old;
}

// A handler may answer HEAD as it answers GET: the response goes out without its body (which
// the client would take for the start of the next response on the connection).
TEST_F(BeastMiddlewareTest, HeadRequestsGetTheHeaderWithoutTheBody) {
  const unsigned short port = Serve(
      "head", [](Request request) -> Response { return Reply(request, http::status::ok, "abcd"); });
  const std::string answers =
      ExchangeRaw(port,
                  "HEAD /r HTTP/1.1\r\nHost: x\r\n\r\n"
                  "GET /r HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  const size_t second = answers.find("HTTP/1.1 200 OK", 1);
  ASSERT_NE(second, std::string::npos) << answers;
  const std::string head = answers.substr(0, second);
  const std::string get = answers.substr(second);
  EXPECT_NE(head.find("\r\nContent-Length: 4\r\n"), std::string::npos) << head;
  EXPECT_EQ(head.substr(head.size() - 4), "\r\n\r\n") << head;  // nothing after the header
  EXPECT_EQ(get.substr(get.size() - 4), "abcd") << get;
  EXPECT_EQ(sink_->documents().size(), 2u);
}

// Once ServeTraced stops accepting (here: its accept cancelled), a kept-alive connection that
// waits for a request closes at once, and one whose request is being answered gets its response
// with `Connection: close`, then closes: a stopping service is not held for the idle timeout.
TEST_F(BeastMiddlewareTest, StoppingClosesIdleConnectionsAndEndsBusyOnesAfterTheirResponse) {
  asio::experimental::concurrent_channel<void(boost::system::error_code)> gate(io_, 0);
  std::promise<void> entered;
  const auto handler = [&](Request request) -> awaitable<Response> {
    const std::string target(request.target());
    if (target == "/slow") {
      entered.set_value();
      co_await gate.async_receive(asio::as_tuple(use_awaitable));
    }
    co_return Reply(request, http::status::ok, "served " + target);
  };
  tcp::acceptor acceptor(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  const unsigned short port = acceptor.local_endpoint().port();
  auto strand = asio::make_strand(io_);
  asio::cancellation_signal stop;
  std::promise<void> returned;
  asio::co_spawn(
      strand,
      ServeTraced(std::move(acceptor),
                  std::make_shared<RequestTracer>(recorder_, SegmentNaming::Fixed("stop")),
                  handler),
      asio::bind_cancellation_slot(stop.slot(), [&](std::exception_ptr) { returned.set_value(); }));

  // A: one request answered, then the connection waits for the next.
  const int idle = ConnectRaw(port);
  ASSERT_GE(idle, 0);
  const std::string first = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(send(idle, first.data(), first.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(first.size()));
  std::string answered;
  char buffer[4096];
  while (answered.find("served /a") == std::string::npos) {
    const ssize_t n = recv(idle, buffer, sizeof(buffer), 0);
    ASSERT_GT(n, 0) << answered;
    answered.append(buffer, static_cast<size_t>(n));
  }
  EXPECT_EQ(answered.find("Connection: close"), std::string::npos) << answered;

  // B: a request in its handler as the server stops.
  std::string busy_answer;
  std::thread busy(
      [&] { busy_answer = ExchangeRaw(port, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"); });
  ASSERT_EQ(entered.get_future().wait_for(kDeadline), std::future_status::ready);
  asio::post(strand, [&] { stop.emit(asio::cancellation_type::terminal); });
  ASSERT_EQ(returned.get_future().wait_for(kDeadline), std::future_status::ready);

  EXPECT_EQ(recv(idle, buffer, sizeof(buffer), 0), 0) << "the idle connection was not closed";
  close(idle);
  gate.close();
  busy.join();
  EXPECT_NE(busy_answer.find("served /slow"), std::string::npos) << busy_answer;
  EXPECT_NE(busy_answer.find("\r\nConnection: close\r\n"), std::string::npos) << busy_answer;
  EXPECT_EQ(ExchangeRaw(port, "GET /late HTTP/1.1\r\nHost: x\r\n\r\n"), "");  // not accepting
}

// The peer is the client_ip, IPv4 (formatted by hand) or IPv6.
TEST_F(BeastMiddlewareTest, ThePeerAddressIsTheClientIp) {
  {
    tcp::acceptor probe(io_);
    boost::system::error_code error;
    probe.open(tcp::v6(), error);
    if (!error) probe.bind(tcp::endpoint(asio::ip::address_v6::loopback(), 0), error);
    if (error) GTEST_SKIP() << "no IPv6 loopback here: " << error.message();
  }
  for (const asio::ip::address& address : {asio::ip::address(asio::ip::address_v4::loopback()),
                                           asio::ip::address(asio::ip::address_v6::loopback())}) {
    SCOPED_TRACE(address.to_string());
    tcp::acceptor acceptor(io_, tcp::endpoint(address, 0));
    const unsigned short port = acceptor.local_endpoint().port();
    asio::co_spawn(
        io_,
        ServeTraced(std::move(acceptor),
                    std::make_shared<RequestTracer>(recorder_, SegmentNaming::Fixed("ip")),
                    [](Request request) { return Reply(request, http::status::ok); }),
        asio::detached);
    ASSERT_TRUE(Run(Exchange(port, {Get(port, "/")}, address)));
  }
  auto documents = Documents();
  ASSERT_EQ(documents.size(), 2u);
  std::set<std::string> client_ips;
  for (const auto& document : documents) {
    const auto& request = document["http"]["request"];
    client_ips.insert(request["client_ip"].GetString());
    EXPECT_FALSE(request.HasMember("x_forwarded_for"));
  }
  EXPECT_EQ(client_ips, (std::set<std::string>{"127.0.0.1", "::1"}));
}

TEST_F(BeastMiddlewareTest, ForwardedForNamesTheClient) {
  const unsigned short port = Serve("svc", [](Request request) -> awaitable<Response> {
    co_return Reply(request, http::status::ok);
  });
  ASSERT_TRUE(
      Run(Exchange(port, {Get(port, "/hello", {{"X-Forwarded-For", "10.1.2.3, 10.0.0.1"}})})));
  auto documents = Documents();
  ASSERT_EQ(documents.size(), 1u);
  const auto& request = documents[0]["http"]["request"];
  EXPECT_STREQ(request["client_ip"].GetString(), "10.1.2.3");
  EXPECT_TRUE(request["x_forwarded_for"].GetBool());
}

TEST_F(BeastMiddlewareTest, EveryMethodIsRecordedByName) {
  const unsigned short port = Serve("svc", [](Request request) -> awaitable<Response> {
    co_return Reply(request, http::status::ok);
  });
  const std::vector<std::string> methods = {"GET",   "POST",    "PUT",   "DELETE",    "HEAD",
                                            "PATCH", "OPTIONS", "PURGE", "FROBNICATE"};
  std::vector<Request> requests;
  for (const std::string& method : methods) {
    Request& request = requests.emplace_back(Get(port, "/" + method));
    request.method_string(method);
  }
  ASSERT_TRUE(Run(Exchange(port, std::move(requests))));
  std::map<std::string, std::string> recorded;  // by url
  for (const auto& document : Documents()) {
    const auto& request = document["http"]["request"];
    recorded[request["url"].GetString()] = request["method"].GetString();
  }
  ASSERT_EQ(recorded.size(), methods.size());
  for (const std::string& method : methods) {
    EXPECT_EQ(recorded["http://127.0.0.1:" + std::to_string(port) + "/" + method], method);
  }
}

TEST_F(BeastMiddlewareTest, ConcurrentRequestsEachGetTheirOwnSegment) {
  constexpr int kRequests = 200;
  // Every handler waits here until all requests are in flight at once.
  asio::experimental::concurrent_channel<void(boost::system::error_code)> gate(io_, 0);
  std::atomic<int> arrived{0};
  std::atomic<int> crossed{0};
  const auto check = [&](bool same_flow) {
    if (!same_flow) ++crossed;
  };
  const unsigned short port = Serve("svc", [&](Request request) -> awaitable<Response> {
    const std::string target(request.target());
    const int item = std::stoi(target.substr(target.rfind('/') + 1));
    core::Entity* const segment = core::Recorder::PeekCurrentEntity();
    check(recorder_->PutAnnotation("item", item));
    asio::steady_timer timer(co_await asio::this_coro::executor,
                             std::chrono::microseconds(item % 7 * 300));
    co_await timer.async_wait(use_awaitable);
    check(core::Recorder::PeekCurrentEntity() == segment);
    {
      context::SubsegmentScope load(*recorder_, "load");
      check(recorder_->PutAnnotation("item", item));
      if (++arrived == kRequests) gate.close();
      co_await gate.async_receive(asio::as_tuple(use_awaitable));
      check(core::Recorder::PeekCurrentEntity() == load.subsegment());
      check(recorder_->PutAnnotation("after_gate", item));
    }
    check(core::Recorder::PeekCurrentEntity() == segment);
    co_return Reply(request, http::status::ok, std::to_string(item));
  });

  std::mutex mu;
  std::condition_variable done_cv;
  int done = 0;
  int failed = 0;
  for (int item = 0; item < kRequests; ++item) {
    asio::co_spawn(asio::make_strand(io_), ExpectItem(port, item), [&](std::exception_ptr error) {
      std::lock_guard<std::mutex> lock(mu);
      ++done;
      if (error) ++failed;
      done_cv.notify_all();
    });
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(done_cv.wait_for(lock, kDeadline, [&] { return done == kRequests; }));
    EXPECT_EQ(failed, 0);
  }
  EXPECT_EQ(crossed.load(), 0);

  std::set<std::string> ids;
  std::set<int> items;
  for (const auto& doc : Documents()) {
    ids.insert(doc["id"].GetString());
    const int item = doc["annotations"]["item"].GetInt();
    const std::string url = doc["http"]["request"]["url"].GetString();
    EXPECT_EQ(url.substr(url.rfind('/') + 1), std::to_string(item));
    ASSERT_EQ(doc["subsegments"].Size(), 1u);
    const auto& load = doc["subsegments"][0];
    EXPECT_EQ(load["annotations"]["item"].GetInt(), item);
    EXPECT_EQ(load["annotations"]["after_gate"].GetInt(), item);
    items.insert(item);
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(kRequests));
  EXPECT_EQ(items.size(), static_cast<size_t>(kRequests));
}

TEST_F(BeastMiddlewareTest, ConnectionErrorsAndTimeoutsAreFaults) {
  // Listening but never accepting: the kernel completes the handshake, nobody ever answers.
  tcp::acceptor silent(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  const auto fetch = [&](unsigned short port) -> awaitable<boost::system::error_code> {
    recorder_->BeginSegment("caller");
    auto result = co_await TracedFetch(
        "127.0.0.1", std::to_string(port), Get(port, "/hello"),
        {.recorder = recorder_.get(), .timeout = std::chrono::milliseconds(200)});
    recorder_->EndSegment();
    co_return result ? boost::system::error_code() : result.error();
  };
  const auto last_call = [&] {
    auto documents = Documents();
    EXPECT_FALSE(documents.empty());
    rapidjson::Document call;
    if (!documents.empty()) call.CopyFrom(documents.back()["subsegments"][0], call.GetAllocator());
    return call;
  };

  const std::optional<boost::system::error_code> refused = Run(fetch(DeadPort()));
  ASSERT_TRUE(refused);
  EXPECT_EQ(*refused, asio::error::connection_refused);
  rapidjson::Document call = last_call();
  EXPECT_TRUE(call["fault"].GetBool());
  EXPECT_FALSE(call["http"].HasMember("response"));
  EXPECT_TRUE(call["cause"]["exceptions"][0]["remote"].GetBool());
  EXPECT_STREQ(call["cause"]["exceptions"][0]["type"].GetString(), "boost::system::system_error");

  const std::optional<boost::system::error_code> timed_out =
      Run(fetch(silent.local_endpoint().port()));
  ASSERT_TRUE(timed_out);
  EXPECT_EQ(*timed_out, beast::error::timeout);
  call = last_call();
  EXPECT_TRUE(call["fault"].GetBool());
  EXPECT_NE(std::string(call["cause"]["exceptions"][0]["message"].GetString()).find("timeout"),
            std::string::npos);
}

TEST_F(BeastMiddlewareTest, ClientOutsideATraceSendsNoHeader) {
  std::promise<std::string> seen;
  const unsigned short port = Serve("svc", [&](Request request) -> awaitable<Response> {
    seen.set_value(std::string(request["X-Amzn-Trace-Id"]));
    co_return Reply(request, http::status::ok);
  });
  const auto fetch = [&]() -> awaitable<bool> {
    auto result = co_await TracedFetch("127.0.0.1", std::to_string(port), Get(port, "/hello"),
                                       {.recorder = recorder_.get()});
    co_return result.has_value();
  };
  EXPECT_EQ(Run(fetch()), std::optional<bool>(true));
  EXPECT_EQ(seen.get_future().get(), "");
  EXPECT_EQ(recorder_->stats().context_missing, 1u);
}

// Every header form of the spec, against a sampler that says what the form needs it to say.
TEST_F(BeastMiddlewareTest, EveryTraceHeaderFormOfTheSpec) {
  testing::ScriptedRecorder scripted = testing::MakeScriptedRecorder();
  tcp::acceptor acceptor(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  const unsigned short port = acceptor.local_endpoint().port();
  asio::co_spawn(
      io_,
      ServeTraced(std::move(acceptor),
                  std::make_shared<RequestTracer>(scripted.recorder, SegmentNaming::Fixed("svc")),
                  [](Request request) -> awaitable<Response> {
                    co_return Reply(request, http::status::ok, "hi");
                  }),
      asio::detached);
  testing::CheckTraceHeaderForms(
      *scripted.sampler, *scripted.sink, "127.0.0.1:" + std::to_string(port),
      [&](const std::string& name, const std::string& value,
          const std::string& target) -> std::optional<std::string> {
        std::vector<Request> requests;
        requests.push_back(Get(port, target, {{name, value}}));
        std::optional<std::vector<Response>> responses = Run(Exchange(port, std::move(requests)));
        if (!responses || responses->size() != 1) return std::nullopt;
        EXPECT_EQ(responses->front().result_int(), 200u);
        return std::string(responses->front()["X-Amzn-Trace-Id"]);
      });
}

}  // namespace
}  // namespace xraysink::middleware
