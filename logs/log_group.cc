#include "logs/log_group.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace xraysink::logs {
namespace {

constexpr size_t kMaxNameLength = 512;
constexpr std::string_view kArnPrefix = "arn:";
constexpr std::string_view kArnForm = "arn:aws:logs:REGION:ACCOUNT:log-group:NAME[:*]";

// Abseil's string_view is not std's here.
absl::string_view Absl(std::string_view text) { return {text.data(), text.size()}; }

bool IsNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '/' ||
         c == '.' || c == '#';
}

absl::Status CheckName(std::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("log group name is empty");
  if (name.size() > kMaxNameLength) {
    return absl::InvalidArgumentError(absl::StrCat("log group name is ", name.size(),
                                                   " characters long; at most ", kMaxNameLength,
                                                   " are allowed"));
  }
  const auto bad = std::find_if_not(name.begin(), name.end(), IsNameChar);
  if (bad != name.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "log group name '", Absl(name), "' has the character '", Absl(std::string_view(&*bad, 1)),
        "' at position ", bad - name.begin(), "; allowed are A-Z a-z 0-9 _ - / . #"));
  }
  return absl::OkStatus();
}

// Splits off the text up to the next ':' (all of `rest` when there is none).
std::string_view NextPart(std::string_view& rest) {
  const size_t colon = rest.find(':');
  const std::string_view part = rest.substr(0, colon);
  rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
  return part;
}

absl::StatusOr<core::LogGroup> ParseArn(std::string_view arn) {
  const auto invalid = [arn](absl::string_view problem) {
    return absl::InvalidArgumentError(
        absl::StrCat("log group ARN '", Absl(arn), "' ", problem, "; expected ", Absl(kArnForm)));
  };
  std::string_view rest = arn.substr(kArnPrefix.size());
  const std::string_view partition = NextPart(rest);
  if (partition != "aws" && partition.substr(0, 4) != "aws-") {
    return invalid("has no aws partition");
  }
  if (NextPart(rest) != "logs") return invalid("is not a CloudWatch Logs ARN");
  const std::string_view region = NextPart(rest);
  if (region.empty() || !std::all_of(region.begin(), region.end(), [](char c) {
        return absl::ascii_islower(static_cast<unsigned char>(c)) ||
               absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '-';
      })) {
    return invalid("has no valid region");
  }
  const std::string_view account = NextPart(rest);
  if (account.size() != 12 || !std::all_of(account.begin(), account.end(), [](char c) {
        return absl::ascii_isdigit(static_cast<unsigned char>(c));
      })) {
    return invalid("has no 12-digit account id");
  }
  if (NextPart(rest) != "log-group") return invalid("does not name a log group");
  const std::string_view name = NextPart(rest);
  if (!rest.empty() && rest != "*") return invalid("has text after the log group name");
  if (absl::Status valid = CheckName(name); !valid.ok()) return invalid(valid.message());
  return core::LogGroup{.log_group = std::string(name), .arn = std::string(arn)};
}

}  // namespace

absl::StatusOr<core::LogGroup> ParseLogGroup(std::string_view name_or_arn) {
  // ':' is not allowed in names, so "arn:" can only start an ARN.
  if (name_or_arn.substr(0, kArnPrefix.size()) == kArnPrefix) return ParseArn(name_or_arn);
  if (absl::Status valid = CheckName(name_or_arn); !valid.ok()) return valid;
  return core::LogGroup{.log_group = std::string(name_or_arn), .arn = ""};
}

absl::Status AddLogGroup(core::RecorderOptions& options, std::string_view name_or_arn) {
  absl::StatusOr<core::LogGroup> group = ParseLogGroup(name_or_arn);
  if (!group.ok()) return group.status();
  std::vector<core::LogGroup>& groups = options.aws.cloudwatch_logs;
  const bool known = std::any_of(groups.begin(), groups.end(), [&](const core::LogGroup& known) {
    return known.log_group == group->log_group && known.arn == group->arn;
  });
  if (!known) groups.push_back(*std::move(group));
  return absl::OkStatus();
}

}  // namespace xraysink::logs
