#include "core/centralized_sampler.h"

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <map>
#include <new>
#include <system_error>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/default_sampler.h"
#include "core/ids.h"
#include "core/internal/reservoir.h"
#include "core/log.h"
#include "core/wildcard.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace xraysink::core {
namespace internal {

// A rule's mutable state. Shared by every snapshot that holds the rule, so a refresh that
// keeps the rule keeps its reservoir and its unreported counters, and decisions still running
// on the previous snapshot count into the same place.
struct RuleState {
  explicit RuleState(double rate) : rate_threshold(RateThreshold(rate)) {}

  std::atomic<uint64_t> rate_threshold;  // FixedRate, see RateThreshold
  std::atomic<int64_t> quota{-1};        // -1: none received yet
  std::atomic<int64_t> quota_ttl{-1};    // epoch seconds
  Reservoir reservoir;                   // taken or borrowed this second
  std::atomic<int64_t> requests{0};
  std::atomic<int64_t> sampled{0};
  std::atomic<int64_t> borrowed{0};

  // Poller only (under poll_mu_).
  absl::Duration report_interval = CentralizedSampler::kTargetsInterval;
  absl::Time last_report = absl::InfinitePast();
};

struct CachedRule {
  SamplingRule rule;
  std::shared_ptr<RuleState> state;
};

// An immutable snapshot of the rules, swapped whole on refresh.
struct RuleSet {
  std::vector<CachedRule> rules;  // by priority, then name
  absl::Time refreshed_at;
};

}  // namespace internal

namespace {

using internal::CachedRule;
using internal::RuleSet;
using internal::RuleState;
using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

constexpr char kDefaultRuleName[] = "Default";
// A sane epoch range in seconds; anything beyond is garbage, and would overflow int64 math.
constexpr double kMaxEpochSeconds = 1e13;
// Targets are never polled more often than this, whatever Interval says.
constexpr absl::Duration kMinReportInterval = absl::Seconds(1);

// Up to `max`, uniformly.
absl::Duration Jitter(absl::Duration max) {
  return max * (static_cast<double>(internal::RandomU64() >> 11) * 0x1.0p-53);
}

// Rules the SDKs can apply: version 1, any resource, a service type, no attributes.
bool Usable(const SamplingRule& rule) {
  return rule.version == 1 && rule.resource_arn == "*" && !rule.service_type.empty() &&
         rule.attributes.empty();
}

// A request attribute that is not known matches any pattern, as in the SDKs.
bool AttributeMatches(const std::string& pattern, std::string_view value) {
  return value.empty() || WildcardMatch(pattern, value);
}

bool Matches(const SamplingRule& rule, const SamplingRequest& request,
             std::string_view service_type) {
  return rule.rule_name == kDefaultRuleName ||
         (AttributeMatches(rule.host, request.host) &&
          AttributeMatches(rule.http_method, request.method) &&
          AttributeMatches(rule.url_path, request.path) &&
          AttributeMatches(rule.service_name, request.service) &&
          AttributeMatches(rule.service_type, service_type));
}

SamplingDecision Decide(const CachedRule& cached, int64_t second) {
  RuleState& state = *cached.state;
  // Counted in this order (requests, sampled, borrowed) and reported in the reverse order, so
  // a report never holds a sampled request without its request.
  state.requests.fetch_add(1);
  bool sampled = false;
  bool borrowed = false;
  const int64_t quota = state.quota.load(std::memory_order_relaxed);
  if (quota >= 0 && state.quota_ttl.load(std::memory_order_relaxed) >= second) {
    sampled = state.reservoir.Take(
        second, static_cast<int>(std::min<int64_t>(quota, internal::kMaxFixedTarget)));
  } else if (cached.rule.reservoir_size > 0) {
    // No quota from the service (yet, or it expired): one trace a second keeps it visible.
    sampled = borrowed = state.reservoir.Take(second, 1);
  }
  if (!sampled) {
    sampled = internal::WithinRate(internal::RandomU64(),
                                   state.rate_threshold.load(std::memory_order_relaxed));
  }
  if (!sampled) return {};
  state.sampled.fetch_add(1);
  if (borrowed) state.borrowed.fetch_add(1);
  return {true, cached.rule.rule_name};
}

std::string NewClientId() {
  return EntityId(internal::RandomU64()).ToString() +
         EntityId(internal::RandomU64()).ToString().substr(0, 8);
}

// Counts a poll and logs only when a series of failures starts or ends.
void Record(const absl::Status& status, const char* what, std::atomic<uint64_t>& ok,
            std::atomic<uint64_t>& failed, bool& failing) {
  if (status.ok()) {
    ++ok;
    if (failing) Log(LogLevel::kWarning, absl::StrCat(what, ": the daemon answers again"));
    failing = false;
    return;
  }
  ++failed;
  if (!failing) {
    Log(LogLevel::kWarning,
        absl::StrCat(what, " failed (keeping the last good state; retrying): ", status.ToString()));
  }
  failing = true;
}

// ---- JSON ----

// Parses `body` as one JSON object. Iterative, so deeply nested garbage cannot exhaust the
// stack.
absl::Status Parse(std::string_view body, rapidjson::Document& document) {
  document.Parse<rapidjson::kParseIterativeFlag>(body.data(), body.size());
  if (document.HasParseError()) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad JSON at offset ", document.GetErrorOffset(), ": ",
                     rapidjson::GetParseError_En(document.GetParseError())));
  }
  if (!document.IsObject()) return absl::InvalidArgumentError("not a JSON object");
  return absl::OkStatus();
}

