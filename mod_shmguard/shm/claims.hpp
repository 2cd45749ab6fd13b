// mod_shmguard: claims on workers and the wait queue, on the shared segment. The rules are the
// core's decide(); this file makes them atomic across children: a claim is taken with a
// compare-and-swap, so two children never take the same free worker, and never reserve the same
// headroom for two spawns. No httpd header: the glue, the sampler, the benchmarks and the unit
// tests call the same functions.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "shm/segment.hpp"
#include "shmguard/rules.hpp"

namespace shmguard::shm {

// ---------------------------------------------------------------- futex (shared, not private)

inline void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected, long wait_ns) {
  struct timespec ts {
    static_cast<time_t>(wait_ns / 1000000000L), wait_ns % 1000000000L
  };
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT, expected, &ts, nullptr, 0);
}
inline void futex_wake(std::atomic<std::uint32_t>* word, int n) {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE, n, nullptr, nullptr, 0);
}

// ---------------------------------------------------------------- claims

inline std::uint64_t claim_word(int pid, std::size_t slot_index, Claim kind) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(pid)) << 32) |
         (static_cast<std::uint64_t>(slot_index & 0xffffff) << 8) |
         static_cast<std::uint64_t>(kind);
}
inline int claim_pid(std::uint64_t w) {
  return static_cast<int>(w >> 32);
}
inline std::size_t claim_slot(std::uint64_t w) {
  return static_cast<std::size_t>((w >> 8) & 0xffffff);
}
inline Claim claim_kind(std::uint64_t w) {
  return static_cast<Claim>(w & 0xff);
}

inline std::size_t slot_index(const Segment* s, const ClassSlot* slot) {
  return static_cast<std::size_t>(slot - s->classes);
}

// A record being filled in (taken, its bytes not written yet): no release or reaper matches it.
constexpr std::uint64_t kClaimBusy = 0xff;  // kind 0xff: never a real claim

// Records a claim (a free record found by compare-and-swap from `hint`); -1 when all are taken.
// The record is taken first (kClaimBusy), then its bytes are written, then its word: two
// children that pick the same free record never mix their bytes.
inline int record_claim(Segment* s, int pid, const ClassSlot* slot, Claim kind, std::uint64_t bytes,
                        std::size_t hint) {
  const std::uint64_t word = claim_word(pid, slot_index(s, slot), kind);
  for (std::size_t i = 0; i < kClaims; ++i) {
    const std::size_t at = (hint + i) % kClaims;
    ClaimRec& c = s->claims[at];
    std::uint64_t expected = 0;
    if (c.word.load(std::memory_order_relaxed) != 0) continue;
    if (!c.word.compare_exchange_strong(expected, kClaimBusy, std::memory_order_acq_rel)) continue;
    c.bytes.store(bytes, std::memory_order_relaxed);
    c.word.store(word, std::memory_order_release);
    return static_cast<int>(at);
  }
  return -1;
}

// The oldest waiter of a class is woken (one per worker given back: no thundering herd).
inline void wake_oldest(Segment* s, std::uint64_t key) {
  if (s->waiting.load(std::memory_order_acquire) <= 0) return;
  int best = -1;
  std::uint64_t best_ticket = ~0ULL;
  for (std::size_t i = 0; i < kWaiters; ++i) {
    WaiterRec& w = s->waiters[i];
    if (w.state.load(std::memory_order_acquire) != 1 || w.key.load() != key) continue;
    std::uint64_t t = w.ticket.load();
    if (t < best_ticket) {
      best_ticket = t;
      best = static_cast<int>(i);
    }
  }
  if (best < 0) return;
  std::uint32_t one = 1;
  if (s->waiters[best].state.compare_exchange_strong(one, 2, std::memory_order_acq_rel))
    futex_wake(&s->waiters[best].state, 1);
}

// Every waiter re-decides (new sample published, or a worker appeared).
inline void wake_all(Segment* s) {
  if (s->waiting.load(std::memory_order_acquire) <= 0) return;
  for (std::size_t i = 0; i < kWaiters; ++i) {
    std::uint32_t one = 1;
    if (s->waiters[i].state.compare_exchange_strong(one, 2, std::memory_order_acq_rel))
      futex_wake(&s->waiters[i].state, 1);
  }
}

