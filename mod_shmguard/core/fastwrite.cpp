// mod_shmguard core: the status writers' fast appenders (fastwrite.hpp).
#include "fastwrite.hpp"

#include "shmguard/json.hpp"
#include "shmguard/units.hpp"

namespace shmguard::fast {

char* write_human_bytes(char* p, std::uint64_t v) {
  static constexpr std::string_view units[] = {" KiB", " MiB", " GiB", " TiB", " PiB"};
  if (v < 1024) {
    p = std::to_chars(p, p + 20, v).ptr;
    std::memcpy(p, " B", 2);
    return p + 2;
  }
  if (v >= (std::uint64_t{1} << 53)) {
    std::string h = human_bytes(v);
    std::memcpy(p, h.data(), std::min<std::size_t>(h.size(), 32));
    return p + std::min<std::size_t>(h.size(), 32);
  }
  unsigned u = 0;  // v / 1024^(u+1) < 1024
  while (u < 4 && v >= (std::uint64_t{1} << (10 * (u + 2)))) ++u;
  const unsigned shift = 10 * (u + 1);
  const std::uint64_t tenths = v * 10;  // < 2^57
  std::uint64_t q = tenths >> shift;
  const std::uint64_t r = tenths & ((std::uint64_t{1} << shift) - 1);
  const std::uint64_t half = std::uint64_t{1} << (shift - 1);
  if (r > half || (r == half && (q & 1))) ++q;
  p = std::to_chars(p, p + 20, q / 10).ptr;
  *p++ = '.';
  *p++ = static_cast<char>('0' + q % 10);
  std::memcpy(p, units[u].data(), 4);
  return p + 4;
}

char* write_duration(char* p, std::int64_t s) {
  if (s < 0) {
    std::memcpy(p, "unknown", 7);
    return p + 7;
  }
  auto two = [&](std::int64_t a, char ua, std::int64_t b, char ub) {
    p = std::to_chars(p, p + 20, a).ptr;
    *p++ = ua;
    if (b) {
      *p++ = ' ';
      p = std::to_chars(p, p + 20, b).ptr;
      *p++ = ub;
    }
    return p;
  };
  if (s < 60) {
    p = std::to_chars(p, p + 20, s).ptr;
    *p++ = 's';
    return p;
  }
  if (s < 3600) return two(s / 60, 'm', s % 60, 's');
  if (s < 86400) return two(s / 3600, 'h', s / 60 % 60, 'm');
  return two(s / 86400, 'd', s / 3600 % 24, 'h');
}

void Writer::esc(std::string_view v) {
  for (char c : v) {
    switch (c) {
      case '&':
        lit("&amp;");
        break;
      case '<':
        lit("&lt;");
        break;
      case '>':
        lit("&gt;");
        break;
      case '"':
        lit("&quot;");
        break;
      case '\'':
        lit("&#39;");
        break;
      default:
        *p_++ = c;
    }
  }
}

void Writer::json(std::string_view v) {
  for (char c : v) {
    auto b = static_cast<unsigned char>(c);
    if (b < 0x20 || b >= 0x7F || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&') {
      raw(json_string(v));
      return;
    }
  }
  *p_++ = '"';
  raw(v);
  *p_++ = '"';
}

}  // namespace shmguard::fast
