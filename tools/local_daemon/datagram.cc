#include "tools/local_daemon/datagram.h"

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "rapidjson/error/en.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace xraysink::tools {
namespace {

constexpr unsigned kParseFlags =
    rapidjson::kParseValidateEncodingFlag | rapidjson::kParseFullPrecisionFlag;

absl::Status Invalid(std::string_view where, std::string_view what) {
  return absl::InvalidArgumentError(
      where.empty() ? std::string(what)
                    : absl::StrCat(std::string(where), ": ", std::string(what)));
}

bool IsHex(std::string_view text) {
  for (char c : text) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

std::string_view View(const rapidjson::Value& string) {
  return std::string_view(string.GetString(), string.GetStringLength());
}

// Spec 1.2: exactly 16 hex digits.
bool IsEntityId(std::string_view text) { return text.size() == 16 && IsHex(text); }

// The schema's trace id: at least 35 characters, `digits-hex-24 hex`.
bool IsTraceId(std::string_view text) {
  if (text.size() < 35) return false;
  const size_t first = text.find('-');
  const size_t last = text.rfind('-');
  if (first == std::string_view::npos || first == 0 || first == last) return false;
  for (char c : text.substr(0, first)) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return IsHex(text.substr(first + 1, last - first - 1)) && text.size() - last - 1 == 24 &&
         IsHex(text.substr(last + 1));
}

// Reads a document's entities into the light model, checking each field it relies on.
class EntityReader {
 public:
  explicit EntityReader(std::string trace_id) : trace_id_(std::move(trace_id)) {}

  // `embedded_in` is the parent entity's id for an embedded subsegment, null for the root.
  absl::Status Read(const rapidjson::Value& object, const std::string& where,
                    const ReceivedEntity* embedded_in, ReceivedEntity& out) {
    if (!object.IsObject()) return Invalid(where, "not a JSON object");
    out.json = &object;
    const std::string_view type = OptionalString(object, "type");
    if (!type.empty() && type != "subsegment") {
      return Invalid(where, absl::StrCat("unknown type '", std::string(type), "'"));
    }
    out.is_segment = embedded_in == nullptr && type.empty();
    out.is_streamed = embedded_in == nullptr && !type.empty();
    if (absl::Status s = RequiredId(object, "id", where, out.id); !s.ok()) return s;
    if (absl::Status s = ReadName(object, where, out.name); !s.ok()) return s;
    if (absl::Status s = ReadTimes(object, where, out); !s.ok()) return s;
    if (absl::Status s = ReadTraceAndParent(object, where, embedded_in, out); !s.ok()) return s;
    if (absl::Status s = CheckDetails(object, where); !s.ok()) return s;

    const auto subsegments = object.FindMember("subsegments");
    if (subsegments == object.MemberEnd()) return absl::OkStatus();
    if (!subsegments->value.IsArray()) return Invalid(where, "subsegments is not an array");
    const auto& items = subsegments->value.GetArray();
    out.subsegments.resize(items.Size());
    for (rapidjson::SizeType i = 0; i < items.Size(); ++i) {
      const std::string child_where =
          absl::StrCat(where, where.empty() ? "" : ".", "subsegments[", i, "]");
      if (absl::Status s = Read(items[i], child_where, &out, out.subsegments[i]); !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  }

 private:
  static std::string_view OptionalString(const rapidjson::Value& object, const char* key) {
    const auto member = object.FindMember(key);
    if (member == object.MemberEnd() || !member->value.IsString()) return {};
    return View(member->value);
  }

  // Checks that `key`, when present, has the type `is_type` accepts.
  template <typename Check>
  static absl::Status CheckType(const rapidjson::Value& object, const char* key,
                                const std::string& where, const char* type, Check is_type) {
    const auto member = object.FindMember(key);
    if (member == object.MemberEnd() || is_type(member->value)) return absl::OkStatus();
    return Invalid(where, absl::StrCat(key, " is not ", type));
  }

  static absl::Status RequiredId(const rapidjson::Value& object, const char* key,
                                 const std::string& where, std::string& out) {
    const auto member = object.FindMember(key);
    if (member == object.MemberEnd()) return Invalid(where, absl::StrCat("missing ", key));
    if (!member->value.IsString() || !IsEntityId(View(member->value))) {
      return Invalid(where, absl::StrCat(key, " is not 16 hex digits"));
    }
    out = std::string(View(member->value));
    return absl::OkStatus();
  }

  static absl::Status ReadName(const rapidjson::Value& object, const std::string& where,
                               std::string& out) {
    const auto member = object.FindMember("name");
    if (member == object.MemberEnd()) return Invalid(where, "missing name");
    if (!member->value.IsString() || member->value.GetStringLength() == 0) {
      return Invalid(where, "name is not a non-empty string");
    }
    out = std::string(View(member->value));
    return absl::OkStatus();
  }

  static absl::Status ReadTimes(const rapidjson::Value& object, const std::string& where,
                                ReceivedEntity& out) {
    const auto start = object.FindMember("start_time");
    if (start == object.MemberEnd()) return Invalid(where, "missing start_time");
    if (!start->value.IsNumber()) return Invalid(where, "start_time is not a number");
    out.start_time = start->value.GetDouble();
    if (const auto end = object.FindMember("end_time"); end != object.MemberEnd()) {
      if (!end->value.IsNumber()) return Invalid(where, "end_time is not a number");
      out.end_time = end->value.GetDouble();
      if (*out.end_time < out.start_time) return Invalid(where, "end_time is before start_time");
    }
    if (const auto progress = object.FindMember("in_progress"); progress != object.MemberEnd()) {
      if (!progress->value.IsBool()) return Invalid(where, "in_progress is not a boolean");
      out.in_progress = progress->value.GetBool();
    }
    return absl::OkStatus();
  }

  absl::Status ReadTraceAndParent(const rapidjson::Value& object, const std::string& where,
                                  const ReceivedEntity* embedded_in, ReceivedEntity& out) const {
    out.trace_id = trace_id_;
    if (const auto trace = object.FindMember("trace_id"); trace != object.MemberEnd()) {
      if (!trace->value.IsString() || View(trace->value) != trace_id_) {
        return Invalid(where, "trace_id differs from its document's");
      }
    }
    if (const auto parent = object.FindMember("parent_id"); parent != object.MemberEnd()) {
      if (!parent->value.IsString() || !IsEntityId(View(parent->value))) {
        return Invalid(where, "parent_id is not 16 hex digits");
      }
      out.parent_id = std::string(View(parent->value));
    }
    if (embedded_in != nullptr) {
      if (!out.parent_id.empty() && out.parent_id != embedded_in->id) {
        return Invalid(
            where, absl::StrCat("parent_id ", out.parent_id, " but embedded in ", embedded_in->id));
      }
      out.parent_id = embedded_in->id;
    } else if (out.is_streamed && out.parent_id.empty()) {
      return Invalid(where, "a subsegment sent on its own needs a parent_id");
    }
    return absl::OkStatus();
  }

  static absl::Status CheckDetails(const rapidjson::Value& object, const std::string& where) {
    const auto is_bool = [](const rapidjson::Value& v) { return v.IsBool(); };
    const auto is_string = [](const rapidjson::Value& v) { return v.IsString(); };
    const auto is_integer = [](const rapidjson::Value& v) { return v.IsInt64(); };
    const auto is_object = [](const rapidjson::Value& v) { return v.IsObject(); };
    for (const char* flag : {"error", "fault", "throttle"}) {
      if (absl::Status s = CheckType(object, flag, where, "a boolean", is_bool); !s.ok()) return s;
    }
    if (const auto ns = object.FindMember("namespace"); ns != object.MemberEnd()) {
      const std::string_view value = ns->value.IsString() ? View(ns->value) : "";
      if (value != "aws" && value != "remote" && value != "local") {
        return Invalid(where, "namespace is not aws, remote or local");
      }
    }
    // A cause id only needs the schema's 16 characters: exception ids are not ours to place.
    if (absl::Status s = CheckType(object, "cause", where, "an object or a 16-character id",
                                   [](const rapidjson::Value& v) {
                                     return v.IsObject() ||
                                            (v.IsString() && v.GetStringLength() == 16);
                                   });
        !s.ok()) {
      return s;
    }
    if (absl::Status s = CheckType(object, "annotations", where, "an object", is_object); !s.ok()) {
      return s;
    }
    if (const auto annotations = object.FindMember("annotations");
        annotations != object.MemberEnd()) {
      for (const auto& annotation : annotations->value.GetObject()) {
        const rapidjson::Value& v = annotation.value;
        if (!v.IsString() && !v.IsNumber() && !v.IsBool()) {
          return Invalid(where, absl::StrCat("annotation ", std::string(View(annotation.name)),
                                             " is not a string, number or boolean"));
        }
      }
    }
    if (absl::Status s = CheckType(object, "http", where, "an object", is_object); !s.ok()) {
      return s;
    }
    const auto http = object.FindMember("http");
    if (http == object.MemberEnd()) return absl::OkStatus();
    for (const char* part : {"request", "response"}) {
      if (absl::Status s = CheckType(http->value, part, where, "an object", is_object); !s.ok()) {
        return s;
      }
    }
    if (const auto request = http->value.FindMember("request");
        request != http->value.MemberEnd()) {
      for (const char* key : {"method", "url"}) {
        if (absl::Status s = CheckType(request->value, key, where, "a string", is_string);
            !s.ok()) {
          return s;
        }
      }
    }
    if (const auto response = http->value.FindMember("response");
        response != http->value.MemberEnd()) {
      for (const char* key : {"status", "content_length"}) {
        if (absl::Status s = CheckType(response->value, key, where, "an integer", is_integer);
            !s.ok()) {
          return s;
        }
      }
    }
    return absl::OkStatus();
  }

  const std::string trace_id_;
};

}  // namespace

std::string ReceivedDocument::CompactJson() const {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  parsed_->json.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

absl::StatusOr<ReceivedDocument> ParseDocument(std::string_view body) {
  auto parsed = std::make_shared<ReceivedDocument::Parsed>();
  rapidjson::Document& json = parsed->json;
  json.Parse<kParseFlags>(body.data(), body.size());
  if (json.HasParseError()) {
    return Invalid("", absl::StrCat("bad JSON at offset ", json.GetErrorOffset(), ": ",
                                    rapidjson::GetParseError_En(json.GetParseError())));
  }
  if (!json.IsObject()) return Invalid("", "the document is not a JSON object");
  const auto trace_id = json.FindMember("trace_id");
  if (trace_id == json.MemberEnd()) return Invalid("", "missing trace_id");
  if (!trace_id->value.IsString() || !IsTraceId(View(trace_id->value))) {
    return Invalid("", "trace_id is not of the form 1-<hex time>-<24 hex digits>");
  }
  EntityReader reader{std::string(View(trace_id->value))};
  if (absl::Status s = reader.Read(json, "", nullptr, parsed->entity); !s.ok()) return s;
  return ReceivedDocument(std::move(parsed));
}

absl::StatusOr<ReceivedDocument> ParseDatagram(std::string_view datagram) {
  const size_t newline = datagram.find('\n');
  if (newline == std::string_view::npos) return Invalid("", "bad datagram: no header line");
  const std::string_view header_text = datagram.substr(0, newline);
  rapidjson::Document header;
  header.Parse<kParseFlags>(header_text.data(), header_text.size());
  if (header.HasParseError() || !header.IsObject()) {
    return Invalid("", "bad header: not a JSON object");
  }
  const auto format = header.FindMember("format");
  if (format == header.MemberEnd() || !format->value.IsString() ||
      absl::AsciiStrToLower(std::string(View(format->value))) != "json") {
    return Invalid("", "bad header: format is not \"json\"");
  }
  const auto version = header.FindMember("version");
  if (version == header.MemberEnd() || !version->value.IsInt() || version->value.GetInt() != 1) {
    return Invalid("", "bad header: version is not 1");
  }
  const std::string_view body = datagram.substr(newline + 1);
  if (body.empty()) return Invalid("", "bad datagram: empty body");
  return ParseDocument(body);
}

std::string MakeDatagram(std::string_view document) {
  return absl::StrCat("{\"format\":\"json\",\"version\":1}\n",
                      absl::string_view(document.data(), document.size()));
}

}  // namespace xraysink::tools
