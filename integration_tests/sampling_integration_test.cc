// The real SamplingClient and CentralizedSampler against the FakeDaemon's sampling API over TCP on
// 127.0.0.1. Polls are driven directly with a fake clock; the background poller test waits for
// the daemon to be asked, with a deadline.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/centralized_sampler.h"
#include "core/daemon_address.h"
#include "emitter/sampling_client.h"
#include "integration_tests/fake_daemon.h"

namespace xraysink::integration_tests {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::SizeIs;

constexpr int64_t kStart = 1700000000;
constexpr absl::Duration kTimeout = absl::Seconds(20);

core::SamplingRule Rule(std::string name, int64_t priority, std::string path, double rate,
                        int64_t reservoir) {
  core::SamplingRule rule;
  rule.rule_name = std::move(name);
  rule.resource_arn = "*";
  rule.priority = priority;
  rule.fixed_rate = rate;
  rule.reservoir_size = reservoir;
  rule.service_name = rule.service_type = rule.host = rule.http_method = "*";
  rule.url_path = std::move(path);
  rule.version = 1;
  return rule;
}

// Never samples; counts how often it was asked.
class CountingFallback : public core::Sampler {
 public:
  core::SamplingDecision ShouldTrace(const core::SamplingRequest&) override {
    ++calls;
    return {};
  }
  std::atomic<int> calls{0};
};

// A TCP socket listening on 127.0.0.1 at a port of its own; -1 if one could not be made.
int Listen(uint16_t& port) {
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      listen(listener, 16) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    if (listener >= 0) close(listener);
    return -1;
  }
  port = ntohs(address.sin_port);
  return listener;
}

// Answers every request with the same bytes, which the FakeDaemon (an HTTP server) would never
// send: for answers framed or malformed by hand. Each connection is closed after the answer when
// `close_after`, else held open until the server goes (so that only the framing can end a read).
class RawServer {
 public:
  RawServer(std::string answer, bool close_after)
      : answer_(std::move(answer)), close_after_(close_after), listener_(Listen(port_)) {
    if (listener_ >= 0) thread_ = std::thread([this] { Serve(); });
  }
  ~RawServer() {
    if (listener_ >= 0) shutdown(listener_, SHUT_RDWR);  // ends the accept
    if (thread_.joinable()) thread_.join();
    for (const int connection : held_) close(connection);
    if (listener_ >= 0) close(listener_);
  }
  bool ok() const { return listener_ >= 0; }
  core::Endpoint endpoint() const { return {"127.0.0.1", port_}; }

 private:
  void Serve() {
    for (;;) {
      const int connection = accept(listener_, nullptr, nullptr);
      if (connection < 0) return;
      // The request: its head, then as many bytes as its Content-Length says.
      std::string request;
      char buffer[4096];
      size_t head_end = std::string::npos;
      size_t wanted = std::string::npos;
      while (wanted == std::string::npos || request.size() < wanted) {
        const ssize_t got = recv(connection, buffer, sizeof(buffer), 0);
        if (got <= 0) break;
        request.append(buffer, static_cast<size_t>(got));
        if (head_end == std::string::npos &&
            (head_end = request.find("\r\n\r\n")) != std::string::npos) {
          const size_t field = request.find("Content-Length: ");
          wanted = head_end + 4 + std::stoul(request.substr(field + 16));
        }
      }
      send(connection, answer_.data(), answer_.size(), MSG_NOSIGNAL);
      if (close_after_) {
        close(connection);
      } else {
        held_.push_back(connection);
      }
    }
  }

  const std::string answer_;
  const bool close_after_;
  uint16_t port_ = 0;
  const int listener_;
  std::vector<int> held_;  // by the serving thread until it is joined
  std::thread thread_;
};

class SamplingIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<FakeDaemon>> daemon = FakeDaemon::Start();
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    daemon_ = *std::move(daemon);
    absl::StatusOr<core::DaemonAddress> address =
        core::DaemonAddress::Parse(daemon_->daemon_address());
    ASSERT_TRUE(address.ok()) << address.status();
    address_ = *std::move(address);
    client_ = std::make_shared<emitter::SamplingClient>(address_.tcp);
  }

  // Polls `done` until it holds; false after kTimeout.
  static bool WaitUntil(const std::function<bool()>& done) {
    const absl::Time deadline = absl::Now() + kTimeout;
    while (!done()) {
      if (absl::Now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
  }

  // A sampler on the real client; the fake clock unless `real_clock`.
  std::unique_ptr<core::CentralizedSampler> MakeSampler(bool real_clock = false) {
    core::CentralizedSamplerOptions options;
    options.api = client_;
    options.fallback = fallback_;
    if (!real_clock) {
      options.clock = [this] { return absl::FromUnixNanos(now_nanos_.load()); };
    }
    return *core::CentralizedSampler::Create(std::move(options));
  }

  void Advance(absl::Duration by) { now_nanos_ += absl::ToInt64Nanoseconds(by); }

  static std::string RuleFor(core::CentralizedSampler& sampler, std::string_view path) {
    return sampler.ShouldTrace({.path = path}).rule_name;
  }

  std::unique_ptr<FakeDaemon> daemon_;
  core::DaemonAddress address_;
  std::shared_ptr<emitter::SamplingClient> client_;
  std::shared_ptr<CountingFallback> fallback_ = std::make_shared<CountingFallback>();
  std::atomic<int64_t> now_nanos_{kStart * 1'000'000'000};
};

TEST_F(SamplingIntegrationTest, DaemonAddressNamesBothSides) {
  EXPECT_NE(daemon_->tcp_port(), 0);
  EXPECT_NE(daemon_->tcp_port(), daemon_->port());
  EXPECT_EQ(daemon_->daemon_address(), absl::StrCat("tcp:127.0.0.1:", daemon_->tcp_port(),
                                                    " udp:127.0.0.1:", daemon_->port()));
}

TEST_F(SamplingIntegrationTest, FetchesEveryPageOfRulesAndUsesThem) {
  daemon_->SetSamplingRules({Rule("Default", 10000, "*", 0, 0), Rule("api", 10, "/api/*", 1, 0),
                             Rule("health", 1, "/health", 0, 0)},
                            /*page_size=*/2);
  const std::unique_ptr<core::CentralizedSampler> sampler = MakeSampler();
  sampler->PollOnce();
  EXPECT_EQ(daemon_->rules_requests(), 2u);
  EXPECT_EQ(sampler->stats().rule_polls_ok, 1u);
  EXPECT_EQ(RuleFor(*sampler, "/api/items"), "api");
  EXPECT_FALSE(sampler->ShouldTrace({.path = "/health"}).sampled);
  EXPECT_FALSE(sampler->ShouldTrace({.path = "/"}).sampled);
  EXPECT_EQ(fallback_->calls, 0);
}

TEST_F(SamplingIntegrationTest, ReportsStatisticsAndAppliesTargets) {
  daemon_->SetSamplingRules({Rule("Default", 10000, "*", 0, 1)});
  core::SamplingTargets targets;
  targets.targets.push_back({"Default", 0.0, 2, kStart + 60, 10});
  daemon_->SetSamplingTargets(targets);
  const std::unique_ptr<core::CentralizedSampler> sampler = MakeSampler();
  sampler->PollOnce();
  // No quota yet: one borrowed trace this second.
  int sampled = 0;
  for (int i = 0; i < 3; ++i) sampled += sampler->ShouldTrace({}).sampled;
  EXPECT_EQ(sampled, 1);

  Advance(core::CentralizedSampler::kTargetsInterval + core::CentralizedSampler::kTargetsJitter);
  sampler->PollOnce();
  ASSERT_TRUE(daemon_->WaitForStatistics(1, kTimeout));
  EXPECT_THAT(daemon_->statistics(),
              ElementsAre(ElementsAre(
                  AllOf(Field(&core::SamplingStatistics::rule_name, "Default"),
                        Field(&core::SamplingStatistics::client_id, sampler->client_id()),
                        Field(&core::SamplingStatistics::timestamp, kStart + 10),
                        Field(&core::SamplingStatistics::request_count, 3),
                        Field(&core::SamplingStatistics::sampled_count, 1),
                        Field(&core::SamplingStatistics::borrow_count, 1)))));
  EXPECT_EQ(sampler->stats().target_polls_ok, 1u);

  // The quota of 2 a second now applies.
  Advance(absl::Seconds(1));
  sampled = 0;
  for (int i = 0; i < 5; ++i) sampled += sampler->ShouldTrace({}).sampled;
  EXPECT_EQ(sampled, 2);
}

TEST_F(SamplingIntegrationTest, DaemonDownFallsBackAndRecovers) {
  daemon_->SetSamplingRules({Rule("Default", 10000, "*", 1, 0)});
  const std::unique_ptr<core::CentralizedSampler> sampler = MakeSampler();
  sampler->PollOnce();
  ASSERT_EQ(RuleFor(*sampler, "/"), "Default");

  daemon_->StopSamplingApi();
  Advance(core::CentralizedSampler::kRulesInterval + core::CentralizedSampler::kRulesJitter);
  sampler->PollOnce();
  EXPECT_EQ(sampler->stats().rule_polls_failed, 1u);
  EXPECT_EQ(sampler->stats().target_polls_failed, 1u);  // the request above was due
  const absl::Status refused = sampler->RefreshRules();
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(refused.message()), HasSubstr(absl::StrCat(daemon_->tcp_port())));
  EXPECT_EQ(RuleFor(*sampler, "/"), "Default");  // the last good rules, for up to an hour
  EXPECT_EQ(fallback_->calls, 0);

  Advance(core::CentralizedSampler::kCacheTtl);
  sampler->PollOnce();
  EXPECT_EQ(RuleFor(*sampler, "/"), "");
  EXPECT_EQ(fallback_->calls, 1);

  ASSERT_TRUE(daemon_->RestartSamplingApi().ok());
  Advance(core::CentralizedSampler::kRulesRetryInterval);
  sampler->PollOnce();
  EXPECT_EQ(RuleFor(*sampler, "/"), "Default");
  EXPECT_EQ(fallback_->calls, 1);
  EXPECT_EQ(sampler->stats().rule_polls_ok, 2u);
}

TEST_F(SamplingIntegrationTest, GarbageAndServerErrorsKeepTheRules) {
  daemon_->SetSamplingRules({Rule("Default", 10000, "*", 1, 0)});
  const std::unique_ptr<core::CentralizedSampler> sampler = MakeSampler();
  ASSERT_TRUE(sampler->RefreshRules().ok());
  sampler->ShouldTrace({});

  daemon_->SetSamplingFailure(FakeDaemon::SamplingFailure::kGarbage);
  daemon_->SetSamplingRules({Rule("other", 1, "*", 1, 0)});
  const absl::Status garbage = sampler->RefreshRules();
  EXPECT_EQ(garbage.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(garbage.message()), HasSubstr("bad JSON"));
  EXPECT_FALSE(sampler->RefreshTargets().ok());

  daemon_->SetSamplingFailure(FakeDaemon::SamplingFailure::kHttp500);
  const absl::Status server_error = sampler->RefreshRules();
  EXPECT_THAT(std::string(server_error.message()), HasSubstr("HTTP 500"));
  EXPECT_EQ(RuleFor(*sampler, "/"), "Default");
  EXPECT_EQ(sampler->stats().rule_polls_failed, 2u);
  EXPECT_TRUE(daemon_->statistics().empty());

  daemon_->SetSamplingFailure(FakeDaemon::SamplingFailure::kNone);
  ASSERT_TRUE(sampler->RefreshRules().ok());
  EXPECT_EQ(RuleFor(*sampler, "/"), "other");
}

TEST_F(SamplingIntegrationTest, BackgroundPollerFetchesRulesAndStops) {
  daemon_->SetSamplingRules({Rule("Default", 10000, "*", 1, 0)});
  const std::unique_ptr<core::CentralizedSampler> sampler = MakeSampler(/*real_clock=*/true);
  ASSERT_TRUE(sampler->Start().ok());
  ASSERT_TRUE(WaitUntil([&] { return sampler->stats().rule_polls_ok == 1; }));
  sampler->Stop();
  EXPECT_EQ(RuleFor(*sampler, "/"), "Default");
  EXPECT_EQ(daemon_->rules_requests(), 1u);
}

// A timeout per read would let a daemon that sends a byte now and then hold a call (and Stop, and
// the process's exit) for as long as it likes: the call's deadline bounds it as a whole.
TEST_F(SamplingIntegrationTest, ATrickledAnswerEndsAtTheCallsDeadline) {
  emitter::SamplingClient client(address_.tcp, absl::Milliseconds(300));
  daemon_->SetSamplingFailure(FakeDaemon::SamplingFailure::kTrickle);
  std::future<absl::Status> call =
      std::async(std::launch::async, [&] { return client.GetSamplingRules().status(); });
  const bool returned = call.wait_for(std::chrono::seconds(20)) == std::future_status::ready;
  daemon_->SetSamplingFailure(FakeDaemon::SamplingFailure::kNone);  // ends the trickle
  ASSERT_TRUE(returned) << "still reading a trickle after 20 s; the call's timeout is 300 ms";
  const absl::Status status = call.get();
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  EXPECT_THAT(std::string(status.message()),
              AllOf(HasSubstr("/GetSamplingRules"), HasSubstr("no complete answer within 300ms")));

  // The next call runs normally, on a fresh connection.
  daemon_->SetSamplingRules({Rule("Default", 10000, "*", 1, 0)});
  absl::StatusOr<std::vector<core::SamplingRule>> rules = client.GetSamplingRules();
  ASSERT_TRUE(rules.ok()) << rules.status();
  EXPECT_THAT(*rules, ElementsAre(Field(&core::SamplingRule::rule_name, "Default")));
}

// A daemon that stops reading mid-request: the upload waits until the call's deadline, then
// gives up. SIGPIPE has its default action here, as in a service that never touched it: the
// client sends with MSG_NOSIGNAL.
TEST_F(SamplingIntegrationTest, AStalledUploadEndsAtTheCallsDeadline) {
  // Listens and never accepts: the kernel takes the connection and buffers what it can.
  uint16_t port = 0;
  const int listener = Listen(port);
  ASSERT_GE(listener, 0);

  // As in a service that never touched SIGPIPE (a test runner may have it ignored).
  struct sigaction default_action {
  }, previous{};
  default_action.sa_handler = SIG_DFL;
  ASSERT_EQ(sigaction(SIGPIPE, &default_action, &previous), 0);

  emitter::SamplingClient client({"127.0.0.1", port}, absl::Milliseconds(300));
  // ~40 MB of statistics: more than the loopback socket buffers hold.
  const std::vector<core::SamplingStatistics> statistics(
      200000, core::SamplingStatistics{.rule_name = std::string(150, 'r'), .client_id = "c"});
  const absl::Status status = client.GetSamplingTargets(statistics).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  sigaction(SIGPIPE, &previous, nullptr);
  close(listener);
}

// Whatever answers at the daemon's address (a wrong AWS_XRAY_DAEMON_ADDRESS, another service) is
// parsed within bounds. cpp-httplib 0.11.4, which the client used before, matched the status line
// with a std::regex recursing once per character: this answer overflowed the calling thread's
// stack and killed the process.
TEST_F(SamplingIntegrationTest, AnOverlongStatusLineFailsTheCallCleanly) {
  RawServer server("HTTP/1.1 200 " + std::string(100000, 'x') + "\r\n\r\n", true);
  ASSERT_TRUE(server.ok());
  emitter::SamplingClient client(server.endpoint());
  const absl::Status status = client.GetSamplingRules().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_THAT(std::string(status.message()),
              AllOf(HasSubstr("/GetSamplingRules"),
                    HasSubstr("status line and headers are over 16384 bytes")));
}

TEST_F(SamplingIntegrationTest, AnAnswerThatIsNotHttpFailsTheCall) {
  RawServer server("SSH-2.0-OpenSSH_9.2\r\n\r\n", true);
  ASSERT_TRUE(server.ok());
  emitter::SamplingClient client(server.endpoint());
  const absl::Status status = client.GetSamplingRules().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("not an HTTP/1.x answer"));
}

