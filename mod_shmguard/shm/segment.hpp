// mod_shmguard: the shared segment between the sampler (writer), the children (readers, and
// writers of their own counters and claims) and the parent. Created anonymous in post_config, one
// per server generation, inherited by every process forked after it. No httpd header here: the
// glue, the sampler, the benchmarks and the unit tests use it alike.
//
// Readers take no locks: hot values are single atomics; the status blob is a seqlock (writer
// makes seq odd, writes, makes it even; a reader retries while odd or changed). A request's claim
// on a worker is a record with its owner's pid, so the sampler can give back the claims of a
// child that died; waiting requests sleep on a futex word of their own (claims.hpp).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "shmguard/rules.hpp"
#include "shmguard/model.hpp"

namespace shmguard::shm {

constexpr std::uint32_t kMagic = 0x53474d31;  // "SGM1"
constexpr std::size_t kMaxVhosts = 512;
constexpr std::size_t kClassSlots = 256;
constexpr std::size_t kBlobMax = 2u << 20;  // the sampler's part of the status model, 2 MiB
constexpr std::size_t kClaims = 4096;       // requests in flight that hold a claim, at most
constexpr std::size_t kWaiters = 1024;      // requests waiting for a worker, at most
constexpr std::size_t kPromises = 16;       // rooms reserved for a class a worker was retired for
constexpr std::size_t kFpmPoolSlots = 16;   // ShmGuardFpmPool directives, at most

// Counters per virtual host, written by children with relaxed atomic adds.
struct VhostCounters {
  std::atomic<std::uint64_t> guarded, passed, refused, would_refuse, failed_open, translated;
  std::atomic<std::uint64_t> waited, wait_served, wait_expired, queue_full, lean_spawns;
  std::atomic<std::int64_t> last_refusal_ms;  // wall clock
  std::atomic<std::int64_t> last_log_ms;      // for the one-line-per-burst log
  std::atomic<std::uint64_t> refused_since_log;
  // Idle workers of this vhost retired for another vhost's request (ShmGuardReclaim), and those
  // retired for this vhost's requests.
  std::atomic<std::uint64_t> reclaims_given, reclaims_taken;
  std::atomic<std::int64_t> last_would_reclaim_ms;  // SG0211 under log: one line per 10 s
  // PHP-FPM-bound requests (mod_proxy_fcgi), and those served while the headroom was below
  // ShmGuardWarnBelow (never refused: a warning, SG0220 at most every 10 s per vhost).
  std::atomic<std::uint64_t> fpm, fpm_low;
  std::atomic<std::int64_t> fpm_log_ms;
  std::atomic<std::uint64_t> fpm_low_since_log;
  // Its requests waiting now, by what they wait for (index: WaitFor; the status page).
  std::atomic<std::int32_t> waiting_for[kWaitReasons];
};

// One mod_fcgid process class (fcgid::class_hash: vhost_id, device and inode of the wrapper or
// script, command line, uid, gid, as mod_fcgid matches its workers): how many of our
// requests hold or are about to take one of its workers (children), what one of its workers maps
// (sampler). Its live workers are counted in mod_fcgid's own table at decision time, not here.
struct ClassSlot {
  std::atomic<std::uint64_t> key;  // 0 = empty; set once with CAS, never cleared in a generation
  std::atomic<std::int32_t> inflight;
  std::atomic<std::int32_t> waiting;           // requests of the class waiting for a worker
  std::atomic<std::uint64_t> worker_need;      // bytes: a new worker's need (need.hpp)
  std::atomic<std::int32_t> max_workers_seen;  // most live workers at once (this generation)
  std::atomic<std::int64_t> unmeasured_spawn_ms;  // wall ms a spawn on the default need (none
                                                  // measured yet) was admitted or ended; 0: none
  std::atomic<std::int64_t>
      reclaim_ms;  // wall ms an idle worker of another class was retired
                   // for this class (in flight for kReclaimPendingMs); 0: none
  std::atomic<std::int32_t> vhost_plus1;  // the vhost counters index + 1 of its last waiter
  std::atomic<std::uint64_t> owed_need;   // the need its request owed a share decided with
  // What worker_need is computed from (class_need): a worker's private segments summed and its
  // touched memory (RssShmem + RssAnon), each the largest on the class's running workers; 0: not
  // measured.
  std::atomic<std::uint64_t> worker_mapped, worker_touched;
};

// One ShmGuardFpmPool pool (its directive's index). Written by the sampler (FPM's log, the
// pool's status) and by the children (translated). The status fields are stored one by one: a
// reader may see two reads' fields mixed, which only the numbers in a message or one decision
// can show (never a refusal: FPM requests are not refused on them).
struct FpmPoolHot {
  // FPM's own error log (the directive's third argument): lines counted, the last fork
  // failure's errno, the pm.max_children the last "server reached" line named.
  std::atomic<std::uint64_t> fork_failures, max_children_lines, max_children;
  std::atomic<std::int32_t> fork_errno;
  // The pool's status as the sampler last read it (wall ms; 0: never read, or the last read
  // failed).
  std::atomic<std::int64_t> status_wall_ms;
  std::atomic<std::uint64_t> idle, active, total, listen_queue, max_children_reached;
  // Rule 2.2's inputs: FPM forks for a request that finds no idle child (pm dynamic/ondemand, and
  // pm.max_children not reached since the read before: 1), and one new child's private pages
  // (bytes: the largest VmData + VmStk of the pool's running children; 0 unknown).
  std::atomic<std::uint32_t> forks;
  std::atomic<std::uint64_t> child_need;
  std::atomic<std::uint64_t> free_children;  // fpm_free_children() of the last read
  std::atomic<std::uint64_t> translated;     // mod_proxy_fcgi errors turned into SG0230's 503
  std::atomic<std::int64_t> log_ms;          // SG0230: one line per 10 s per pool
  std::atomic<std::uint64_t> since_log;
  // Requests to the pool in flight now (from fixups to the request's end, every child of this
  // server), and as the sampler saw it just before its last status read (fpm_free_now()).
  std::atomic<std::int64_t> inflight, inflight_at_read;
};

// A request's claim: word = pid << 32 | slot index << 8 | Claim; 0 = free. bytes = what a spawn
// reserved. Whoever turns word to 0 (the request, or the sampler for a dead pid) gives it back.
struct ClaimRec {
  std::atomic<std::uint64_t> word;
  std::atomic<std::uint64_t> bytes;
};

// A waiting request: state is its futex word (0 free, 1 waiting, 2 woken).
struct WaiterRec {
  std::atomic<std::uint32_t> state;
  std::atomic<std::int32_t> pid;
  std::atomic<std::uint64_t> key;     // class key
  std::atomic<std::uint64_t> ticket;  // arrival order
};

// The room a retired worker leaves, reserved for the class it was retired for (reclaim or share
// hand-over) until that class starts its worker or kReclaimPendingMs pass: other classes' requests
// decide as if it were reserved. slot_plus1: class slot index + 1; 0 free, -1 being filled in.
struct PromiseRec {
  std::atomic<std::int32_t> slot_plus1;
  std::atomic<std::uint64_t> bytes;
  std::atomic<std::int64_t> at_ms;
};

struct Segment {
  std::uint32_t magic;
  std::uint32_t nvhosts;

