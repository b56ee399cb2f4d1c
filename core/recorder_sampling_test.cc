// What the recorder tells its sampler: the segment's name as the service and the recorder's
// origin as the service type (centralized rules match on both).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>

#include "core/recorder.h"

namespace xraysink::core {
namespace {

// Never samples; keeps the last request's service and service type.
class RecordingSampler : public Sampler {
 public:
  SamplingDecision ShouldTrace(const SamplingRequest& request) override {
    service = std::string(request.service);
    service_type = std::string(request.service_type);
    return {};
  }
  std::string service;
  std::string service_type;
};

class RecorderSamplingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RecorderOptions options;
    options.read_environment = false;
    options.service_name = "orders";
    options.origin = "AWS::EC2::Instance";
    options.sampler = sampler_;
    recorder_ = *Recorder::Create(std::move(options));
  }

  std::shared_ptr<RecordingSampler> sampler_ = std::make_shared<RecordingSampler>();
  std::shared_ptr<Recorder> recorder_;
};

TEST_F(RecorderSamplingTest, NewSegmentAsksWithItsNameAndTheOrigin) {
  recorder_->CreateSegment("", {});
  EXPECT_EQ(sampler_->service, "orders");  // the name the segment gets, not the empty argument
  EXPECT_EQ(sampler_->service_type, "AWS::EC2::Instance");
  recorder_->CreateSegment("jobs", {});
  EXPECT_EQ(sampler_->service, "jobs");
}

TEST_F(RecorderSamplingTest, SampleFillsOnlyAMissingServiceType) {
  recorder_->Sample({.path = "/a", .service = "orders"});
  EXPECT_EQ(sampler_->service, "orders");
  EXPECT_EQ(sampler_->service_type, "AWS::EC2::Instance");
  recorder_->Sample({.service_type = "AWS::Lambda::Function"});
  EXPECT_EQ(sampler_->service_type, "AWS::Lambda::Function");
}

}  // namespace
}  // namespace xraysink::core
