// mod_shmguard core: the advisor. Turns a snapshot and the FastCGI worker table into findings:
// sentences with numbers and an action, each emitted only when it holds on the data given.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "shmguard/model.hpp"
#include "shmguard/workers.hpp"

namespace shmguard {

// One FastCGI worker as the status page lists it.
struct WorkerRow {
  int pid = 0;
  std::string backend;  // "mod_fcgid" or "php-fpm"
  std::string kind;     // "php-cgi", "php-cgi child", "php-fpm master", "php-fpm pool www"
  std::string state;    // "idle", "busy", "error", "" (unknown)
  int vhost_id = 0;     // mod_fcgid vhost id (0 unknown)
  std::string klass;    // wrapper or script path (the mod_fcgid process class), or FPM pool
  std::string command;
  std::int64_t uptime_s = -1;
  std::uint64_t rss_shmem = 0;
  std::vector<Segment> segments;
  std::string error;  // why its maps could not be read
};

// One shared segment, identified by (device, inode), and the listed workers that map it.
struct SegmentUse {
  Segment seg;
  std::vector<int> pids;  // sorted, distinct
  bool shared() const { return pids.size() > 1; }
};
// Every distinct segment mapped by the workers, in first-seen order.
std::vector<SegmentUse> segment_uses(const std::vector<WorkerRow>& workers);

struct Finding {
  std::string id;        // stable: "fcgid-private-opcache", "failcnt-rose", "headroom-workers", ...
  std::string severity;  // "info", "warning", "critical"
  std::string text;      // the sentence: numbers and the action
  std::vector<std::pair<std::string, std::uint64_t>> numbers;  // the same numbers, for machines
};

std::vector<Finding> advise(const Snapshot& snap, const std::vector<WorkerRow>& workers);

// "64 MiB", "1.5 GiB", "512 B": like human_bytes without a trailing ".0".
std::string compact_bytes(std::uint64_t bytes);

}  // namespace shmguard