// Moves a spawn's reserved bytes to the retire bucket that the sample after next drains.
inline void retire_bytes(Segment* s, std::uint64_t bytes) {
  if (!bytes) return;
  std::uint64_t n = s->samples.load(std::memory_order_acquire);
  s->retire[(n + 2) % 4].fetch_add(static_cast<std::int64_t>(bytes), std::memory_order_acq_rel);
}

// Gives back claim `index` if it still holds `word` (exactly once: the request's release, its
// pool cleanup and the sampler's reaper may race; the compare-and-swap picks one). The class's
// oldest waiter is woken. A spawn's reservation waits for the samples to see the new worker.
inline bool release_claim(Segment* s, int index, std::uint64_t word) {
  if (index < 0 || static_cast<std::size_t>(index) >= kClaims || word == 0 || word == kClaimBusy)
    return false;
  ClaimRec& c = s->claims[index];
  std::uint64_t expected = word;
  std::uint64_t bytes = c.bytes.load(std::memory_order_acquire);
  if (!c.word.compare_exchange_strong(expected, 0, std::memory_order_acq_rel)) return false;
  std::size_t si = claim_slot(word);
  if (si >= kClassSlots) return true;
  ClassSlot& slot = s->classes[si];
  slot.inflight.fetch_sub(1, std::memory_order_acq_rel);
  Claim kind = claim_kind(word);
  if (kind == Claim::Spawn || kind == Claim::Lean) retire_bytes(s, bytes);
  // A spawn on the default need: its worker has started by now (or died); the sampler gets its
  // time to measure it from here (the start may have taken longer than that time).
  if (kind == Claim::Spawn && bytes && slot.worker_need.load(std::memory_order_relaxed) == 0 &&
      slot.unmeasured_spawn_ms.load(std::memory_order_relaxed) != 0)
    slot.unmeasured_spawn_ms.store(now_ms(), std::memory_order_release);
  wake_oldest(s, slot.key.load(std::memory_order_relaxed));
  return true;
}

// The sampler, once per sample: drains the retire bucket of sample `n` (just published).
inline void drain_retired(Segment* s, std::uint64_t n) {
  std::int64_t b = s->retire[n % 4].exchange(0, std::memory_order_acq_rel);
  if (b) s->reserved.fetch_sub(b, std::memory_order_acq_rel);
  // Never below 0, without losing a reservation a child adds meanwhile.
  std::int64_t r = s->reserved.load(std::memory_order_acquire);
  while (r < 0 && !s->reserved.compare_exchange_weak(r, 0, std::memory_order_acq_rel)) {
  }
}

// The sampler: gives back claims and waiting places whose owner died (a crashed child).
// `alive(pid)` must answer false only for a pid that is gone.
template <class Alive>
std::uint64_t reap_dead(Segment* s, Alive&& alive) {
  std::uint64_t reaped = 0;
  int last_pid = 0;
  bool last_alive = true;
  auto check = [&](int pid) {
    if (pid != last_pid) {
      last_pid = pid;
      last_alive = alive(pid);
    }
    return last_alive;
  };
  for (std::size_t i = 0; i < kClaims; ++i) {
    std::uint64_t w = s->claims[i].word.load(std::memory_order_acquire);
    if (w == 0 || w == kClaimBusy || check(claim_pid(w))) continue;
    if (release_claim(s, static_cast<int>(i), w)) ++reaped;
  }
  for (std::size_t i = 0; i < kWaiters; ++i) {
    WaiterRec& w = s->waiters[i];
    std::uint32_t st = w.state.load(std::memory_order_acquire);
    // 3: being set up by its owner, whose pid is not stored yet (the pid there is the record's
    // last owner's, likely dead): never reaped, or a live waiter's record would be cleared.
    if (st == 0 || st == 3 || check(w.pid.load())) continue;
    if (w.state.compare_exchange_strong(st, 0, std::memory_order_acq_rel)) {
      s->waiting.fetch_sub(1, std::memory_order_acq_rel);
      std::uint64_t key = w.key.load();
      if (ClassSlot* slot = class_slot(s, key, false)) slot->waiting.fetch_sub(1);
      ++reaped;
    }
  }
  return reaped;
}

