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

// getaddrinfo's signature: how names are resolved (tests stand in a resolver that hangs).
using ResolveFunction = int (*)(const char* host, const char* service, const addrinfo* hints,
                                addrinfo** found);

// Resolves the endpoints PostJson connects to. An address (the daemon's usual 127.0.0.1) is
// answered at once. A name is looked up on a thread of its own, which a call that gives up
// (deadline, cancel) leaves to finish by itself: getaddrinfo cannot be interrupted, and a
// resolver that does not answer would otherwise hold the sampling poller, and the host's
// shutdown that stops it, for as long as glibc's timeouts, attempts and servers take. At most
// one lookup is in flight: a call that comes while an abandoned lookup of the same endpoint
// still runs waits for that one, so a resolver that stays silent holds one thread, not one per
// poll. Thread-safe.
class NameResolver {
 public:
  struct Lookup;
  // The addresses found, kept alive by whoever holds them.
  class Addresses {
   public:
    const addrinfo* first() const;

   private:
    friend class NameResolver;
    explicit Addresses(std::shared_ptr<const Lookup> lookup) : lookup_(std::move(lookup)) {}
    std::shared_ptr<const Lookup> lookup_;
  };

  explicit NameResolver(ResolveFunction resolve = &getaddrinfo) : resolve_(resolve) {}
  NameResolver(const NameResolver&) = delete;
  NameResolver& operator=(const NameResolver&) = delete;

  // The addresses of `endpoint` for a TCP connection; DeadlineExceeded once `deadline` passes,
  // Cancelled once `cancel_fd` (-1: none) is readable, Unavailable when the name does not
  // resolve.
  absl::StatusOr<Addresses> Resolve(const core::Endpoint& endpoint, int cancel_fd,
                                    std::chrono::steady_clock::time_point deadline);

 private:
  const ResolveFunction resolve_;
  std::mutex mu_;
  std::shared_ptr<Lookup> in_flight_;  // the last lookup started, until it is done
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