// Bodies framed each way HTTP/1.1 allows: chunked (the connection left open, so the last chunk
// must end the read), and ended by closing the connection.
TEST_F(SamplingIntegrationTest, ChunkedAndCloseDelimitedAnswersAreRead) {
  core::SamplingRulesPage page;
  page.rules = {Rule("Chunked", 10, "*", 0.5, 1)};
  const std::string json = core::EncodeSamplingRulesResponse(page);
  std::string chunked =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
      "Transfer-Encoding: chunked\r\n\r\n";
  for (size_t at = 0; at < json.size(); at += 7) {
    const std::string piece = json.substr(at, 7);
    chunked += absl::StrCat(absl::Hex(piece.size()), ";ext=1\r\n", piece, "\r\n");
  }
  chunked += "0\r\nX-Trailer: t\r\n\r\n";
  RawServer chunked_server(chunked, /*close_after=*/false);
  RawServer closing_server("HTTP/1.1 200 OK\r\n\r\n" + json, /*close_after=*/true);
  ASSERT_TRUE(chunked_server.ok() && closing_server.ok());
  for (RawServer* server : {&chunked_server, &closing_server}) {
    emitter::SamplingClient client(server->endpoint(), absl::Seconds(20));
    absl::StatusOr<std::vector<core::SamplingRule>> rules = client.GetSamplingRules();
    ASSERT_TRUE(rules.ok()) << rules.status();
    EXPECT_THAT(*rules, ElementsAre(Field(&core::SamplingRule::rule_name, "Chunked")));
  }
}