// Reads typed members of one JSON object. Absent or null members are nullopt (an error too
// when required); the first problem is kept, naming where it is.
class Members {
 public:
  Members(const rapidjson::Value& object, std::string where)
      : object_(object), where_(std::move(where)) {
    if (!object_.IsObject()) status_ = absl::InvalidArgumentError(where_ + " must be an object");
  }

  std::optional<std::string> String(const char* key, bool required = false) {
    const rapidjson::Value* value = Find(key, required);
    if (value == nullptr) return std::nullopt;
    if (!value->IsString()) return Fail(key, "a string");
    return std::string(value->GetString(), value->GetStringLength());
  }
  std::optional<int64_t> Integer(const char* key, bool required = false) {
    const rapidjson::Value* value = Find(key, required);
    if (value == nullptr) return std::nullopt;
    if (!value->IsInt64()) return Fail(key, "an integer");
    return value->GetInt64();
  }
  std::optional<double> Number(const char* key, bool required = false) {
    const rapidjson::Value* value = Find(key, required);
    if (value == nullptr) return std::nullopt;
    if (!value->IsNumber()) return Fail(key, "a number");
    return value->GetDouble();
  }
  // Epoch seconds; the API may send a fraction, which is dropped.
  std::optional<int64_t> Epoch(const char* key, bool required = false) {
    const rapidjson::Value* value = Find(key, required);
    if (value == nullptr) return std::nullopt;
    if (!value->IsNumber() || !(std::fabs(value->GetDouble()) < kMaxEpochSeconds)) {
      return Fail(key, "epoch seconds");
    }
    return static_cast<int64_t>(std::floor(value->GetDouble()));
  }
  const rapidjson::Value* Array(const char* key, bool required = false) {
    const rapidjson::Value* value = Find(key, required);
    if (value != nullptr && !value->IsArray()) {
      Fail(key, "an array");
      return nullptr;
    }
    return value;
  }
  // A string-to-string object (rule attributes).
  std::map<std::string, std::string> StringMap(const char* key) {
    std::map<std::string, std::string> out;
    const rapidjson::Value* value = Find(key, false);
    if (value == nullptr) return out;
    if (!value->IsObject()) {
      Fail(key, "an object");
      return out;
    }
    for (const auto& member : value->GetObject()) {
      if (!member.value.IsString()) {
        Fail(key, "an object of strings");
        return out;
      }
      out.emplace(std::string(member.name.GetString(), member.name.GetStringLength()),
                  std::string(member.value.GetString(), member.value.GetStringLength()));
    }
    return out;
  }
  // Member `key` as a nested reader.
  Members Object(const char* key) {
    const rapidjson::Value* value = Find(key, true);
    Members nested(value != nullptr ? *value : object_, absl::StrCat(where_, ".", key));
    if (value == nullptr) nested.status_ = status_;  // stays failed: reads nothing
    return nested;
  }

