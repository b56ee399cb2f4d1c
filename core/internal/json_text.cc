#include "core/internal/json_text.h"

#include <cmath>
#include <string_view>

#include "core/internal/text.h"
#include "rapidjson/stringbuffer.h"

namespace xraysink::core::internal {

void WriteJsonValue(const JsonValue& value, size_t max_chars, JsonWriter& writer,
                    std::string& scratch) {
  const auto write_string = [&](std::string_view text) {
    const std::string_view valid = ValidUtf8(text, max_chars, scratch);
    writer.String(valid.data(), valid.size());
  };
  if (const bool* b = value.as_bool()) {
    writer.Bool(*b);
  } else if (const int64_t* i = value.as_int()) {
    writer.Int64(*i);
  } else if (const uint64_t* u = value.as_uint()) {
    writer.Uint64(*u);
  } else if (const double* d = value.as_double()) {
    if (std::isfinite(*d)) {
      writer.Double(*d);
    } else {
      writer.Null();
    }
  } else if (const std::string* s = value.as_string()) {
    write_string(*s);
  } else if (const auto* array = value.as_array()) {
    writer.StartArray();
    for (const JsonValue& item : *array) WriteJsonValue(item, max_chars, writer, scratch);
    writer.EndArray();
  } else if (const auto* members = value.as_object()) {
    writer.StartObject();
    for (const auto& [key, member] : *members) {
      write_string(key);
      WriteJsonValue(member, max_chars, writer, scratch);
    }
    writer.EndObject();
  } else {
    writer.Null();
  }
}

void AssignJsonText(const JsonValue& value, std::pmr::string& out) {
  // Reused by the thread (the writer's nesting stack too): a metadata entry costs no allocation
  // of its own beyond `out`.
  struct Workspace {
    rapidjson::StringBuffer buffer;
    JsonWriter writer{buffer};
    std::string scratch;
  };
  thread_local Workspace workspace;
  workspace.buffer.Clear();
  workspace.writer.Reset(workspace.buffer);
  WriteJsonValue(value, kMaxTextChars, workspace.writer, workspace.scratch);
  out.assign(workspace.buffer.GetString(), workspace.buffer.GetSize());
  if (workspace.buffer.GetSize() > (1 << 20)) workspace.buffer.ShrinkToFit();
  if (workspace.scratch.capacity() > (1 << 20)) std::string().swap(workspace.scratch);
}

}  // namespace xraysink::core::internal
