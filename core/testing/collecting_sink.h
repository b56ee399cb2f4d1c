#ifndef XRAYSINK_CORE_TESTING_COLLECTING_SINK_H_
#define XRAYSINK_CORE_TESTING_COLLECTING_SINK_H_

#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "core/segment_sink.h"
#include "core/serialization.h"

namespace xraysink::core::testing {

// A sink for unit tests: serializes each accepted document right away and keeps the JSON.
class CollectingSink : public SegmentSink {
 public:
  bool Accept(DocumentRef document) override {
    std::string json = SerializeDocument(document);
    absl::MutexLock lock(&mu_);
    documents_.push_back(std::move(json));
    return accept_;
  }

  std::vector<std::string> documents() const {
    absl::MutexLock lock(&mu_);
    return documents_;
  }
  size_t size() const {
    absl::MutexLock lock(&mu_);
    return documents_.size();
  }
  // Makes Accept report a refusal (as a full queue would).
  void set_accept(bool accept) {
    absl::MutexLock lock(&mu_);
    accept_ = accept;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> documents_ ABSL_GUARDED_BY(mu_);
  bool accept_ ABSL_GUARDED_BY(mu_) = true;
};

}  // namespace xraysink::core::testing

#endif  // XRAYSINK_CORE_TESTING_COLLECTING_SINK_H_
