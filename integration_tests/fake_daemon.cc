#include "integration_tests/fake_daemon.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace xraysink::integration_tests {
namespace {

constexpr char kPageTokenPrefix[] = "page-";

// The page a GetSamplingRules request asks for: NextToken "page-N", or none for page 0.
absl::StatusOr<size_t> RequestedPage(const std::string& body) {
  const absl::StatusOr<std::string> token = core::DecodeSamplingRulesRequest(body);
  if (!token.ok()) return token.status();
  if (token->empty()) return 0;
  size_t page = 0;
  if (!absl::StartsWith(*token, kPageTokenPrefix) ||
      !absl::SimpleAtoi(token->substr(sizeof(kPageTokenPrefix) - 1), &page)) {
    return absl::InvalidArgumentError("unknown NextToken");
  }
  return page;
}

}  // namespace

absl::StatusOr<std::unique_ptr<FakeDaemon>> FakeDaemon::Start() {
  absl::StatusOr<std::unique_ptr<tools::UdpListener>> listener =
      tools::UdpListener::Bind("127.0.0.1", 0);
  if (!listener.ok()) return listener.status();
  std::unique_ptr<FakeDaemon> daemon(new FakeDaemon(*std::move(listener)));
  if (absl::Status started = daemon->StartSamplingApi(0); !started.ok()) return started;
  return daemon;
}

FakeDaemon::FakeDaemon(std::unique_ptr<tools::UdpListener> listener)
    : listener_(std::move(listener)), receiver_([this] { Receive(); }) {}

FakeDaemon::~FakeDaemon() {
  StopSamplingApi();
  stopping_ = true;
  listener_->Wake();
  receiver_.join();
}

std::string FakeDaemon::address() const { return absl::StrCat("127.0.0.1:", port()); }

std::string FakeDaemon::daemon_address() const {
  return absl::StrCat("tcp:127.0.0.1:", tcp_port_, " udp:127.0.0.1:", port());
}

absl::Status FakeDaemon::StartSamplingApi(uint16_t port) {
  auto server = std::make_unique<httplib::Server>();
  server->new_task_queue = [] { return new httplib::ThreadPool(2); };
  server->Post("/GetSamplingRules",
               [this](const httplib::Request& request, httplib::Response& response) {
                 ServeRules(request, response);
               });
  server->Post("/SamplingTargets",
               [this](const httplib::Request& request, httplib::Response& response) {
                 ServeTargets(request, response);
               });
  const int bound = port == 0 ? server->bind_to_any_port("127.0.0.1")
                              : (server->bind_to_port("127.0.0.1", port) ? port : -1);
  if (bound <= 0) {
    return absl::UnavailableError(absl::StrCat("FakeDaemon: cannot listen on 127.0.0.1:", port));
  }
  http_thread_ = std::thread([server = server.get()] { server->listen_after_bind(); });
  // stop() is a no-op until the accept loop runs, so wait for it (httplib 0.11 has no signal).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!server->is_running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  if (!server->is_running()) {
    server->stop();
    http_thread_.join();
    return absl::UnavailableError("FakeDaemon: the sampling API did not start");
  }
  tcp_port_ = static_cast<uint16_t>(bound);
  http_ = std::move(server);
  return absl::OkStatus();
}

void FakeDaemon::StopSamplingApi() {
  if (http_ == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    sampling_api_stopping_ = true;  // the server's threads are joined: end what they wait on
  }
  arrived_.notify_all();
  http_->stop();
  http_thread_.join();
  http_.reset();
  std::lock_guard<std::mutex> lock(mu_);
  sampling_api_stopping_ = false;
}

absl::Status FakeDaemon::RestartSamplingApi() {
  StopSamplingApi();
  return StartSamplingApi(tcp_port_);
}

void FakeDaemon::SetSamplingRules(std::vector<core::SamplingRule> rules, size_t page_size) {
  std::lock_guard<std::mutex> lock(mu_);
  sampling_rules_ = std::move(rules);
  rules_page_size_ = page_size;
}

