#include "core/serialization.h"

#include <algorithm>
#include <cmath>
#include <string_view>

#include "core/entity.h"
#include "core/internal/json_text.h"
#include "core/internal/json_writer.h"
#include "core/internal/text.h"
#include "rapidjson/stringbuffer.h"

namespace xraysink::core {
namespace {

constexpr size_t kMaxFieldChars = 250;        // http strings, user
constexpr size_t kMaxAnnotationChars = 1000;  // annotation strings
constexpr size_t kTrimmedTextChars = 256;     // strings once a document is trimmed to fit

using internal::JsonWriter;
using internal::kMaxTextChars;  // any other string (messages, queries, metadata)

// How much of an entity goes into a document.
struct Shape {
  bool children = true;  // embed (not yet sent) children
  bool trimmed = false;  // last resort for oversize documents: no metadata, no stacks
};

class DocumentWriter {
 public:
  DocumentWriter(rapidjson::StringBuffer& buffer, Shape shape) : writer_(buffer), shape_(shape) {}

  void WriteDocument(const Segment& segment, const Subsegment* subtree) {
    if (subtree == nullptr) {
      WriteSegment(segment);
    } else {
      WriteSubsegment(*subtree, /*independent=*/true);
    }
  }

 private:
  // Keys written here are our field names or annotation keys (validated when put): nothing in
  // them needs escaping.
  void Key(std::string_view key) { writer_.CleanKey(key.data(), key.size()); }

  void String(std::string_view text, size_t max_chars = kMaxTextChars) {
    if (shape_.trimmed) max_chars = std::min(max_chars, kTrimmedTextChars);
    const std::string_view valid = internal::ValidUtf8(text, max_chars, scratch_);
    writer_.String(valid.data(), valid.size());
  }

  void Field(std::string_view key, std::string_view value, size_t max_chars = kMaxTextChars) {
    if (value.empty()) return;
    Key(key);
    String(value, max_chars);
  }

  void Number(double value) {
    if (std::isfinite(value)) {
      writer_.Double(value);
    } else {
      writer_.Null();
    }
  }

  // Writes the last 2*N decimal digits of `value` at `out`. Each pair is computed from `value`
  // on its own, so the divisions run in parallel rather than as one long chain.
  template <int N>
  static void PutDigitPairs(uint32_t value, char* out) {
    static constexpr char kPairs[] =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
        "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
        "8081828384858687888990919293949596979899";
    uint32_t divisor = 1;
    for (int i = N - 1; i >= 0; --i) {
      const uint32_t pair = (value / divisor) % 100;
      out[2 * i] = kPairs[2 * pair];
      out[2 * i + 1] = kPairs[2 * pair + 1];
      divisor *= 100;
    }
  }

  // Epoch seconds with microseconds, written without floating-point formatting (Grisu costs
  // ~100 ns a number; timestamps are most of a document's numbers).
  void Timestamp(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0 || seconds >= 4e9) {
      Number(seconds);
      return;
    }
    auto whole = static_cast<uint32_t>(seconds);
    auto fraction = static_cast<uint32_t>((seconds - whole) * 1e6 + 0.5);
    if (fraction >= 1000000) {
      ++whole;
      fraction -= 1000000;
    }
    char text[32];
    char* end = text + sizeof(text);
    char* p = end - 7;
    p[0] = '.';
    PutDigitPairs<3>(fraction, p + 1);
    if (whole >= 1000000000) {  // every date from 2001 to 2106: ten digits
      p -= 10;
      PutDigitPairs<5>(whole, p);
    } else {
      uint32_t rest = whole;
      do {
        *--p = static_cast<char>('0' + rest % 10);
        rest /= 10;
      } while (rest != 0);
    }
    writer_.RawNumber(p, static_cast<size_t>(end - p));
  }

  void Id(std::string_view key, EntityId id) {
    char text[EntityId::kLength];
    id.WriteTo(text);
    Key(key);
    writer_.String(text, EntityId::kLength);
  }

