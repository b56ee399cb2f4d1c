#include "emitter/sampling_client.h"

#include <httplib.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace xraysink::emitter {
namespace {

// A daemon that keeps handing out tokens is broken; the service's pages hold 100 rules each.
constexpr int kMaxRulePages = 100;
// How much of an error response's body goes into a message.
constexpr size_t kMaxBodyInMessage = 200;

}  // namespace

SamplingClient::SamplingClient(const core::Endpoint& daemon_tcp, absl::Duration timeout)
    : endpoint_(daemon_tcp.ToString()),
      client_(std::make_unique<httplib::Client>(daemon_tcp.host, daemon_tcp.port)) {
  const auto chrono_timeout = absl::ToChronoMicroseconds(timeout);
  client_->set_connection_timeout(chrono_timeout);
  client_->set_read_timeout(chrono_timeout);
  client_->set_write_timeout(chrono_timeout);
}

SamplingClient::~SamplingClient() = default;

absl::StatusOr<std::string> SamplingClient::Post(const char* path, const std::string& body) {
  std::lock_guard<std::mutex> lock(mu_);
  httplib::Result result = client_->Post(path, body, "application/json");
  if (!result) {
    return absl::UnavailableError(absl::StrCat("POST ", path, " to the X-Ray daemon at ", endpoint_,
                                               ": ", httplib::to_string(result.error()), " error"));
  }
  if (result->status != 200) {
    return absl::UnavailableError(absl::StrCat("POST ", path, " to the X-Ray daemon at ", endpoint_,
                                               ": HTTP ", result->status, " ",
                                               result->body.substr(0, kMaxBodyInMessage)));
  }
  return std::move(result->body);
}

absl::StatusOr<std::vector<core::SamplingRule>> SamplingClient::GetSamplingRules() {
  std::vector<core::SamplingRule> rules;
  std::string token;
  for (int page = 0; page < kMaxRulePages; ++page) {
    absl::StatusOr<std::string> body =
        Post("/GetSamplingRules", core::EncodeSamplingRulesRequest(token));
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
      Post("/SamplingTargets", core::EncodeSamplingTargetsRequest(statistics));
  if (!body.ok()) return body.status();
  absl::StatusOr<core::SamplingTargets> decoded = core::DecodeSamplingTargetsResponse(*body);
  if (!decoded.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("GetSamplingTargets from ", endpoint_, ": ", decoded.status().message()));
  }
  return decoded;
}

}  // namespace xraysink::emitter
