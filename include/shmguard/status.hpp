// mod_shmguard core: what /shmguard-status shows. The sampler renders its part (sources, limits,
// workers, findings) into four sections once per interval; the status handler in a child adds the
// per-vhost counters it owns. Nothing is parsed back: sections are concatenated.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shmguard/model.hpp"
#include "shmguard/workers.hpp"

namespace shmguard {

// One FastCGI worker as the status page lists it.
struct WorkerRow {
  int pid = 0;
  std::string kind;        // "php-cgi (mod_fcgid)", "php-fpm"
  std::string state;       // "idle", "busy", "error", "" (unknown)
  int vhost_id = 0;        // mod_fcgid vhost id (0 unknown)
  std::string klass;       // wrapper or script path (the mod_fcgid process class)
  std::string command;
  std::int64_t uptime_s = -1;
  std::uint64_t rss_shmem = 0;
  std::vector<Segment> segments;
  std::string error;       // why its maps could not be read
};

struct SamplerHealth {
  int pid = 0;
  std::int64_t interval_ms = 0;
  std::uint64_t samples = 0;
  std::int64_t sample_wall_ms = 0;
};

struct StatusSections {
  std::string html;          // HTML fragment (sections after the headline)
  std::string auto_text;     // "Key: value\n" lines
  std::string json_members;  // JSON object members, no braces: "\"headroom_bytes\":...,..."
  std::string metrics;       // Prometheus exposition lines (HELP/TYPE included)
};

std::string encode_sections(const StatusSections& s);
std::optional<StatusSections> decode_sections(std::string_view blob);

// Renders the sampler's part of the status page.
StatusSections render_sampler_sections(const Snapshot& snap, const std::vector<WorkerRow>& workers);

}  // namespace shmguard
