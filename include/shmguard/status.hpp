// mod_shmguard core: what /shmguard-status shows. The sampler renders its part (sources, limits,
// workers, findings) into sections once per interval; the status handler in a child adds the
// headline, the per-vhost configuration and counters it owns, and the sampler's health. Nothing is
// parsed back: sections are concatenated. The one thing the sampler cannot know is a vhost's name
// (it sees mod_fcgid's vhost ids); those places are left as holes the handler fills.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shmguard/advisor.hpp"
#include "shmguard/model.hpp"

namespace shmguard {

// Text with holes for mod_fcgid vhost ids, filled by the reader.
struct Template {
  std::string text;
  std::vector<std::pair<std::uint32_t, std::int32_t>> holes;  // (offset in text, vhost id)
  Template& operator+=(std::string_view s) {
    text += s;
    return *this;
  }
  void hole(std::int32_t vhost_id) {
    holes.emplace_back(static_cast<std::uint32_t>(text.size()), vhost_id);
  }
  std::string fill(const std::function<std::string(std::int32_t)>& name) const;
};

struct StatusSections {
  std::string html_findings;  // HTML fragments, in page order around the handler's own parts
  std::string html_limits;
  Template html_workers;
  std::string html_sources;
  std::string auto_text;  // "Key: value\n" lines
  Template json_members;  // JSON object members, no braces: "\"headroom_bytes\":...,..."
  std::string metrics;    // Prometheus exposition lines (HELP/TYPE included)
  // Small facts the handler needs for its own parts.
  std::uint32_t findings_critical = 0, findings_warning = 0;
  std::uint64_t failures_last_minute = 0;  // sum over failure counters
};

std::string encode_sections(const StatusSections& s);
std::optional<StatusSections> decode_sections(std::string_view blob);

// Which sections render_sampler_sections() fills (bits; or them together).
enum StatusFormat : unsigned {
  kHtml = 1,     // html_findings, html_limits, html_workers, html_sources
  kAuto = 2,     // auto_text
  kJson = 4,     // json_members
  kMetrics = 8,  // metrics
  kAllFormats = 15
};

// Renders the sampler's part of the status page: the sections of `formats` (others stay empty;
// each section is the same bytes whatever else is asked for). The small facts (findings counts,
// failures) are always filled.
StatusSections render_sampler_sections(const Snapshot& snap, const std::vector<WorkerRow>& workers,
                                       unsigned formats = kAllFormats);

// What the worker tables may hold. Any local user can start processes the sampler lists (php-fpm
// is found by name) with command lines of their choosing: without bounds, thousands of rows with
// long commands would make the sections larger than the shared segment's blob (a blank page) and
// the sampler large.
constexpr std::size_t kMaxWorkerRows = 2048;
struct StatusOptions {
  bool full_commands = true;  // false: a worker's command shown as its program name only
  std::size_t max_rows = kMaxWorkerRows;  // rows per worker table (totals and findings count all)
  // encode_sections() of the result at most this many bytes (0: no bound): worker rows past what
  // fits are left out ("N more workers not listed"; JSON "workers_not_listed": N).
  std::size_t max_bytes = 0;
};
StatusSections render_sampler_sections(const Snapshot& snap, const std::vector<WorkerRow>& workers,
                                       unsigned formats, const StatusOptions& opts);

// A command line's program name: the first word's last path component, without a trailing ':'
// ("php-cgi" for "/usr/bin/php-cgi -d x=1", "php-fpm" for "php-fpm: pool www").
std::string_view program_name(std::string_view command);

// "3d 4h", "5m 12s", "40s"
std::string human_duration(std::int64_t seconds);

}  // namespace shmguard
