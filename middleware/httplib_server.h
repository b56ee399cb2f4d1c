#ifndef XRAYSINK_MIDDLEWARE_HTTPLIB_SERVER_H_
#define XRAYSINK_MIDDLEWARE_HTTPLIB_SERVER_H_

#include <httplib.h>

#include <memory>

#include "middleware/request_tracer.h"

namespace xraysink::middleware {

// Traces every request a cpp-httplib server handles: one segment per request, current for the
// handler (on httplib's worker thread), with the response's status and X-Amzn-Trace-Id. An
// exception escaping a handler is recorded as fault + cause and answered with a 500.
//
// It occupies the server's pre-routing, post-routing and exception handlers: install it last
// if you set those too (they would replace it), and route your own pre-processing through
// `user_pre_routing` so it runs inside the trace (middleware order: what runs before tracing
// sees no trace, what runs after sees it). A null `tracer` traces with the global recorder,
// segments named after its service.
void InstallTracing(httplib::Server& server, std::shared_ptr<const RequestTracer> tracer,
                    httplib::Server::HandlerWithResponse user_pre_routing = nullptr);

}  // namespace xraysink::middleware

#endif  // XRAYSINK_MIDDLEWARE_HTTPLIB_SERVER_H_
