// mod_shmguard core: the guard's rules. Pure functions, no I/O: the glue (fixups) and the
// benchmarks read the shared segment, call these, and act on the answer.
//
//   freshness   is the published sample young enough to act on (else fail open)?
//   decide      pass (a free worker, or a spawn the headroom holds), spawn a lean worker (degrade),
//               wait for a worker of the class, or refuse
//   evidence    did this request's backend die of a shared-memory allocation failure?
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace shmguard {

enum class Verdict : std::uint8_t {
  Pass,         // a free worker of the class, or room for one more worker (a spawn)
  Lean,         // ShmGuardAction degrade: no room for a full worker, room for a lean one
  Wait,         // no free worker, no room: wait for a worker of the class to become free
  Refuse,       // nothing to wait for (or the wait expired / the queue is full): 503
  WouldRefuse,  // the same under ShmGuardAction log: count and log, serve anyway
  FailOpen,     // no fresh sample or the worker table cannot be read: serve
};
const char* to_string(Verdict v);

enum class Action : std::uint8_t { Refuse, Log, Degrade };
const char* to_string(Action a);

// What a request holds while it is in flight (ShmGuard's claim on the class).
enum class Claim : std::uint8_t {
  None,    // not counted (no class known, or PHP-FPM)
  Worker,  // an existing worker of the class
  Spawn,   // a new worker, whose need is reserved until a sample has seen it
  Lean,    // a new lean worker (degrade): its smaller need is reserved
};
const char* to_string(Claim c);

struct GuardInput {
  bool fresh = false;          // freshness() of the published sample
  bool bounded = false;        // a finite limit exists (else headroom is unbounded)
  std::uint64_t headroom = 0;  // bytes, when bounded (as published by the sampler)
  std::uint64_t reserved = 0;  // bytes of admitted spawns that no sample has seen yet
  std::uint64_t need = 0;      // bytes a full new worker maps (the reserve)
  bool need_known = true;      // need was measured on a running worker of the class (not a default)
  std::uint64_t lean_need = 0;  // bytes a lean worker maps (degrade); 0: none (file cache only)
  bool spawns_workers = true;   // mod_fcgid spawns per request class; PHP-FPM does not
  // mod_proxy_fcgi to a FastCGI server Apache does not start (PHP-FPM): its running children
  // share the master's one OPcache segment, so a request maps no new shared memory.
  bool fpm = false;
  // Rule 2's pool (ShmGuardFpmPool), from its status as the sampler last read it (fresh):
  // fpm_pool false when not known; whether FPM forks for a request that finds no idle child (pm
  // dynamic/ondemand, pm.max_children not reached in the last read); a finite limit on private
  // memory (privvmpages, cgroup, overcommit: a fork charges those, not shmpages). The numbers
  // (fpm_idle, fpm_child_need, private_headroom) are at the end of the struct.
  bool fpm_pool = false;
  bool fpm_forks = false;
  bool private_bounded = false;
  bool low = false;       // the headroom is below ShmGuardWarnBelow (the sampler's warning state)
  int workers = -1;       // live workers of the class in mod_fcgid's table; < 0 unknown
  int inflight = 0;       // requests holding (or about to take) a worker of the class
  int queued = 0;         // waiters of the class this request must let go first
  int class_waiting = 0;  // all requests of the class waiting now (this one included)
  Action action = Action::Refuse;
  bool may_wait = false;       // ShmGuardWait > 0, not expired, and a waiting place is free
  std::int64_t waited_ms = 0;  // how long this request has waited for a worker so far
  // Since the class's last spawn on the default need (need_known false) was admitted or its
  // request ended, in ms; and how long such a worker is given to be measured (measure_wait_ms()).
  std::int64_t since_unmeasured_spawn_ms = INT64_MAX;
  std::int64_t measure_wait_ms = 1000;
  // ShmGuardReclaim on: an idle worker of another class may be retired for this request (rule 8b;
  // which one, if any, is choose_reclaim()'s answer, reclaim.hpp).
  bool reclaim = false;
  // A worker retired for this class is on its way out (less than kReclaimPendingMs ago): its room
  // is coming, so the request waits for it (and no second worker is retired for the class).
  bool reclaim_pending = false;
  // Rule 8c: the class holds fewer workers than its fair share and a class above its share has a
  // busy worker: the next one of those that frees is retired for this class (share_owed(),
  // share.hpp), so the request waits for it.
  bool share_owed = false;
  // Rule 2's pool: its children free now (fpm_free_now), what one new child's private pages
  // take (bytes, the largest of its running children's private writable memory; 0 unknown), the
  // headroom for private memory (bytes, when private_bounded).
  std::uint64_t fpm_idle = 0;
  std::uint64_t fpm_child_need = 0;
  std::uint64_t private_headroom = 0;
};

// How long a reclaim counts as in flight: mod_fcgid's process manager signals the retired worker
// at its next error scan (FcgidErrorScanInterval, 3 s by default, and its test is `<=`: up to 4 s)
// and reaps it at the one after; the sample after its exit shows the room.
constexpr std::int64_t kReclaimPendingMs = 10000;

// While workers of the class are busy, a request waits this long for one of them before it may
// start a new one: mod_fcgid itself sleeps a whole second before it asks for a spawn when a worker
// of the class is busy, and a worker usually frees within milliseconds.
constexpr std::int64_t kSpawnAfterWaitMs = 200;

// While a class's need is not measured yet, its next spawn waits for the sampler to measure the
// worker the last one started (one or two samples after it starts), or measure_wait_ms(): three
// sampling intervals, at least this long. The default need may be far below a worker's real one
// (OPcache 256M + APCu 32M against 128M), and a worker that cannot be measured (its maps
// unreadable) must not stop the class from growing.
constexpr std::int64_t kMeasureWaitMs = 1000;
std::int64_t measure_wait_ms(std::int64_t interval_ms);

// What a waiting request waits for (Verdict::Wait; the status page counts the requests waiting
// now by it).
enum class WaitFor : std::uint8_t {
  None,
  Worker,   // a worker of its class (busy now), or the spawn of its class in flight
  Reclaim,  // the room of a worker retired for its class (a reclaim or a share hand-over)
  Measure,  // the class's last spawn on the default need being measured
  Share,    // its fair share: a worker of a class above its share, as it frees (rule 8c)
};
constexpr std::size_t kWaitReasons = 5;
const char* to_string(WaitFor w);   // "worker", "reclaim", "measure", "share"
const char* wait_words(WaitFor w);  // "waiting for a worker of this class", ...

struct Decision {
  Verdict verdict = Verdict::Pass;
  Claim claim = Claim::None;
  std::uint64_t reserve_bytes = 0;  // what the claim reserves (Spawn: need; Lean: lean_need)
  // Rule 8b: retire an idle worker of another class for this request (the glue picks it with
  // choose_reclaim() and retires it the way mod_fcgid does), then wait for its room. Under log:
  // only say which (WouldRefuse).
  bool reclaim = false;
  bool warn = false;  // served, but worth a warning (PHP-FPM with the headroom low): never refused
  WaitFor wait_for = WaitFor::None;  // Verdict::Wait: why
  // Rule 2.2: PHP-FPM would fork a child for this request and one child's private pages do not
  // fit the private headroom (warn is set too).
  bool fork_short = false;
};

// Room for this many workers is ample: a burst cannot spawn that many (mod_fcgid's default
// FcgidSpawnScoreUpLimit lets about 10 spawns through in a burst), so no spawn is reserved and
// the worker table is not read.
constexpr std::uint64_t kAmpleWorkers = 16;

// The rules, in order:
//  1. no fresh sample: fail open (the request is still counted as holding a worker);
//  2. PHP-FPM (fpm): pass, never refused for shared memory: its running children share the
//     master's one OPcache segment and a request maps none, so no reserve applies (need is
//     ignored). What can fail is FPM forking a new child (pm = dynamic/ondemand), and that
//     charges the child's private writable pages to privvmpages (or the cgroup), not shmpages.
//     FPM keeps a request it cannot serve yet in its listen queue: never a refusal here (what FPM
//     then fails at is answered by the diagnosed 503, SG0230). With the pool's status known
//     (fpm_pool):
//     2.1 an idle child (fpm_idle > 0): pass, nothing checked, no warning;
//     2.2 no idle child and FPM would fork (fpm_forks): one new child's measured private pages
//         (fpm_child_need) against the private headroom; when they do not fit: pass with a
//         warning (fork_short);
//     otherwise, with the headroom below ShmGuardWarnBelow (low): pass with a warning (the glue
//     counts and logs it);
//  2b. other handlers that do not spawn per request (ShmGuardHandlers names): pass when
//     unbounded or headroom >= need, else refuse (the reserve alone decides);
//  3. ample (unbounded, or room for kAmpleWorkers workers): pass, counted, nothing reserved;
//  3b. mod_fcgid's table unreadable: fail open;
//  4. a free worker (workers - inflight - queued > 0): pass, claim it;
//  5. room for a spawn (headroom - reserved >= need): pass, reserve need; while need is only the
//     default (no worker of the class measured yet), one spawn of the class at a time, and the
//     next only once that worker is measured or measure_wait_ms after it was admitted or its
//     request ended (meanwhile the request waits); while
//     workers of the class are busy, only after kSpawnAfterWaitMs of waiting (if it may wait) or
//     when more requests of the class wait than it has workers;
//  6. under degrade, no room for a full worker but for a lean one, and no spawn of the class in
//     flight: lean, reserve
//     lean_need (lean workers are added one at a time);
//  7. under log (dry run): would refuse, serve anyway (and reserve need, as the spawn happens);
//  8. something to wait for (a worker, a spawn in flight, or a reclaim for the class in flight)
//     and may_wait: wait;
//  8b. nothing coming for the class (no worker, no spawn in flight, none being measured), may_wait
//     and ShmGuardReclaim on: wait, and retire an idle worker of another class (Decision::reclaim;
//     under log (7) the same is only flagged, nothing is retired);
//  8c. the class is owed a worker of a class above its fair share (share_owed) and may_wait:
//     wait (the next worker that frees there is retired for it, share.hpp);
//  9. else refuse.
Decision decide(const GuardInput& in);

// Whether the module asks mod_fcgid's process manager for the worker a decision admitted itself
// (procmgr_send_spawn_cmd) instead of leaving the spawn to mod_fcgid's handler: a full spawn
// that reserves its need (not under log), and a lean spawn while the class has workers (all
// taken): mod_fcgid's handler then sleeps a whole second and takes whichever worker frees first,
// spawning only when none has (fcgid_bridge.c handle_request), and the guard keeps a worker that
// frees for that request meanwhile, so the lean worker would seldom start. With no worker of the
// class, mod_fcgid spawns at once itself (asking too would start two).
bool module_starts_worker(const GuardInput& in, const Decision& d);

// Room left for new shared memory after admitted spawns: headroom - reserved, never below 0.
inline std::uint64_t room(const GuardInput& in) {
  return in.headroom > in.reserved ? in.headroom - in.reserved : 0;
}
// Rule 3: no need to look at workers or reserve anything.
inline bool ample(const GuardInput& in) {
  return !in.bounded || room(in) / kAmpleWorkers >= in.need;
}

// Is a sample taken at `sampled_ms` (wall clock; 0: none yet) fresh at `now_ms`? A sample "from
// the future" by more than a second means the clock jumped: stale too. The one rule the guard,
// the status page and the benchmarks use.
bool freshness(std::int64_t sampled_ms, std::int64_t now_ms, std::int64_t bound_ms);
// The staleness bound for a sampling interval: three intervals, at least 1.5 s.
std::int64_t staleness_bound_ms(std::int64_t interval_ms);

// Waiting places one class may take of ShmGuardMaxWaiting's `max_waiting`: all but a quarter (at
// least one) when there are two or more, so one client's slow requests to one site cannot take
// every place from the others.
std::int32_t max_waiting_per_class(std::int32_t max_waiting);

// How many workers of a given need the room holds (0 when need is 0 or unknown).
std::uint64_t workers_that_fit(std::uint64_t room_bytes, std::uint64_t need);

// The one answer to "how many workers fit" (SG0201, the status page's `fit`, the advisor): with
// `room` left (headroom less what is reserved for workers being started), `workers` running and
// each needing `need`, their share of the limit is room + workers × need. `more`: workers the room
// still holds; `max_processes`: what FcgidMaxProcessesPerClass (or FcgidMaxProcesses) should be
// at most; `per_worker`: the most one worker may need for `most_seen` workers to fit (0 when none
// seen).
struct FitAdvice {
  std::uint64_t more = 0, max_processes = 0, per_worker = 0;
};
FitAdvice fit_advice(std::uint64_t room, std::uint64_t workers, std::uint64_t need,
                     std::uint64_t most_seen);

// ---------------------------------------------------------------- evidence

// What a request's start saw, and what the segment holds at the 500.
struct EvidenceCounters {
  std::uint64_t php_errors = 0;   // OPcache lines in PHP's own format, from a pid that exited
  std::uint64_t apcu_errors = 0;  // APCu's allocation failure lines (no pid in them)
  std::uint64_t failcnt_sum = 0;  // beancounter shmpages + privvmpages failcnt
  std::uint64_t oom_kills = 0;    // cgroup oom_kill (never v1 failcnt: that counts reclaim)
};
struct EvidenceDetail {
  std::uint64_t php_bytes = 0;  // of the last OPcache line
  int php_pid = 0;
  std::int64_t php_wall_ms = 0;  // when the sampler read it
  std::uint64_t apcu_bytes = 0;  // of the last APCu line
  std::int64_t apcu_wall_ms = 0;
};
// Whether a 500 must wait for the sampler's fresh look before its evidence is judged. Not when the
// sample is fresh, the headroom ample and no failure counter moved since the request started (a
// flood of unrelated 500s then parks no child and wakes no sample) — unless OOM kills are counted
// (a memory cgroup): the OOM killer frees its victim's memory, so the headroom after a kill is
// ample again, and only a sample reads the kill.
bool must_wait_for_evidence(bool fresh_bounded_ample, bool counters_moved, bool oom_kills_counted);

// The evidence text for a 500 ("" when there is none): an OPcache line newer than the request,
// a failure counter that rose, or an APCu line together with a counter that rose (APCu's line
// names no pid, so alone it could be any process's, or a forgery).
std::string evidence_text(const EvidenceCounters& at_start, const EvidenceCounters& now,
                          const EvidenceDetail& detail, std::int64_t request_start_ms);

}  // namespace shmguard