  const absl::Status& status() const { return status_; }

 private:
  const rapidjson::Value* Find(const char* key, bool required) {
    if (!status_.ok() || !object_.IsObject()) return nullptr;
    const auto member = object_.FindMember(key);
    if (member == object_.MemberEnd() || member->value.IsNull()) {
      if (required) Fail(key, "present");
      return nullptr;
    }
    return &member->value;
  }
  std::nullopt_t Fail(const char* key, const char* expected) {
    if (status_.ok()) {
      status_ = absl::InvalidArgumentError(absl::StrCat(where_, ".", key, " must be ", expected));
    }
    return std::nullopt;
  }

  const rapidjson::Value& object_;
  const std::string where_;
  absl::Status status_;
};

void WriteString(JsonWriter& writer, std::string_view key, std::string_view value) {
  writer.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
  writer.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

void WriteInt(JsonWriter& writer, const char* key, int64_t value) {
  writer.Key(key);
  writer.Int64(value);
}

std::string Finish(const rapidjson::StringBuffer& buffer) {
  return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace

std::string EncodeSamplingRulesRequest(std::string_view next_token) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  if (!next_token.empty()) WriteString(writer, "NextToken", next_token);
  writer.EndObject();
  return Finish(buffer);
}

absl::StatusOr<std::string> DecodeSamplingRulesRequest(std::string_view body) {
  rapidjson::Document document;
  if (absl::Status parsed = Parse(body, document); !parsed.ok()) return parsed;
  Members request(document, "GetSamplingRules request");
  std::string token = request.String("NextToken").value_or("");
  if (!request.status().ok()) return request.status();
  return token;
}

std::string EncodeSamplingRulesResponse(const SamplingRulesPage& page) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  writer.Key("SamplingRuleRecords");
  writer.StartArray();
  for (const SamplingRule& rule : page.rules) {
    writer.StartObject();
    writer.Key("SamplingRule");
    writer.StartObject();
    WriteString(writer, "RuleName", rule.rule_name);
    WriteString(writer, "ResourceARN", rule.resource_arn);
    WriteInt(writer, "Priority", rule.priority);
    writer.Key("FixedRate");
    writer.Double(rule.fixed_rate);
    WriteInt(writer, "ReservoirSize", rule.reservoir_size);
    WriteString(writer, "ServiceName", rule.service_name);
    WriteString(writer, "ServiceType", rule.service_type);
    WriteString(writer, "Host", rule.host);
    WriteString(writer, "HTTPMethod", rule.http_method);
    WriteString(writer, "URLPath", rule.url_path);
    WriteInt(writer, "Version", rule.version);
    writer.Key("Attributes");
    writer.StartObject();
    for (const auto& [key, value] : rule.attributes) WriteString(writer, key, value);
    writer.EndObject();
    writer.EndObject();
    writer.EndObject();
  }
  writer.EndArray();
  if (!page.next_token.empty()) WriteString(writer, "NextToken", page.next_token);
  writer.EndObject();
  return Finish(buffer);
}

