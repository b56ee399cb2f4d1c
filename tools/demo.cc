// An example program on the recorder: a few traces with nested subsegments, annotations,
// metadata, an SQL query, a downstream call and an exception cause, sent to
// AWS_XRAY_DAEMON_ADDRESS (default 127.0.0.1:2000). Run it against xray_local to see the trees.
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "xraysink.h"

namespace {

using xraysink::core::JsonValue;
using xraysink::core::Namespace;
using xraysink::core::Recorder;

void LoadCart(Recorder& recorder, int order) {
  recorder.BeginSubsegment("load-cart");
  recorder.PutAnnotation("order", order);
  recorder.PutMetadata("cart", JsonValue::Object({{"items", 3}, {"currency", "EUR"}}));
  xraysink::core::Subsegment* query = recorder.BeginSubsegment("orders-db@localhost");
  query->sql().database_type = "PostgreSQL";
  query->sql().sanitized_query = "SELECT * FROM carts WHERE order_id = $1";
  query->sql().preparation = "statement";
  recorder.EndSubsegment();
  recorder.EndSubsegment();
}

void ChargeCard(Recorder& recorder, bool fail) {
  xraysink::core::Subsegment* call = recorder.BeginSubsegment("payments.internal",
                                                              Namespace::kRemote);
  auto& request = call->http().request.emplace();
  request.method = "POST";
  request.url = "http://payments.internal/charge";
  try {
    if (fail) throw std::runtime_error("card declined by issuer");
    call->ApplyStatusCode(200);
  } catch (const std::exception& e) {
    call->ApplyStatusCode(502);
    call->AddException(e, /*remote=*/true);
  }
  recorder.EndSubsegment();
}

void Checkout(Recorder& recorder, int order, bool fail) {
  xraysink::core::BeginSegmentOptions options;
  options.sampling = xraysink::core::SamplingDecision{true, ""};  // the demo shows every trace
  xraysink::core::Segment* segment = recorder.BeginSegment("demo-shop", options);
  auto& request = segment->http().request.emplace();
  request.method = "POST";
  request.url = "http://shop.local/checkout/" + std::to_string(order);
  request.client_ip = "127.0.0.1";
  request.user_agent = "demo/1.0";
  segment->set_user("customer-" + std::to_string(order));
  LoadCart(recorder, order);
  ChargeCard(recorder, fail);
  segment->ApplyStatusCode(fail ? 500 : 200);
  recorder.EndSegment();
}

}  // namespace

int main() {
  auto tracing = xraysink::Configure({.service_name = "demo-shop"});
  if (!tracing.ok()) {
    std::fprintf(stderr, "demo: %s\n", std::string(tracing.status().message()).c_str());
    return 2;
  }
  Recorder& recorder = (*tracing)->recorder();
  Checkout(recorder, 1001, /*fail=*/false);
  Checkout(recorder, 1002, /*fail=*/true);
  if (!(*tracing)->Flush(absl::Seconds(2))) {
    std::fprintf(stderr, "demo: not everything was sent within 2 s\n");
    return 1;
  }
  std::printf("demo: sent 2 traces\n");
  return 0;
}