// ---------------------------------------------------------------- admission

// Ms since the class's last spawn on the default need was admitted or its request ended
// (INT64_MAX: none, or a wall clock stepped back by more than a second since).
inline std::int64_t since_unmeasured_spawn(const ClassSlot* slot, std::int64_t now_ms) {
  const std::int64_t last = slot ? slot->unmeasured_spawn_ms.load(std::memory_order_acquire) : 0;
  if (!last) return INT64_MAX;
  const std::int64_t since = now_ms - last;
  if (since < -1000) return INT64_MAX;
  return since < 0 ? 0 : since;
}

// Is a reclaim for the class in flight (an idle worker of another class retired for it less than
// kReclaimPendingMs ago; a wall clock stepped back by more than a second ends it)?
inline bool reclaim_in_flight(const ClassSlot* slot, std::int64_t now_ms) {
  const std::int64_t at = slot ? slot->reclaim_ms.load(std::memory_order_acquire) : 0;
  if (!at) return false;
  const std::int64_t since = now_ms - at;
  return since >= -1000 && since < kReclaimPendingMs;
}
// Takes the class's one reclaim in flight (compare-and-swap): true when this request may retire
// a worker for it, false when another request's reclaim is in flight.
inline bool begin_reclaim(ClassSlot* slot, std::int64_t now_ms) {
  std::int64_t at = slot->reclaim_ms.load(std::memory_order_acquire);
  for (;;) {
    if (reclaim_in_flight(slot, now_ms)) return false;
    if (slot->reclaim_ms.compare_exchange_weak(at, now_ms == 0 ? 1 : now_ms,
                                               std::memory_order_acq_rel))
      return true;
  }
}
// Gives it back: nothing was retired after all, or the class got its worker.
inline void end_reclaim(ClassSlot* slot) {
  slot->reclaim_ms.store(0, std::memory_order_release);
}

// ---------------------------------------------------------------- promised room

inline bool promise_live(const PromiseRec& p, std::int64_t now_ms) {
  const std::int64_t since = now_ms - p.at_ms.load(std::memory_order_acquire);
  return since >= -1000 && since < kReclaimPendingMs;
}
// Reserves `bytes` of the room a worker retired for class `slot` leaves, for that class (one
// promise per class: a second replaces the first). No record free: nothing promised (the room
// goes to whoever asks first, as without a promise).
inline void promise_room(Segment* s, const ClassSlot* slot, std::uint64_t bytes,
                         std::int64_t now_ms) {
  const std::int32_t own = static_cast<std::int32_t>(slot_index(s, slot)) + 1;
  for (std::size_t i = 0; i < kPromises; ++i) {
    PromiseRec& p = s->promises[i];
    std::int32_t at = p.slot_plus1.load(std::memory_order_acquire);
    if (at < 0 || (at != 0 && at != own && promise_live(p, now_ms))) continue;
    if (!p.slot_plus1.compare_exchange_strong(at, -1, std::memory_order_acq_rel)) continue;
    p.bytes.store(bytes, std::memory_order_relaxed);
    p.at_ms.store(now_ms == 0 ? 1 : now_ms, std::memory_order_relaxed);
    p.slot_plus1.store(own, std::memory_order_release);
    s->promise_ms.store(now_ms, std::memory_order_release);
    return;
  }
}
// The room promised to classes other than `slot` (nullptr: to any class), not yet taken.
inline std::uint64_t promised_to_others(const Segment* s, const ClassSlot* slot,
                                        std::int64_t now_ms) {
  const std::int64_t last = s->promise_ms.load(std::memory_order_acquire);
  if (!last || now_ms - last >= kReclaimPendingMs || now_ms - last < -1000) return 0;
  const std::int32_t own = slot ? static_cast<std::int32_t>(slot_index(s, slot)) + 1 : 0;
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < kPromises; ++i) {
    const PromiseRec& p = s->promises[i];
    const std::int32_t at = p.slot_plus1.load(std::memory_order_acquire);
    if (at > 0 && at != own && promise_live(p, now_ms))
      sum += p.bytes.load(std::memory_order_relaxed);
  }
  return sum;
}
// The class starts its worker: its promise is taken.
inline void end_promise(Segment* s, const ClassSlot* slot) {
  const std::int32_t own = static_cast<std::int32_t>(slot_index(s, slot)) + 1;
  for (std::size_t i = 0; i < kPromises; ++i) {
    std::int32_t at = own;
    s->promises[i].slot_plus1.compare_exchange_strong(at, 0, std::memory_order_acq_rel);
  }
}