absl::StatusOr<SamplingRulesPage> DecodeSamplingRulesResponse(std::string_view body) {
  rapidjson::Document document;
  if (absl::Status parsed = Parse(body, document); !parsed.ok()) return parsed;
  Members response(document, "GetSamplingRules response");
  SamplingRulesPage page;
  page.next_token = response.String("NextToken").value_or("");
  const rapidjson::Value* records = response.Array("SamplingRuleRecords", true);
  if (!response.status().ok()) return response.status();
  for (rapidjson::SizeType i = 0; i < records->Size(); ++i) {
    Members record((*records)[i], absl::StrCat("SamplingRuleRecords[", i, "]"));
    Members fields = record.Object("SamplingRule");
    SamplingRule rule;
    rule.rule_name = fields.String("RuleName", true).value_or("");
    rule.resource_arn = fields.String("ResourceARN", true).value_or("");
    rule.priority = fields.Integer("Priority", true).value_or(0);
    rule.fixed_rate = fields.Number("FixedRate", true).value_or(0);
    rule.reservoir_size = fields.Integer("ReservoirSize", true).value_or(0);
    rule.service_name = fields.String("ServiceName", true).value_or("");
    rule.service_type = fields.String("ServiceType", true).value_or("");
    rule.host = fields.String("Host", true).value_or("");
    rule.http_method = fields.String("HTTPMethod", true).value_or("");
    rule.url_path = fields.String("URLPath", true).value_or("");
    rule.version = fields.Integer("Version", true).value_or(0);
    rule.attributes = fields.StringMap("Attributes");
    if (!fields.status().ok()) return fields.status();
    page.rules.push_back(std::move(rule));
  }
  return page;
}

std::string EncodeSamplingTargetsRequest(const std::vector<SamplingStatistics>& statistics) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  writer.Key("SamplingStatisticsDocuments");
  writer.StartArray();
  for (const SamplingStatistics& document : statistics) {
    writer.StartObject();
    WriteString(writer, "RuleName", document.rule_name);
    WriteString(writer, "ClientID", document.client_id);
    WriteInt(writer, "Timestamp", document.timestamp);
    WriteInt(writer, "RequestCount", document.request_count);
    WriteInt(writer, "SampledCount", document.sampled_count);
    WriteInt(writer, "BorrowCount", document.borrow_count);
    writer.EndObject();
  }
  writer.EndArray();
  writer.EndObject();
  return Finish(buffer);
}

absl::StatusOr<std::vector<SamplingStatistics>> DecodeSamplingTargetsRequest(
    std::string_view body) {
  rapidjson::Document document;
  if (absl::Status parsed = Parse(body, document); !parsed.ok()) return parsed;
  Members request(document, "GetSamplingTargets request");
  const rapidjson::Value* documents = request.Array("SamplingStatisticsDocuments", true);
  if (!request.status().ok()) return request.status();
  std::vector<SamplingStatistics> statistics;
  for (rapidjson::SizeType i = 0; i < documents->Size(); ++i) {
    Members fields((*documents)[i], absl::StrCat("SamplingStatisticsDocuments[", i, "]"));
    SamplingStatistics entry;
    entry.rule_name = fields.String("RuleName", true).value_or("");
    entry.client_id = fields.String("ClientID", true).value_or("");
    entry.timestamp = fields.Epoch("Timestamp", true).value_or(0);
    entry.request_count = fields.Integer("RequestCount", true).value_or(0);
    entry.sampled_count = fields.Integer("SampledCount", true).value_or(0);
    entry.borrow_count = fields.Integer("BorrowCount", true).value_or(0);
    if (!fields.status().ok()) return fields.status();
    statistics.push_back(std::move(entry));
  }
  return statistics;
}

std::string EncodeSamplingTargetsResponse(const SamplingTargets& targets) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  writer.Key("SamplingTargetDocuments");
  writer.StartArray();
  for (const SamplingTarget& target : targets.targets) {
    writer.StartObject();
    WriteString(writer, "RuleName", target.rule_name);
    if (target.fixed_rate) {
      writer.Key("FixedRate");
      writer.Double(*target.fixed_rate);
    }
    if (target.reservoir_quota) WriteInt(writer, "ReservoirQuota", *target.reservoir_quota);
    if (target.reservoir_quota_ttl) {
      WriteInt(writer, "ReservoirQuotaTTL", *target.reservoir_quota_ttl);
    }
    if (target.interval) WriteInt(writer, "Interval", *target.interval);
    writer.EndObject();
  }
  writer.EndArray();
  if (targets.last_rule_modification) {
    WriteInt(writer, "LastRuleModification", *targets.last_rule_modification);
  }
  writer.Key("UnprocessedStatistics");
  writer.StartArray();
  writer.EndArray();
  writer.EndObject();
  return Finish(buffer);
}

