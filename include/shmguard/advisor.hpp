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
  std::uint64_t rss_anon = 0;  // RssAnon (with rss_shmem: what a memory cgroup charged, need.hpp)
  std::vector<Segment> segments;
  std::string error;  // why its maps could not be read
  std::string lean;   // started lean (ShmGuardAction degrade): with what, e.g. "OPcache 24.0 MiB"
};

// One shared segment, identified by (device, inode), and the listed workers that map it.
struct SegmentUse {
  Segment seg;
  std::vector<int> pids;  // sorted, distinct
  bool shared() const { return pids.size() > 1; }
};
// Every distinct segment mapped by the workers, in first-seen order.
std::vector<SegmentUse> segment_uses(const std::vector<WorkerRow>& workers);

// segment_uses() plus, for every worker's segment, which use it is: computed once (O(n log n) in
// the number of worker segments) and shared by the advisor and the status renderers.
struct SegmentSharing {
  std::vector<SegmentUse> uses;  // as segment_uses()
  // Per worker i (and one past the last): worker i's segments are use_of[first[i] .. first[i+1]).
  std::vector<std::uint32_t> first;
  std::vector<std::uint32_t> use_of;  // per worker segment, in worker then segment order
  const SegmentUse& use(std::size_t worker, std::size_t k) const {
    return uses[use_of[first[worker] + k]];
  }
  // How many listed workers map worker `worker`'s k-th segment.
  std::size_t users(std::size_t worker, std::size_t k) const { return use(worker, k).pids.size(); }
};
SegmentSharing segment_sharing(const std::vector<WorkerRow>& workers);

struct Finding {
  std::string id;        // stable: "fcgid-private-opcache", "failcnt-rose", "headroom-workers", ...
  std::string severity;  // "info", "warning", "critical"
  std::string text;      // the sentence: numbers and the action
  std::vector<std::pair<std::string, std::uint64_t>> numbers;  // the same numbers, for machines
};

// The "memory-pressure" warning: the memory cgroup's PSI full avg10 (all its non-idle tasks
// stalled on memory at once: thrashing, Documentation/accounting/psi.rst) at or above this, in
// hundredths of a percent. A warning only, never a refusal (README "Memory cgroups").
constexpr std::uint32_t kPsiThrashingFullAvg10 = 1000;  // 10.00 %

// Bounded: the workers are any local user's processes (their segments, their number). At most
// kMaxFpmShareFindings "fpm-shared-opcache" findings (the largest segments), the rest as one
// "fpm-shared-more"; at most kMaxFindings in all, the most severe first kept, the rest said in one
// "findings-left-out". (Two processes sharing 30 000 memfds once gave 30 001 findings.)
constexpr std::size_t kMaxFpmShareFindings = 4;
constexpr std::size_t kMaxFindings = 32;
std::vector<Finding> advise(const Snapshot& snap, const std::vector<WorkerRow>& workers);
// The same, with the sharing already computed (segment_sharing(workers)).
std::vector<Finding> advise(const Snapshot& snap, const std::vector<WorkerRow>& workers,
                            const SegmentSharing& sharing);

// "64 MiB", "1.5 GiB", "512 B": like human_bytes without a trailing ".0".
std::string compact_bytes(std::uint64_t bytes);

}  // namespace shmguard
