#include "core/trace_header.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace xraysink::core {
namespace {

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto fold = [](char c) { return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c; };
    if (fold(a[i]) != fold(b[i])) return false;
  }
  return true;
}

absl::string_view AbslView(std::string_view text) { return {text.data(), text.size()}; }

// What Python's SDK sends for unsampled requests; propagating it would break correlation and
// some services (SQS) reject it.
constexpr std::string_view kNoOpRoot = "1-00000000-000000000000000000000000";

}  // namespace

absl::StatusOr<TraceHeader> TraceHeader::Parse(std::string_view value) {
  if (value.size() > kMaxTraceHeaderLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("trace header longer than ", kMaxTraceHeaderLength, " bytes"));
  }
  for (char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    if ((byte < 0x20 && c != '\t') || byte >= 0x7f) {
      return absl::InvalidArgumentError("trace header holds a control or non-ASCII character");
    }
  }
  TraceHeader header;
  bool has_sampled = false;
  bool extra_full = false;
  size_t extra_bytes = 0;
  while (!value.empty()) {
    const size_t end = value.find(';');
    std::string_view part = Trim(value.substr(0, end));
    value = end == std::string_view::npos ? std::string_view() : value.substr(end + 1);
    if (part.empty()) continue;
    const size_t equals = part.find('=');
    if (equals == std::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("trace header part '", AbslView(part), "' has no '='"));
    }
    const std::string_view key = Trim(part.substr(0, equals));
    const std::string_view data = Trim(part.substr(equals + 1));
    if (EqualsIgnoreCase(key, "Root")) {
      header.root = TraceId::Parse(data);
      if (header.root && header.root->view() == kNoOpRoot) header.root.reset();
    } else if (EqualsIgnoreCase(key, "Parent")) {
      header.parent = EntityId::Parse(data);
      if (header.parent && header.parent->empty()) header.parent.reset();
    } else if (EqualsIgnoreCase(key, "Sampled")) {
      has_sampled = true;
      header.sampled = data == "1"   ? SampledFlag::kSampled
                       : data == "0" ? SampledFlag::kNotSampled
                       : data == "?" ? SampledFlag::kRequested
                                     : SampledFlag::kUnknown;
    } else if (EqualsIgnoreCase(key, "Self")) {
      // Added by load balancers; never forwarded.
    } else if (!key.empty() && !extra_full) {
      // Counted as forwarded: `key=value;`.
      extra_bytes += key.size() + data.size() + 2;
      extra_full = extra_bytes > kMaxExtraKeysBytes;
      if (!extra_full) header.extra.emplace_back(std::string(key), std::string(data));
    }
  }
  if (!header.root && !header.parent && !has_sampled) {
    return absl::InvalidArgumentError(
        "trace header has no valid Root, no valid Parent and no Sampled");
  }
  return header;
}

std::string TraceHeader::ToString() const {
  std::string out;
  const auto separate = [&out] {
    if (!out.empty()) out.push_back(';');
  };
  if (root) out.append("Root=").append(root->view());
  if (parent) {
    separate();
    out.append("Parent=").append(parent->ToString());
  }
  if (sampled != SampledFlag::kUnknown) {
    separate();
    out.append(sampled == SampledFlag::kSampled      ? "Sampled=1"
               : sampled == SampledFlag::kNotSampled ? "Sampled=0"
                                                     : "Sampled=?");
  }
  const std::string keys = ExtraKeys();
  if (!keys.empty()) {
    separate();
    out.append(keys);
  }
  return out;
}

std::string TraceHeader::ExtraKeys() const {
  std::string out;
  for (const auto& [key, data] : extra) {
    if (!out.empty()) out.push_back(';');
    out.append(key).append("=").append(data);
  }
  return out;
}

void TraceHeader::AppendOutgoing(const TraceId& root, EntityId parent, bool sampled,
                                 std::string_view extra_keys, std::string& out) {
  out.reserve(out.size() + 5 + TraceId::kLength + 8 + EntityId::kLength + 10 + extra_keys.size());
  out.append("Root=").append(root.view()).append(";Parent=");
  const size_t at = out.size();
  out.resize(at + EntityId::kLength);
  parent.WriteTo(out.data() + at);
  out.append(sampled ? ";Sampled=1" : ";Sampled=0");
  if (!extra_keys.empty()) out.append(";").append(extra_keys);
}

}  // namespace xraysink::core