  // Sampler health.
  std::atomic<std::int32_t> sampler_pid;
  std::atomic<std::uint64_t> samples;
  std::atomic<std::uint64_t> sampler_starts;
  std::atomic<std::int64_t> sample_wall_ms;  // when the last sample was taken (0: none yet)
  std::atomic<std::int64_t> interval_ms;
  std::atomic<std::uint64_t> log_reads;  // error-log reads by the follower (status page: sampler)

  // The model, as the request path needs it.
  std::atomic<std::int64_t> headroom;                     // bytes; -1: no finite limit
  std::atomic<std::int32_t> binding;                      // BindingLimit
  std::atomic<std::int64_t> binding_limit, binding_used;  // bytes
  std::atomic<std::int64_t> binding_failcnt_rise_minute;
  std::atomic<std::int32_t> warn_state;  // 1 while headroom is below ShmGuardWarnBelow
  // Headroom for private memory (what a fork charges: privvmpages, a memory cgroup, strict
  // overcommit; not shmpages), bytes; -1: no such finite limit.
  std::atomic<std::int64_t> private_headroom;
  std::atomic<std::int64_t> failopen_log_ms;  // last "failing open" warning (one per 10 s)

  // Evidence for the 500 -> 503 translation.
  std::atomic<std::uint64_t> wake_requests;  // children ask for a fresh evidence scan
  std::atomic<std::uint64_t> evidence_gen;   // sampler: scans completed
  std::atomic<std::uint64_t> php_errors;     // PHP "Unable to allocate shared memory" lines seen
  std::atomic<std::int64_t> php_error_wall_ms;
  std::atomic<std::uint64_t> php_error_bytes;
  std::atomic<std::int32_t> php_error_pid;
  std::atomic<std::uint64_t> failcnt_sum;  // beancounter shmpages+privvmpages failcnt
  std::atomic<std::uint64_t> oom_kills;    // cgroup oom_kill (v2 memory.events, v1 oom_control)
  std::atomic<std::int32_t> oom_counted;   // 1: oom_kill read, a memory cgroup limit finite

  std::atomic<std::uint64_t> apcu_errors;  // APCu "apc_mmap: Failed to mmap" lines seen
  std::atomic<std::int64_t> apcu_error_wall_ms;
  std::atomic<std::uint64_t> apcu_error_bytes;

