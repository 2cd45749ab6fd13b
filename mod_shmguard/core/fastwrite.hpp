// mod_shmguard core, internal: appending numbers, sizes, durations and escaped text to a string
// without temporaries, for the status writers (with 1000 workers the per-worker rows are most of a
// view's work).
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace shmguard::fast {

// human_bytes(v) written at p (at most 32 bytes); returns the end. The same text as human_bytes()
// (its "%.1f" of the scaled double): below 2^53 the scaled value is exact in a double and printf
// rounds it to nearest, ties to even, which is what this does on the integers; above, it is
// human_bytes() itself. test_status.cpp (FastBytesAgreeWithHumanBytes) holds them together.
char* write_human_bytes(char* p, std::uint64_t v);
// human_duration(s) ("3d 4h", "5m 12s", "40s", "unknown" below 0) written at p (at most 48 bytes).
char* write_duration(char* p, std::int64_t s);

inline void put(std::string& o, std::string_view s) {
  o.append(s.data(), s.size());
}
inline void put_u(std::string& o, std::uint64_t v) {
  char b[24];
  auto r = std::to_chars(b, b + sizeof b, v);
  o.append(b, static_cast<std::size_t>(r.ptr - b));
}
inline void put_i(std::string& o, std::int64_t v) {
  char b[24];
  auto r = std::to_chars(b, b + sizeof b, v);
  o.append(b, static_cast<std::size_t>(r.ptr - b));
}
inline void put_human_bytes(std::string& o, std::uint64_t v) {
  char b[32];
  o.append(b, static_cast<std::size_t>(write_human_bytes(b, v) - b));
}

// Writes into a string through a pointer, for the per-worker loops: room(n) makes n bytes
// writable (the string grows ahead of the text), finish() trims it to what was written. Between
// room() and finish() the string's size is not the text's: write nothing else into it.
class Writer {
 public:
  explicit Writer(std::string& s) : s_(s), p_(s.data() + s.size()) {}
  std::size_t size() const { return static_cast<std::size_t>(p_ - s_.data()); }
  void room(std::size_t n) {
    std::size_t used = size();
    if (s_.size() - used < n) {
      s_.resize(std::max(used + n, s_.size() + s_.size() / 2));
      p_ = s_.data() + used;
    }
  }
  void finish() { s_.resize(size()); }
  template <std::size_t N>
  void lit(const char (&a)[N]) {
    std::memcpy(p_, a, N - 1);
    p_ += N - 1;
  }
  void ch(char c) { *p_++ = c; }
  void u(std::uint64_t v) { p_ = std::to_chars(p_, p_ + 20, v).ptr; }
  void i(std::int64_t v) { p_ = std::to_chars(p_, p_ + 20, v).ptr; }
  void bytes(std::uint64_t v) { p_ = write_human_bytes(p_, v); }
  void duration(std::int64_t v) { p_ = write_duration(p_, v); }
  void raw(std::string_view v) {
    std::memcpy(p_, v.data(), v.size());
    p_ += v.size();
  }
  // html_escape(v): at most 6 bytes per byte of v.
  void esc(std::string_view v);
  // json_string(v): at most 6 bytes per byte of v, plus 2.
  void json(std::string_view v);

 private:
  std::string& s_;
  char* p_;
};

}  // namespace shmguard::fast
