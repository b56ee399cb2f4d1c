#ifndef XRAYSINK_EMITTER_INTERNAL_HTTP_POST_H_
#define XRAYSINK_EMITTER_INTERNAL_HTTP_POST_H_

#include <netdb.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/daemon_address.h"
#include "emitter/internal/name_resolver.h"

namespace xraysink::emitter::internal {

// What a POST was answered with.
struct HttpAnswer {
  int status = 0;
  std::string body;
};

// How much of an answer is read at most; more fails the call (ResourceExhausted) unread.
struct HttpLimits {
  size_t max_head_bytes = 16 * 1024;  // status line and headers
  size_t max_body_bytes = 1 << 20;
};

// One HTTP/1.1 POST of a JSON `body` to `path` at `endpoint`, on a connection of its own
// (`Connection: close`), for the sampling API: a daemon's answer is parsed here, within `limits`,
// rather than by cpp-httplib 0.11.4, whose status-line regex recurses once per character (a
// long status line from whatever answers at the daemon's address overflowed the thread's stack).
// Bounded as a whole by `deadline` (resolving a name through `resolver`, connecting, sending,
// and the whole answer however slowly it comes) and ended early, Cancelled, once `cancel_fd`
// (-1: none) is readable. Never raises SIGPIPE. Bodies may be sized by Content-Length, chunked,
// or end with the connection.
absl::StatusOr<HttpAnswer> PostJson(const core::Endpoint& endpoint, std::string_view path,
                                    std::string_view body,
                                    std::chrono::steady_clock::time_point deadline, int cancel_fd,
                                    NameResolver& resolver,
                                    const HttpLimits& limits = HttpLimits());

}  // namespace xraysink::emitter::internal

#endif  // XRAYSINK_EMITTER_INTERNAL_HTTP_POST_H_
