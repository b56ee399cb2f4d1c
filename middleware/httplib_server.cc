#include "middleware/httplib_server.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/match.h"

namespace xraysink::middleware {
namespace {

// The request a worker thread is handling: httplib runs pre-routing, the handler and
// post-routing of one request in turn on one thread.
struct ActiveRequest {
  TracedRequest traced;
  std::optional<core::ScopedContext> scope;
};
thread_local std::optional<ActiveRequest> active;

// The request's headers the middleware reads, as views that live as long as the request. One
// pass, comparing a name only when its length matches: a lookup in httplib's case-insensitive
// multimap costs ~250 instructions, and four or five of them cost more than the rest of an
// unsampled request's tracing. The first of repeated headers counts; an empty one is absent.
void ReadHeaders(const httplib::Request& request, IncomingRequest& incoming) {
  std::string_view rewritten_trace_header;
  for (const auto& [name, value] : request.headers) {
    std::string_view* slot = nullptr;
    switch (name.size()) {
      case 4:
        if (absl::EqualsIgnoreCase(name, "Host")) slot = &incoming.host;
        break;
      case 10:
        if (absl::EqualsIgnoreCase(name, "User-Agent")) slot = &incoming.user_agent;
        break;
      case 15:
        if (absl::EqualsIgnoreCase(name, "X-Amzn-Trace-Id")) {
          slot = &incoming.trace_header;
        } else if (absl::EqualsIgnoreCase(name, "X-Forwarded-For")) {
          slot = &incoming.forwarded_for;
        }
        break;
      case kRewrittenTraceHeader.size():
        if (absl::EqualsIgnoreCase(name, absl::string_view(kRewrittenTraceHeader.data(),
                                                           kRewrittenTraceHeader.size())))
          slot = &rewritten_trace_header;
        break;
      default:
        break;
    }
    if (slot != nullptr && slot->empty()) *slot = value;
  }
  if (incoming.trace_header.empty()) incoming.trace_header = rewritten_trace_header;
}

// The body's size: a streamed body's (set_content_provider) is the length it was given, and
// unknown when it was given none or is chunked. httplib keeps that in members it marks
// private but leaves public, and has no accessor for it.
std::optional<int64_t> ContentLength(const httplib::Response& response) {
  if (!response.content_provider_) return static_cast<int64_t>(response.body.size());
  if (response.is_chunked_content_provider_ || response.content_length_ == 0) return std::nullopt;
  return static_cast<int64_t>(response.content_length_);
}

// What a hook that threw leaves: an empty 500, whatever it had written.
void AnswerInternalError(httplib::Response& response) {
  response = httplib::Response();
  response.status = 500;
}

}  // namespace

void InstallTracing(httplib::Server& server, std::shared_ptr<const RequestTracer> tracer,
                    httplib::Server::HandlerWithResponse user_pre_routing) {
  HttplibHooks hooks;
  hooks.pre_routing = std::move(user_pre_routing);
  InstallTracing(server, std::move(tracer), std::move(hooks));
}

void InstallTracing(httplib::Server& server, std::shared_ptr<const RequestTracer> tracer,
                    HttplibHooks hooks) {
  if (tracer == nullptr) tracer = std::make_shared<const RequestTracer>(nullptr, SegmentNaming());
  server.set_pre_routing_handler([tracer, user_pre_routing = std::move(hooks.pre_routing)](
                                     const httplib::Request& request, httplib::Response& response) {
    active.reset();  // a request that never reached post-routing
    IncomingRequest incoming;
    incoming.method = request.method;
    incoming.target = request.target;
    ReadHeaders(request, incoming);
    incoming.peer_address = request.remote_addr;
    ActiveRequest& current = active.emplace();
    current.traced = tracer->Begin(incoming);
    current.scope.emplace(current.traced.context());
    return user_pre_routing ? user_pre_routing(request, response)
                            : httplib::Server::HandlerResponse::Unhandled;
  });
  // The exception becomes the segment's cause here; post-routing, which httplib runs next,
  // records the status answered: 500, or what the user's exception hook chose.
  server.set_exception_handler([user_exception = std::move(hooks.exception)](
                                   const httplib::Request& request, httplib::Response& response,
                                   std::exception_ptr exception) {
    response.status = 500;
    if (active) active->traced.RecordException(exception);
    if (!user_exception) return;
    // httplib calls this from its catch block: an exception from here would leave the worker
    // thread, and end the process.
    try {
      user_exception(request, response, exception);
    } catch (...) {
      AnswerInternalError(response);
    }
  });
  server.set_post_routing_handler([user_post_routing = std::move(hooks.post_routing)](
                                      const httplib::Request& request,
                                      httplib::Response& response) {
    // Outside httplib's try, like the exception handler: caught here, or it would end the
    // process.
    if (user_post_routing) {
      try {
        user_post_routing(request, response);
      } catch (...) {
        AnswerInternalError(response);
        if (active) active->traced.RecordException(std::current_exception());
      }
    }
    if (!active) return;
    if (!active->traced.response_header().empty()) {
      // Ours replaces one the handler set (httplib's header names compare case-insensitively).
      // Not set_header: its checks are for values from outside, and it would copy the value.
      response.headers.erase("X-Amzn-Trace-Id");
      response.headers.emplace("X-Amzn-Trace-Id", std::string(active->traced.response_header()));
    }
    active->traced.Finish(response.status, ContentLength(response));
    active.reset();
  });
}

}  // namespace xraysink::middleware
