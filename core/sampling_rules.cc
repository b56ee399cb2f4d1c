#include "core/sampling_rules.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/internal/reservoir.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"

namespace xraysink::core {
namespace {

using rapidjson::Value;

constexpr char kFixedTargetProblem[] = "must be an integer in [0, 16777215]";
constexpr char kRateProblem[] = "must be a number in [0, 1]";
static_assert(internal::kMaxFixedTarget == 16777215);

absl::Status Invalid(std::string_view path, std::string_view problem) {
  return absl::InvalidArgumentError(std::string(path) + ": " + std::string(problem));
}

std::string Join(std::string_view path, std::string_view key) {
  return path.empty() ? std::string(key) : std::string(path) + "." + std::string(key);
}

std::string RulePath(size_t index) { return "rules[" + std::to_string(index) + "]"; }

std::string_view Name(const Value& name) { return {name.GetString(), name.GetStringLength()}; }

// Rejects duplicate keys and keys not in `allowed`; `why_not(key)` explains an unknown key.
template <typename WhyNot>
absl::Status CheckKeys(const Value& object, std::string_view path,
                       std::initializer_list<std::string_view> allowed, WhyNot why_not) {
  for (auto member = object.MemberBegin(); member != object.MemberEnd(); ++member) {
    const std::string_view key = Name(member->name);
    for (auto earlier = object.MemberBegin(); earlier != member; ++earlier) {
      if (Name(earlier->name) == key) return Invalid(Join(path, key), "duplicate key");
    }
    bool known = false;
    for (std::string_view name : allowed) known = known || name == key;
    if (!known) return Invalid(Join(path, key), why_not(key));
  }
  return absl::OkStatus();
}

const Value* Find(const Value& object, std::string_view key) {
  for (auto member = object.MemberBegin(); member != object.MemberEnd(); ++member) {
    if (Name(member->name) == key) return &member->value;
  }
  return nullptr;
}

absl::Status ReadString(const Value& object, std::string_view path, std::string_view key,
                        bool required, std::string& out) {
  const Value* value = Find(object, key);
  if (value == nullptr) return required ? Invalid(Join(path, key), "missing") : absl::OkStatus();
  if (!value->IsString()) return Invalid(Join(path, key), "must be a string");
  out.assign(value->GetString(), value->GetStringLength());
  return absl::OkStatus();
}

// Type checks only: the ranges are ValidateLocalRules' job, so both paths report alike.
absl::Status ReadTargetAndRate(const Value& object, std::string_view path, int& fixed_target,
                               double& rate) {
  const Value* target = Find(object, "fixed_target");
  if (target == nullptr) return Invalid(Join(path, "fixed_target"), "missing");
  // Whole numbers written as 3.0 are accepted; anything that does not fit an int cannot be valid.
  if (!target->IsNumber() || target->GetDouble() != std::floor(target->GetDouble()) ||
      std::fabs(target->GetDouble()) > std::numeric_limits<int>::max()) {
    return Invalid(Join(path, "fixed_target"), kFixedTargetProblem);
  }
  fixed_target = static_cast<int>(target->GetDouble());
  const Value* fraction = Find(object, "rate");
  if (fraction == nullptr) return Invalid(Join(path, "rate"), "missing");
  if (!fraction->IsNumber()) return Invalid(Join(path, "rate"), kRateProblem);
  rate = fraction->GetDouble();
  return absl::OkStatus();
}

absl::Status CheckTargetAndRate(std::string_view path, int fixed_target, double rate) {
  if (fixed_target < 0 || fixed_target > internal::kMaxFixedTarget) {
    return Invalid(Join(path, "fixed_target"), kFixedTargetProblem);
  }
  if (!(rate >= 0 && rate <= 1)) return Invalid(Join(path, "rate"), kRateProblem);
  return absl::OkStatus();
}

// `host_key` names the host pattern as the document did (`service_name` in version 1).
absl::Status Validate(const LocalRules& rules, std::string_view host_key) {
  for (size_t i = 0; i < rules.rules.size(); ++i) {
    const LocalRule& rule = rules.rules[i];
    const std::string path = RulePath(i);
    const std::pair<std::string_view, const std::string*> patterns[] = {
        {host_key, &rule.host}, {"http_method", &rule.http_method}, {"url_path", &rule.url_path}};
    for (const auto& [key, pattern] : patterns) {
      if (pattern->empty()) return Invalid(Join(path, key), "must not be empty");
    }
    if (absl::Status status = CheckTargetAndRate(path, rule.fixed_target, rule.rate);
        !status.ok()) {
      return status;
    }
  }
  return CheckTargetAndRate("default", rules.default_rule.fixed_target, rules.default_rule.rate);
}

absl::Status SyntaxError(std::string_view json, const rapidjson::Document& document) {
  const size_t offset = std::min(document.GetErrorOffset(), json.size());
  const std::string_view before = json.substr(0, offset);
  size_t line = 1;
  for (char c : before) line += c == '\n';
  const size_t last_newline = before.rfind('\n');
  const size_t column = last_newline == std::string_view::npos ? offset + 1 : offset - last_newline;
  return absl::InvalidArgumentError("JSON syntax error at byte " + std::to_string(offset) +
                                    " (line " + std::to_string(line) + ", column " +
                                    std::to_string(column) +
                                    "): " + rapidjson::GetParseError_En(document.GetParseError()));
}

absl::StatusOr<LocalRule> ParseRule(const Value& value, size_t index, int version) {
  const std::string path = RulePath(index);
  if (!value.IsObject()) return Invalid(path, "must be an object");
  const std::string_view host_key = version == 2 ? "host" : "service_name";
  const std::string_view other_host_key = version == 2 ? "service_name" : "host";
  absl::Status status = CheckKeys(
      value, path, {"description", host_key, "http_method", "url_path", "fixed_target", "rate"},
      [&](std::string_view key) {
        if (key != other_host_key) return std::string("unknown key");
        return "not a version " + std::to_string(version) + " key (version " +
               std::to_string(version) + " uses " + std::string(host_key) + ")";
      });
  LocalRule rule;
  if (status.ok()) status = ReadString(value, path, "description", false, rule.description);
  if (status.ok()) status = ReadString(value, path, host_key, true, rule.host);
  if (status.ok()) status = ReadString(value, path, "http_method", true, rule.http_method);
  if (status.ok()) status = ReadString(value, path, "url_path", true, rule.url_path);
  if (status.ok()) status = ReadTargetAndRate(value, path, rule.fixed_target, rule.rate);
  if (!status.ok()) return status;
  return rule;
}

}  // namespace

absl::Status ValidateLocalRules(const LocalRules& rules) { return Validate(rules, "host"); }

absl::StatusOr<LocalRules> ParseLocalRules(std::string_view json) {
  rapidjson::Document document;
  // Iterative: a deeply nested document must not overflow the stack.
  document.Parse<rapidjson::kParseFullPrecisionFlag | rapidjson::kParseIterativeFlag>(json.data(),
                                                                                      json.size());
  if (document.HasParseError()) return SyntaxError(json, document);
  if (!document.IsObject()) return absl::InvalidArgumentError("the document must be an object");
  if (absl::Status status = CheckKeys(document, "", {"version", "rules", "default"},
                                      [](std::string_view) { return "unknown key"; });
      !status.ok()) {
    return status;
  }

  const Value* version_value = Find(document, "version");
  if (version_value == nullptr) return Invalid("version", "missing (must be 1 or 2)");
  if (!version_value->IsInt() || (version_value->GetInt() != 1 && version_value->GetInt() != 2)) {
    return Invalid("version", "must be 1 or 2");
  }
  const int version = version_value->GetInt();

  LocalRules rules;
  const Value* default_rule = Find(document, "default");
  if (default_rule == nullptr) return Invalid("default", "missing (a default rule is required)");
  if (!default_rule->IsObject()) return Invalid("default", "must be an object");
  absl::Status status = CheckKeys(
      *default_rule, "default", {"description", "fixed_target", "rate"}, [](std::string_view key) {
        const bool pattern =
            key == "host" || key == "service_name" || key == "http_method" || key == "url_path";
        return pattern ? "not allowed in the default rule (it has only fixed_target "
                         "and rate)"
                       : "unknown key";
      });
  if (status.ok()) {
    status = ReadTargetAndRate(*default_rule, "default", rules.default_rule.fixed_target,
                               rules.default_rule.rate);
  }
  if (!status.ok()) return status;

  if (const Value* list = Find(document, "rules"); list != nullptr) {
    if (!list->IsArray()) return Invalid("rules", "must be an array");
    rules.rules.reserve(list->Size());
    for (rapidjson::SizeType i = 0; i < list->Size(); ++i) {
      absl::StatusOr<LocalRule> rule = ParseRule((*list)[i], i, version);
      if (!rule.ok()) return rule.status();
      rules.rules.push_back(*std::move(rule));
    }
  }
  if (status = Validate(rules, version == 2 ? "host" : "service_name"); !status.ok()) {
    return status;
  }
  return rules;
}

absl::StatusOr<LocalRules> LoadLocalRulesFile(const std::string& path) {
  const std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (file == nullptr) return absl::ErrnoToStatus(errno, path + ": cannot open");
  std::string text;
  char buffer[4096];
  size_t read;
  while ((read = std::fread(buffer, 1, sizeof(buffer), file.get())) > 0) {
    text.append(buffer, read);
    // Real rule files are a few KB: this is not one (or it is /dev/zero).
    if (text.size() > kMaxLocalRulesFileBytes) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": more than ", kMaxLocalRulesFileBytes,
                                                     " bytes; not a sampling rules file"));
    }
  }
  if (std::ferror(file.get())) return absl::ErrnoToStatus(errno, path + ": cannot read");
  absl::StatusOr<LocalRules> rules = ParseLocalRules(text);
  if (!rules.ok()) {
    return absl::InvalidArgumentError(path + ": " + std::string(rules.status().message()));
  }
  return rules;
}

}  // namespace xraysink::core
