#ifndef XRAYSINK_CORE_SAMPLING_RULES_H_
#define XRAYSINK_CORE_SAMPLING_RULES_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace xraysink::core {

// One custom local sampling rule (spec 3.2). The patterns are X-Ray wildcards (`*` any run,
// `?` one character, spec 3.3), matched without regard to ASCII case. A request that lacks an
// attribute (a background task has no host, method or path) matches only the pattern `*`, so such
// requests fall through to the default rule instead of hitting the first custom rule.
struct LocalRule {
  std::string description;  // for people only
  // Matched against the request's Host header; `host` in version 2, `service_name` in version 1.
  std::string host = "*";
  std::string http_method = "*";
  std::string url_path = "*";
  int fixed_target = 0;  // traces taken each second before `rate` applies
  double rate = 0;       // fraction of the remaining requests, in [0, 1]
};

// What every request no custom rule matches gets; the document's `default` object.
struct LocalDefaultRule {
  int fixed_target = 1;
  double rate = 0.05;
};

// A local sampling rule document. As constructed, the SDKs' built-in one: no custom rules, the
// first request of each second and 5 % of the rest.
struct LocalRules {
  std::vector<LocalRule> rules;  // tried in order, first match wins
  LocalDefaultRule default_rule;
};

// Checks rules built in code as the parser checks a document: every pattern non-empty,
// fixed_target in [0, 16777215], rate in [0, 1]. The message names the field by its JSON path,
// e.g. `rules[2].rate: must be a number in [0, 1]`.
absl::Status ValidateLocalRules(const LocalRules& rules);

// Parses a local rule document, version 2
//   {"version": 2, "rules": [{"description", "host", "http_method", "url_path", "fixed_target",
//    "rate"}, ...], "default": {"fixed_target", "rate"}}
// or version 1 (`service_name` in place of `host`). `rules` and `description` are optional;
// every other rule key is required, and unknown keys, keys of the other version, duplicate keys
// and keys other than fixed_target, rate and description in `default` are rejected. Errors are
// InvalidArgument: a syntax error gives the byte offset and line:column, anything else the JSON
// path of the offending value.
absl::StatusOr<LocalRules> ParseLocalRules(std::string_view json);

// The largest rule file LoadLocalRulesFile reads (real ones are a few KB).
inline constexpr size_t kMaxLocalRulesFileBytes = 1 << 20;

// Reads and parses a rule file; every message starts with the path. A file larger than
// kMaxLocalRulesFileBytes (or endless, like /dev/zero) is an InvalidArgument error.
absl::StatusOr<LocalRules> LoadLocalRulesFile(const std::string& path);

}  // namespace xraysink::core

#endif  // XRAYSINK_CORE_SAMPLING_RULES_H_