  void Name(std::string_view name) {
    const std::string_view valid = internal::EntityName(name, scratch_);
    Key("name");
    writer_.String(valid.data(), valid.size());
  }

  // JSON text made valid when it was put (metadata).
  void RawJson(std::string_view json) { writer_.RawJson(json.data(), json.size()); }

  void Json(const JsonValue& value) {
    internal::WriteJsonValue(value, shape_.trimmed ? kTrimmedTextChars : kMaxTextChars, writer_,
                             scratch_);
  }

  // Fields common to segments and subsegments.
  void WriteCommon(const Entity& entity) {
    Name(entity.name());
    Id("id", entity.id());
    Key("start_time");
    Timestamp(entity.start_time());
    const double end = entity.end_time();
    if (end != 0) {
      Key("end_time");
      Timestamp(end);
    } else {
      Key("in_progress");
      writer_.Bool(true);
    }
    if (entity.error()) {
      Key("error");
      writer_.Bool(true);
    }
    if (entity.fault()) {
      Key("fault");
      writer_.Bool(true);
    }
    if (entity.throttle()) {
      Key("throttle");
      writer_.Bool(true);
    }
    if (const HttpData* http = entity.http_data()) WriteHttp(*http);
    if (const CauseData* cause = entity.cause()) WriteCause(*cause);
    WriteAnnotations(entity);
    if (!shape_.trimmed) WriteMetadata(entity);
  }

  void WriteHttp(const HttpData& http) {
    if (!http.request && !http.response) return;
    Key("http");
    writer_.StartObject();
    if (http.request) {
      const auto& request = *http.request;
      Key("request");
      writer_.StartObject();
      Field("method", request.method, kMaxFieldChars);
      Field("url", request.url, kMaxFieldChars);
      Field("user_agent", request.user_agent, kMaxFieldChars);
      Field("client_ip", request.client_ip, kMaxFieldChars);
      if (request.x_forwarded_for) {
        Key("x_forwarded_for");
        writer_.Bool(true);
      }
      if (request.traced) {
        Key("traced");
        writer_.Bool(true);
      }
      writer_.EndObject();
    }
    if (http.response) {
      Key("response");
      writer_.StartObject();
      if (http.response->status != 0) {
        Key("status");
        writer_.Int(http.response->status);
      }
      if (http.response->content_length) {
        Key("content_length");
        writer_.Int64(*http.response->content_length);
      }
      writer_.EndObject();
    }
    writer_.EndObject();
  }

  void WriteCause(const CauseData& cause) {
    if (cause.exceptions.empty()) {
      if (cause.reference.empty()) return;
      Id("cause", cause.reference);
      return;
    }
    Key("cause");
    writer_.StartObject();
    Field("working_directory", cause.working_directory);
    if (!cause.paths.empty()) {
      Key("paths");
      writer_.StartArray();
      for (const auto& path : cause.paths) String(path);
      writer_.EndArray();
    }
    Key("exceptions");
    writer_.StartArray();
    for (const ExceptionData& exception : cause.exceptions) {
      writer_.StartObject();
      Id("id", exception.id);
      Field("message", exception.message);
      Field("type", exception.type);
      if (exception.remote) {
        Key("remote");
        writer_.Bool(true);
      }
      int truncated = exception.truncated;
      if (shape_.trimmed) truncated += static_cast<int>(exception.stack.size());
      if (truncated > 0) {
        Key("truncated");
        writer_.Int(truncated);
      }
      if (exception.skipped > 0) {
        Key("skipped");
        writer_.Int(exception.skipped);
      }
      if (!exception.cause.empty()) Id("cause", exception.cause);
      if (!shape_.trimmed && !exception.stack.empty()) {
        Key("stack");
        writer_.StartArray();
        for (const StackFrame& frame : exception.stack) {
          writer_.StartObject();
          Field("path", frame.path);
          if (frame.line > 0) {
            Key("line");
            writer_.Int(frame.line);
          }
          Field("label", frame.label);
          writer_.EndObject();
        }
        writer_.EndArray();
      }
      writer_.EndObject();
    }
    writer_.EndArray();
    writer_.EndObject();
  }

