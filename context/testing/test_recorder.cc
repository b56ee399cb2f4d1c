#include "context/testing/test_recorder.h"

#include <gtest/gtest.h>

#include <future>
#include <string>

#include "core/testing/schema_validator.h"

namespace xraysink::context::testing {
namespace {

class AlwaysSample : public core::Sampler {
 public:
  core::SamplingDecision ShouldTrace(const core::SamplingRequest&) override { return {true, ""}; }
};

}  // namespace

TestRecorder::TestRecorder(core::RecorderOptions options)
    : sink(std::make_shared<core::testing::CollectingSink>()) {
  options.service_name = "context-test";
  options.read_environment = false;
  options.sampler = std::make_shared<AlwaysSample>();
  options.sink = sink;
  options.context_missing = core::ContextMissing::kIgnoreError;
  recorder = *core::Recorder::Create(std::move(options));
}

std::vector<rapidjson::Document> TestRecorder::Documents() const {
  std::vector<rapidjson::Document> documents;
  for (const std::string& json : sink->documents()) {
    const absl::Status valid = core::testing::ValidateSegmentDocument(json);
    EXPECT_TRUE(valid.ok()) << valid.message() << "\n" << json;
    documents.emplace_back().Parse(json.data(), json.size());
  }
  return documents;
}

namespace {

void Place(const rapidjson::Value& entity, std::vector<TestRecorder::Placement>& out) {
  if (!entity.HasMember("subsegments")) return;
  for (const rapidjson::Value& child : entity["subsegments"].GetArray()) {
    out.push_back({child["name"].GetString(), child["id"].GetString(), entity["id"].GetString()});
    Place(child, out);
  }
}

}  // namespace

std::vector<TestRecorder::Placement> TestRecorder::Subsegments() const {
  std::vector<Placement> placements;
  for (const rapidjson::Document& document : Documents()) {
    if (document.HasMember("type")) {  // a subsegment document
      placements.push_back({document["name"].GetString(), document["id"].GetString(),
                            document["parent_id"].GetString()});
    }
    Place(document, placements);
  }
  return placements;
}

bool RunPool(boost::asio::io_context& io, int threads, std::chrono::seconds timeout) {
  std::vector<std::future<void>> runners;
  for (int i = 0; i < threads; ++i) {
    runners.push_back(std::async(std::launch::async, [&io] { io.run(); }));
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool finished = true;
  for (std::future<void>& runner : runners) {
    if (runner.wait_until(deadline) != std::future_status::ready) {
      finished = false;
      io.stop();
    }
    runner.get();  // rethrows what a handler threw
  }
  return finished;
}

}  // namespace xraysink::context::testing
