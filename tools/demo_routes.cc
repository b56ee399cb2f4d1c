#include "tools/demo_routes.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <iostream>
#include <stdexcept>
#include <utility>

#include "context/scopes.h"
#include "context/traced_executor.h"
#include "core/recorder.h"
#include "logs/trace_id.h"
#include "middleware/httplib_client.h"
#include "tasks/task.h"

namespace xraysink::tools::demo {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

// A log line carrying the trace id, as the logs package links logs to traces.
void Log(std::string_view message) {
  // One write per line: the demo's threads log concurrently.
  std::string line = "[";
  line.append(logs::FormatTraceId(logs::CurrentTraceIds())).append("] ").append(message);
  line.push_back('\n');
  std::cerr << line;
}

// A step that takes a while: a subsegment around a timer wait.
asio::awaitable<void> Wait(std::string_view name, std::chrono::milliseconds duration) {
  context::SubsegmentScope scope(name);
  if (scope.subsegment() != nullptr) scope.subsegment()->PutAnnotation("wait_ms", duration.count());
  asio::steady_timer timer(co_await asio::this_coro::executor, duration);
  co_await timer.async_wait(asio::use_awaitable);
}

// The background work /work starts and the start-up job runs.
asio::awaitable<void> SendReport(std::string kind) {
  Log("building the " + kind + " report");
  co_await Wait("render-report", 5ms);
  co_await Wait("upload-report", 3ms);
}

}  // namespace

Routes::Routes(asio::io_context& io, std::string downstream)
    : io_(io), downstream_(std::move(downstream)) {}

void Routes::StartBackgroundJob() {
  asio::co_spawn(context::MakeTracedExecutor(io_.get_executor()),
                 tasks::Traced("warm-cache", SendReport("start-up")), asio::detached);
}

asio::awaitable<Reply> Routes::Handle(std::string path) {
  Log("GET " + path);
  if (path == "/hello") co_return Reply{200, "hello\n"};
  if (path == "/work") co_return co_await Work();
  if (path == "/downstream") co_return co_await Downstream();
  if (path == "/fail") co_return Reply{500, "failed on purpose\n"};
  if (path == "/throw") throw std::runtime_error("the /throw handler threw on purpose");
  if (path == "/limited") co_return Reply{429, "slow down\n"};
  co_return Reply{404, "no such route\n"};
}

asio::awaitable<Reply> Routes::Work() {
  co_await Wait("compute", 10ms);
  // A child task: a "Create Task" subsegment here, its own segment of this trace there.
  // The executor is fetched in a statement of its own: in a full-expression that also holds a
  // co_await, g++ 12 destroys a stale copy of Traced's by-value arguments (a double free).
  const auto executor = co_await asio::this_coro::executor;
  asio::co_spawn(executor, tasks::Traced("send-report", SendReport("work")), asio::detached);
  co_return Reply{200, "worked\n"};
}

asio::awaitable<Reply> Routes::Downstream() {
  if (downstream_.empty()) co_return Reply{502, "no --downstream configured\n"};
  // Blocking httplib call on an io_context thread: fine for a demo, not for a real service.
  middleware::TracedClient client(downstream_);
  client.client().set_connection_timeout(2);
  client.client().set_read_timeout(5);
  httplib::Result result = client.Get("/hello");
  if (!result)
    co_return Reply{502, "downstream failed: " + httplib::to_string(result.error()) + "\n"};
  co_return Reply{200, "downstream said: " + result->body};
}

}  // namespace xraysink::tools::demo
