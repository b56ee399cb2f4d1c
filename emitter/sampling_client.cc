#include "emitter/sampling_client.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <new>
#include <utility>

#include "absl/strings/str_cat.h"
#include "emitter/internal/http_post.h"

namespace xraysink::emitter {
namespace {

// A daemon that keeps handing out tokens is broken; the service's pages hold 100 rules each.
constexpr int kMaxRulePages = 100;
// How much of an error response's body goes into a message.
constexpr size_t kMaxBodyInMessage = 200;
constexpr absl::Duration kMinTimeout = absl::Milliseconds(1);
constexpr absl::Duration kMaxTimeout = absl::Hours(1);

}  // namespace

SamplingClient::SamplingClient(const core::Endpoint& daemon_tcp, absl::Duration timeout)
    : daemon_(daemon_tcp),
      endpoint_(daemon_tcp.ToString()),
      timeout_(std::clamp(timeout, kMinTimeout, kMaxTimeout)),
      cancel_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

void SamplingClient::ResetInChild() {
  new (&call_mu_) std::mutex;
  new (&state_mu_) std::mutex;
  in_call_ = false;
  if (cancel_fd_ >= 0) close(cancel_fd_);  // the child's copy only
  cancel_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

SamplingClient::~SamplingClient() {
  if (cancel_fd_ >= 0) close(cancel_fd_);
}

void SamplingClient::Cancel() {
  std::lock_guard<std::mutex> lock(state_mu_);
  if (!in_call_ || cancel_fd_ < 0) return;
  const uint64_t one = 1;
  // Cannot fail short of a counter at its maximum, which reads as cancelled all the same.
  [[maybe_unused]] const ssize_t written = write(cancel_fd_, &one, sizeof(one));
}

void SamplingClient::DrainCancellation() {
  if (cancel_fd_ < 0) return;
  uint64_t count;
  [[maybe_unused]] const ssize_t read_bytes = read(cancel_fd_, &count, sizeof(count));
}

absl::StatusOr<std::string> SamplingClient::Post(const char* path, const std::string& body,
                                                 std::chrono::steady_clock::time_point deadline) {
  const auto failure = [&](auto&&... what) {
    return absl::StrCat("POST ", path, " to the X-Ray daemon at ", endpoint_, ": ", what...);
  };
  std::lock_guard<std::mutex> call(call_mu_);
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    DrainCancellation();  // a Cancel() meant for an earlier call
    in_call_ = true;
  }
  internal::HttpLimits limits;
  limits.max_body_bytes = kMaxResponseBytes;
  absl::StatusOr<internal::HttpAnswer> answer =
      internal::PostJson(daemon_, path, body, deadline, cancel_fd_, resolver_, limits);
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    in_call_ = false;
    DrainCancellation();
  }
  if (!answer.ok()) {
    const absl::Status& status = answer.status();
    switch (status.code()) {
      case absl::StatusCode::kDeadlineExceeded:
        return absl::DeadlineExceededError(
            failure("no complete answer within ", absl::FormatDuration(timeout_)));
      case absl::StatusCode::kCancelled:
        return absl::CancelledError(failure("cancelled"));
      default:
        return absl::Status(status.code(), failure(status.message()));
    }
  }
  if (answer->status != 200) {
    return absl::UnavailableError(
        failure("HTTP ", answer->status, " ", answer->body.substr(0, kMaxBodyInMessage)));
  }
  return std::move(answer->body);
}

absl::StatusOr<std::vector<core::SamplingRule>> SamplingClient::GetSamplingRules() {
  const auto deadline = std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(timeout_);
  std::vector<core::SamplingRule> rules;
  std::string token;
  for (int page = 0; page < kMaxRulePages; ++page) {
    absl::StatusOr<std::string> body =
        Post("/GetSamplingRules", core::EncodeSamplingRulesRequest(token), deadline);
    if (!body.ok()) return body.status();
    absl::StatusOr<core::SamplingRulesPage> decoded = core::DecodeSamplingRulesResponse(*body);
    if (!decoded.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("GetSamplingRules from ", endpoint_, ": ", decoded.status().message()));
    }
    for (core::SamplingRule& rule : decoded->rules) rules.push_back(std::move(rule));
    if (decoded->next_token.empty()) return rules;
    token = std::move(decoded->next_token);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("GetSamplingRules from ", endpoint_, ": more than ", kMaxRulePages, " pages"));
}

absl::StatusOr<core::SamplingTargets> SamplingClient::GetSamplingTargets(
    const std::vector<core::SamplingStatistics>& statistics) {
  absl::StatusOr<std::string> body =
      Post("/SamplingTargets", core::EncodeSamplingTargetsRequest(statistics),
           std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(timeout_));
  if (!body.ok()) return body.status();
  absl::StatusOr<core::SamplingTargets> decoded = core::DecodeSamplingTargetsResponse(*body);
  if (!decoded.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("GetSamplingTargets from ", endpoint_, ": ", decoded.status().message()));
  }
  return decoded;
}

}  // namespace xraysink::emitter
