#ifndef XRAYSINK_MIDDLEWARE_HTTPLIB_CLIENT_H_
#define XRAYSINK_MIDDLEWARE_HTTPLIB_CLIENT_H_

#include <httplib.h>

#include <string>

#include "core/recorder.h"

namespace xraysink::middleware {

// A cpp-httplib client whose calls become `remote` subsegments of the current flow (named after
// the host, with http request/response) and carry X-Amzn-Trace-Id downstream. Connection errors
// and timeouts are recorded as fault + cause. A downstream that resets the connection mid-call
// never raises SIGPIPE (the call runs with it blocked on its thread). Its connections have
// TCP_NODELAY (httplib's default is off, which costs a kept-alive POST ~40 ms: see the .cc).
// Not thread-safe (as httplib::Client).
class TracedClient {
 public:
  // `scheme_host_port` as httplib::Client takes it, e.g. "http://127.0.0.1:8080".
  explicit TracedClient(const std::string& scheme_host_port, core::Recorder* recorder = nullptr);

  httplib::Result Get(const std::string& path, httplib::Headers headers = {});
  httplib::Result Post(const std::string& path, const std::string& body,
                       const std::string& content_type, httplib::Headers headers = {});
  httplib::Result Put(const std::string& path, const std::string& body,
                      const std::string& content_type, httplib::Headers headers = {});
  httplib::Result Patch(const std::string& path, const std::string& body,
                        const std::string& content_type, httplib::Headers headers = {});
  httplib::Result Delete(const std::string& path, httplib::Headers headers = {});
  httplib::Result Head(const std::string& path, httplib::Headers headers = {});
  httplib::Result Options(const std::string& path, httplib::Headers headers = {});

  // The wrapped client, for settings (timeouts, keep-alive, ...).
  httplib::Client& client() { return client_; }

 private:
  template <typename Call>
  httplib::Result Traced(const char* method, const std::string& path, httplib::Headers& headers,
                         Call&& call);

  httplib::Client client_;
  core::Recorder* recorder_;
  std::string base_url_;
  std::string host_;
};

}  // namespace xraysink::middleware

#endif  // XRAYSINK_MIDDLEWARE_HTTPLIB_CLIENT_H_