  void WriteAnnotations(const Entity& entity) {
    const auto& annotations = entity.annotations();
    if (annotations.empty()) return;
    Key("annotations");
    writer_.StartObject();
    for (const auto& [key, value] : annotations) {
      Key(key);  // validated when put
      if (const bool* b = std::get_if<bool>(&value)) {
        writer_.Bool(*b);
      } else if (const int64_t* i = std::get_if<int64_t>(&value)) {
        writer_.Int64(*i);
      } else if (const double* d = std::get_if<double>(&value)) {
        if (std::isfinite(*d)) {
          writer_.Double(*d);
        } else {
          String(std::isnan(*d) ? "NaN" : (*d > 0 ? "Infinity" : "-Infinity"));
        }
      } else {
        String(std::get<std::string>(value), kMaxAnnotationChars);
      }
    }
    writer_.EndObject();
  }

  void WriteMetadata(const Entity& entity) {
    const auto& metadata = entity.metadata();
    if (metadata.empty()) return;
    Key("metadata");
    writer_.StartObject();
    // Entries are grouped by namespace in first-use order. Usually there is one namespace:
    // then no bookkeeping is needed.
    const bool one_namespace =
        std::all_of(metadata.begin() + 1, metadata.end(),
                    [&](const Entity::MetadataEntry& entry) { return entry.ns == metadata[0].ns; });
    if (one_namespace) {
      String(metadata[0].ns);
      writer_.StartObject();
      for (const auto& entry : metadata) {
        String(entry.key);
        RawJson(entry.json);
      }
      writer_.EndObject();
      writer_.EndObject();
      return;
    }
    std::vector<bool> written(metadata.size(), false);
    for (size_t i = 0; i < metadata.size(); ++i) {
      if (written[i]) continue;
      String(metadata[i].ns);
      writer_.StartObject();
      for (size_t j = i; j < metadata.size(); ++j) {
        if (written[j] || metadata[j].ns != metadata[i].ns) continue;
        written[j] = true;
        String(metadata[j].key);
        RawJson(metadata[j].json);
      }
      writer_.EndObject();
    }
    writer_.EndObject();
  }

  void WriteSubsegmentAws(const AwsData& aws) {
    Key("aws");
    writer_.StartObject();
    Field("account_id", aws.account_id);
    Field("operation", aws.operation);
    Field("region", aws.region);
    Field("request_id", aws.request_id);
    Field("queue_url", aws.queue_url);
    Field("table_name", aws.table_name);
    if (aws.retries) {
      Key("retries");
      writer_.Int(*aws.retries);
    }
    for (const auto& [key, value] : aws.extra) {
      String(key);
      Json(value);
    }
    writer_.EndObject();
  }

