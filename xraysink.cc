#include "xraysink.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/daemon_address.h"
#include "core/rule_sampler.h"
#include "emitter/sampling_client.h"

namespace xraysink {
namespace {

// The sampler `options` ask for, when the user set none; centralized sampling polls the daemon
// at `daemon_address` (the emitter's). `centralized` receives the centralized sampler, if one is
// built, for Tracing to start and stop.
absl::StatusOr<std::shared_ptr<core::Sampler>> MakeSampler(
    const TracingOptions& options, const std::string& daemon_address,
    std::shared_ptr<core::CentralizedSampler>& centralized) {
  std::shared_ptr<core::Sampler> local;  // null: the built-in rule (1 a second, then 5 %)
  if (!options.sampling_rules_file.empty()) {
    auto rules = std::make_shared<core::RuleSampler>();
    if (absl::Status loaded = rules->LoadFile(options.sampling_rules_file); !loaded.ok()) {
      return absl::Status(loaded.code(), absl::StrCat("sampling rules: ", loaded.message()));
    }
    local = std::move(rules);
  }
  if (!options.centralized_sampling) return local;
  absl::StatusOr<core::DaemonAddress> daemon = core::DaemonAddress::FromEnvironment(daemon_address);
  if (!daemon.ok()) return daemon.status();
  absl::StatusOr<std::unique_ptr<core::CentralizedSampler>> created =
      core::CentralizedSampler::Create(
          {.api = std::make_shared<emitter::SamplingClient>(daemon->tcp),
           .fallback = std::move(local),
           .origin = options.recorder.origin});
  if (!created.ok()) return created.status();
  centralized = *std::move(created);
  return centralized;
}

// A setting TracingOptions holds both at its top (`top`) and in `emitter` (`nested`): `nested`
// becomes `top` when `top` was set (differs from `top_default`), unless `nested` was set too
// (differs from `nested_default`) to something else, which is an error naming both (`format`
// shows a value).
template <typename T, typename Format>
absl::Status MergeSetting(absl::string_view what, absl::string_view field, const T& top,
                          const T& top_default, T& nested, const T& nested_default, Format format) {
  if (top == top_default) return absl::OkStatus();
  if (nested != nested_default && nested != top) {
    return absl::InvalidArgumentError(
        absl::StrCat("the ", what, " is set twice: TracingOptions::", field, " ", format(top),
                     " and TracingOptions::emitter.", field, " ", format(nested)));
  }
  nested = top;
  return absl::OkStatus();
}

}  // namespace

Tracing::Tracing(std::shared_ptr<emitter::UdpEmitter> emitter,
                 std::shared_ptr<core::Recorder> recorder,
                 std::shared_ptr<core::CentralizedSampler> centralized_sampler,
                 absl::Duration flush_timeout)
    : emitter_(std::move(emitter)),
      recorder_(std::move(recorder)),
      centralized_sampler_(std::move(centralized_sampler)),
      flush_timeout_(flush_timeout) {
  core::SetGlobalRecorder(recorder_);
}

Tracing::~Tracing() {
  // The sampler lives on with the recorder, but its thread must not outlive the setup.
  if (centralized_sampler_) centralized_sampler_->Stop();
  if (core::GlobalRecorderPtr() == recorder_) core::SetGlobalRecorder(nullptr);
  // Flushes, bounded by flush_timeout. The recorder may be kept alive (references from
  // GlobalRecorder()), and with it the emitter; the emitter's thread must not be.
  emitter_->Close();
}

bool Tracing::Flush(absl::Duration timeout) const { return emitter_->Flush(absl::Now() + timeout); }

absl::StatusOr<std::unique_ptr<Tracing>> Configure(TracingOptions options) {
  // The daemon address and the flush timeout can be set here or in `emitter`: whichever was
  // set is used, and two different values are an error rather than a silent choice.
  emitter::EmitterOptions emitter_options = options.emitter;
  if (absl::Status merged =
          MergeSetting("daemon address", "daemon_address", options.daemon_address, std::string(),
                       emitter_options.daemon_address, std::string(),
                       [](const std::string& value) { return "'" + value + "'"; });
      !merged.ok()) {
    return merged;
  }
  if (absl::Status merged = MergeSetting(
          "flush timeout", "flush_timeout", options.flush_timeout, TracingOptions{}.flush_timeout,
          emitter_options.flush_timeout, emitter::EmitterOptions{}.flush_timeout,
          [](absl::Duration value) { return absl::FormatDuration(value); });
      !merged.ok()) {
    return merged;
  }
  const absl::Duration flush_timeout = emitter_options.flush_timeout;
  const std::string daemon_address = emitter_options.daemon_address;
  absl::StatusOr<std::shared_ptr<emitter::UdpEmitter>> emitter =
      emitter::UdpEmitter::Create(std::move(emitter_options));
  if (!emitter.ok()) return emitter.status();
  std::shared_ptr<core::CentralizedSampler> centralized;
  if (options.recorder.sampler == nullptr) {
    absl::StatusOr<std::shared_ptr<core::Sampler>> sampler =
        MakeSampler(options, daemon_address, centralized);
    if (!sampler.ok()) return sampler.status();
    options.recorder.sampler = *std::move(sampler);
  }
  core::RecorderOptions recorder_options = std::move(options.recorder);
  recorder_options.sink = *emitter;
  if (!options.service_name.empty()) recorder_options.service_name = options.service_name;
  absl::StatusOr<std::shared_ptr<core::Recorder>> recorder =
      core::Recorder::Create(std::move(recorder_options));
  if (!recorder.ok()) return recorder.status();
  // A disabled SDK (e.g. AWS_XRAY_SDK_ENABLED=false) never asks the sampler: nothing to poll.
  if (centralized != nullptr && (*recorder)->enabled()) {
    if (absl::Status started = centralized->Start(); !started.ok()) return started;
  }
  return std::unique_ptr<Tracing>(new Tracing(*std::move(emitter), *std::move(recorder),
                                              std::move(centralized), flush_timeout));
}

}  // namespace xraysink
