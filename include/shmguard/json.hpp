// mod_shmguard core: a small streaming JSON writer (no allocation beyond the output string).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shmguard {

// JSON string literal (with quotes), escaping control characters, quotes, backslash and '<' '>' '&'
// (so it is safe inside HTML too). Invalid UTF-8 bytes become U+FFFD.
std::string json_string(std::string_view s);

// Writes objects and arrays with commas placed for you:
//   JsonWriter w; w.begin_object(); w.key("a").value(1); w.end_object();
class JsonWriter {
 public:
  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(std::string_view k);
  JsonWriter& value(std::string_view s);
  JsonWriter& value(const char* s) { return value(std::string_view(s)); }
  JsonWriter& value(const std::string& s) { return value(std::string_view(s)); }
  JsonWriter& value(std::uint64_t v);
  JsonWriter& value(std::int64_t v);
  JsonWriter& value(int v) { return value(static_cast<std::int64_t>(v)); }
  JsonWriter& value(unsigned v) { return value(static_cast<std::uint64_t>(v)); }
  JsonWriter& value(double v);
  JsonWriter& value(bool v);
  JsonWriter& null();
  template <class T>
  JsonWriter& value(const std::optional<T>& v) {
    return v ? value(*v) : null();
  }
  // key + value in one call.
  template <class T>
  JsonWriter& field(std::string_view k, const T& v) {
    key(k);
    return value(v);
  }
  // For a writer that appends one value's JSON text itself (the status page's worker objects):
  // places the comma, then the caller appends exactly one value to the returned string.
  std::string& raw_value() {
    comma();
    return out_;
  }
  const std::string& str() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void comma();
  std::string out_;
  std::vector<bool> first_;  // per open container: no element written yet
  bool after_key_ = false;
};

}  // namespace shmguard