  void WriteSegmentAws(const Segment& segment) {
    const SegmentSettings& settings = segment.settings();
    static const AwsData kNone;
    const AwsData& own = segment.aws_data() != nullptr ? *segment.aws_data() : kNone;
    const AwsData& base = settings.aws;
    const auto pick = [](const auto& mine, const auto& fallback) -> const auto& {
      return mine ? mine : fallback;
    };
    Key("aws");
    writer_.StartObject();
    Field("account_id", own.account_id.empty() ? base.account_id : own.account_id);
    if (const auto& ec2 = pick(own.ec2, base.ec2)) {
      Key("ec2");
      writer_.StartObject();
      Field("instance_id", ec2->instance_id);
      Field("availability_zone", ec2->availability_zone);
      Field("instance_size", ec2->instance_size);
      Field("ami_id", ec2->ami_id);
      writer_.EndObject();
    }
    if (const auto& ecs = pick(own.ecs, base.ecs)) {
      Key("ecs");
      writer_.StartObject();
      Field("container", ecs->container);
      Field("container_id", ecs->container_id);
      Field("container_arn", ecs->container_arn);
      writer_.EndObject();
    }
    if (const auto& beanstalk = pick(own.elastic_beanstalk, base.elastic_beanstalk)) {
      Key("elastic_beanstalk");
      writer_.StartObject();
      Field("environment_name", beanstalk->environment_name);
      Field("version_label", beanstalk->version_label);
      if (beanstalk->deployment_id) {
        Key("deployment_id");
        writer_.Int64(*beanstalk->deployment_id);
      }
      writer_.EndObject();
    }
    if (const auto& eks = pick(own.eks, base.eks)) {
      Key("eks");
      writer_.StartObject();
      Field("cluster_name", eks->cluster_name);
      Field("pod", eks->pod);
      Field("container_id", eks->container_id);
      writer_.EndObject();
    }
    Key("xray");
    writer_.StartObject();
    Field("sdk", settings.sdk_name);
    Field("sdk_version", settings.sdk_version);
    Field("sampling_rule_name", segment.sampling_rule_name());
    writer_.EndObject();
    if (!base.cloudwatch_logs.empty() || !own.cloudwatch_logs.empty()) {
      Key("cloudwatch_logs");
      writer_.StartArray();
      for (const auto* groups : {&base.cloudwatch_logs, &own.cloudwatch_logs}) {
        for (const LogGroup& group : *groups) {
          writer_.StartObject();
          Field("log_group", group.log_group);
          Field("arn", group.arn);
          writer_.EndObject();
        }
      }
      writer_.EndArray();
    }
    writer_.EndObject();
  }

  void WriteService(const Segment& segment) {
    const ServiceData& service =
        segment.service_data() != nullptr ? *segment.service_data() : segment.settings().service;
    if (service.version.empty() && service.compiler.empty() && service.compiler_version.empty() &&
        service.runtime.empty() && service.runtime_version.empty()) {
      return;
    }
    Key("service");
    writer_.StartObject();
    Field("version", service.version);
    Field("compiler", service.compiler);
    Field("compiler_version", service.compiler_version);
    Field("runtime", service.runtime);
    Field("runtime_version", service.runtime_version);
    writer_.EndObject();
  }

  void WriteChildren(const Entity& entity) {
    if (!shape_.children) return;
    bool open = false;
    for (const auto& child : entity.children()) {
      if (child->streamed() || child->detached()) continue;
      if (!open) {
        Key("subsegments");
        writer_.StartArray();
        open = true;
      }
      WriteSubsegment(*child, /*independent=*/false);
    }
    if (open) writer_.EndArray();
  }

  void WriteSegment(const Segment& segment) {
    writer_.StartObject();
    WriteCommon(segment);
    Key("trace_id");
    writer_.String(segment.trace_id().view().data(), TraceId::kLength);
    if (!segment.parent_id().empty()) Id("parent_id", segment.parent_id());
    Field("user", segment.user(), kMaxFieldChars);
    Field("origin", segment.origin());
    Field("resource_arn", segment.resource_arn());
    WriteService(segment);
    WriteSegmentAws(segment);
    WriteChildren(segment);
    writer_.EndObject();
  }

  void WriteSubsegment(const Subsegment& subsegment, bool independent) {
    writer_.StartObject();
    WriteCommon(subsegment);
    if (independent) {
      Key("type");
      writer_.String("subsegment");
      Key("trace_id");
      writer_.String(subsegment.segment().trace_id().view().data(), TraceId::kLength);
      Id("parent_id", subsegment.parent()->id());
    }
    switch (subsegment.ns()) {
      case Namespace::kLocal:
        break;
      case Namespace::kRemote:
        Key("namespace");
        writer_.String("remote");
        break;
      case Namespace::kAws:
        Key("namespace");
        writer_.String("aws");
        break;
    }
    if (const AwsData* aws = subsegment.aws_data()) WriteSubsegmentAws(*aws);
    if (const SqlData* sql = subsegment.sql_data()) {
      Key("sql");
      writer_.StartObject();
      Field("connection_string", sql->connection_string);
      Field("url", sql->url);
      Field("sanitized_query", sql->sanitized_query);
      Field("database_type", sql->database_type);
      Field("database_version", sql->database_version);
      Field("driver_version", sql->driver_version);
      Field("user", sql->user, kMaxFieldChars);
      Field("preparation", sql->preparation);
      writer_.EndObject();
    }
    if (!subsegment.precursor_ids().empty()) {
      Key("precursor_ids");
      writer_.StartArray();
      for (EntityId id : subsegment.precursor_ids()) {
        char text[EntityId::kLength];
        id.WriteTo(text);
        writer_.String(text, EntityId::kLength);
      }
      writer_.EndArray();
    }
    WriteChildren(subsegment);
    writer_.EndObject();
  }

