#include "core/config.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <string>

namespace xraysink::core {
namespace {

std::string Lower(std::string_view value) {
  std::string lower(value);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower;
}

const char* Env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : nullptr;
}

}  // namespace

absl::StatusOr<ContextMissing> ParseContextMissing(std::string_view value) {
  const std::string lower = Lower(value);
  if (lower == "log_error") return ContextMissing::kLogError;
  if (lower == "runtime_error") return ContextMissing::kRuntimeError;
  if (lower == "ignore_error") return ContextMissing::kIgnoreError;
  return absl::InvalidArgumentError("context missing strategy '" + std::string(value) +
                                    "' is not one of LOG_ERROR, RUNTIME_ERROR, IGNORE_ERROR");
}

bool ParseSdkEnabled(std::string_view value) {
  const std::string lower = Lower(value);
  return !(lower == "n" || lower == "no" || lower == "f" || lower == "false" || lower == "off" ||
           lower == "0");
}

EnvironmentSettings EnvironmentSettings::Read() {
  EnvironmentSettings settings;
  if (const char* enabled = Env("AWS_XRAY_SDK_ENABLED")) {
    settings.sdk_enabled = ParseSdkEnabled(enabled);
    const std::string lower = Lower(enabled);
    static const char* const kKnown[] = {"y", "yes", "t", "true",  "on",  "1",
                                         "n", "no",  "f", "false", "off", "0"};
    if (std::none_of(std::begin(kKnown), std::end(kKnown),
                     [&](const char* known) { return lower == known; })) {
      settings.warnings.push_back(std::string("AWS_XRAY_SDK_ENABLED='") + enabled +
                                  "' is not a boolean; tracing stays enabled");
    }
  }
  if (const char* strategy = Env("AWS_XRAY_CONTEXT_MISSING")) {
    absl::StatusOr<ContextMissing> parsed = ParseContextMissing(strategy);
    if (parsed.ok()) {
      settings.context_missing = *parsed;
    } else {
      settings.warnings.push_back("AWS_XRAY_CONTEXT_MISSING ignored: " +
                                  std::string(parsed.status().message()));
    }
  }
  if (const char* name = Env("AWS_XRAY_TRACING_NAME")) settings.tracing_name = name;
  if (const char* address = Env("AWS_XRAY_DAEMON_ADDRESS")) settings.daemon_address = address;
  return settings;
}

}  // namespace xraysink::core