// The published sample's numbers a decision rests on: freshness, the headroom and what admitted
// spawns reserve of it. Read afresh for every decision (a request that waited must not decide on
// the headroom it saw when it began to wait: the samples since have counted the workers started
// meanwhile and given their reservations back), and in this order: `reserved` first, then the
// headroom. The sampler publishes a headroom before it drains the reservations that headroom now
// counts (a release of `reserved`), so a reader that sees a reservation gone also sees the
// headroom that includes its worker: "headroom - reserved" never counts a worker's room twice.
// Returns `reserved` as read (what a reservation's compare-and-swap expects).
inline std::int64_t read_room(const Segment* s, GuardInput& in, std::int64_t now_ms) {
  std::int64_t reserved = s->reserved.load(std::memory_order_acquire);
  std::int64_t headroom = s->headroom.load(std::memory_order_acquire);
  in.fresh = sample_fresh(s, now_ms);
  in.bounded = headroom >= 0;
  in.headroom = in.bounded ? static_cast<std::uint64_t>(headroom) : 0;
  in.reserved = reserved > 0 ? static_cast<std::uint64_t>(reserved) : 0;
  return reserved;
}

// What the glue reads before asking: the class's workers in mod_fcgid's table and the request's
// settings. try_admit() fills in the sample's numbers (read_room) and the segment's counts and
// decides; a decision that claims is recorded atomically (retried when another child or the
// sampler changed the counts meanwhile).
struct Admission {
  Decision decision;
  int claim = -1;          // record index, -1: none
  std::uint64_t word = 0;  // the record's word (to give it back)
};

// `count_workers(in)` answers the class's live workers in mod_fcgid's table for the sample just
// read into `in` (the glue reads the table only when that sample is fresh and not ample), so the
// decision's workers and room come from one read. `in` is left holding the numbers the decision
// was taken on (for the logs).
template <class CountWorkers>
Admission try_admit(Segment* s, ClassSlot* slot, GuardInput& in, std::int64_t now_ms,
                    CountWorkers&& count_workers, int pid, std::size_t hint, bool is_waiter) {
  Admission a;
  for (int attempt = 0; attempt < 1024; ++attempt) {
    std::int32_t inflight = slot ? slot->inflight.load(std::memory_order_acquire) : 0;
    std::int64_t reserved = read_room(s, in, now_ms);
    // Room promised to another class (a worker retired for it) is not this request's.
    in.reserved += promised_to_others(s, slot, now_ms);
    in.workers = count_workers(static_cast<const GuardInput&>(in));
    in.inflight = inflight;
    in.class_waiting = slot ? slot->waiting.load(std::memory_order_acquire) : 0;
    in.queued = is_waiter ? 0 : in.class_waiting;
    in.since_unmeasured_spawn_ms = since_unmeasured_spawn(slot, now_ms);
    in.measure_wait_ms = measure_wait_ms(s->interval_ms.load(std::memory_order_relaxed));
    in.reclaim_pending = reclaim_in_flight(slot, now_ms);
    a.decision = decide(in);
    if (a.decision.claim == Claim::None || !slot) return a;
    // The count first (a concurrent decision then sees this claim: "one spawn of the class at a
    // time" holds), then the reservation; either changed meanwhile: undo and decide again.
    if (!slot->inflight.compare_exchange_weak(inflight, inflight + 1, std::memory_order_acq_rel))
      continue;
    if (a.decision.reserve_bytes) {
      std::int64_t want = reserved + static_cast<std::int64_t>(a.decision.reserve_bytes);
      if (!s->reserved.compare_exchange_strong(reserved, want, std::memory_order_acq_rel)) {
        slot->inflight.fetch_sub(1, std::memory_order_acq_rel);
        continue;
      }
    }
    a.claim = record_claim(s, pid, slot, a.decision.claim, a.decision.reserve_bytes, hint);
    if (a.claim >= 0) {
      a.word = s->claims[a.claim].word.load(std::memory_order_relaxed);
      if (a.decision.claim == Claim::Spawn && a.decision.reserve_bytes && !in.need_known)
        slot->unmeasured_spawn_ms.store(now_ms);
      // The class starts its worker: a reclaim for it has done its work (the next request that
      // finds nothing again may retire another).
      if ((a.decision.claim == Claim::Spawn || a.decision.claim == Claim::Lean) &&
          a.decision.verdict != Verdict::WouldRefuse && in.reclaim_pending) {
        end_reclaim(slot);
        end_promise(s, slot);
      }
    } else {  // no record left: undo the count (the request is served uncounted, fails open)
      slot->inflight.fetch_sub(1, std::memory_order_acq_rel);
      if (a.decision.reserve_bytes)
        s->reserved.fetch_sub(static_cast<std::int64_t>(a.decision.reserve_bytes));
    }
    return a;
  }
  a.decision = {Verdict::FailOpen, Claim::None, 0};  // counts kept changing: serve
  return a;
}

