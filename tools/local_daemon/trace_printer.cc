#include "tools/local_daemon/trace_printer.h"

#include <algorithm>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace xraysink::tools {
namespace {

const rapidjson::Value* Member(const rapidjson::Value& object, const char* key) {
  if (!object.IsObject()) return nullptr;
  const auto member = object.FindMember(key);
  return member == object.MemberEnd() ? nullptr : &member->value;
}

// Text with control characters escaped, so that an entity stays on one line (exception
// messages often span several).
std::string OneLine(std::string_view text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          absl::StrAppendFormat(&out, "\\x%02x", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::string OneLine(const rapidjson::Value& string) {
  return OneLine(std::string_view(string.GetString(), string.GetStringLength()));
}

// Appends " <text>" for a string member, " <number>" for an integer one.
void AppendScalar(const rapidjson::Value* value, std::string& line) {
  if (value == nullptr) return;
  if (value->IsString()) absl::StrAppend(&line, " ", OneLine(*value));
  if (value->IsInt64()) absl::StrAppend(&line, " ", value->GetInt64());
}

std::string AnnotationValue(const rapidjson::Value& value) {
  if (value.IsString()) return OneLine(value);
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  value.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

void AppendCause(const rapidjson::Value* cause, std::string& line) {
  if (cause == nullptr) return;
  if (cause->IsString()) {
    absl::StrAppend(&line, " cause: see exception ", OneLine(*cause));
    return;
  }
  const rapidjson::Value* exceptions = Member(*cause, "exceptions");
  if (exceptions == nullptr || !exceptions->IsArray()) return;
  for (const rapidjson::Value& exception : exceptions->GetArray()) {
    const rapidjson::Value* type = Member(exception, "type");
    const rapidjson::Value* message = Member(exception, "message");
    const bool has_type = type != nullptr && type->IsString();
    const bool has_message = message != nullptr && message->IsString();
    absl::StrAppend(&line, " cause: ", has_type ? OneLine(*type) : "",
                    has_type && has_message ? ": " : "", has_message ? OneLine(*message) : "");
  }
}

std::string EntityLine(const TraceNode& node) {
  const ReceivedEntity& entity = *node.entity;
  const rapidjson::Value& json = *entity.json;
  std::string line = OneLine(entity.name);
  if (entity.is_segment) line += " (segment)";
  if (entity.ended()) {
    absl::StrAppend(&line,
                    absl::StrFormat(" %.1f ms", (*entity.end_time - entity.start_time) * 1e3));
  } else {
    line += " in progress";
  }
  if (const rapidjson::Value* http = Member(json, "http")) {
    if (const rapidjson::Value* request = Member(*http, "request")) {
      AppendScalar(Member(*request, "method"), line);
      AppendScalar(Member(*request, "url"), line);
    }
    if (const rapidjson::Value* response = Member(*http, "response")) {
      AppendScalar(Member(*response, "status"), line);
    }
  }
  for (const char* flag : {"error", "fault", "throttle"}) {
    const rapidjson::Value* value = Member(json, flag);
    if (value != nullptr && value->IsBool() && value->GetBool()) absl::StrAppend(&line, " !", flag);
  }
  if (const rapidjson::Value* annotations = Member(json, "annotations");
      annotations != nullptr && annotations->IsObject()) {
    for (const auto& annotation : annotations->GetObject()) {
      absl::StrAppend(&line, " ", OneLine(annotation.name), "=", AnnotationValue(annotation.value));
    }
  }
  AppendCause(Member(json, "cause"), line);
  if (node.orphan) absl::StrAppend(&line, " (orphan: parent ", entity.parent_id, " not received)");
  return line;
}

// Deeper lines are indented as this level and start with their depth: indenting each level
// would make a deep trace's output quadratic in its depth. The SDK nests subsegments 64 deep by
// default, so ordinary traces print as a plain tree.
constexpr size_t kMaxIndentDepth = 64;

// Depth first with an explicit stack, as streamed subsegments can nest a trace deeper than the
// thread's stack allows frames.
void AppendTree(const std::vector<TraceNode>& roots, std::string& out) {
  std::vector<std::pair<const TraceNode*, size_t>> stack;
  for (auto root = roots.rbegin(); root != roots.rend(); ++root) stack.emplace_back(&*root, 1);
  while (!stack.empty()) {
    const auto [node, depth] = stack.back();
    stack.pop_back();
    out.append(2 * std::min(depth, kMaxIndentDepth), ' ');
    if (depth > kMaxIndentDepth) absl::StrAppend(&out, "[depth ", depth, "] ");
    absl::StrAppend(&out, EntityLine(*node), "\n");
    for (auto child = node->children.rbegin(); child != node->children.rend(); ++child) {
      stack.emplace_back(&*child, depth + 1);
    }
  }
}

}  // namespace

std::string FormatTrace(const Trace& trace, std::string_view remark) {
  std::string out = absl::StrCat("trace ", trace.id());
  if (!remark.empty()) absl::StrAppend(&out, " (", OneLine(remark), ")");
  out += "\n";
  AppendTree(trace.roots(), out);
  return out;
}

}  // namespace xraysink::tools
