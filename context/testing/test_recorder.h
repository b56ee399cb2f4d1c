#ifndef XRAYSINK_CONTEXT_TESTING_TEST_RECORDER_H_
#define XRAYSINK_CONTEXT_TESTING_TEST_RECORDER_H_

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/recorder.h"
#include "core/testing/collecting_sink.h"
#include "rapidjson/document.h"

namespace xraysink::context::testing {

// A recorder that samples everything, ignores a missing context (still counted) and keeps what
// it sends.
struct TestRecorder {
  explicit TestRecorder(core::RecorderOptions options = {});

  // Every document sent so far, parsed; each one is checked against the X-Ray schema (a
  // failure is a test failure).
  std::vector<rapidjson::Document> Documents() const;

  // Every subsegment sent so far (documents checked as above), wherever it went: nested in its
  // parent's document, or in one of its own (streamed, or begun after its segment was sent).
  struct Placement {
    std::string name;
    std::string id;
    std::string parent_id;
  };
  std::vector<Placement> Subsegments() const;

  std::shared_ptr<core::testing::CollectingSink> sink;
  std::shared_ptr<core::Recorder> recorder;
};

// Runs `io` on `threads` threads until it runs out of work. False, after stopping it, when that
// takes longer than `timeout`.
bool RunPool(boost::asio::io_context& io, int threads,
             std::chrono::seconds timeout = std::chrono::seconds(60));

}  // namespace xraysink::context::testing

#endif  // XRAYSINK_CONTEXT_TESTING_TEST_RECORDER_H_