void FakeDaemon::SetSamplingTargets(core::SamplingTargets targets) {
  std::lock_guard<std::mutex> lock(mu_);
  sampling_targets_ = std::move(targets);
}

void FakeDaemon::SetSamplingFailure(SamplingFailure failure) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    sampling_failure_ = failure;
  }
  arrived_.notify_all();  // ends a silence
}

bool FakeDaemon::AnswerScriptedFailure(std::unique_lock<std::mutex>& lock,
                                       httplib::Response& response) {
  switch (sampling_failure_) {
    case SamplingFailure::kNone:
      return false;
    case SamplingFailure::kGarbage:
      response.set_content("<html>not the sampling API</html>", "text/html");
      return true;
    case SamplingFailure::kHttp500:
      response.status = 500;
      response.set_content(R"({"message":"scripted failure"})", "application/json");
      return true;
    case SamplingFailure::kSilent:
      arrived_.wait(lock, [this] {
        return sampling_failure_ != SamplingFailure::kSilent || sampling_api_stopping_;
      });
      response.status = 503;
      response.set_content("silence over", "text/plain");
      return true;
    case SamplingFailure::kTrickle:
      response.set_chunked_content_provider(
          "application/json", [this](size_t, httplib::DataSink& sink) {
            {
              std::lock_guard<std::mutex> lock(mu_);
              if (sampling_failure_ != SamplingFailure::kTrickle || sampling_api_stopping_) {
                return false;  // ends the connection
              }
            }
            // The trickle itself, not a wait for something: each byte comes well within the
            // client's read timeout.
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            return sink.write(" ", 1);
          });
      return true;
    case SamplingFailure::kOversize: {
      constexpr size_t kSize = 16 << 20;
      response.set_content_provider(
          kSize, "application/json",
          [chunk = std::string(64 << 10, ' ')](size_t offset, size_t length,
                                               httplib::DataSink& sink) {
            return sink.write(chunk.data(), std::min({length, chunk.size(), kSize - offset}));
          });
      return true;
    }
  }
  return false;
}

void FakeDaemon::ServeRules(const httplib::Request& request, httplib::Response& response) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    ++rules_requests_;
    arrived_.notify_all();  // before a silence: tests wait for the request to be in
    if (!AnswerScriptedFailure(lock, response)) AnswerRules(request, response);
  }
}

void FakeDaemon::AnswerRules(const httplib::Request& request, httplib::Response& response) const {
  const absl::StatusOr<size_t> page = RequestedPage(request.body);
  if (!page.ok()) {
    response.status = 400;
    response.set_content(std::string(page.status().message()), "text/plain");
    return;
  }
  const size_t size = rules_page_size_ == 0 ? sampling_rules_.size() : rules_page_size_;
  const size_t begin = std::min(*page * size, sampling_rules_.size());
  const size_t end = std::min(begin + size, sampling_rules_.size());
  core::SamplingRulesPage answer;
  answer.rules.assign(sampling_rules_.begin() + begin, sampling_rules_.begin() + end);
  if (end < sampling_rules_.size()) answer.next_token = absl::StrCat(kPageTokenPrefix, *page + 1);
  response.set_content(core::EncodeSamplingRulesResponse(answer), "application/json");
}

void FakeDaemon::ServeTargets(const httplib::Request& request, httplib::Response& response) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (AnswerScriptedFailure(lock, response)) return;
    absl::StatusOr<std::vector<core::SamplingStatistics>> statistics =
        core::DecodeSamplingTargetsRequest(request.body);
    if (!statistics.ok()) {
      response.status = 400;
      response.set_content(std::string(statistics.status().message()), "text/plain");
      return;
    }
    statistics_.push_back(*std::move(statistics));
    response.set_content(core::EncodeSamplingTargetsResponse(sampling_targets_),
                         "application/json");
  }
  arrived_.notify_all();
}

