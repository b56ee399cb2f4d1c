#ifndef XRAYSINK_MIDDLEWARE_TESTING_TRACE_HEADER_FORMS_H_
#define XRAYSINK_MIDDLEWARE_TESTING_TRACE_HEADER_FORMS_H_

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "core/recorder.h"
#include "core/sampler.h"
#include "core/testing/collecting_sink.h"

namespace xraysink::middleware::testing {

// A sampler that answers as the test says and records what it was asked, so that a test can
// tell a caller's decision that was honoured from a sampler that happened to agree.
class ScriptedSampler : public core::Sampler {
 public:
  core::SamplingDecision ShouldTrace(const core::SamplingRequest& request) override;

  void set_answer(bool sampled);
  // Calls so far, and the host, method and path of the last one.
  int asked() const;
  std::string last_host() const;
  std::string last_method() const;
  std::string last_path() const;

 private:
  mutable std::mutex mu_;
  bool answer_ = true;
  int asked_ = 0;
  std::string host_, method_, path_;
};

// A recorder that samples with a ScriptedSampler and collects what it sends.
struct ScriptedRecorder {
  std::shared_ptr<ScriptedSampler> sampler = std::make_shared<ScriptedSampler>();
  std::shared_ptr<core::testing::CollectingSink> sink =
      std::make_shared<core::testing::CollectingSink>();
  std::shared_ptr<core::Recorder> recorder;  // service "svc"
};
ScriptedRecorder MakeScriptedRecorder();

// Sends one GET of `target` with header `name: value` to the adapter's traced server and
// returns the response's X-Amzn-Trace-Id (empty when it has none), or nullopt when the request
// failed (a test failure of its own).
using SendWithHeader = std::function<std::optional<std::string>(
    const std::string& name, const std::string& value, const std::string& target)>;

// Runs every X-Amzn-Trace-Id form of the spec (its test vectors, 8.1, and the forms a caller's
// SDK sends: the Python SDK's no-op Root, an invalid Root, a header over the length limit, a
// lowercase header name, the name a CGI-style rewrite gives it) through a server traced with
// `sampler` that sends its segments to `sink`, and checks for each: whether the sampler was asked
// and with what, whether a segment was sent, its trace id and parent, and the response's header.
// `host` is the Host header the client sends ("127.0.0.1:PORT"). Expects the server to answer each
// request after its segment was sent, as the adapters do.
void CheckTraceHeaderForms(ScriptedSampler& sampler, const core::testing::CollectingSink& sink,
                           const std::string& host, const SendWithHeader& send);

}  // namespace xraysink::middleware::testing

#endif  // XRAYSINK_MIDDLEWARE_TESTING_TRACE_HEADER_FORMS_H_
