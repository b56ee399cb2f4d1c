#ifndef XRAYSINK_XRAYSINK_H_
#define XRAYSINK_XRAYSINK_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/recorder.h"
#include "emitter/udp_emitter.h"

namespace xraysink {

// Everything a service needs to start tracing, in one place.
struct TracingOptions {
  std::string service_name;    // AWS_XRAY_TRACING_NAME wins
  std::string daemon_address;  // AWS_XRAY_DAEMON_ADDRESS wins; default 127.0.0.1:2000
  // Further recorder settings (sampler, context-missing strategy, log groups, ...). Its sink
  // and service name are set by Configure.
  core::RecorderOptions recorder;
  absl::Duration flush_timeout = absl::Seconds(1);
};

// The running tracing setup: a UDP emitter and the recorder that feeds it, installed as the
// global recorder. Destroying it flushes the emitter (bounded by flush_timeout) and uninstalls
// the recorder.
class Tracing {
 public:
  ~Tracing();
  core::Recorder& recorder() const { return *recorder_; }
  const std::shared_ptr<core::Recorder>& recorder_ptr() const { return recorder_; }
  emitter::UdpEmitter& emitter() const { return *emitter_; }
  // Waits until everything ended so far was sent, or the deadline passed.
  bool Flush(absl::Duration timeout) const;

 private:
  friend absl::StatusOr<std::unique_ptr<Tracing>> Configure(TracingOptions options);
  Tracing(std::shared_ptr<emitter::UdpEmitter> emitter, std::shared_ptr<core::Recorder> recorder,
          absl::Duration flush_timeout);

  std::shared_ptr<emitter::UdpEmitter> emitter_;
  std::shared_ptr<core::Recorder> recorder_;
  absl::Duration flush_timeout_;
};

// Creates the emitter and the recorder and installs the recorder globally. Errors are
// configuration errors a user can act on (e.g. a bad AWS_XRAY_DAEMON_ADDRESS).
absl::StatusOr<std::unique_ptr<Tracing>> Configure(TracingOptions options);

}  // namespace xraysink

#endif  // XRAYSINK_XRAYSINK_H_
