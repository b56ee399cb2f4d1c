#ifndef XRAYSINK_XRAYSINK_H_
#define XRAYSINK_XRAYSINK_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/centralized_sampler.h"
#include "core/recorder.h"
#include "emitter/udp_emitter.h"

namespace xraysink {

// Everything a service needs to start tracing, in one place.
struct TracingOptions {
  std::string service_name;    // AWS_XRAY_TRACING_NAME wins
  std::string daemon_address;  // AWS_XRAY_DAEMON_ADDRESS wins; default 127.0.0.1:2000

  // Sampling, as the AWS SDKs offer it. Both are ignored (no file is read, nothing polls) when
  // recorder.sampler is set: that sampler is used as is.
  //
  // Local rules (JSON, version 1 or 2). Empty: 1 trace a second, then 5 %. A file that cannot
  // be read or is not valid fails Configure with the problem and the path.
  std::string sampling_rules_file;
  // Rules and quotas from the X-Ray service through the daemon's TCP endpoint (the `tcp:` part
  // of the daemon address), polled on a background thread while the recorder is enabled. The
  // local rules decide until the first rules arrive, for requests no centralized rule matches,
  // and once the rules are an hour old (the daemon unreachable since). False: the local rules
  // alone.
  bool centralized_sampling = true;

  // Further recorder settings (context-missing strategy, origin, log groups, ...). Its sink
  // and service name are set by Configure; its sampler, when set, replaces the above.
  core::RecorderOptions recorder;
  // Further emitter settings (queue capacity, batch and idle delays, caller_serializes_above).
  // Its daemon address and flush timeout may be set there or in the fields here, not both with
  // different values (Configure then fails, naming both).
  emitter::EmitterOptions emitter;
  absl::Duration flush_timeout = absl::Seconds(1);
};

// The running tracing setup: a UDP emitter and the recorder that feeds it, installed as the
// global recorder, and the centralized sampling poller if any. Destroying it stops the poller
// (waiting for a poll in flight, bounded by the sampling client's timeouts), flushes the
// emitter (bounded by flush_timeout) and uninstalls the recorder.
class Tracing {
 public:
  ~Tracing();
  core::Recorder& recorder() const { return *recorder_; }
  const std::shared_ptr<core::Recorder>& recorder_ptr() const { return recorder_; }
  emitter::UdpEmitter& emitter() const { return *emitter_; }
  // The centralized sampler Configure built (e.g. for its poll counters); null when it built
  // none (centralized_sampling off, or the user's own recorder.sampler).
  core::CentralizedSampler* centralized_sampler() const { return centralized_sampler_.get(); }
  // Waits until everything ended so far was sent, or the deadline passed.
  bool Flush(absl::Duration timeout) const;

 private:
  friend absl::StatusOr<std::unique_ptr<Tracing>> Configure(TracingOptions options);
  Tracing(std::shared_ptr<emitter::UdpEmitter> emitter, std::shared_ptr<core::Recorder> recorder,
          std::shared_ptr<core::CentralizedSampler> centralized_sampler,
          absl::Duration flush_timeout);

  std::shared_ptr<emitter::UdpEmitter> emitter_;
  std::shared_ptr<core::Recorder> recorder_;
  // Shared with the recorder, which may outlive this (it keeps deciding, without polling).
  std::shared_ptr<core::CentralizedSampler> centralized_sampler_;
  absl::Duration flush_timeout_;
};

// Creates the emitter, the sampler and the recorder, installs the recorder globally and starts
// the sampling poller. Errors are configuration errors a user can act on (e.g. a bad
// AWS_XRAY_DAEMON_ADDRESS, a bad sampling rules file).
absl::StatusOr<std::unique_ptr<Tracing>> Configure(TracingOptions options);

}  // namespace xraysink

#endif  // XRAYSINK_XRAYSINK_H_