  JsonWriter writer_;
  const Shape shape_;
  std::string scratch_;
};

// Serializes `document` with the tree already locked.
void WriteLocked(const DocumentRef& document, Shape shape, rapidjson::StringBuffer& buffer) {
  buffer.Clear();
  DocumentWriter writer(buffer, shape);
  writer.WriteDocument(*document.segment, document.subtree);
}

const Entity& Root(const DocumentRef& document) {
  if (document.subtree != nullptr) return *document.subtree;
  return *document.segment;
}

void AppendDatagram(const rapidjson::StringBuffer& buffer, std::vector<std::string>& out,
                    std::vector<std::string>* spare) {
  std::string datagram;
  if (spare != nullptr && !spare->empty()) {
    datagram = std::move(spare->back());
    spare->pop_back();
    datagram.clear();
  }
  datagram.reserve(sizeof(kDaemonHeader) - 1 + buffer.GetSize());
  datagram.append(kDaemonHeader, sizeof(kDaemonHeader) - 1);
  datagram.append(buffer.GetString(), buffer.GetSize());
  out.push_back(std::move(datagram));
}

// Emits `document` in as many datagrams as it takes (tree locked).
void DatagramsLocked(const DocumentRef& document, size_t max_bytes, rapidjson::StringBuffer& buffer,
                     std::vector<std::string>& out, SerializationStats& stats,
                     std::vector<std::string>* spare) {
  const size_t header = sizeof(kDaemonHeader) - 1;
  WriteLocked(document, Shape{}, buffer);
  if (header + buffer.GetSize() <= max_bytes) {
    AppendDatagram(buffer, out, spare);
    ++stats.documents;
    return;
  }
  // Too big: send each embedded child as an independent document, then this entity alone.
  bool split = false;
  for (const auto& child : Root(document).children()) {
    if (child->streamed() || child->detached()) continue;
    split = true;
    DatagramsLocked(DocumentRef{document.segment, child.get()}, max_bytes, buffer, out, stats,
                    spare);
  }
  if (split) ++stats.split_documents;
  WriteLocked(document, Shape{.children = false}, buffer);
  if (header + buffer.GetSize() > max_bytes) {
    WriteLocked(document, Shape{.children = false, .trimmed = true}, buffer);
    ++stats.trimmed_documents;
    if (header + buffer.GetSize() > max_bytes) {
      ++stats.dropped_documents;
      return;
    }
  }
  AppendDatagram(buffer, out, spare);
  ++stats.documents;
}

}  // namespace

std::string SerializeDocument(const DocumentRef& document) {
  rapidjson::StringBuffer buffer;
  document.segment->WithTreeLocked([&] { WriteLocked(document, Shape{}, buffer); });
  return std::string(buffer.GetString(), buffer.GetSize());
}

void SerializeDatagrams(const DocumentRef& document, size_t max_bytes,
                        std::vector<std::string>& out, SerializationStats& stats,
                        std::vector<std::string>* spare) {
  thread_local rapidjson::StringBuffer buffer;
  document.segment->WithTreeLocked(
      [&] { DatagramsLocked(document, max_bytes, buffer, out, stats, spare); });
  if (buffer.GetSize() > (1 << 20)) buffer.ShrinkToFit();
}

}  // namespace xraysink::core
