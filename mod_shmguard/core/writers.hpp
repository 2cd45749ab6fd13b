// mod_shmguard core, internal: what the per-format writers (write_*.cpp) share: the words for a
// snapshot's values, the Prometheus family writer and the ?auto line writer.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "fastwrite.hpp"
#include "shmguard/model.hpp"
#include "shmguard/units.hpp"
#include "text.hpp"

namespace shmguard::writers {

// Bytes for a beancounter value (pages converted; counts have none).
inline std::optional<std::uint64_t> bc_bytes(const BeancounterRow& r, std::uint64_t v,
                                             std::uint64_t page) {
  switch (r.unit) {
    case BcUnit::Pages:
      return text::sat_mul(v, page);
    case BcUnit::Bytes:
      return v;
    case BcUnit::Count:
      return std::nullopt;
  }
  return std::nullopt;
}

inline const char* overcommit_mode_name(int mode) {
  switch (mode) {
    case 0:
      return "heuristic";
    case 1:
      return "always";
    case 2:
      return "strict";
  }
  return "unknown";
}

// How a cgroup level's reclaimable cache was counted: "745 MiB (inactive_file 745 MiB + active_file
// 0 B - dirty 0 B - writeback 0 B)"; "unknown (no file LRU figures read from memory.stat)" without
// the LRU figures.
inline std::string reclaimable_words(const CgroupLevel& l) {
  const std::optional<std::uint64_t> r = cgroup_reclaimable(l);
  if (!r) return "unknown (no file LRU figures read from memory.stat)";
  auto h = [](const std::optional<std::uint64_t>& v) {
    return v ? human_bytes(*v) : std::string("unknown");
  };
  return human_bytes(*r) + " (inactive_file " + h(l.inactive_file) + " + active_file " +
         h(l.active_file) + " - dirty " + h(l.dirty) + " - writeback " + h(l.writeback) + ")";
}

// A PSI stall total (us) in seconds, six decimals: "1.234567".
inline std::string stall_seconds(std::uint64_t us) {
  std::string frac = std::to_string(us % 1000000);
  return std::to_string(us / 1000000) + "." + std::string(6 - frac.size(), '0') + frac;
}

// A cgroup's memory.pressure in words: "some avg10 1.20 %, avg60 0.80 %, avg300 0.10 %, stalled
// 12.345678 s in all; full avg10 ..." (no full line: "some ..." alone).
inline std::string pressure_words(const Psi& p) {
  std::string out;
  for (const auto& [kind, line] :
       {std::pair<const char*, const std::optional<PsiLine>*>{"some", &p.some},
        {"full", &p.full}}) {
    if (!*line) continue;
    const PsiLine& l = **line;
    if (!out.empty()) out += "; ";
    out += std::string(kind) + " avg10 " + psi_percent(l.avg10) + " %, avg60 " +
           psi_percent(l.avg60) + " %, avg300 " + psi_percent(l.avg300) + " %, stalled " +
           stall_seconds(l.total_us) + " s in all";
  }
  return out;
}

inline const Counter* counter_named(const Snapshot& s, std::string_view name) {
  for (const auto& c : s.counters)
    if (c.name == name) return &c;
  return nullptr;
}

// Writes Prometheus metric families: HELP, TYPE, then samples of that family.
class Prom {
 public:
  explicit Prom(std::string& out) : out_(out) {}
  void family(const char* name, const char* type, const char* help) {
    name_ = name;
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  void sample(std::string_view labels, std::uint64_t v) {
    head(labels);
    fast::put_u(out_, v);
    out_ += '\n';
  }
  void sample_inf(std::string_view labels) { line(labels, "+Inf"); }
  void line(std::string_view labels, std::string_view v) {
    head(labels);
    out_ += v;
    out_ += '\n';
  }

 private:
  void head(std::string_view labels) {
    out_ += name_;
    if (!labels.empty()) {
      out_ += '{';
      out_ += labels;
      out_ += '}';
    }
    out_ += ' ';
  }
  std::string& out_;
  std::string name_;
};

// Writes ?auto lines ("Key: value", one a line: a newline in a value becomes a space).
class AutoLines {
 public:
  explicit AutoLines(std::string& out) : o_(out) {}
  void line(std::string_view key, std::string_view value) {
    fast::put(o_, key);
    o_ += ": ";
    std::size_t at = o_.size();
    fast::put(o_, value);
    std::replace(o_.begin() + static_cast<std::ptrdiff_t>(at), o_.end(), '\n', ' ');
    o_.push_back('\n');
  }
  void line(std::string_view key, const char* value) { line(key, std::string_view(value)); }
  void line(std::string_view key, const std::string& value) { line(key, std::string_view(value)); }
  void line(std::string_view key, std::uint64_t value) {
    fast::put(o_, key);
    o_ += ": ";
    fast::put_u(o_, value);
    o_.push_back('\n');
  }
  void line(std::string_view key, std::int64_t value) {
    fast::put(o_, key);
    o_ += ": ";
    fast::put_i(o_, value);
    o_.push_back('\n');
  }
  void line(std::string_view key, int value) { line(key, static_cast<std::int64_t>(value)); }
  // "Head[name]: value"
  void line(std::string_view head, std::string_view name, std::uint64_t value) {
    fast::put(o_, head);
    o_ += '[';
    fast::put(o_, name);
    o_ += "]: ";
    fast::put_u(o_, value);
    o_.push_back('\n');
  }
  void line(std::string_view head, std::string_view name, std::string_view value) {
    std::string key(head);
    key += '[';
    key += name;
    key += ']';
    line(key, value);
  }

 private:
  std::string& o_;
};

}  // namespace shmguard::writers
