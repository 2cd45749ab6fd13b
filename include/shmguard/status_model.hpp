// mod_shmguard core: the status model. Plain structs for everything /shmguard-status, the
// mod_status section and shmguard-probe show; the writers (status.hpp, render.hpp) turn them into
// HTML, ?auto, JSON, Prometheus and text. Who fills what:
//   - the sampler: SamplerPart (the snapshot, the FastCGI workers, the findings), published in the
//     shared segment as encode_sampler_part()'s bytes;
//   - a child (the handler): decode_sampler_part() of those bytes, plus what only it knows: the
//     sampler's health, the hot values behind the headline, the vhosts (names, configuration,
//     counters);
//   - shmguard-probe: the snapshot alone.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shmguard/advisor.hpp"
#include "shmguard/fpm.hpp"
#include "shmguard/rules.hpp"
#include "shmguard/history.hpp"
#include "shmguard/model.hpp"

namespace shmguard {

// ------------------------------------------------------------------------------ the sampler's part

// Sums over every FastCGI worker seen (listed or not) and their distinct segments.
struct WorkerTotals {
  std::uint64_t workers = 0, segments = 0, segment_bytes = 0;
  std::uint64_t private_segments = 0, private_bytes = 0;
  std::uint64_t rss = 0, rss_fcgid = 0, rss_fpm = 0;
  std::uint64_t fcgid = 0, fpm = 0;  // workers per backend
  std::uint64_t lean = 0;            // workers started lean (ShmGuardAction degrade)
};

// The worker table as shown: at most so many rows (StatusOptions), each command already as shown
// (program name only unless ShmGuardStatusCommands full, at most kCmdlineMax bytes).
struct WorkerTable {
  std::vector<WorkerRow> rows;
  // Per listed row's segment, in row then segment order: how many workers (of all seen) map it.
  std::vector<std::uint32_t> mapped_by;
  std::uint64_t not_listed = 0;  // workers left out of `rows` ("N more workers not listed")
  WorkerTotals totals;
  // mapped_by of row i's k-th segment; first[i] is where row i's segments start in mapped_by.
  std::vector<std::uint32_t> first;  // rows.size() + 1 entries (filled by index())
  void index();
  std::uint32_t users(std::size_t row, std::size_t k) const { return mapped_by[first[row] + k]; }
};

// The last hour as the sampler keeps it (history.hpp), for the HTML page's chart.
struct StatusHistory {
  std::int64_t bucket_ms = 60000;
  History::Window window{};
};

struct SamplerPart {
  Snapshot snap;
  WorkerTable workers;
  std::vector<Finding> findings;
  std::optional<StatusHistory> history;  // set by the sampler (the probe has none)
  // PHP-FPM pools (fpm_pools_view): those read through ShmGuardFpmPool, then those seen only as
  // processes. At most kMaxFpmPools.
  std::vector<FpmPool> fpm_pools;
  std::uint64_t findings_with(std::string_view severity) const;
  std::uint64_t failures_last_minute() const;  // sum of the failure counters' last-minute rises
};

// What the worker tables may hold. Tenants' code runs in the processes the sampler lists (the
// workers and pools this server serves from) with command lines of their choosing: without
// bounds, thousands of rows with
// long commands would make the sampler's part larger than the shared segment's blob (a blank
// page) and the sampler large.
constexpr std::size_t kMaxWorkerRows = 2048;
constexpr std::size_t kMaxFpmPools = 32;  // 16 configured + 16 seen as processes, at most
struct StatusOptions {
  bool full_commands = true;  // false: a worker's command shown as its program name only
  std::size_t max_rows = kMaxWorkerRows;  // rows listed (totals and findings count all)
  // encode_sampler_part() of the result at most this many bytes (0: no bound): worker rows past
  // what fits are left out.
  std::size_t max_bytes = 0;
};

// The sampler's part from its snapshot and every worker it sees: sharing, findings, totals, the
// listed rows within `opts` (moved out of `workers`: pass a temporary to spare the copies).
SamplerPart make_sampler_part(const Snapshot& snap, std::vector<WorkerRow> workers,
                              const StatusOptions& opts = StatusOptions{},
                              std::optional<StatusHistory> history = std::nullopt);

// Makes encode_sampler_part(p) at most `max_bytes` (0: no bound) by leaving out, in this order,
// what matters least: the last hour's history, the findings, the FPM pools, worker rows from the
// end (counted in not_listed). Whatever it leaves out but rows is said in one finding
// "status-part-cut", so the limits, counters and the rows that fit still show. False only when
// even that is too large (then nothing should be published: a cut encoding does not decode).
bool fit_sampler_part(SamplerPart& p, std::size_t max_bytes);

// The one encoding of SamplerPart (the shared segment's blob): compact, versioned by its magic.
// decode returns nullopt for anything that is not exactly one encoding (truncated, extended,
// foreign, inconsistent); it never allocates more than the input's size justifies.
std::string encode_sampler_part(const SamplerPart& p);
std::optional<SamplerPart> decode_sampler_part(std::string_view blob);
// The bytes one row takes in that encoding (mapped_by: its segments' entries).
std::size_t encoded_row_size(const WorkerRow& row, const std::uint32_t* mapped_by);

// ------------------------------------------------------------------------------ the child's part

struct SamplerHealth {
  std::int32_t pid = 0;
  std::int64_t interval_ms = 0, sampled_ms = 0, age_ms = -1, bound_ms = 0;
  std::uint64_t samples = 0, starts = 0, log_reads = 0;  // log_reads: error-log follower reads
  bool fresh = false;
  // Requests of a mod_fcgid class that found no slot in the class table (all kClassSlots taken by
  // other classes): not guarded, they failed open.
  std::uint64_t class_table_full = 0;
};

enum class GuardState { Ok, Warning, Refusing, FailingOpen };
const char* state_key(GuardState s);   // "ok", "warning", "refusing", "failing_open"
const char* state_word(GuardState s);  // "OK", "warning", "refusing new workers", "failing open"

struct VhostReserve {
  bool is_auto = false;
  std::uint64_t bytes = 0;
  std::string source;  // where the value comes from, in words
  // Which need applies (need.hpp): "mapped", "touched" or "fixed" (ShmGuardReserve SIZE), and why.
  std::string basis, basis_text;
  // What the largest class's need was computed from (0: not measured).
  std::uint64_t mapped_bytes = 0, touched_bytes = 0;
};

// A vhost's counters as read once for one view.
struct VhostCounts {
  std::uint64_t guarded = 0, passed = 0, refused = 0, would_refuse = 0, failed_open = 0,
                translated = 0;
  std::uint64_t waited = 0, wait_served = 0, wait_expired = 0, queue_full = 0, lean_starts = 0;
  // PHP-FPM-bound requests (of `guarded`), and those served with the headroom below
  // ShmGuardWarnBelow (FPM is never refused for shared memory: a warning).
  std::uint64_t fpm = 0, fpm_low = 0;
  std::int64_t last_refusal_ms = 0;  // wall clock, 0: never
  // ShmGuardReclaim: idle workers of this vhost retired for another vhost, and for this one.
  std::uint64_t reclaims_given = 0, reclaims_taken = 0;
};

struct VhostStatus {
  std::string label;  // unique among the vhosts: "name:port"
  std::string server_name;
  int port = 0;
  int fcgid_vhost_id = 0;  // 0: mod_fcgid not loaded
  bool guard = false;      // ShmGuard On
  bool dry_run = false;    // ShmGuardAction log
  std::string action;      // ShmGuardAction's word
  VhostReserve reserve;
  VhostCounts counts;
  // How many fit: at the reserve's size in the room left now; the FcgidMaxProcessesPerClass the
  // vhost's share of the limit holds; the per-worker shared memory that would have let the most
  // workers seen at once fit.
  int workers_now = 0, most_seen = 0;
  std::uint64_t fit_more = 0, max_processes_fit = 0, per_worker_fit = 0;
  // Its fair share of the workers the budget holds (share.hpp, summed over its classes, in its
  // reserve's size); -1: not known (no finite limit, or not a mod_fcgid vhost).
  int fair_share = -1, budget_workers = 0;
  // Its requests waiting now, by what they wait for (index: WaitFor).
  std::uint32_t waiting_now[kWaitReasons] = {};
};

// The hot values the guard decides on (the shared segment's atomics).
struct HotValues {
  std::int64_t headroom = -1;  // -1: no finite limit
  std::string binding;         // "" when none
  std::int64_t limit = 0, used = 0;
  bool warn = false;  // below ShmGuardWarnBelow
};

struct Headline {
  GuardState state = GuardState::Ok;
  std::string detail;  // one sentence
  HotValues hot;
};

// The headline's rule: failing open without a fresh sample; refusing when a guarded vhost's
// reserve is above the headroom (not for a vhost whose guarded requests all went to PHP-FPM,
// which no reserve applies to); warning for PHP-FPM requests served with the headroom low, for a
// dry-run refusal, the warn threshold, failure counters that rose, critical findings, requests
// not guarded because the class table is full; OK otherwise.
Headline decide_headline(const SamplerHealth& h, const HotValues& hot,
                         const std::vector<VhostStatus>& vhosts, const SamplerPart* part);

struct StatusModel {
  SamplerHealth sampler;
  Headline headline;
  std::vector<VhostStatus> vhosts;
  std::optional<SamplerPart> part;  // nullopt: the sampler has published nothing yet
  std::int64_t now_ms = 0;          // wall clock of the view ("3m ago")
  // The name the page shows for a mod_fcgid vhost id ("" when no vhost has it).
  const std::string& fcgid_vhost_label(std::int32_t id) const;
};

// A command line's program name: the first word's last path component, without a trailing ':'
// ("php-cgi" for "/usr/bin/php-cgi -d x=1", "php-fpm" for "php-fpm: pool www").
std::string_view program_name(std::string_view command);

// "3d 4h", "5m 12s", "40s"
std::string human_duration(std::int64_t seconds);

// "2026-11-27T14:16:30Z" ("" for ms <= 0)
std::string iso_time(std::int64_t ms);

}  // namespace shmguard