TEST_F(SamplingIntegrationTest, AnOversizeAnswerFailsWithoutBeingReadWhole) {
  daemon_->SetSamplingFailure(FakeDaemon::SamplingFailure::kOversize);
  const absl::Status status = client_->GetSamplingRules().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("larger than 1048576 bytes"));
  const absl::Status targets = client_->GetSamplingTargets({{.rule_name = "r"}}).status();
  EXPECT_EQ(targets.code(), absl::StatusCode::kResourceExhausted) << targets;
}

TEST_F(SamplingIntegrationTest, StopCancelsAPollInFlight) {
  core::CentralizedSamplerOptions options;
  options.api = std::make_shared<emitter::SamplingClient>(address_.tcp, absl::Seconds(120));
  options.fallback = fallback_;
  const std::unique_ptr<core::CentralizedSampler> sampler =
      *core::CentralizedSampler::Create(std::move(options));
  daemon_->SetSamplingFailure(FakeDaemon::SamplingFailure::kSilent);
  ASSERT_TRUE(sampler->Start().ok());
  ASSERT_TRUE(daemon_->WaitForRulesRequests(1, kTimeout));
  std::future<void> stop = std::async(std::launch::async, [&] { sampler->Stop(); });
  const bool stopped = stop.wait_for(std::chrono::seconds(20)) == std::future_status::ready;
  daemon_->SetSamplingFailure(FakeDaemon::SamplingFailure::kNone);  // ends the silence
  EXPECT_TRUE(stopped) << "Stop waited out the poll (timeout 120 s)";
  stop.get();
  EXPECT_EQ(sampler->stats().rule_polls_failed, 1u);
  EXPECT_EQ(sampler->stats().rule_polls_ok, 0u);
}

}  // namespace
}  // namespace xraysink::integration_tests
