#include "emitter/sampling_client.h"

#include <httplib.h>
#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/internal/scoped_sigpipe_block.h"

namespace xraysink::emitter {
namespace {

// A daemon that keeps handing out tokens is broken; the service's pages hold 100 rules each.
constexpr int kMaxRulePages = 100;
// How much of an error response's body goes into a message.
constexpr size_t kMaxBodyInMessage = 200;
// How often the watchdog shuts an interrupted call's socket again: the call may not have opened
// it yet when the interruption came.
constexpr auto kReshutInterval = std::chrono::milliseconds(10);
constexpr absl::Duration kMinTimeout = absl::Milliseconds(1);
constexpr absl::Duration kMaxTimeout = absl::Hours(1);

}  // namespace

SamplingClient::SamplingClient(const core::Endpoint& daemon_tcp, absl::Duration timeout)
    : endpoint_(daemon_tcp.ToString()),
      timeout_(std::clamp(timeout, kMinTimeout, kMaxTimeout)),
      client_(std::make_unique<httplib::Client>(daemon_tcp.host, daemon_tcp.port)) {
  const auto chrono_timeout = absl::ToChronoMicroseconds(timeout_);
  client_->set_connection_timeout(chrono_timeout);
  client_->set_read_timeout(chrono_timeout);
  client_->set_write_timeout(chrono_timeout);
}

SamplingClient::~SamplingClient() {
  {
    std::lock_guard<std::mutex> lock(watch_mu_);
    closing_ = true;
  }
  watch_cv_.notify_all();
  if (watchdog_.joinable()) watchdog_.join();
}

void SamplingClient::Cancel() {
  {
    std::lock_guard<std::mutex> lock(watch_mu_);
    if (!in_call_) return;
    interruption_ = Interruption::kCancelled;
  }
  watch_cv_.notify_all();
}

void SamplingClient::Watch() {
  pthread_setname_np(pthread_self(), "xraysink-rwatch");  // for top -H, perf and gdb
  std::unique_lock<std::mutex> lock(watch_mu_);
  while (!closing_) {
    if (!in_call_) {
      watch_cv_.wait(lock);
    } else if (interruption_ == Interruption::kNone) {
      if (std::chrono::steady_clock::now() < call_deadline_) {
        watch_cv_.wait_until(lock, call_deadline_);
      } else {
        interruption_ = Interruption::kDeadline;
      }
    } else {
      // httplib's stop() shuts the socket of the request in flight, which ends its reads and
      // writes at once; it is made to be called from another thread. Not under our lock: it
      // waits for httplib's own, which a call holds while it connects. Post waits for it to
      // return before the next call may start, so it never shuts that one's socket.
      shutting_ = true;
      lock.unlock();
      client_->stop();
      lock.lock();
      shutting_ = false;
      watch_cv_.notify_all();
      watch_cv_.wait_for(lock, kReshutInterval);
    }
  }
}

absl::StatusOr<std::string> SamplingClient::Post(const char* path, const std::string& body,
                                                 std::chrono::steady_clock::time_point deadline) {
  const auto failure = [&](auto&&... what) {
    return absl::StrCat("POST ", path, " to the X-Ray daemon at ", endpoint_, ": ", what...);
  };
  std::lock_guard<std::mutex> call(call_mu_);
  {
    std::lock_guard<std::mutex> lock(watch_mu_);
    if (!watchdog_.joinable()) {
      try {
        watchdog_ = std::thread(&SamplingClient::Watch, this);
      } catch (const std::system_error& error) {
        return absl::ResourceExhaustedError(
            failure("cannot start the thread that bounds calls: ", error.what()));
      }
    }
    in_call_ = true;
    call_deadline_ = deadline;
    interruption_ = Interruption::kNone;
  }
  watch_cv_.notify_all();

  httplib::Request request;
  request.method = "POST";
  request.path = path;
  request.body = body;
  request.set_header("Content-Type", "application/json");
  std::string response_body;
  bool too_large = false;
  request.content_receiver = [&](const char* data, size_t length, uint64_t, uint64_t) {
    if (length > kMaxResponseBytes - response_body.size()) {
      too_large = true;
      return false;
    }
    response_body.append(data, length);
    return true;
  };
  httplib::Result result = [&] {
    core::internal::ScopedSigpipeBlock no_sigpipe;
    return client_->send(request);
  }();

  Interruption interruption;
  {
    std::unique_lock<std::mutex> lock(watch_mu_);
    watch_cv_.wait(lock, [this] { return !shutting_; });
    in_call_ = false;
    interruption = interruption_;
  }
  if (too_large) {
    return absl::ResourceExhaustedError(
        failure("the answer is larger than ", kMaxResponseBytes, " bytes"));
  }
  // A whole answer that came as the deadline passed still counts.
  if (!result) {
    switch (interruption) {
      case Interruption::kDeadline:
        return absl::DeadlineExceededError(
            failure("no complete answer within ", absl::FormatDuration(timeout_)));
      case Interruption::kCancelled:
        return absl::CancelledError(failure("cancelled"));
      case Interruption::kNone:
        break;
    }
    return absl::UnavailableError(failure(httplib::to_string(result.error()), " error"));
  }
  if (result->status != 200) {
    return absl::UnavailableError(
        failure("HTTP ", result->status, " ", response_body.substr(0, kMaxBodyInMessage)));
  }
  return response_body;
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
