#ifndef XRAYSINK_INTEGRATION_TESTS_FAKE_DAEMON_H_
#define XRAYSINK_INTEGRATION_TESTS_FAKE_DAEMON_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/centralized_sampler.h"
#include "tools/local_daemon/datagram.h"
#include "tools/local_daemon/trace.h"
#include "tools/local_daemon/trace_assembler.h"
#include "tools/local_daemon/udp_listener.h"

namespace httplib {
struct Request;
struct Response;
class Server;
}  // namespace httplib

namespace xraysink::integration_tests {

// The X-Ray daemon for tests. UDP side: listens on 127.0.0.1 (a free port) on a background
// thread, parses every datagram as the daemon and the service would, keeps the malformed ones
// apart, and assembles the documents into traces. TCP side: the sampling API (spec 3.4) on
// another free 127.0.0.1 port, answering with rules and targets the test scripts and recording
// the statistics it receives. Every accessor returns a snapshot and may be called from any
// thread.
class FakeDaemon {
 public:
  // How the sampling endpoints misbehave on demand: garbage (200, not JSON), HTTP 500, silence
  // (the request is read and never answered), a trickle (200, then a chunked body of one byte
  // every 20 ms, never finished) or an oversize answer (200 with a 16 MiB body). Silence and the
  // trickle last until the failure is set back, the client goes away or the daemon stops.
  enum class SamplingFailure { kNone, kGarbage, kHttp500, kSilent, kTrickle, kOversize };

  static absl::StatusOr<std::unique_ptr<FakeDaemon>> Start();
  ~FakeDaemon();
  FakeDaemon(const FakeDaemon&) = delete;
  FakeDaemon& operator=(const FakeDaemon&) = delete;

  uint16_t port() const { return listener_->port(); }
  // "127.0.0.1:PORT", for AWS_XRAY_DAEMON_ADDRESS or an emitter's options.
  std::string address() const;
  uint16_t tcp_port() const { return tcp_port_; }
  // "tcp:127.0.0.1:TCP_PORT udp:127.0.0.1:PORT": both sides.
  std::string daemon_address() const;

  // Waits until at least `documents` well-formed documents (or `datagrams` datagrams of any
  // kind) have arrived; false if `timeout` passed first.
  bool WaitFor(size_t documents, absl::Duration timeout);
  bool WaitForDatagrams(size_t datagrams, absl::Duration timeout);

  // Every datagram as received, malformed ones included (e.g. to check sizes).
  std::vector<std::string> datagrams() const;
  // The well-formed documents, in arrival order.
  std::vector<tools::ReceivedDocument> documents() const;
  size_t malformed_count() const;
  // Why each malformed datagram was rejected, in arrival order.
  std::vector<std::string> malformed_reasons() const;

  // Trace ids in order of first arrival.
  std::vector<std::string> trace_ids() const;
  // The trace as assembled so far, or nullopt for an unknown id. For a trace of several
  // segments (two services, a background task), Trace::complete() alone does not say that all
  // have come: a segment whose parent segment has not arrived yet is a root (its parent may be
  // another service's), and datagrams arrive in no set order (services send independently, and
  // the emitter groups a batch's datagrams by size). Wait with WaitForTrace instead.
  std::optional<tools::Trace> trace(std::string_view trace_id) const;
  // Waits until trace `trace_id` is complete and holds an entity of each of `names`; false if
  // `timeout` passed first.
  bool WaitForTrace(std::string_view trace_id, std::initializer_list<std::string_view> names,
                    absl::Duration timeout);
  // The first trace (in arrival order) with an entity of this name, or nullopt.
  std::optional<tools::Trace> TraceWithEntity(std::string_view name) const;

  // POST /GetSamplingRules answers with these, `page_size` a page (0: all in one) linked by
  // NextToken. None until set.
  void SetSamplingRules(std::vector<core::SamplingRule> rules, size_t page_size = 0);
  // POST /SamplingTargets answers with these. None until set.
  void SetSamplingTargets(core::SamplingTargets targets);
  // Both endpoints misbehave so until set back to kNone.
  void SetSamplingFailure(SamplingFailure failure);
  // Closes the TCP port, so connections are refused, as with a daemon that is down.
  void StopSamplingApi();
  // Opens the same TCP port again.
  absl::Status RestartSamplingApi();

  // GetSamplingRules requests received, failed ones included.
  size_t rules_requests() const;
  bool WaitForRulesRequests(size_t requests, absl::Duration timeout);
  // Every well-formed statistics report received, in order.
  std::vector<std::vector<core::SamplingStatistics>> statistics() const;
  bool WaitForStatistics(size_t reports, absl::Duration timeout);

 private:
  explicit FakeDaemon(std::unique_ptr<tools::UdpListener> listener);
  void Receive();
  bool WaitUntil(absl::Duration timeout, const std::function<bool()>& done);
  // Serves the sampling API on `port` (0: a free one) until StopSamplingApi.
  absl::Status StartSamplingApi(uint16_t port);
  // The scripted failure, if any, as the response; true when it answered (`lock` holds mu_;
  // silence waits on it).
  bool AnswerScriptedFailure(std::unique_lock<std::mutex>& lock, httplib::Response& response);
  void ServeRules(const httplib::Request& request, httplib::Response& response);
  // The scripted rules page the request asks for (under mu_).
  void AnswerRules(const httplib::Request& request, httplib::Response& response) const;
  void ServeTargets(const httplib::Request& request, httplib::Response& response);

  const std::unique_ptr<tools::UdpListener> listener_;
  std::atomic<bool> stopping_{false};

  mutable std::mutex mu_;
  std::condition_variable arrived_;
  std::vector<std::string> datagrams_;
  std::vector<tools::ReceivedDocument> documents_;
  std::vector<std::string> malformed_reasons_;
  // Traces are only read, never finished here: the quiet period does not matter.
  tools::TraceAssembler assembler_{absl::ZeroDuration()};
  std::vector<core::SamplingRule> sampling_rules_;
  size_t rules_page_size_ = 0;
  core::SamplingTargets sampling_targets_;
  SamplingFailure sampling_failure_ = SamplingFailure::kNone;
  bool sampling_api_stopping_ = false;  // ends silences and trickles
  size_t rules_requests_ = 0;
  std::vector<std::vector<core::SamplingStatistics>> statistics_;

  // The sampling API; started and stopped by the owning thread only.
  uint16_t tcp_port_ = 0;
  std::unique_ptr<httplib::Server> http_;
  std::thread http_thread_;

  std::thread receiver_;  // last: starts once everything above exists
};

}  // namespace xraysink::integration_tests

#endif  // XRAYSINK_INTEGRATION_TESTS_FAKE_DAEMON_H_
