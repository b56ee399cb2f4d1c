#ifndef XRAYSINK_EMITTER_INTERNAL_NAME_RESOLVER_H_
#define XRAYSINK_EMITTER_INTERNAL_NAME_RESOLVER_H_

#include <netdb.h>
#include <sys/socket.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <new>
#include <string>

#include "absl/status/statusor.h"
#include "core/daemon_address.h"
#include "core/internal/after_fork.h"

namespace xraysink::emitter::internal {

// getaddrinfo's signature: how names are resolved (tests stand in a resolver that hangs).
using ResolveFunction = int (*)(const char* host, const char* service, const addrinfo* hints,
                                addrinfo** found);

// Resolves the daemon's endpoints: the sampling API's (PostJson) and the UDP one
// (DatagramSender). An address (the daemon's usual 127.0.0.1) is answered at once. A name is
// looked up on a thread of its own, which a call that gives up (deadline, cancel) leaves to
// finish by itself: getaddrinfo cannot be interrupted, and a resolver that does not answer would
// otherwise hold the calling thread (the sampling poller, the UDP sender), and the host's
// shutdown that stops it, for as long as glibc's timeouts, attempts and servers take. At most
// one lookup is in flight: a call that comes while an abandoned lookup of the same endpoint
// still runs waits for that one, so a resolver that stays silent holds one thread, not one per
// call. Thread-safe.
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

  // Finds addresses of `family` (AF_UNSPEC: any) for sockets of `socktype`.
  explicit NameResolver(ResolveFunction resolve = &getaddrinfo, int family = AF_UNSPEC,
                        int socktype = SOCK_STREAM)
      : resolve_(resolve), family_(family), socktype_(socktype) {}
  NameResolver(const NameResolver&) = delete;
  NameResolver& operator=(const NameResolver&) = delete;

  // The addresses of `endpoint`; DeadlineExceeded once `deadline` passes, Cancelled once
  // `cancel_fd` (-1: none) is readable, Unavailable when the name does not resolve.
  absl::StatusOr<Addresses> Resolve(const core::Endpoint& endpoint, int cancel_fd,
                                    std::chrono::steady_clock::time_point deadline);

 private:
  const ResolveFunction resolve_;
  const int family_;
  const int socktype_;
  std::mutex mu_;
  std::shared_ptr<Lookup> in_flight_;  // the last lookup started, until it is done
  // In a forked child, a lookup in flight has lost its thread and would never be done.
  core::internal::AfterForkHook after_fork_{[this] {
    new (&mu_) std::mutex;
    core::internal::LeakInChild(new std::shared_ptr<Lookup>(std::move(in_flight_)));
  }};
};

}  // namespace xraysink::emitter::internal

#endif  // XRAYSINK_EMITTER_INTERNAL_NAME_RESOLVER_H_