absl::StatusOr<SamplingTargets> DecodeSamplingTargetsResponse(std::string_view body) {
  rapidjson::Document document;
  if (absl::Status parsed = Parse(body, document); !parsed.ok()) return parsed;
  Members response(document, "GetSamplingTargets response");
  SamplingTargets targets;
  targets.last_rule_modification = response.Epoch("LastRuleModification");
  const rapidjson::Value* documents = response.Array("SamplingTargetDocuments");
  if (!response.status().ok()) return response.status();
  for (rapidjson::SizeType i = 0; documents != nullptr && i < documents->Size(); ++i) {
    Members fields((*documents)[i], absl::StrCat("SamplingTargetDocuments[", i, "]"));
    SamplingTarget target;
    target.rule_name = fields.String("RuleName", true).value_or("");
    target.fixed_rate = fields.Number("FixedRate");
    target.reservoir_quota = fields.Integer("ReservoirQuota");
    target.reservoir_quota_ttl = fields.Epoch("ReservoirQuotaTTL");
    target.interval = fields.Integer("Interval");
    if (!fields.status().ok()) return fields.status();
    targets.targets.push_back(std::move(target));
  }
  return targets;
}

// ---- The sampler ----

absl::StatusOr<std::unique_ptr<CentralizedSampler>> CentralizedSampler::Create(
    CentralizedSamplerOptions options) {
  if (options.api == nullptr) {
    return absl::InvalidArgumentError("CentralizedSampler needs a SamplingApi");
  }
  return std::unique_ptr<CentralizedSampler>(new CentralizedSampler(std::move(options)));
}

CentralizedSampler::CentralizedSampler(CentralizedSamplerOptions options)
    : api_(std::move(options.api)),
      fallback_(options.fallback ? std::move(options.fallback)
                                 : std::make_shared<DefaultSampler>()),
      origin_(std::move(options.origin)),
      clock_(options.clock ? std::move(options.clock) : [] { return absl::Now(); }),
      client_id_(NewClientId()),
      rules_(std::make_unique<const std::shared_ptr<const RuleSet>>()) {}

CentralizedSampler::~CentralizedSampler() { Stop(); }

SamplingDecision CentralizedSampler::ShouldTrace(const SamplingRequest& request) {
  const absl::Time now = clock_();
  std::optional<SamplingDecision> decision = rules_.Read(
      [&](const std::shared_ptr<const RuleSet>& rules) -> std::optional<SamplingDecision> {
        if (rules == nullptr || now - rules->refreshed_at > kCacheTtl) return std::nullopt;
        const std::string_view service_type =
            request.service_type.empty() ? std::string_view(origin_) : request.service_type;
        for (const CachedRule& cached : rules->rules) {
          if (Matches(cached.rule, request, service_type)) {
            return Decide(cached, absl::ToUnixSeconds(now));
          }
        }
        return std::nullopt;
      });
  return decision ? *std::move(decision) : fallback_->ShouldTrace(request);
}

absl::Status CentralizedSampler::Start() {
  std::lock_guard<std::mutex> lifecycle(lifecycle_mu_);
  if (poller_.joinable()) return absl::OkStatus();
  {
    std::lock_guard<std::mutex> lock(wait_mu_);
    stopping_ = false;
    poller_ended_ = false;
  }
  try {
    poller_ = std::thread(&CentralizedSampler::Run, this);
  } catch (const std::system_error& error) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot start the sampling poller thread: ", error.what()));
  }
  return absl::OkStatus();
}

