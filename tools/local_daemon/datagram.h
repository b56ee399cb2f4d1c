#ifndef XRAYSINK_TOOLS_LOCAL_DAEMON_DATAGRAM_H_
#define XRAYSINK_TOOLS_LOCAL_DAEMON_DATAGRAM_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "rapidjson/document.h"

namespace xraysink::tools {

// One segment or subsegment as received: the fields that place it in a trace, plus its JSON
// object for everything else.
struct ReceivedEntity {
  // A segment, or a subsegment (embedded, or sent on its own with `type: "subsegment"`).
  bool is_segment = false;
  // A subsegment sent as its own document (streamed), to be grafted under `parent_id`.
  bool is_streamed = false;
  std::string id;
  std::string name;
  // Embedded subsegments inherit their document's.
  std::string trace_id;
  // For an embedded subsegment, the entity it is embedded in; otherwise as written (may be
  // empty for a segment).
  std::string parent_id;
  double start_time = 0;
  std::optional<double> end_time;
  bool in_progress = false;
  // The entity's object inside its document (never null).
  const rapidjson::Value* json = nullptr;
  std::vector<ReceivedEntity> subsegments;

  bool ended() const { return end_time.has_value() && !in_progress; }
};

// One parsed document. A cheap, immutable, thread-safe handle: copies share the parse.
class ReceivedDocument {
 public:
  // The document's root entity (a segment or a streamed subsegment) and its embedded tree.
  const ReceivedEntity& entity() const { return parsed_->entity; }
  const rapidjson::Document& json() const { return parsed_->json; }
  // The document re-serialized on one line (for JSON Lines output).
  std::string CompactJson() const;

 private:
  struct Parsed {
    rapidjson::Document json;
    ReceivedEntity entity;
  };
  explicit ReceivedDocument(std::shared_ptr<const Parsed> parsed) : parsed_(std::move(parsed)) {}
  friend absl::StatusOr<ReceivedDocument> ParseDocument(std::string_view body);

  std::shared_ptr<const Parsed> parsed_;
};

// Parses one daemon datagram the way the X-Ray daemon does (spec 4.1): a JSON header line whose
// `format` is "json" (any case) and whose `version` is the integer 1, the first '\n', then a
// non-empty body, which must be a valid document (see ParseDocument). Errors are
// InvalidArgument with the reason (bad header, missing newline, bad JSON, missing field...).
absl::StatusOr<ReceivedDocument> ParseDatagram(std::string_view datagram);

// Parses one document without header. Beyond valid UTF-8 JSON it checks what the service needs
// and what a correct SDK always writes: `id`, `name`, `start_time` and (at the root) `trace_id`
// present and well-formed; the types of the fields it models (times, `in_progress`, `parent_id`,
// `type`, `namespace`, the error flags, `http` method/url/status/content_length, annotation
// values, `cause`); `end_time` not before `start_time`; a streamed subsegment has a `parent_id`;
// an embedded subsegment does not name another trace or another parent. Annotation keys are
// not checked: real SDKs send keys the schema rejects (dots, from the Go SDK).
absl::StatusOr<ReceivedDocument> ParseDocument(std::string_view body);

// `{"format":"json","version":1}` + '\n' + `document`: a datagram as SDKs send it.
std::string MakeDatagram(std::string_view document);

}  // namespace xraysink::tools

#endif  // XRAYSINK_TOOLS_LOCAL_DAEMON_DATAGRAM_H_
