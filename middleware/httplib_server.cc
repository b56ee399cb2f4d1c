#include "middleware/httplib_server.h"

#include <optional>
#include <string>
#include <utility>

namespace xraysink::middleware {
namespace {

// The request a worker thread is handling: httplib runs pre-routing, the handler and
// post-routing of one request in turn on one thread.
struct ActiveRequest {
  TracedRequest traced;
  std::optional<core::ScopedContext> scope;
};
thread_local std::optional<ActiveRequest> active;

std::string Header(const httplib::Request& request, const char* name) {
  return request.has_header(name) ? request.get_header_value(name) : std::string();
}

}  // namespace

void InstallTracing(httplib::Server& server, std::shared_ptr<const RequestTracer> tracer,
                    httplib::Server::HandlerWithResponse user_pre_routing) {
  server.set_pre_routing_handler([tracer, user_pre_routing = std::move(user_pre_routing)](
                                     const httplib::Request& request, httplib::Response& response) {
    active.reset();  // a request that never reached post-routing
    const std::string host = Header(request, "Host");
    const std::string user_agent = Header(request, "User-Agent");
    const std::string trace_header = Header(request, "X-Amzn-Trace-Id");
    const std::string forwarded_for = Header(request, "X-Forwarded-For");
    IncomingRequest incoming;
    incoming.method = request.method;
    incoming.host = host;
    incoming.target = request.target;
    incoming.user_agent = user_agent;
    incoming.trace_header = trace_header;
    incoming.forwarded_for = forwarded_for;
    incoming.peer_address = request.remote_addr;
    ActiveRequest& current = active.emplace();
    current.traced = tracer->Begin(incoming);
    current.scope.emplace(current.traced.context());
    return user_pre_routing ? user_pre_routing(request, response)
                            : httplib::Server::HandlerResponse::Unhandled;
  });
  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& response, std::exception_ptr exception) {
        response.status = 500;
        if (active) active->traced.FinishWithException(exception);
      });
  server.set_post_routing_handler([](const httplib::Request&, httplib::Response& response) {
    if (!active) return;
    if (!active->traced.response_header().empty()) {
      response.set_header("X-Amzn-Trace-Id", std::string(active->traced.response_header()));
    }
    active->traced.Finish(response.status, static_cast<int64_t>(response.body.size()));
    active.reset();
  });
}

}  // namespace xraysink::middleware
