#include "emitter/internal/name_resolver.h"

#include <netdb.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "emitter/internal/fd_wait.h"

namespace xraysink::emitter::internal {
namespace {

using Clock = std::chrono::steady_clock;

absl::Status CannotResolve(const core::Endpoint& endpoint, absl::string_view why) {
  return absl::UnavailableError(absl::StrCat("cannot resolve '", endpoint.host, "': ", why));
}

}  // namespace

// One resolution: answered at once (an address), or on a thread of its own (a name), shared by
// the resolver, the calls waiting for it and that thread; whichever lets go last frees it.
struct NameResolver::Lookup {
  explicit Lookup(bool on_a_thread)
      : done_fd(on_a_thread ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : -1) {}
  ~Lookup() {
    if (found != nullptr) freeaddrinfo(found);
    if (done_fd >= 0) close(done_fd);
  }
  std::string host;
  std::string port;
  addrinfo hints{};
  int done_fd;                    // readable once done, and stays so: any number of waiters
  std::atomic<bool> done{false};  // releases `error` and `found`
  int error = 0;
  addrinfo* found = nullptr;
};

const addrinfo* NameResolver::Addresses::first() const { return lookup_->found; }

absl::StatusOr<NameResolver::Addresses> NameResolver::Resolve(const core::Endpoint& endpoint,
                                                              int cancel_fd,
                                                              Clock::time_point deadline) {
  addrinfo hints{};
  hints.ai_family = family_;
  hints.ai_socktype = socktype_;
  hints.ai_flags = AI_NUMERICSERV;
  const std::string port = std::to_string(endpoint.port);
  {
    addrinfo numeric = hints;
    numeric.ai_flags |= AI_NUMERICHOST;
    auto answered = std::make_shared<Lookup>(false);
    const int error = resolve_(endpoint.host.c_str(), port.c_str(), &numeric, &answered->found);
    if (error == 0) return Addresses(std::move(answered));
    if (error != EAI_NONAME) return CannotResolve(endpoint, gai_strerror(error));
  }

  std::shared_ptr<Lookup> lookup;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (in_flight_ != nullptr && !in_flight_->done.load(std::memory_order_acquire) &&
        in_flight_->host == endpoint.host && in_flight_->port == port) {
      lookup = in_flight_;
    } else {
      lookup = std::make_shared<Lookup>(true);
      if (lookup->done_fd < 0) {
        return CannotResolve(endpoint, absl::StrCat("no eventfd: ", ErrnoText(errno)));
      }
      lookup->host = endpoint.host;
      lookup->port = port;
      lookup->hints = hints;
      try {
        std::thread([lookup, resolve = resolve_] {
          lookup->error =
              resolve(lookup->host.c_str(), lookup->port.c_str(), &lookup->hints, &lookup->found);
          lookup->done.store(true, std::memory_order_release);
          const uint64_t one = 1;
          [[maybe_unused]] const ssize_t written = write(lookup->done_fd, &one, sizeof(one));
        }).detach();
      } catch (const std::system_error& thread_error) {
        return CannotResolve(endpoint, absl::StrCat("no thread: ", thread_error.what()));
      }
      in_flight_ = lookup;
    }
  }
  while (!lookup->done.load(std::memory_order_acquire)) {
    const Readiness ready = WaitFor(lookup->done_fd, POLLIN, cancel_fd, deadline);
    if (ready != Readiness::kReady) return NotReady(ready, "resolving the name");
  }
  if (lookup->error != 0) return CannotResolve(endpoint, gai_strerror(lookup->error));
  return Addresses(std::move(lookup));
}

}  // namespace xraysink::emitter::internal
