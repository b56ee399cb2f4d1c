#ifndef XRAYSINK_INTEGRATION_TESTS_FAKE_DAEMON_H_
#define XRAYSINK_INTEGRATION_TESTS_FAKE_DAEMON_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tools/local_daemon/datagram.h"
#include "tools/local_daemon/trace.h"
#include "tools/local_daemon/trace_assembler.h"
#include "tools/local_daemon/udp_listener.h"

namespace xraysink::integration_tests {

// The X-Ray daemon's UDP side for tests: listens on 127.0.0.1 (a free port) on a background
// thread, parses every datagram as the daemon and the service would, keeps the malformed ones
// apart, and assembles the documents into traces. Every accessor returns a snapshot and may be
// called from any thread.
class FakeDaemon {
 public:
  static absl::StatusOr<std::unique_ptr<FakeDaemon>> Start();
  ~FakeDaemon();
  FakeDaemon(const FakeDaemon&) = delete;
  FakeDaemon& operator=(const FakeDaemon&) = delete;

  uint16_t port() const { return listener_->port(); }
  // "127.0.0.1:PORT", for AWS_XRAY_DAEMON_ADDRESS or an emitter's options.
  std::string address() const;

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
  // The trace as assembled so far, or nullopt for an unknown id.
  std::optional<tools::Trace> trace(std::string_view trace_id) const;
  // The first trace (in arrival order) with an entity of this name, or nullopt.
  std::optional<tools::Trace> TraceWithEntity(std::string_view name) const;

 private:
  explicit FakeDaemon(std::unique_ptr<tools::UdpListener> listener);
  void Receive();
  bool WaitUntil(absl::Duration timeout, const std::function<bool()>& done);

  const std::unique_ptr<tools::UdpListener> listener_;
  std::atomic<bool> stopping_{false};

  mutable std::mutex mu_;
  std::condition_variable arrived_;
  std::vector<std::string> datagrams_;
  std::vector<tools::ReceivedDocument> documents_;
  std::vector<std::string> malformed_reasons_;
  // Traces are only read, never finished here: the quiet period does not matter.
  tools::TraceAssembler assembler_{absl::ZeroDuration()};

  std::thread receiver_;  // last: starts once everything above exists
};

}  // namespace xraysink::integration_tests

#endif  // XRAYSINK_INTEGRATION_TESTS_FAKE_DAEMON_H_
