#ifndef XRAYSINK_LOGS_LOG_GROUP_H_
#define XRAYSINK_LOGS_LOG_GROUP_H_

#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/entity.h"
#include "core/recorder.h"

namespace xraysink::logs {

// A CloudWatch Logs group from its name (1-512 characters of A-Z a-z 0-9 _ - / . #) or its ARN
// (`arn:aws:logs:REGION:ACCOUNT:log-group:NAME` with an optional `:*`, any aws partition). An
// ARN gives both the name and the ARN (kept as written); a name gives no ARN. Anything else is an
// InvalidArgument error saying what is wrong.
absl::StatusOr<core::LogGroup> ParseLogGroup(std::string_view name_or_arn);

// Adds a log group to `options`, so that every sampled segment of the recorder created from them
// carries it in `aws.cloudwatch_logs` (spec 6.4: the array form, several groups allowed;
// subsegments carry none). Call before core::Recorder::Create (or xraysink::Configure): a
// recorder copies its options once. Adding a group already there changes nothing.
absl::Status AddLogGroup(core::RecorderOptions& options, std::string_view name_or_arn);

}  // namespace xraysink::logs

#endif  // XRAYSINK_LOGS_LOG_GROUP_H_
