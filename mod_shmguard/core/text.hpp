// mod_shmguard core, internal: small text and arithmetic helpers the parsers and renderers share.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace shmguard::text {

inline bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// Iterates over the lines of a text, numbering them from 1. A final line without '\n' counts.
class Lines {
 public:
  explicit Lines(std::string_view text) : text_(text) {}
  bool next(std::string_view& line) {
    if (pos_ >= text_.size()) return false;
    std::size_t nl = text_.find('\n', pos_);
    if (nl == std::string_view::npos) nl = text_.size();
    line = text_.substr(pos_, nl - pos_);
    pos_ = nl + 1;
    ++number_;
    return true;
  }
  std::size_t number() const { return number_; }
  std::size_t pos() const { return pos_; }  // where the next line starts

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
  std::size_t number_ = 0;
};

// Calls f(line_number, line) for each line (without '\n'); stops early when f returns false.
template <class F>
void for_each_line(std::string_view text, F&& f) {
  Lines lines(text);
  for (std::string_view line; lines.next(line);)
    if (!f(lines.number(), line)) return;
}

// Whitespace-separated fields.
inline std::vector<std::string_view> split_ws(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) ++i;
    std::size_t j = i;
    while (j < s.size() && !is_space(s[j])) ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

// Printable, bounded rendering of untrusted text for error messages: "..." with non-printable
// bytes, quotes and backslashes as \xNN, cut after 40 bytes ("..." after the closing quote).
inline std::string quote(std::string_view s) {
  constexpr std::size_t kMax = 40;
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size() && i < kMax; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (s.size() > kMax) out += "...";
  out += '"';
  return out;
}

// The parsers' error text: "malformed at line N: what".
inline std::string malformed(std::size_t line, const std::string& what) {
  return "malformed at line " + std::to_string(line) + ": " + what;
}

// a * b, UINT64_MAX instead of wrapping.
inline std::uint64_t sat_mul(std::uint64_t a, std::uint64_t b) {
  if (b != 0 && a > UINT64_MAX / b) return UINT64_MAX;
  return a * b;
}

// a + b, UINT64_MAX instead of wrapping.
inline std::uint64_t sat_add(std::uint64_t a, std::uint64_t b) {
  return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

}  // namespace shmguard::text