void CentralizedSampler::Stop() {
  std::lock_guard<std::mutex> lifecycle(lifecycle_mu_);
  if (!poller_.joinable()) return;
  std::unique_lock<std::mutex> lock(wait_mu_);
  stopping_ = true;
  wake_.notify_all();
  // Cancel again until the thread is out: a cancel that lands between two calls of one poll
  // (targets, then rules) finds nothing in flight and must not leave the second to run its course.
  while (!poller_ended_) {
    lock.unlock();
    api_->Cancel();
    lock.lock();
    wake_.wait_for(lock, std::chrono::milliseconds(20), [this] { return poller_ended_; });
  }
  lock.unlock();
  poller_.join();
}

void CentralizedSampler::ResetInChild() {
  new (&poll_mu_) std::mutex;
  new (&lifecycle_mu_) std::mutex;
  new (&wait_mu_) std::mutex;
  new (&wake_) std::condition_variable;
  rules_.ResetInChild();
  // The sampling API tells clients apart by id: the child reports only its own requests, and
  // gets a quota of its own (borrowing until then, as a new process would) instead of using
  // the parent's alongside the parent.
  client_id_ = NewClientId();
  if (current_rules_ != nullptr) {
    for (const CachedRule& cached : current_rules_->rules) {
      RuleState& state = *cached.state;
      state.requests = state.sampled = state.borrowed = 0;
      state.quota = state.quota_ttl = -1;
    }
  }
  next_targets_poll_ = absl::InfinitePast();
  start_in_child_ = false;
  if (!poller_.joinable()) return;
  // The handle names a thread the child does not have: joining it would never return.
  internal::LeakInChild(new std::thread(std::move(poller_)));
  start_in_child_ = !stopping_;
}

void CentralizedSampler::StartInChild() {
  if (!start_in_child_) return;
  poller_ended_ = false;
  try {
    poller_ = std::thread(&CentralizedSampler::Run, this);
  } catch (const std::system_error&) {
    // No poller: the rules held go on deciding until they expire, then the fallback does.
  }
}

void CentralizedSampler::Run() {
  pthread_setname_np(pthread_self(), "xraysink-rules");  // for top -H, perf and gdb
  std::unique_lock<std::mutex> lock(wait_mu_);
  while (!stopping_) {
    lock.unlock();
    const absl::Time next = PollOnce();
    lock.lock();
    const absl::Duration wait = std::max(next - clock_(), absl::ZeroDuration());
    wake_.wait_for(lock, absl::ToChronoNanoseconds(wait), [this] { return stopping_; });
  }
  poller_ended_ = true;
  wake_.notify_all();
}

absl::Time CentralizedSampler::PollOnce() {
  std::lock_guard<std::mutex> lock(poll_mu_);
  const absl::Time now = clock_();
  if (now >= next_targets_poll_) {
    RefreshTargetsLocked(now).IgnoreError();  // counted and logged
    absl::Duration interval = kTargetsInterval;
    if (current_rules_ != nullptr) {
      for (const CachedRule& cached : current_rules_->rules) {
        interval = std::min(interval, cached.state->report_interval);
      }
    }
    next_targets_poll_ = now + std::max(interval, kMinReportInterval) + Jitter(kTargetsJitter);
  }
  if (now >= next_rules_poll_ || rules_outdated_) {
    next_rules_poll_ = RefreshRulesLocked(now).ok() ? now + kRulesInterval + Jitter(kRulesJitter)
                                                    : now + kRulesRetryInterval;
  }
  return std::min(next_rules_poll_, next_targets_poll_);
}

absl::Status CentralizedSampler::RefreshRules() {
  std::lock_guard<std::mutex> lock(poll_mu_);
  return RefreshRulesLocked(clock_());
}

absl::Status CentralizedSampler::RefreshTargets() {
  std::lock_guard<std::mutex> lock(poll_mu_);
  return RefreshTargetsLocked(clock_());
}

