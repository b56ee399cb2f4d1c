#ifndef XRAYSINK_EMITTER_SAMPLING_CLIENT_H_
#define XRAYSINK_EMITTER_SAMPLING_CLIENT_H_

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/centralized_sampler.h"
#include "core/daemon_address.h"

namespace httplib {
class Client;
}  // namespace httplib

namespace xraysink::emitter {

// The X-Ray sampling API through the daemon (spec 3.4): plain, unsigned HTTP to the daemon's TCP
// endpoint, which signs and forwards. Follows NextToken. Uses a bare HTTP client, so its calls
// are never traced. Thread-safe (calls are serialized).
//
// A daemon that is slow in any way costs a bounded wait: `timeout` (1 ms to 1 h; others are
// brought into that range) bounds each call as a whole (sending, and the whole answer, however
// slowly it trickles in; for GetSamplingRules, every page together; a connection attempt is
// bounded by `timeout` on its own), and an answer over kMaxResponseBytes fails the call without
// being read further. httplib's own timeouts only bound each read, so a watchdog thread (started
// with the first call, asleep between calls) shuts the socket of a call past its deadline or
// cancelled. A daemon that resets the connection mid-request never raises SIGPIPE.
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
  void Cancel() override;

 private:
  enum class Interruption { kNone, kDeadline, kCancelled };

  // POSTs `body` to `path`; the 200 response's body, whole by `deadline`.
  absl::StatusOr<std::string> Post(const char* path, const std::string& body,
                                   std::chrono::steady_clock::time_point deadline);
  void Watch();  // the watchdog thread

  const std::string endpoint_;  // host:port, for messages
  const absl::Duration timeout_;
  std::mutex call_mu_;  // one call at a time
  const std::unique_ptr<httplib::Client> client_;

  // What the watchdog watches: the call in flight, if any.
  std::mutex watch_mu_;
  std::condition_variable watch_cv_;
  bool in_call_ = false;
  std::chrono::steady_clock::time_point call_deadline_;
  Interruption interruption_ = Interruption::kNone;
  bool shutting_ = false;  // the watchdog is in httplib's stop()
  bool closing_ = false;
  std::thread watchdog_;
};

}  // namespace xraysink::emitter

#endif  // XRAYSINK_EMITTER_SAMPLING_CLIENT_H_
