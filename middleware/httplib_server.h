#ifndef XRAYSINK_MIDDLEWARE_HTTPLIB_SERVER_H_
#define XRAYSINK_MIDDLEWARE_HTTPLIB_SERVER_H_

#include <httplib.h>

#include <memory>

#include "middleware/request_tracer.h"

namespace xraysink::middleware {

// The server's own handlers for the slots tracing occupies (httplib has one of each). Each
// runs inside the request's trace: it sees the request's segment as current.
struct HttplibHooks {
  // Runs once the request's segment has begun, before routing; Handled answers the request
  // without routing, as httplib's pre-routing handler does.
  httplib::Server::HandlerWithResponse pre_routing;
  // Runs after the handler and before the segment ends: the status and headers it sets are the
  // ones recorded and sent. An exception it throws is caught: the answer becomes a 500, with the
  // exception as the segment's cause.
  httplib::Server::Handler post_routing;
  // Runs for an exception that escaped a handler, once the exception is recorded as the
  // segment's cause and the status set to 500; it may write an error page or set another
  // status, which is recorded with its flags (a 503 is a fault, a 400 an error). An exception it
  // throws itself is caught and answered with the 500.
  httplib::Server::ExceptionHandler exception;
};

// Traces every request a cpp-httplib server handles: one segment per request, current for the
// handler (on httplib's worker thread), with the response's status and X-Amzn-Trace-Id. An
// exception escaping a handler is recorded as fault + cause and answered with a 500.
//
// It occupies the server's pre-routing, post-routing and exception handlers: give yours to it
// in `hooks` rather than setting them on the server, where they would replace tracing (set
// before, they are replaced). Middleware order: what runs before tracing sees no trace, what
// runs after (the hooks, routing, handlers) sees it. A null `tracer` traces with the global
// recorder, segments named after its service.
void InstallTracing(httplib::Server& server, std::shared_ptr<const RequestTracer> tracer,
                    HttplibHooks hooks);
// The same with a pre-routing hook only.
void InstallTracing(httplib::Server& server, std::shared_ptr<const RequestTracer> tracer,
                    httplib::Server::HandlerWithResponse user_pre_routing = nullptr);

}  // namespace xraysink::middleware

#endif  // XRAYSINK_MIDDLEWARE_HTTPLIB_SERVER_H_
