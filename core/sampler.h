#ifndef XRAYSINK_CORE_SAMPLER_H_
#define XRAYSINK_CORE_SAMPLER_H_

#include <string>
#include <string_view>

namespace xraysink::core {

// What a sampling decision may look at. Empty fields are "not known" (e.g. a background task
// has no host, method or path).
struct SamplingRequest {
  std::string_view host;
  std::string_view method;
  std::string_view path;
  std::string_view service;
  std::string_view service_type;
};

// The answer: sample or not, and which rule decided (becomes aws.xray.sampling_rule_name when
// it came from a centralized rule; empty otherwise).
struct SamplingDecision {
  bool sampled = false;
  std::string rule_name;
};

// Decides whether a new trace is recorded. Called on request paths: must be fast, thread-safe,
// never block and never throw.
class Sampler {
 public:
  virtual ~Sampler() = default;
  virtual SamplingDecision ShouldTrace(const SamplingRequest& request) = 0;
};

}  // namespace xraysink::core

#endif  // XRAYSINK_CORE_SAMPLER_H_
