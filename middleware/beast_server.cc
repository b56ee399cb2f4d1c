#include "middleware/beast_server.h"

#include <string>
#include <string_view>

namespace xraysink::middleware::internal {

TracedRequest BeginBeast(const RequestTracer& tracer,
                         const boost::beast::http::request_header<>& request,
                         const boost::asio::ip::tcp::endpoint& peer, std::string_view scheme) {
  namespace http = boost::beast::http;
  const std::string peer_address = peer.address().to_string();
  IncomingRequest incoming;
  incoming.scheme = scheme;
  incoming.method = request.method_string();
  incoming.host = request[http::field::host];
  incoming.target = request.target();
  incoming.user_agent = request[http::field::user_agent];
  incoming.trace_header = request["X-Amzn-Trace-Id"];
  incoming.forwarded_for = request["X-Forwarded-For"];
  incoming.peer_address = peer_address;
  return tracer.Begin(incoming);
}

void FinishBeast(TracedRequest& traced, boost::beast::http::response_header<>& response,
                 std::optional<int64_t> content_length) {
  if (!traced.response_header().empty()) {
    response.set("X-Amzn-Trace-Id", traced.response_header());
  }
  traced.Finish(response.result_int(), content_length);
}

}  // namespace xraysink::middleware::internal
