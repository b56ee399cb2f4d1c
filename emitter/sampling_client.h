#ifndef XRAYSINK_EMITTER_SAMPLING_CLIENT_H_
#define XRAYSINK_EMITTER_SAMPLING_CLIENT_H_

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/centralized_sampler.h"
#include "core/daemon_address.h"
#include "core/internal/after_fork.h"
#include "emitter/internal/http_post.h"

namespace xraysink::emitter {

// The X-Ray sampling API through the daemon (spec 3.4): plain, unsigned HTTP to the daemon's TCP
// endpoint, which signs and forwards. Follows NextToken. Uses a bare HTTP client of its own
// (internal/http_post.h), so its calls are never traced and whatever answers at the daemon's
// address is parsed within bounds. Thread-safe (calls are serialized).
//
// A daemon that is slow or hostile in any way costs a bounded wait: `timeout` (1 ms to 1 h;
// others are brought into that range) bounds each call as a whole (connecting, sending, and the
// whole answer, however slowly it trickles in; for GetSamplingRules, every page together; not the
// resolution of a host name, which getaddrinfo does not bound), and an answer over
// kMaxResponseBytes, or with a status line and headers over 16 KiB, fails the call without being
// read further. A daemon that resets the connection mid-request never raises SIGPIPE.
class SamplingClient : public core::SamplingApi {
 public:
  static constexpr size_t kMaxResponseBytes = 1 << 20;

  explicit SamplingClient(const core::Endpoint& daemon_tcp,
                          absl::Duration timeout = absl::Seconds(2));
  ~SamplingClient() override;
  SamplingClient(const SamplingClient&) = delete;
  SamplingClient& operator=(const SamplingClient&) = delete;

  // Errors name the call and say what happened: unreachable, an HTTP status, bad JSON, too slow
  // (DeadlineExceeded), too large (ResourceExhausted), cancelled (Cancelled).
  absl::StatusOr<std::vector<core::SamplingRule>> GetSamplingRules() override;
  absl::StatusOr<core::SamplingTargets> GetSamplingTargets(
      const std::vector<core::SamplingStatistics>& statistics) override;
  // Ends the call in flight, if any, at once (Cancelled).
  void Cancel() override;

 private:
  // POSTs `body` to `path`; the 200 response's body, whole by `deadline`.
  absl::StatusOr<std::string> Post(const char* path, const std::string& body,
                                   std::chrono::steady_clock::time_point deadline);
  void DrainCancellation();  // state_mu_ held
  // In a forked child: a call the parent had in flight is not the child's, and a cancel here
  // must not end the parent's calls through the eventfd they would share.
  void ResetInChild();

  const core::Endpoint daemon_;
  const std::string endpoint_;  // host:port, for messages
  const absl::Duration timeout_;
  std::mutex call_mu_;  // one call at a time
  internal::NameResolver resolver_;

  std::mutex state_mu_;
  bool in_call_ = false;
  // Readable while the call in flight is cancelled (an eventfd; -1 if none could be made: calls
  // then end at their deadline only). Replaced only in a forked child.
  int cancel_fd_;
  core::internal::AfterForkHook after_fork_{[this] { ResetInChild(); }};  // last: goes first
};

}  // namespace xraysink::emitter

#endif  // XRAYSINK_EMITTER_SAMPLING_CLIENT_H_
