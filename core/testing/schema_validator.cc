#include "core/testing/schema_validator.h"

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"
#include "rapidjson/schema.h"
#include "rapidjson/stringbuffer.h"

namespace xraysink::core::testing {
namespace {

constexpr char kAnnotationKeyPattern[] = "^[a-zA-Z0-9_]{1,500}$";
constexpr char kSchemaPath[] = "core/testdata/xray-segmentdocument-schema-v1.0.0.json";

std::string ReadSchemaText() {
  // Under `bazel test` the file is a runfile of this workspace; fall back to the source tree.
  std::string path = kSchemaPath;
  if (const char* srcdir = std::getenv("TEST_SRCDIR")) {
    const char* workspace = std::getenv("TEST_WORKSPACE");
    path = absl::StrCat(srcdir, "/", workspace != nullptr ? workspace : "xraysink", "/",
                        kSchemaPath);
  }
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

struct Schemas {
  std::unique_ptr<rapidjson::SchemaDocument> document;
  // RapidJSON's regex engine knows neither \uXXXX nor \d, so it skips the `name` and
  // `trace_id` patterns; they are checked here, from the same schema text.
  std::vector<std::pair<uint32_t, uint32_t>> name_ranges;
  size_t name_max_chars = 0;
};

// Parses the schema's `name` pattern, one character class: ^[...]{1,N}$.
void ParseNamePattern(const std::string& pattern, Schemas& schemas) {
  const size_t open = pattern.find('[');
  const size_t close = pattern.rfind("]{1,");
  if (open == std::string::npos || close == std::string::npos) std::abort();
  schemas.name_max_chars = std::stoul(pattern.substr(close + 4));
  std::vector<int64_t> items;  // code points; -1 marks a range dash
  for (size_t i = open + 1; i < close;) {
    if (pattern[i] == '\\' && pattern[i + 1] == 'u') {
      items.push_back(std::stol(pattern.substr(i + 2, 4), nullptr, 16));
      i += 6;
    } else if (pattern[i] == '\\') {
      items.push_back(static_cast<unsigned char>(pattern[i + 1]));
      i += 2;
    } else if (pattern[i] == '-' && !items.empty() && i + 1 < close) {
      items.push_back(-1);
      ++i;
    } else {
      items.push_back(static_cast<unsigned char>(pattern[i]));
      ++i;
    }
  }
  for (size_t i = 0; i < items.size();) {
    if (i + 2 < items.size() && items[i + 1] == -1) {
      schemas.name_ranges.emplace_back(items[i], items[i + 2]);
      i += 3;
    } else {
      schemas.name_ranges.emplace_back(items[i], items[i]);
      ++i;
    }
  }
}

const Schemas& Schema() {
  static const Schemas* const schemas = [] {
    auto* created = new Schemas;
    rapidjson::Document document;
    document.Parse(ReadSchemaText().c_str());
    if (document.HasParseError()) std::abort();
    ParseNamePattern(document["properties"]["name"]["pattern"].GetString(), *created);
    // RapidJSON 1.1 fails every property when patternProperties meets additionalProperties:
    // false, and its regex engine rejects {1,500}. The annotation values keep their schema here;
    // the key rule ([a-zA-Z0-9_]{1,500}, nothing else) is checked by CheckAnnotationKeys.
    for (rapidjson::Value* annotations :
         {&document["properties"]["annotations"],
          &document["definitions"]["subsegment"]["properties"]["annotations"]}) {
      rapidjson::Value& patterns = (*annotations)["patternProperties"];
      if (!patterns.HasMember(kAnnotationKeyPattern)) std::abort();
      rapidjson::Value key_schema(patterns[kAnnotationKeyPattern], document.GetAllocator());
      patterns.RemoveMember(kAnnotationKeyPattern);
      patterns.AddMember("^[a-zA-Z0-9_]+$", key_schema, document.GetAllocator());
      annotations->RemoveMember("additionalProperties");
    }
    created->document = std::make_unique<rapidjson::SchemaDocument>(document);
    return created;
  }();
  return *schemas;
}

absl::Status CheckAnnotationKeys(const rapidjson::Value& entity) {
  if (!entity.IsObject()) return absl::OkStatus();
  if (entity.HasMember("annotations") && entity["annotations"].IsObject()) {
    for (const auto& member : entity["annotations"].GetObject()) {
      const std::string key = member.name.GetString();
      bool ok = !key.empty() && key.size() <= 500;
      for (char c : key) {
        ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_');
      }
      if (!ok) return absl::InvalidArgumentError(absl::StrCat("annotation key '", key, "'"));
    }
  }
  if (entity.HasMember("subsegments") && entity["subsegments"].IsArray()) {
    for (const auto& child : entity["subsegments"].GetArray()) {
      if (absl::Status status = CheckAnnotationKeys(child); !status.ok()) return status;
    }
  }
  return absl::OkStatus();
}

bool IsHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

absl::Status CheckName(const rapidjson::Value& name) {
  const std::string text = name.GetString();
  size_t chars = 0;
  for (size_t i = 0; i < text.size(); ++chars) {
    const auto lead = static_cast<unsigned char>(text[i]);
    const size_t length = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
    uint32_t code_point = length == 1 ? lead : lead & (0x7F >> length);
    for (size_t k = 1; k < length; ++k) {
      code_point = (code_point << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
    }
    i += length;
    bool allowed = false;
    for (const auto& [first, last] : Schema().name_ranges) {
      allowed = allowed || (code_point >= first && code_point <= last);
    }
    if (!allowed) {
      return absl::InvalidArgumentError(
          absl::StrCat("name '", text, "': character U+", absl::Hex(code_point),
                       " is not allowed by the schema"));
    }
  }
  if (chars < 1 || chars > Schema().name_max_chars) {
    return absl::InvalidArgumentError(absl::StrCat("name '", text, "': length ", chars));
  }
  return absl::OkStatus();
}

// The schema's (unanchored) \d+-[A-Fa-f0-9]*-[A-Fa-f0-9]{24}, for our ids' form 1-8hex-24hex.
absl::Status CheckTraceId(const rapidjson::Value& trace_id) {
  const std::string text = trace_id.GetString();
  const size_t first = text.find('-');
  const size_t second = text.find('-', first + 1);
  bool ok = first != std::string::npos && first > 0 && second != std::string::npos &&
            text.size() - second - 1 >= 24;
  for (size_t i = 0; ok && i < text.size(); ++i) {
    if (i < first) ok = text[i] >= '0' && text[i] <= '9';
    if (i > first && i != second) ok = IsHex(text[i]);
  }
  if (!ok) return absl::InvalidArgumentError(absl::StrCat("trace_id '", text, "' malformed"));
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateSegmentDocument(std::string_view json) {
  rapidjson::Document document;
  document.Parse(json.data(), json.size());
  if (document.HasParseError()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not JSON: ", rapidjson::GetParseError_En(document.GetParseError()),
                     " at offset ", document.GetErrorOffset()));
  }
  rapidjson::SchemaValidator validator(*Schema().document);
  if (document.Accept(validator)) {
    if (absl::Status status = CheckAnnotationKeys(document); !status.ok()) return status;
    if (document.HasMember("name") && document["name"].IsString()) {
      if (absl::Status status = CheckName(document["name"]); !status.ok()) return status;
    }
    if (document.HasMember("trace_id") && document["trace_id"].IsString()) {
      return CheckTraceId(document["trace_id"]);
    }
    return absl::OkStatus();
  }
  rapidjson::StringBuffer schema_path, document_path;
  validator.GetInvalidSchemaPointer().StringifyUriFragment(schema_path);
  validator.GetInvalidDocumentPointer().StringifyUriFragment(document_path);
  return absl::InvalidArgumentError(absl::StrCat(
      "schema keyword '", validator.GetInvalidSchemaKeyword(), "' failed at schema ",
      schema_path.GetString(), ", document ", document_path.GetString(), ": ", std::string(json)));
}

}  // namespace xraysink::core::testing

// RapidJSON 1.1's schema keeps `enum`/`type` values it never frees (a known upstream leak):
// not ours, so LeakSanitizer is told to ignore it in tests that validate documents.
extern "C" const char* __lsan_default_suppressions() {
  return "leak:rapidjson::internal::Schema\n";
}
