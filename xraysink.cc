#include "xraysink.h"

#include <utility>

namespace xraysink {

Tracing::Tracing(std::shared_ptr<emitter::UdpEmitter> emitter,
                 std::shared_ptr<core::Recorder> recorder, absl::Duration flush_timeout)
    : emitter_(std::move(emitter)), recorder_(std::move(recorder)), flush_timeout_(flush_timeout) {
  core::SetGlobalRecorder(recorder_);
}

Tracing::~Tracing() {
  if (core::GlobalRecorderPtr() == recorder_) core::SetGlobalRecorder(nullptr);
  Flush(flush_timeout_);
}

bool Tracing::Flush(absl::Duration timeout) const {
  return emitter_->Flush(absl::Now() + timeout);
}

absl::StatusOr<std::unique_ptr<Tracing>> Configure(TracingOptions options) {
  emitter::EmitterOptions emitter_options;
  emitter_options.daemon_address = options.daemon_address;
  absl::StatusOr<std::shared_ptr<emitter::UdpEmitter>> emitter =
      emitter::UdpEmitter::Create(std::move(emitter_options));
  if (!emitter.ok()) return emitter.status();
  core::RecorderOptions recorder_options = std::move(options.recorder);
  recorder_options.sink = *emitter;
  if (!options.service_name.empty()) recorder_options.service_name = options.service_name;
  absl::StatusOr<std::shared_ptr<core::Recorder>> recorder =
      core::Recorder::Create(std::move(recorder_options));
  if (!recorder.ok()) return recorder.status();
  return std::unique_ptr<Tracing>(
      new Tracing(*std::move(emitter), *std::move(recorder), options.flush_timeout));
}

}  // namespace xraysink