absl::Status CentralizedSampler::RefreshRulesLocked(absl::Time now) {
  absl::StatusOr<std::vector<SamplingRule>> fetched = api_->GetSamplingRules();
  absl::Status status = fetched.status();
  if (status.ok()) {
    std::map<std::string, std::shared_ptr<RuleState>, std::less<>> kept;
    if (current_rules_ != nullptr) {
      for (const CachedRule& cached : current_rules_->rules) {
        kept.emplace(cached.rule.rule_name, cached.state);
      }
    }
    auto fresh = std::make_shared<RuleSet>();
    fresh->refreshed_at = now;
    for (SamplingRule& rule : *fetched) {
      if (!Usable(rule)) continue;
      std::shared_ptr<RuleState> state;
      if (const auto found = kept.find(rule.rule_name); found != kept.end()) state = found->second;
      if (state == nullptr) {
        state = std::make_shared<RuleState>(rule.fixed_rate);
      } else {
        // As the SDKs merge: the fresh definition's rate, the old reservoir and counters.
        state->rate_threshold.store(internal::RateThreshold(rule.fixed_rate));
      }
      fresh->rules.push_back({std::move(rule), std::move(state)});
    }
    if (fresh->rules.empty()) {
      status = absl::FailedPreconditionError(
          absl::StrCat("none of the ", fetched->size(),
                       " sampling rules is usable (Version 1, ResourceARN \"*\", a ServiceType, "
                       "no Attributes)"));
    } else {
      std::sort(fresh->rules.begin(), fresh->rules.end(),
                [](const CachedRule& a, const CachedRule& b) {
                  return std::tie(a.rule.priority, a.rule.rule_name) <
                         std::tie(b.rule.priority, b.rule.rule_name);
                });
      current_rules_ = std::move(fresh);
      rules_.Replace(std::make_unique<const std::shared_ptr<const RuleSet>>(current_rules_));
      rules_refreshed_at_ = now;
      rules_outdated_ = false;
    }
  }
  Record(status, "sampling rules poll", rule_polls_ok_, rule_polls_failed_, rules_failing_);
  return status;
}

absl::Status CentralizedSampler::RefreshTargetsLocked(absl::Time now) {
  const std::shared_ptr<const RuleSet>& rules = current_rules_;
  if (rules == nullptr) return absl::OkStatus();
  std::vector<SamplingStatistics> report;
  for (const CachedRule& cached : rules->rules) {
    RuleState& state = *cached.state;
    if (now < state.last_report + state.report_interval || state.requests.load() == 0) continue;
    // The reverse of the order Decide counts in (see there).
    const int64_t borrowed = state.borrowed.exchange(0);
    const int64_t sampled = state.sampled.exchange(0);
    const int64_t requests = state.requests.exchange(0);
    report.push_back(
        {cached.rule.rule_name, client_id_, absl::ToUnixSeconds(now), requests, sampled, borrowed});
    state.last_report = now;
  }
  if (report.empty()) return absl::OkStatus();

  // A failed report's counts are dropped, as the SDKs do: the next report starts afresh.
  absl::StatusOr<SamplingTargets> targets = api_->GetSamplingTargets(report);
  if (targets.ok()) {
    for (const SamplingTarget& target : targets->targets) {
      for (const CachedRule& cached : rules->rules) {
        if (cached.rule.rule_name != target.rule_name) continue;
        RuleState& state = *cached.state;
        if (target.fixed_rate) {
          state.rate_threshold.store(internal::RateThreshold(*target.fixed_rate));
        }
        if (target.reservoir_quota)
          state.quota.store(std::max<int64_t>(*target.reservoir_quota, 0));
        if (target.reservoir_quota_ttl) state.quota_ttl.store(*target.reservoir_quota_ttl);
        if (target.interval && *target.interval > 0) {
          state.report_interval = absl::Seconds(*target.interval);
        }
      }
    }
    if (targets->last_rule_modification &&
        absl::FromUnixSeconds(*targets->last_rule_modification) > rules_refreshed_at_) {
      rules_outdated_ = true;
    }
  }
  Record(targets.status(), "sampling targets poll", target_polls_ok_, target_polls_failed_,
         targets_failing_);
  return targets.status();
}

CentralizedSamplerStats CentralizedSampler::stats() const {
  return {rule_polls_ok_.load(), rule_polls_failed_.load(), target_polls_ok_.load(),
          target_polls_failed_.load()};
}

}  // namespace xraysink::core