  // Spawns admitted whose segments no sample has seen yet (bytes). A claim given back moves its
  // bytes to retire[(samples + 2) % 4]; the sampler drains retire[n % 4] when it publishes sample
  // n, i.e. once a sample that started after the worker served has been published.
  std::atomic<std::int64_t> reserved;
  std::atomic<std::int64_t> retire[4];

  // Requests whose mod_fcgid class found no slot (all kClassSlots taken): not guarded (fail
  // open); SG0206 once per generation (class_table_full_logged).
  std::atomic<std::uint64_t> class_table_full;
  std::atomic<std::uint32_t> class_table_full_logged;

  // Waiting for a worker.
  std::atomic<std::int32_t> waiting;      // all classes
  std::atomic<std::int32_t> max_waiting;  // ShmGuardMaxWaiting (post_config)
  std::atomic<std::uint64_t> wait_tickets;
  // Fair share (share.hpp): the last time a waiting request was owed a worker of a class above
  // its share (a request giving a worker back then looks whether to hand it over), and the last
  // time a room was promised (PromiseRec; none younger than kReclaimPendingMs: nothing to read).
  std::atomic<std::int64_t> share_wanted_ms;
  std::atomic<std::int64_t> promise_ms;
  PromiseRec promises[kPromises];

  VhostCounters vhosts[kMaxVhosts];
  ClassSlot classes[kClassSlots];
  ClaimRec claims[kClaims];
  WaiterRec waiters[kWaiters];
  FpmPoolHot fpm_pools[kFpmPoolSlots];

  // Status page on demand: a handler sets status_wanted, takes a ticket from status_requests and
  // wakes the sampler; the sampler publishes its part of the status model in the blob and sets
  // status_gen to the ticket it served.
  std::atomic<std::uint32_t> status_wanted;
  std::atomic<std::uint64_t> status_requests;
  std::atomic<std::uint64_t> status_gen;

  // The sampler's part of the status model, encode_sampler_part()'s bytes (seqlock).
  std::atomic<std::uint64_t> blob_seq;
  std::atomic<std::uint32_t> blob_len;
  char blob[kBlobMax];
};

// A sample older than this is stale and the guard fails open (core: staleness_bound_ms).
inline std::int64_t staleness_bound_ms(const Segment* s) {
  return shmguard::staleness_bound_ms(s->interval_ms.load(std::memory_order_relaxed));
}
// Is the published sample fresh at `now_ms` (wall clock)? The guard and the status page ask this.
inline bool sample_fresh(const Segment* s, std::int64_t now_ms) {
  return shmguard::freshness(s->sample_wall_ms.load(std::memory_order_acquire), now_ms,
                             staleness_bound_ms(s));
}

inline void init(Segment* s, std::uint32_t nvhosts, std::int64_t interval_ms) {
  std::memset(static_cast<void*>(s), 0, sizeof(Segment));
  s->magic = kMagic;
  s->nvhosts = nvhosts;
  s->headroom.store(-1);
  s->private_headroom.store(-1);
  s->interval_ms.store(interval_ms);
  s->max_waiting.store(0);
}

// Publishes nothing (false) for a text past kBlobMax: a cut encoding would not decode.
inline bool publish_blob(Segment* s, const std::string& text) {
  if (text.size() > kBlobMax) return false;
  std::size_t n = text.size();
  s->blob_seq.fetch_add(1, std::memory_order_acq_rel);  // odd: writing
  std::atomic_thread_fence(std::memory_order_release);
  std::memcpy(s->blob, text.data(), n);
  s->blob_len.store(static_cast<std::uint32_t>(n), std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  s->blob_seq.fetch_add(1, std::memory_order_release);  // even: done
  return true;
}

// Copies the blob consistently; false if the writer kept interfering (never blocks).
inline bool read_blob(const Segment* s, std::string& out) {
  for (int attempt = 0; attempt < 64; ++attempt) {
    std::uint64_t a = s->blob_seq.load(std::memory_order_acquire);
    if (a & 1) continue;
    std::uint32_t n = s->blob_len.load(std::memory_order_relaxed);
    if (n > kBlobMax) continue;
    out.assign(s->blob, n);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (s->blob_seq.load(std::memory_order_relaxed) == a) return a != 0;
  }
  return false;
}

// The slot for a class key, created if absent (with `create`); nullptr when absent and not
// created, or when the table is full.
inline ClassSlot* class_slot(Segment* s, std::uint64_t key, bool create = true) {
  if (key == 0) key = 1;
  for (std::size_t i = 0; i < kClassSlots; ++i) {
    ClassSlot& c = s->classes[(key + i) % kClassSlots];
    std::uint64_t k = c.key.load(std::memory_order_acquire);
    if (k == key) return &c;
    if (k == 0) {
      if (!create) return nullptr;
      std::uint64_t expected = 0;
      if (c.key.compare_exchange_strong(expected, key, std::memory_order_acq_rel)) return &c;
      if (expected == key) return &c;
    }
  }
  return nullptr;
}

}  // namespace shmguard::shm
