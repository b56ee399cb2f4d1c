#ifndef XRAYSINK_CORE_JSON_VALUE_H_
#define XRAYSINK_CORE_JSON_VALUE_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace xraysink::core {

// An arbitrary JSON value for metadata. Built in code without parsing:
//   JsonValue::Object({{"k", 3}, {"tags", JsonValue::Array({"a", "b"})}})
// Non-finite doubles and invalid UTF-8 are made valid when serialized.
class JsonValue {
 public:
  using Items = std::vector<JsonValue>;
  using Members = std::vector<std::pair<std::string, JsonValue>>;

  JsonValue() : value_(nullptr) {}
  JsonValue(std::nullptr_t) : value_(nullptr) {}
  JsonValue(bool b) : value_(b) {}
  JsonValue(int i) : value_(static_cast<int64_t>(i)) {}
  JsonValue(long i) : value_(static_cast<int64_t>(i)) {}
  JsonValue(long long i) : value_(static_cast<int64_t>(i)) {}
  JsonValue(unsigned i) : value_(static_cast<int64_t>(i)) {}
  JsonValue(unsigned long i) : value_(static_cast<uint64_t>(i)) {}
  JsonValue(unsigned long long i) : value_(static_cast<uint64_t>(i)) {}
  JsonValue(double d) : value_(d) {}
  JsonValue(const char* s) : value_(std::string(s)) {}
  JsonValue(std::string_view s) : value_(std::string(s)) {}
  JsonValue(std::string s) : value_(std::move(s)) {}

  static JsonValue Array(std::initializer_list<JsonValue> items) {
    return JsonValue(Tag{}, std::vector<JsonValue>(items));
  }
  static JsonValue Array(std::vector<JsonValue> items) { return JsonValue(Tag{}, std::move(items)); }
  static JsonValue Object(std::initializer_list<std::pair<std::string, JsonValue>> members) {
    return JsonValue(Tag{}, Members(members));
  }
  static JsonValue Object(Members members) { return JsonValue(Tag{}, std::move(members)); }

  bool is_null() const { return std::holds_alternative<std::nullptr_t>(value_); }
  const bool* as_bool() const { return std::get_if<bool>(&value_); }
  const int64_t* as_int() const { return std::get_if<int64_t>(&value_); }
  const uint64_t* as_uint() const { return std::get_if<uint64_t>(&value_); }
  const double* as_double() const { return std::get_if<double>(&value_); }
  const std::string* as_string() const { return std::get_if<std::string>(&value_); }
  const std::vector<JsonValue>* as_array() const { return std::get_if<std::vector<JsonValue>>(&value_); }
  const Members* as_object() const { return std::get_if<Members>(&value_); }

 private:
  struct Tag {};
  JsonValue(Tag, std::vector<JsonValue> items) : value_(std::move(items)) {}
  JsonValue(Tag, Members members) : value_(std::move(members)) {}

  std::variant<std::nullptr_t, bool, int64_t, uint64_t, double, std::string, std::vector<JsonValue>,
               Members>
      value_;
};

}  // namespace xraysink::core

#endif  // XRAYSINK_CORE_JSON_VALUE_H_
