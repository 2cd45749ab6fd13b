// mod_shmguard core: sizes, durations, percentages; human formatting.
#include "shmguard/units.hpp"

#include <cstdio>

#include "shmguard/sources.hpp"

namespace shmguard {

namespace {
// Splits "64MiB" into the leading digits and the rest.
std::pair<std::string_view, std::string_view> split_number(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  return {s.substr(0, i), s.substr(i)};
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::optional<std::uint64_t> mul(std::uint64_t v, std::uint64_t m) {
  if (m != 0 && v > UINT64_MAX / m) return std::nullopt;
  return v * m;
}
}  // namespace

std::optional<std::uint64_t> parse_size(std::string_view s) {
  auto [digits, unit] = split_number(s);
  auto v = parse_u64(digits);
  if (!v) return std::nullopt;
  if (unit.empty() || iequals(unit, "b")) return v;
  std::uint64_t mult = 0;
  switch (unit[0]) {
    case 'k':
    case 'K':
      mult = 1ULL << 10;
      break;
    case 'm':
    case 'M':
      mult = 1ULL << 20;
      break;
    case 'g':
    case 'G':
      mult = 1ULL << 30;
      break;
    case 't':
    case 'T':
      mult = 1ULL << 40;
      break;
    default:
      return std::nullopt;
  }
  std::string_view rest = unit.substr(1);
  if (!(rest.empty() || iequals(rest, "b") || iequals(rest, "ib"))) return std::nullopt;
  return mul(*v, mult);
}

std::optional<std::uint64_t> parse_duration_ms(std::string_view s) {
  auto [digits, unit] = split_number(s);
  auto v = parse_u64(digits);
  if (!v) return std::nullopt;
  if (unit == "ms") return v;
  if (unit.empty() || unit == "s") return mul(*v, 1000);
  if (unit == "m" || unit == "min") return mul(*v, 60000);
  return std::nullopt;
}

std::optional<double> parse_percent(std::string_view s) {
  if (s.size() < 2 || s.back() != '%') return std::nullopt;
  s.remove_suffix(1);
  auto [ip, rest] = split_number(s);
  auto whole = parse_u64(ip);
  if (!whole || *whole > 100) return std::nullopt;
  double v = static_cast<double>(*whole);
  if (!rest.empty()) {
    if (rest[0] != '.' || rest.size() < 2 || rest.size() > 7) return std::nullopt;
    auto frac = parse_u64(rest.substr(1));
    if (!frac) return std::nullopt;
    double scale = 1;
    for (std::size_t i = 1; i < rest.size(); ++i) scale *= 10;
    v += static_cast<double>(*frac) / scale;
  }
  if (v > 100.0) return std::nullopt;
  return v;
}

std::string human_bytes(std::uint64_t bytes) {
  static const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double v = static_cast<double>(bytes);
  int u = -1;
  while (v >= 1024.0 && u < 5) {
    v /= 1024.0;
    ++u;
  }
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

}  // namespace shmguard