// A waiting place for a request of class `slot`; -1 when ShmGuardMaxWaiting are waiting, or
// this class has max_waiting_per_class() of them.
inline int enter_wait(Segment* s, ClassSlot* slot, int pid, std::size_t hint) {
  const std::int32_t max = s->max_waiting.load(std::memory_order_relaxed);
  std::int32_t c = slot->waiting.load(std::memory_order_acquire);
  for (;;) {  // the class's place first, then the server's
    if (c >= max_waiting_per_class(max)) return -1;
    if (slot->waiting.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel)) break;
  }
  std::int32_t n = s->waiting.load(std::memory_order_acquire);
  for (;;) {
    if (n >= max) {
      slot->waiting.fetch_sub(1, std::memory_order_acq_rel);
      return -1;
    }
    if (s->waiting.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel)) break;
  }
  for (std::size_t i = 0; i < kWaiters; ++i) {
    WaiterRec& w = s->waiters[(hint + i) % kWaiters];
    std::uint32_t free_state = 0;
    if (w.state.load(std::memory_order_relaxed) != 0) continue;
    // Reserve the record (state 3 = being set up) before filling it in.
    if (!w.state.compare_exchange_strong(free_state, 3, std::memory_order_acq_rel)) continue;
    w.pid.store(pid);
    w.key.store(slot->key.load());
    w.ticket.store(s->wait_tickets.fetch_add(1, std::memory_order_acq_rel));
    w.state.store(1, std::memory_order_release);
    return static_cast<int>((hint + i) % kWaiters);
  }
  s->waiting.fetch_sub(1, std::memory_order_acq_rel);
  slot->waiting.fetch_sub(1, std::memory_order_acq_rel);
  return -1;
}

// Sleeps until woken (a worker of the class was given back, or a new sample) or `wait_ns` passed.
inline void wait_turn(Segment* s, int w, long wait_ns) {
  futex_wait(&s->waiters[w].state, 1, wait_ns);
  std::uint32_t two = 2;
  s->waiters[w].state.compare_exchange_strong(two, 1, std::memory_order_acq_rel);
}

inline void leave_wait(Segment* s, ClassSlot* slot, int w) {
  std::uint32_t st = s->waiters[w].state.load(std::memory_order_acquire);
  while (st != 0) {
    if (s->waiters[w].state.compare_exchange_weak(st, 0, std::memory_order_acq_rel)) {
      s->waiting.fetch_sub(1, std::memory_order_acq_rel);
      slot->waiting.fetch_sub(1, std::memory_order_acq_rel);
      return;
    }
  }
}

}  // namespace shmguard::shm
