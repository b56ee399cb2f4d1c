#ifndef XRAYSINK_EMITTER_SAMPLING_CLIENT_H_
#define XRAYSINK_EMITTER_SAMPLING_CLIENT_H_

#include <memory>
#include <mutex>
#include <string>
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
class SamplingClient : public core::SamplingApi {
 public:
  // `timeout` bounds connecting, and each read and write, of one call.
  explicit SamplingClient(const core::Endpoint& daemon_tcp,
                          absl::Duration timeout = absl::Seconds(2));
  ~SamplingClient() override;
  SamplingClient(const SamplingClient&) = delete;
  SamplingClient& operator=(const SamplingClient&) = delete;

  // Errors name the call and say what happened: unreachable, an HTTP status, bad JSON.
  absl::StatusOr<std::vector<core::SamplingRule>> GetSamplingRules() override;
  absl::StatusOr<core::SamplingTargets> GetSamplingTargets(
      const std::vector<core::SamplingStatistics>& statistics) override;

 private:
  // POSTs `body` to `path`; the 200 response's body.
  absl::StatusOr<std::string> Post(const char* path, const std::string& body);

  const std::string endpoint_;  // host:port, for messages
  std::mutex mu_;
  const std::unique_ptr<httplib::Client> client_;
};

}  // namespace xraysink::emitter

#endif  // XRAYSINK_EMITTER_SAMPLING_CLIENT_H_
