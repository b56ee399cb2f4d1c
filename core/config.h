#ifndef XRAYSINK_CORE_CONFIG_H_
#define XRAYSINK_CORE_CONFIG_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace xraysink::core {

// What happens when code needs the current segment and its flow has none (spec 5.4).
enum class ContextMissing { kLogError, kRuntimeError, kIgnoreError };

// LOG_ERROR, RUNTIME_ERROR or IGNORE_ERROR, any case.
absl::StatusOr<ContextMissing> ParseContextMissing(std::string_view value);

// AWS_XRAY_SDK_ENABLED as the SDKs read it: y yes t true on 1 -> true; n no f false off 0 ->
// false (any case); anything else -> true.
bool ParseSdkEnabled(std::string_view value);

// The environment variables the AWS SDKs honour, read once. Unset or empty variables stay
// nullopt; an invalid AWS_XRAY_CONTEXT_MISSING is ignored with a warning, an invalid
// AWS_XRAY_SDK_ENABLED means enabled, with a warning.
struct EnvironmentSettings {
  std::optional<bool> sdk_enabled;                // AWS_XRAY_SDK_ENABLED
  std::optional<ContextMissing> context_missing;  // AWS_XRAY_CONTEXT_MISSING
  std::optional<std::string> tracing_name;        // AWS_XRAY_TRACING_NAME
  std::optional<std::string> daemon_address;      // AWS_XRAY_DAEMON_ADDRESS (parsed by its user)
  std::vector<std::string> warnings;

  static EnvironmentSettings Read();
};

}  // namespace xraysink::core

#endif  // XRAYSINK_CORE_CONFIG_H_