void FakeDaemon::Receive() {
  while (!stopping_) {
    absl::StatusOr<std::optional<std::string>> datagram =
        listener_->Receive(absl::InfiniteDuration());
    if (!datagram.ok()) {
      // Nothing more will arrive; waiting tests time out with this reason in their log.
      std::fprintf(stderr, "FakeDaemon: %s\n", std::string(datagram.status().message()).c_str());
      return;
    }
    if (!datagram->has_value()) continue;
    absl::StatusOr<tools::ReceivedDocument> document = tools::ParseDatagram(**datagram);
    {
      std::lock_guard<std::mutex> lock(mu_);
      datagrams_.push_back(**std::move(datagram));
      if (document.ok()) {
        documents_.push_back(*document);
        assembler_.Add(*std::move(document), absl::Now());
      } else {
        malformed_reasons_.emplace_back(document.status().message());
      }
    }
    arrived_.notify_all();
  }
}

bool FakeDaemon::WaitUntil(absl::Duration timeout, const std::function<bool()>& done) {
  std::unique_lock<std::mutex> lock(mu_);
  return arrived_.wait_for(lock, absl::ToChronoNanoseconds(timeout), done);
}

bool FakeDaemon::WaitFor(size_t documents, absl::Duration timeout) {
  return WaitUntil(timeout, [&] { return documents_.size() >= documents; });
}

bool FakeDaemon::WaitForDatagrams(size_t datagrams, absl::Duration timeout) {
  return WaitUntil(timeout, [&] { return datagrams_.size() >= datagrams; });
}

bool FakeDaemon::WaitForRulesRequests(size_t requests, absl::Duration timeout) {
  return WaitUntil(timeout, [&] { return rules_requests_ >= requests; });
}

bool FakeDaemon::WaitForStatistics(size_t reports, absl::Duration timeout) {
  return WaitUntil(timeout, [&] { return statistics_.size() >= reports; });
}

size_t FakeDaemon::rules_requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return rules_requests_;
}

std::vector<std::vector<core::SamplingStatistics>> FakeDaemon::statistics() const {
  std::lock_guard<std::mutex> lock(mu_);
  return statistics_;
}

std::vector<std::string> FakeDaemon::datagrams() const {
  std::lock_guard<std::mutex> lock(mu_);
  return datagrams_;
}

std::vector<tools::ReceivedDocument> FakeDaemon::documents() const {
  std::lock_guard<std::mutex> lock(mu_);
  return documents_;
}

size_t FakeDaemon::malformed_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return malformed_reasons_.size();
}

std::vector<std::string> FakeDaemon::malformed_reasons() const {
  std::lock_guard<std::mutex> lock(mu_);
  return malformed_reasons_;
}

std::vector<std::string> FakeDaemon::trace_ids() const {
  std::lock_guard<std::mutex> lock(mu_);
  return assembler_.TraceIds();
}

std::optional<tools::Trace> FakeDaemon::trace(std::string_view trace_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return assembler_.Get(trace_id);
}

bool FakeDaemon::WaitForTrace(std::string_view trace_id,
                              std::initializer_list<std::string_view> names,
                              absl::Duration timeout) {
  return WaitUntil(timeout, [&] {
    const std::optional<tools::Trace> trace = assembler_.Get(trace_id);
    if (!trace || !trace->complete()) return false;
    for (std::string_view name : names) {
      if (trace->FindByName(name) == nullptr) return false;
    }
    return true;
  });
}

std::optional<tools::Trace> FakeDaemon::TraceWithEntity(std::string_view name) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const std::string& id : assembler_.TraceIds()) {
    std::optional<tools::Trace> trace = assembler_.Get(id);
    if (trace->FindByName(name) != nullptr) return trace;
  }
  return std::nullopt;
}

}  // namespace xraysink::integration_tests
