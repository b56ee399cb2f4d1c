#ifndef XRAYSINK_CORE_TESTING_COLLECTING_SINK_H_
#define XRAYSINK_CORE_TESTING_COLLECTING_SINK_H_

#include <string>
#include <vector>

#include <mutex>

#include "core/segment_sink.h"
#include "core/serialization.h"

namespace xraysink::core::testing {

// A sink for unit tests: serializes each accepted document right away and keeps the JSON.
class CollectingSink : public SegmentSink {
 public:
  bool Accept(DocumentRef document) override {
    std::string json = SerializeDocument(document);
    std::lock_guard<std::mutex> lock(mu_);
    documents_.push_back(std::move(json));
    return accept_;
  }

  std::vector<std::string> documents() const {
    std::lock_guard<std::mutex> lock(mu_);
    return documents_;
  }
  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return documents_.size();
  }
  // Makes Accept report a refusal (as a full queue would).
  void set_accept(bool accept) {
    std::lock_guard<std::mutex> lock(mu_);
    accept_ = accept;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> documents_;
  bool accept_ = true;
};

}  // namespace xraysink::core::testing

#endif  // XRAYSINK_CORE_TESTING_COLLECTING_SINK_H_
