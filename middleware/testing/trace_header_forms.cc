#include "middleware/testing/trace_header_forms.h"

#include <gtest/gtest.h>

#include <string_view>
#include <vector>

#include "core/trace_header.h"
#include "rapidjson/document.h"

namespace xraysink::middleware::testing {

core::SamplingDecision ScriptedSampler::ShouldTrace(const core::SamplingRequest& request) {
  std::lock_guard<std::mutex> lock(mu_);
  ++asked_;
  host_ = std::string(request.host);
  method_ = std::string(request.method);
  path_ = std::string(request.path);
  return {answer_, ""};
}

void ScriptedSampler::set_answer(bool sampled) {
  std::lock_guard<std::mutex> lock(mu_);
  answer_ = sampled;
}

int ScriptedSampler::asked() const {
  std::lock_guard<std::mutex> lock(mu_);
  return asked_;
}

std::string ScriptedSampler::last_host() const {
  std::lock_guard<std::mutex> lock(mu_);
  return host_;
}

std::string ScriptedSampler::last_method() const {
  std::lock_guard<std::mutex> lock(mu_);
  return method_;
}

std::string ScriptedSampler::last_path() const {
  std::lock_guard<std::mutex> lock(mu_);
  return path_;
}

ScriptedRecorder MakeScriptedRecorder() {
  ScriptedRecorder scripted;
  core::RecorderOptions options;
  options.service_name = "svc";
  options.read_environment = false;
  options.sampler = scripted.sampler;
  options.sink = scripted.sink;
  scripted.recorder = *core::Recorder::Create(std::move(options));
  return scripted;
}

namespace {

constexpr char kT[] = "1-5759e988-bd862e3fe1be46a994272793";
constexpr char kP[] = "53995c3f42cd8ad8";
constexpr char kNoOpRoot[] = "1-00000000-000000000000000000000000";

// How a request's trace continues.
enum class Trace { kCallers, kNew };

struct HeaderForm {
  std::string value;
  bool sampler_says;  // the sampler's answer, if asked
  bool asks_sampler;
  bool sent;
  Trace trace;
  bool has_parent;  // the caller's kP
  // The response's header after "Root=<trace id>": "", ";Sampled=1" or ";Sampled=0".
  std::string response_suffix;
  std::string name = "X-Amzn-Trace-Id";
};

std::string Root(std::string_view rest) { return std::string("Root=") + kT + std::string(rest); }

std::vector<HeaderForm> Forms() {
  const std::string P = std::string(";Parent=") + kP;
  return {
      // A caller's decision stands, whatever the sampler would say.
      {Root(P + ";Sampled=1"), false, false, true, Trace::kCallers, true, ""},
      {Root(P + ";Sampled=0"), true, false, false, Trace::kCallers, true, ""},
      // Sampled=? asks the sampler, and the answer says what it decided.
      {Root(";Sampled=?"), false, true, false, Trace::kCallers, false, ";Sampled=0"},
      {Root(";Sampled=?"), true, true, true, Trace::kCallers, false, ";Sampled=1"},
      {"  " + Root(";Sampled=?") + "  ", true, true, true, Trace::kCallers, false, ";Sampled=1"},
      // No Sampled, or one that means nothing: the sampler decides, the trace continues.
      {Root(P), true, true, true, Trace::kCallers, true, ""},
      {Root(P), false, true, false, Trace::kCallers, true, ""},
      {Root(";Sampled=2"), false, true, false, Trace::kCallers, false, ""},
      // Extra keys are kept (for calls downstream), never echoed; Self is dropped.
      {Root(";k1=v1;k2=v2"), true, true, true, Trace::kCallers, false, ""},
      {Root(";k1=v1=x"), true, true, true, Trace::kCallers, false, ""},
      {Root(";Self=1-67891233-abcdef012345678912345678;Sampled=0"), true, false, false,
       Trace::kCallers, false, ""},
      {Root(P + ";Sampled=0;Lineage=10:1234abcd:3"), true, false, false, Trace::kCallers, true, ""},
      // The port's rules (Node's), where Python's differ: a trailing ';', spaces, lowercase keys.
      {Root(";"), true, true, true, Trace::kCallers, false, ""},
      {std::string("Root=") + kT + "; Parent=" + kP + "; Sampled=1", false, false, true,
       Trace::kCallers, true, ""},
      {std::string("root=") + kT + ";sampled=1", false, false, true, Trace::kCallers, false, ""},
      // Nothing to continue: a new trace, but a caller's Sampled=1/0 still stands.
      {"some invalid string", true, true, true, Trace::kNew, false, ""},
      {std::string("Root=") + kNoOpRoot + ";Parent=0000000000000000;Sampled=0", true, false, false,
       Trace::kNew, false, ""},
      {std::string("Root=evil") + P + ";Sampled=1", false, false, true, Trace::kNew, false, ""},
      {Root(P + ";Sampled=1;k=" + std::string(core::kMaxTraceHeaderLength, 'x')), false, true,
       false, Trace::kNew, false, ""},
      // Header names are case-insensitive.
      {Root(P + ";Sampled=1"), false, false, true, Trace::kCallers, true, "", "x-amzn-trace-id"},
      // The name a proxy that rewrites header names CGI-style gives it (spec 2.1).
      {Root(P + ";Sampled=1"), false, false, true, Trace::kCallers, true, "",
       "HTTP_X_AMZN_TRACE_ID"},
  };
}

}  // namespace

void CheckTraceHeaderForms(ScriptedSampler& sampler, const core::testing::CollectingSink& sink,
                           const std::string& host, const SendWithHeader& send) {
  // Each form in a function of its own: a failed ASSERT ends that form, not the rest.
  const auto check = [&](size_t i, const HeaderForm& form) {
    SCOPED_TRACE(::testing::Message()
                 << "form " << i << ": " << form.name << ": " << form.value.substr(0, 120));
    sampler.set_answer(form.sampler_says);
    const int asked_before = sampler.asked();
    const size_t sent_before = sink.size();
    const std::string target = "/hello?form=" + std::to_string(i);
    const std::optional<std::string> answer = send(form.name, form.value, target);
    ASSERT_TRUE(answer.has_value());

    EXPECT_EQ(sampler.asked() - asked_before, form.asks_sampler ? 1 : 0);
    if (form.asks_sampler) {
      EXPECT_EQ(sampler.last_host(), host);
      EXPECT_EQ(sampler.last_method(), "GET");
      EXPECT_EQ(sampler.last_path(), "/hello");
    }
    // The response names the trace, and nothing else of the request.
    ASSERT_EQ(answer->rfind("Root=1-", 0), 0u) << *answer;
    const std::string trace_id = answer->substr(5, 35);
    EXPECT_EQ(answer->substr(5 + 35), form.response_suffix) << *answer;
    if (form.trace == Trace::kCallers) {
      EXPECT_EQ(trace_id, kT);
    } else {
      EXPECT_NE(trace_id, kT);
      EXPECT_NE(trace_id, kNoOpRoot);
      EXPECT_TRUE(core::TraceId::Parse(trace_id).has_value()) << trace_id;
    }

    const std::vector<std::string> documents = sink.documents();
    ASSERT_EQ(documents.size() - sent_before, form.sent ? 1u : 0u);
    if (!form.sent) return;
    rapidjson::Document segment;
    segment.Parse(documents.back().c_str());
    ASSERT_FALSE(segment.HasParseError());
    EXPECT_EQ(std::string(segment["trace_id"].GetString()), trace_id);
    EXPECT_EQ(std::string(segment["http"]["request"]["url"].GetString()),
              "http://" + host + target);
    if (form.has_parent) {
      ASSERT_TRUE(segment.HasMember("parent_id"));
      EXPECT_STREQ(segment["parent_id"].GetString(), kP);
    } else {
      EXPECT_FALSE(segment.HasMember("parent_id"));
    }
  };
  const std::vector<HeaderForm> forms = Forms();
  for (size_t i = 0; i < forms.size(); ++i) check(i, forms[i]);
}

}  // namespace xraysink::middleware::testing
