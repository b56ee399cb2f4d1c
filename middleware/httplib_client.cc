#include "middleware/httplib_client.h"

#include <utility>

#include "core/internal/scoped_sigpipe_block.h"
#include "middleware/outgoing_call.h"

namespace xraysink::middleware {
namespace {

// "http://host:port" -> "host".
std::string HostOf(const std::string& scheme_host_port) {
  std::string_view rest = scheme_host_port;
  if (const size_t scheme = rest.find("://"); scheme != std::string_view::npos) {
    rest.remove_prefix(scheme + 3);
  }
  rest = rest.substr(0, rest.find('/'));
  if (!rest.empty() && rest.front() == '[') return std::string(rest.substr(0, rest.find(']') + 1));
  return std::string(rest.substr(0, rest.find(':')));
}

}  // namespace

TracedClient::TracedClient(const std::string& scheme_host_port, core::Recorder* recorder)
    : client_(scheme_host_port),
      recorder_(recorder),
      base_url_(scheme_host_port),
      host_(HostOf(scheme_host_port)) {
  while (!base_url_.empty() && base_url_.back() == '/') base_url_.pop_back();
  // httplib writes a request's headers and its body in two sends: with Nagle's algorithm on a
  // kept-alive connection the body then waits for the server's delayed ACK, ~40 ms a call.
  client_.set_tcp_nodelay(true);
}

template <typename Call>
httplib::Result TracedClient::Traced(const char* method, const std::string& path,
                                     httplib::Headers& headers, Call&& call) {
  OutgoingCall outgoing = OutgoingCall::Begin(recorder_, host_, method, base_url_ + path);
  if (!outgoing.trace_header().empty()) {
    headers.erase("X-Amzn-Trace-Id");
    headers.emplace("X-Amzn-Trace-Id", outgoing.trace_header());
  }
  httplib::Result result = [&] {
    // Debian's httplib sends without MSG_NOSIGNAL: a downstream that resets the connection
    // would otherwise raise SIGPIPE, whose default action ends the whole service.
    core::internal::ScopedSigpipeBlock no_sigpipe;
    return call();
  }();
  if (result) {
    outgoing.Finish(result->status, static_cast<int64_t>(result->body.size()));
  } else {
    outgoing.Fail("httplib::Error", httplib::to_string(result.error()));
  }
  return result;
}

httplib::Result TracedClient::Get(const std::string& path, httplib::Headers headers) {
  return Traced("GET", path, headers, [&] { return client_.Get(path, headers); });
}

httplib::Result TracedClient::Post(const std::string& path, const std::string& body,
                                   const std::string& content_type, httplib::Headers headers) {
  return Traced("POST", path, headers,
                [&] { return client_.Post(path, headers, body, content_type); });
}

httplib::Result TracedClient::Put(const std::string& path, const std::string& body,
                                  const std::string& content_type, httplib::Headers headers) {
  return Traced("PUT", path, headers,
                [&] { return client_.Put(path, headers, body, content_type); });
}

httplib::Result TracedClient::Patch(const std::string& path, const std::string& body,
                                    const std::string& content_type, httplib::Headers headers) {
  return Traced("PATCH", path, headers,
                [&] { return client_.Patch(path, headers, body, content_type); });
}

httplib::Result TracedClient::Delete(const std::string& path, httplib::Headers headers) {
  return Traced("DELETE", path, headers, [&] { return client_.Delete(path, headers); });
}

httplib::Result TracedClient::Head(const std::string& path, httplib::Headers headers) {
  return Traced("HEAD", path, headers, [&] { return client_.Head(path, headers); });
}

httplib::Result TracedClient::Options(const std::string& path, httplib::Headers headers) {
  return Traced("OPTIONS", path, headers, [&] { return client_.Options(path, headers); });
}

}  // namespace xraysink::middleware
