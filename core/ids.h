#ifndef XRAYSINK_CORE_IDS_H_
#define XRAYSINK_CORE_IDS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace xraysink::core {

// A 16-hex-digit X-Ray entity id (segments, subsegments, exceptions). Zero means "none".
class EntityId {
 public:
  static constexpr int kLength = 16;

  constexpr EntityId() = default;
  constexpr explicit EntityId(uint64_t value) : value_(value) {}

  // A fresh random, non-zero id from this thread's generator (no lock, no syscall).
  static EntityId Generate();
  // Exactly 16 hex digits (either case); anything else is nullopt.
  static std::optional<EntityId> Parse(std::string_view text);

  uint64_t value() const { return value_; }
  bool empty() const { return value_ == 0; }
  std::string ToString() const;
  // Writes exactly kLength lowercase hex digits to `out`.
  void WriteTo(char* out) const;

  friend bool operator==(EntityId a, EntityId b) { return a.value_ == b.value_; }
  friend bool operator!=(EntityId a, EntityId b) { return a.value_ != b.value_; }

 private:
  uint64_t value_ = 0;
};

// An X-Ray trace id: `1-` + 8 hex digits of epoch seconds + `-` + 24 random hex digits.
class TraceId {
 public:
  static constexpr int kLength = 35;

  TraceId() = default;

  static TraceId Generate();
  // Generates with an explicit creation time (epoch seconds), for tests and replay.
  static TraceId GenerateAt(uint32_t epoch_seconds);
  // Accepts exactly the form above (hex digits of either case, stored lowercase).
  static std::optional<TraceId> Parse(std::string_view text);

  bool empty() const { return text_[0] == '\0'; }
  std::string_view view() const { return empty() ? std::string_view() : std::string_view(text_, kLength); }
  std::string ToString() const { return std::string(view()); }
  uint32_t epoch_seconds() const;

  friend bool operator==(const TraceId& a, const TraceId& b) { return a.view() == b.view(); }
  friend bool operator!=(const TraceId& a, const TraceId& b) { return !(a == b); }

 private:
  char text_[kLength] = {};
};

namespace internal {
// This thread's fast generator (xoshiro256**, seeded once per thread from the OS).
uint64_t RandomU64();
}  // namespace internal

}  // namespace xraysink::core

#endif  // XRAYSINK_CORE_IDS_H_
