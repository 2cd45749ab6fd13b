// The guard's rules (core decide(), freshness, evidence) and their atomic form on the shared
// segment (shm/claims.hpp): claims, reservations, the wait queue, crashed children.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "shm/claims.hpp"
#include "shmguard/fcgid.hpp"
#include "shmguard/rules.hpp"

using namespace shmguard;

namespace {
constexpr std::uint64_t MiB = 1ULL << 20;

GuardInput low() {  // 10 MiB headroom, a worker needs 64 MiB, one worker busy
  GuardInput in;
  in.fresh = true;
  in.bounded = true;
  in.headroom = 10 * MiB;
  in.need = 64 * MiB;
  in.workers = 1;
  in.inflight = 1;
  return in;
}
GuardInput unmeasured() {  // no worker yet, the default need (128 MiB), room for seven of it
  GuardInput in = low();
  in.headroom = 900 * MiB;
  in.need = 128 * MiB;
  in.need_known = false;
  in.workers = 0;
  in.inflight = 0;
  return in;
}
}  // namespace

TEST(Decide, NoFreeWorkerNoRoomNoWaitRefuses) {
  EXPECT_EQ(decide(low()).verdict, Verdict::Refuse);
  EXPECT_EQ(decide(low()).claim, Claim::None);
}

TEST(Decide, FreeWorkerPassesAndClaimsIt) {
  GuardInput in = low();
  in.workers = 2;
  Decision d = decide(in);
  EXPECT_EQ(d.verdict, Verdict::Pass);
  EXPECT_EQ(d.claim, Claim::Worker);
  EXPECT_EQ(d.reserve_bytes, 0u);
}

TEST(Decide, QueuedWaitersGoFirst) {
  GuardInput in = low();
  in.workers = 2;  // one free worker
  in.queued = 1;   // but one request of the class waits for it already
  in.may_wait = true;
  EXPECT_EQ(decide(in).verdict, Verdict::Wait);
  in.queued = 0;
  EXPECT_EQ(decide(in).verdict, Verdict::Pass);
}

TEST(Decide, BusyWorkerMeansWaitWhenAllowed) {
  GuardInput in = low();
  in.may_wait = true;
  EXPECT_EQ(decide(in).verdict, Verdict::Wait);
}

TEST(Decide, NothingToWaitForRefusesAtOnce) {
  GuardInput in = low();
  in.workers = 0;
  in.inflight = 0;
  in.may_wait = true;
  EXPECT_EQ(decide(in).verdict, Verdict::Refuse);
  in.inflight = 1;  // a spawn of the class is in flight: worth waiting for
  EXPECT_EQ(decide(in).verdict, Verdict::Wait);
}

TEST(Decide, SpawnWithinRoomReservesNeed) {
  GuardInput in = low();
  in.headroom = 200 * MiB;
  Decision d = decide(in);
  EXPECT_EQ(d.verdict, Verdict::Pass);
  EXPECT_EQ(d.claim, Claim::Spawn);
  EXPECT_EQ(d.reserve_bytes, 64 * MiB);
  in.reserved = 150 * MiB;  // two spawns already admitted: 50 MiB left, not enough
  EXPECT_EQ(decide(in).verdict, Verdict::Refuse);
}

TEST(Decide, UnboundedAlwaysPasses) {
  GuardInput in = low();
  in.bounded = false;
  in.headroom = 0;
  EXPECT_EQ(decide(in).verdict, Verdict::Pass);
  EXPECT_EQ(decide(in).reserve_bytes, 0u);
}

TEST(Decide, StaleOrUnknownFailsOpen) {
  GuardInput in = low();
  in.fresh = false;
  EXPECT_EQ(decide(in).verdict, Verdict::FailOpen);
  in = low();
  in.workers = -1;
  EXPECT_EQ(decide(in).verdict, Verdict::FailOpen);
}

TEST(Decide, DegradeStartsLeanWhenOnlyALeanWorkerFits) {
  GuardInput in = low();
  in.headroom = 40 * MiB;
  in.lean_need = 32 * MiB;
  in.action = Action::Degrade;
  Decision d = decide(in);
  EXPECT_EQ(d.verdict, Verdict::Lean);
  EXPECT_EQ(d.claim, Claim::Lean);
  EXPECT_EQ(d.reserve_bytes, 32 * MiB);
  in.headroom = 20 * MiB;  // not even a lean one: wait, then refuse
  in.may_wait = true;
  EXPECT_EQ(decide(in).verdict, Verdict::Wait);
  in.may_wait = false;
  EXPECT_EQ(decide(in).verdict, Verdict::Refuse);
  in.action = Action::Refuse;  // lean only under degrade
  in.headroom = 40 * MiB;
  EXPECT_EQ(decide(in).verdict, Verdict::Refuse);
}

TEST(Decide, DryRunNeverWaitsNorRefuses) {
  GuardInput in = low();
  in.action = Action::Log;
  in.may_wait = true;
  EXPECT_EQ(decide(in).verdict, Verdict::WouldRefuse);
}

GuardInput fpm_low() {  // issue 21: PHP-FPM, shmpages at 1019.5 of 1 GiB, the default reserve
  GuardInput in;
  in.fresh = true;
  in.bounded = true;
  in.headroom = 4 * MiB + MiB / 2;
  in.need = 128 * MiB;  // what the glue's default reserve would be
  in.need_known = false;
  in.spawns_workers = false;
  in.fpm = true;
  in.workers = -1;
  return in;
}

TEST(Decide, PhpFpmNeverRefusedForSharedMemory) {
  GuardInput in = fpm_low();
  Decision d = decide(in);
  EXPECT_EQ(d.verdict, Verdict::Pass);
  EXPECT_EQ(d.claim, Claim::None);
  EXPECT_EQ(d.reserve_bytes, 0u);
  in.headroom = 0;  // nothing left at all: an FPM request still maps no new shared memory
  EXPECT_EQ(decide(in).verdict, Verdict::Pass);
  in.may_wait = true;  // nothing to wait for either
  EXPECT_EQ(decide(in).verdict, Verdict::Pass);
  in.action = Action::Log;  // not even a dry-run refusal
  EXPECT_EQ(decide(in).verdict, Verdict::Pass);
  in.action = Action::Degrade;  // no lean worker: Apache starts nothing for FPM
  in.lean_need = 0;
  EXPECT_EQ(decide(in).verdict, Verdict::Pass);
  EXPECT_EQ(decide(in).claim, Claim::None);
}

TEST(Decide, PhpFpmLowHeadroomIsAWarningNotARefusal) {
  GuardInput in = fpm_low();
  EXPECT_FALSE(decide(in).warn);  // below the default reserve, but not below ShmGuardWarnBelow
  in.low = true;
  Decision d = decide(in);
  EXPECT_EQ(d.verdict, Verdict::Pass);
  EXPECT_TRUE(d.warn);
  in.bounded = false;  // no finite limit: nothing to warn about
  EXPECT_FALSE(decide(in).warn);
  in = fpm_low();
  in.low = true;
  in.fresh = false;  // stale: fail open as for every request, uncounted
  EXPECT_EQ(decide(in).verdict, Verdict::FailOpen);
  EXPECT_EQ(decide(in).claim, Claim::None);
}

// Rule 2.1/2.2 (issue 21 item 1): the pool's own status decides whether FPM would fork.
TEST(Decide, PhpFpmIdleChildServesWithoutAnyCheck) {
  GuardInput in = fpm_low();
  in.low = true;  // even below ShmGuardWarnBelow
  in.fpm_pool = true;
  in.fpm_idle = 1;
  in.fpm_forks = true;
  in.fpm_child_need = 20 * MiB;
  in.private_bounded = true;
  in.private_headroom = 0;  // no room for a child, but none is needed
  Decision d = decide(in);
  EXPECT_EQ(d.verdict, Verdict::Pass);
  EXPECT_FALSE(d.warn);
  EXPECT_FALSE(d.fork_short);
}

TEST(Decide, PhpFpmForkThatDoesNotFitIsAWarning) {
  GuardInput in = fpm_low();
  in.fpm_pool = true;
  in.fpm_idle = 0;
  in.fpm_forks = true;  // dynamic/ondemand, below pm.max_children: FPM forks for it
  in.fpm_child_need = 20 * MiB;
  in.private_bounded = true;
  in.private_headroom = 19 * MiB;
  Decision d = decide(in);
  EXPECT_EQ(d.verdict, Verdict::Pass);  // FPM queues it: never refused here
  EXPECT_TRUE(d.warn);
  EXPECT_TRUE(d.fork_short);
  in.action = Action::Log;
  EXPECT_EQ(decide(in).verdict, Verdict::Pass);
  in.action = Action::Refuse;
  in.private_headroom = 20 * MiB;  // fits
  d = decide(in);
  EXPECT_FALSE(d.fork_short);
  EXPECT_FALSE(d.warn);  // and the shm headroom is not below ShmGuardWarnBelow
  in.private_headroom = 0;
  in.fpm_forks = false;  // static, or at pm.max_children: no fork, nothing allocated
  EXPECT_FALSE(decide(in).fork_short);
  in.fpm_forks = true;
  in.fpm_child_need = 0;  // no child measured: nothing to judge
  EXPECT_FALSE(decide(in).fork_short);
  in.fpm_child_need = 20 * MiB;
  in.private_bounded = false;  // no limit on private memory
  EXPECT_FALSE(decide(in).fork_short);
  in.private_bounded = true;
  in.fpm_pool = false;  // the pool's status not known (stale, unread): rule 2 as before
  EXPECT_FALSE(decide(in).fork_short);
  in.low = true;
  EXPECT_TRUE(decide(in).warn);
}

TEST(Decide, FcgidClassBesideFpmKeepsItsOwnRule) {
  // The same numbers for a mod_fcgid class: no worker, no room for one: refused (or waits).
  GuardInput in = fpm_low();
  in.fpm = false;
  in.spawns_workers = true;
  in.workers = 1;
  in.inflight = 1;
  in.need_known = true;
  EXPECT_EQ(decide(in).verdict, Verdict::Refuse);
  in.may_wait = true;
  EXPECT_EQ(decide(in).verdict, Verdict::Wait);
}

TEST(Decide, OtherHandlersByReserveAlone) {
  // A ShmGuardHandlers name that is neither mod_fcgid nor mod_proxy_fcgi: the reserve decides.
  GuardInput in = low();
  in.spawns_workers = false;
  in.workers = -1;
  EXPECT_EQ(decide(in).verdict, Verdict::Refuse);
  in.headroom = 64 * MiB;
  EXPECT_EQ(decide(in).verdict, Verdict::Pass);
  EXPECT_EQ(decide(in).claim, Claim::None);
  EXPECT_FALSE(decide(in).warn);
}

TEST(Freshness, OneRuleForClockJumps) {
  EXPECT_FALSE(freshness(0, 1000, 1500));       // no sample yet
  EXPECT_TRUE(freshness(10000, 11000, 1500));   // 1 s old
  EXPECT_FALSE(freshness(10000, 12000, 1500));  // 2 s old
  EXPECT_TRUE(freshness(10000, 9500, 1500));    // from the future by 0.5 s: clocks differ a little
  EXPECT_FALSE(freshness(10000, 8000, 1500));   // by 2 s: the clock jumped
  EXPECT_EQ(staleness_bound_ms(100), 1500);
  EXPECT_EQ(staleness_bound_ms(1000), 3000);
}

TEST(Evidence, NeedsSomethingNewerThanTheRequest) {
  EvidenceCounters start, now;
  EvidenceDetail d;
  EXPECT_EQ(evidence_text(start, now, d, 1000), "");
  now.php_errors = 1;
  d.php_bytes = 64 * MiB;
  d.php_pid = 42;
  d.php_wall_ms = 900;  // before the request started: not this request's
  EXPECT_EQ(evidence_text(start, now, d, 1000), "");
  d.php_wall_ms = 1200;
  EXPECT_NE(evidence_text(start, now, d, 1000).find("pid 42"), std::string::npos);
}

TEST(Evidence, ApcuLineCountsOnlyWithACounterThatRose) {
  EvidenceCounters start, now;
  EvidenceDetail d;
  now.apcu_errors = 1;
  d.apcu_bytes = 32 * MiB;
  d.apcu_wall_ms = 2000;
  EXPECT_EQ(evidence_text(start, now, d, 1000), "");
  now.failcnt_sum = 3;
  start.failcnt_sum = 2;
  std::string e = evidence_text(start, now, d, 1000);
  EXPECT_NE(e.find("APCu"), std::string::npos) << e;
  EXPECT_NE(e.find("failcnt +1"), std::string::npos) << e;
}

TEST(Evidence, CgroupEvidenceIsAnOomKill) {
  EvidenceCounters start, now;
  EvidenceDetail d;
  start.oom_kills = 1;
  now.oom_kills = 2;
  EXPECT_EQ(evidence_text(start, now, d, 1000), "cgroup oom_kill +1");
}

// A 500 with ample headroom and no counter moved skips the sampler's look, except where OOM kills
// are counted: a kill frees its victim's memory (ample again) and only a sample reads it.
TEST(Evidence, OomKillsCountedAlwaysWaitForTheSample) {
  EXPECT_FALSE(must_wait_for_evidence(true, false, false));
  EXPECT_TRUE(must_wait_for_evidence(true, false, true));
  EXPECT_TRUE(must_wait_for_evidence(false, false, false));
  EXPECT_TRUE(must_wait_for_evidence(true, true, false));
}

// ---------------------------------------------------------------- on the shared segment

namespace {
struct SegmentDeleter {
  void operator()(shm::Segment* s) const { munmap(s, sizeof(shm::Segment)); }
};
using SegmentPtr = std::unique_ptr<shm::Segment, SegmentDeleter>;
SegmentPtr new_segment() {
  void* p = mmap(nullptr, sizeof(shm::Segment), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                 -1, 0);
  auto* s = static_cast<shm::Segment*>(p);
  shm::init(s, 1, 500);
  s->max_waiting.store(8);
  return SegmentPtr(s);
}

constexpr std::int64_t kNow = 1'700'000'000'000;
// try_admit() decides on the sample in the segment (as the glue's requests do): publish `in`'s
// headroom the way the sampler does (a fresh sample, or none when !in.fresh), then ask.
// The class's workers, as the glue's table read would answer for any sample: in.workers.
auto workers_of(const GuardInput& in) {
  return [n = in.workers](const GuardInput&) { return n; };
}
void publish(shm::Segment* s, const GuardInput& in) {
  s->headroom.store(in.bounded ? static_cast<std::int64_t>(in.headroom) : -1);
  s->sample_wall_ms.store(in.fresh ? kNow - 10 : 0);
}
shm::Admission admit(shm::Segment* s, shm::ClassSlot* slot, const GuardInput& in, int pid,
                     std::size_t hint, bool is_waiter) {
  publish(s, in);
  GuardInput mine = in;  // each request its own (try_admit leaves the numbers it decided on)
  return shm::try_admit(s, slot, mine, kNow, workers_of(in), pid, hint, is_waiter);
}
}  // namespace

TEST(Claims, TwoFreeWorkersAreTakenOnceEach) {
  auto seg = new_segment();
  shm::ClassSlot* slot = shm::class_slot(seg.get(), 77);
  GuardInput in = low();
  in.workers = 2;
  in.inflight = 0;
  auto a = admit(seg.get(), slot, in, 100, 0, false);
  auto b = admit(seg.get(), slot, in, 100, 1, false);
  auto c = admit(seg.get(), slot, in, 100, 2, false);
  EXPECT_EQ(a.decision.verdict, Verdict::Pass);
  EXPECT_EQ(b.decision.verdict, Verdict::Pass);
  EXPECT_EQ(c.decision.verdict, Verdict::Refuse);
  EXPECT_EQ(slot->inflight.load(), 2);
  EXPECT_TRUE(shm::release_claim(seg.get(), a.claim, a.word));
  EXPECT_FALSE(shm::release_claim(seg.get(), a.claim, a.word)) << "given back exactly once";
  EXPECT_EQ(slot->inflight.load(), 1);
  EXPECT_EQ(admit(seg.get(), slot, in, 100, 3, false).decision.verdict, Verdict::Pass);
}

TEST(Claims, ABurstWithRoomForTwoStartsTwo) {
  auto seg = new_segment();
  shm::ClassSlot* slot = shm::class_slot(seg.get(), 5);
  GuardInput in = low();
  in.workers = 0;
  in.headroom = 150 * MiB;  // room for two 64 MiB workers
  std::vector<std::thread> threads;
  std::atomic<int> spawns{0}, others{0};
  for (int t = 0; t < 20; ++t)
    threads.emplace_back([&, t] {
      auto a = admit(seg.get(), slot, in, 100 + t, static_cast<std::size_t>(t * 7), false);
      (a.decision.claim == Claim::Spawn ? spawns : others).fetch_add(1);
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(spawns.load(), 2);
  EXPECT_EQ(others.load(), 18);
  EXPECT_EQ(seg->reserved.load(), static_cast<std::int64_t>(128 * MiB));
}

TEST(Claims, ReservationRetiresTwoSamplesAfterRelease) {
  auto seg = new_segment();
  shm::ClassSlot* slot = shm::class_slot(seg.get(), 9);
  GuardInput in = low();
  in.workers = 0;
  in.headroom = 100 * MiB;
  auto a = admit(seg.get(), slot, in, 1, 0, false);
  ASSERT_EQ(a.decision.claim, Claim::Spawn);
  EXPECT_EQ(seg->reserved.load(), static_cast<std::int64_t>(64 * MiB));
  shm::release_claim(seg.get(), a.claim, a.word);
  EXPECT_EQ(seg->reserved.load(), static_cast<std::int64_t>(64 * MiB)) << "until a sample saw it";
  for (std::uint64_t n = 1; n <= 2; ++n) {
    seg->samples.store(n);
    shm::drain_retired(seg.get(), n);
  }
  EXPECT_EQ(seg->reserved.load(), 0);
}

// The third php-cgi for room of two (seen in test_burst_with_room_for_two_starts_at_most_two_
// workers): a request began to wait while the sample said "room for 2.5 workers"; the two spawns
// admitted meanwhile came up, the sampler counted them (headroom 32 MiB) and drained their
// reservations. Deciding on the headroom it began with (160 MiB) and nothing reserved, the
// waiter started a third worker. It must decide on the sample published now.
TEST(Claims, AWaiterDecidesOnTheSampleOfNowNotTheOneItBeganWith) {
  auto seg = new_segment();
  shm::ClassSlot* slot = shm::class_slot(seg.get(), 21);
  GuardInput in = low();
  in.headroom = 160 * MiB;  // room for 2.5 workers of 64 MiB
  in.workers = 0;
  in.inflight = 0;
  auto a = admit(seg.get(), slot, in, 1, 0, false);
  in.workers = 1;
  auto b = admit(seg.get(), slot, in, 2, 1, false);
  ASSERT_EQ(a.decision.claim, Claim::Spawn);
  ASSERT_EQ(b.decision.claim, Claim::Spawn);
  GuardInput waiter = in;  // what the waiter read when it began: 160 MiB
  waiter.workers = 2;
  waiter.may_wait = true;
  waiter.waited_ms = 2 * kSpawnAfterWaitMs;
  // Both workers up and serving; the sampler publishes their headroom and, two samples after
  // the spawns' requests ended, gives their reservations back.
  shm::release_claim(seg.get(), a.claim, a.word);
  shm::release_claim(seg.get(), b.claim, b.word);
  seg->headroom.store(static_cast<std::int64_t>(32 * MiB));
  for (std::uint64_t n = 1; n <= 2; ++n) {
    seg->samples.store(n);
    shm::drain_retired(seg.get(), n);
  }
  ASSERT_EQ(seg->reserved.load(), 0);
  GuardInput busy = in;
  busy.workers = 2;
  auto c = shm::try_admit(seg.get(), slot, busy, kNow, workers_of(busy), 3, 2, false);
  auto d = shm::try_admit(seg.get(), slot, busy, kNow, workers_of(busy), 4, 3, false);
  ASSERT_EQ(c.decision.claim, Claim::Worker);
  ASSERT_EQ(d.decision.claim, Claim::Worker);
  auto w = shm::try_admit(seg.get(), slot, waiter, kNow, workers_of(waiter), 5, 4, true);
  EXPECT_EQ(w.decision.verdict, Verdict::Wait) << to_string(w.decision.claim);
  EXPECT_EQ(seg->reserved.load(), 0);
}

// The class's workers are counted for the sample the decision is taken on: the glue's count of
// "0, not read: ample" must not meet a sample that is no longer ample (it admitted a spawn, and
// with the early spawn started a php-cgi, while idle workers waited).
TEST(Claims, WorkersAreCountedForTheSampleDecidedOn) {
  auto seg = new_segment();
  shm::ClassSlot* slot = shm::class_slot(seg.get(), 41);
  GuardInput in = low();
  in.headroom = 64 * 64 * MiB;  // what the caller saw: ample
  publish(seg.get(), in);
  seg->headroom.store(static_cast<std::int64_t>(100 * MiB));  // a sample meanwhile: room for one
  std::uint64_t counted_on = 0;
  auto count = [&](const GuardInput& g) {
    counted_on = g.headroom;
    return ample(g) ? 0 : 2;  // the glue's rule: the table is read only when not ample
  };
  in.inflight = 0;
  auto a = shm::try_admit(seg.get(), slot, in, kNow, count, 1, 0, false);
  EXPECT_EQ(counted_on, 100 * MiB);
  EXPECT_EQ(in.headroom, 100 * MiB) << "the caller's numbers are the decision's";
  EXPECT_EQ(a.decision.claim, Claim::Worker) << "two idle workers: take one, start none";
  EXPECT_EQ(seg->reserved.load(), 0);
}

TEST(Claims, DeadChildsClaimsAndWaitsAreReaped) {
  auto seg = new_segment();
  shm::ClassSlot* slot = shm::class_slot(seg.get(), 3);
  GuardInput in = low();
  in.workers = 3;
  in.inflight = 0;
  auto a = admit(seg.get(), slot, in, 4242, 0, false);
  auto b = admit(seg.get(), slot, in, 5555, 1, false);
  int w = shm::enter_wait(seg.get(), slot, 4242, 0);
  ASSERT_GE(w, 0);
  EXPECT_EQ(slot->inflight.load(), 2);
  EXPECT_EQ(slot->waiting.load(), 1);
  auto reaped = shm::reap_dead(seg.get(), [](int pid) { return pid != 4242; });
  EXPECT_EQ(reaped, 2u);
  EXPECT_EQ(slot->inflight.load(), 1);
  EXPECT_EQ(slot->waiting.load(), 0);
  EXPECT_EQ(seg->waiting.load(), 0);
  EXPECT_FALSE(shm::release_claim(seg.get(), a.claim, a.word));
  EXPECT_TRUE(shm::release_claim(seg.get(), b.claim, b.word));
}

TEST(Claims, WaitQueueIsBounded) {
  auto seg = new_segment();
  seg->max_waiting.store(2);
  shm::ClassSlot* slot = shm::class_slot(seg.get(), 3);
  shm::ClassSlot* other = shm::class_slot(seg.get(), 4);
  EXPECT_GE(shm::enter_wait(seg.get(), slot, 1, 0), 0);
  EXPECT_EQ(shm::enter_wait(seg.get(), slot, 1, 0), -1);  // a class gets all but a quarter
  EXPECT_GE(shm::enter_wait(seg.get(), other, 1, 0), 0);
  EXPECT_EQ(shm::enter_wait(seg.get(), other, 1, 0), -1);
  EXPECT_EQ(seg->waiting.load(), 2);
  EXPECT_EQ(slot->waiting.load(), 1);
  EXPECT_EQ(other->waiting.load(), 1);
}

TEST(Claims, OneClassCannotTakeEveryWaitingPlace) {
  // issue 20 (low): one client's slow requests to one class took every place (ShmGuardMaxWaiting
  // was global only); the other classes then got 503 at once.
  EXPECT_EQ(max_waiting_per_class(0), 0);
  EXPECT_EQ(max_waiting_per_class(1), 1);
  EXPECT_EQ(max_waiting_per_class(4), 3);
  EXPECT_EQ(max_waiting_per_class(50), 38);
  auto seg = new_segment();
  seg->max_waiting.store(8);
  shm::ClassSlot* hog = shm::class_slot(seg.get(), 5);
  shm::ClassSlot* other = shm::class_slot(seg.get(), 6);
  int taken = 0;
  for (int i = 0; i < 8; ++i) taken += shm::enter_wait(seg.get(), hog, 1, i) >= 0;
  EXPECT_EQ(taken, 6);
  EXPECT_EQ(hog->waiting.load(), 6);
  EXPECT_GE(shm::enter_wait(seg.get(), other, 2, 0), 0);
  EXPECT_GE(shm::enter_wait(seg.get(), other, 2, 1), 0);
  EXPECT_EQ(shm::enter_wait(seg.get(), other, 2, 2), -1);  // the server's 8 are all taken
  EXPECT_EQ(seg->waiting.load(), 8);
  EXPECT_EQ(other->waiting.load(), 2);
}

TEST(Claims, AWaiterRecordBeingSetUpIsNotReaped) {
  // issue 20 (low): the reaper cleared a record in its set-up state (3) because the pid in it was
  // its previous, dead owner's; the new owner then waited on a record the counts no longer had.
  auto seg = new_segment();
  seg->max_waiting.store(4);
  shm::ClassSlot* slot = shm::class_slot(seg.get(), 3);
  int w = shm::enter_wait(seg.get(), slot, 4242, 0);
  ASSERT_GE(w, 0);
  shm::leave_wait(seg.get(), slot, w);  // free again, pid 4242 left in it
  seg->waiters[w].state.store(3);       // a new owner took it and is filling it in
  seg->waiting.fetch_add(1);
  slot->waiting.fetch_add(1);
  EXPECT_EQ(shm::reap_dead(seg.get(), [](int pid) { return pid != 4242; }), 0u);
  EXPECT_EQ(seg->waiters[w].state.load(), 3u);
  EXPECT_EQ(seg->waiting.load(), 1);
  EXPECT_EQ(slot->waiting.load(), 1);
}

TEST(Claims, AReleaseWakesTheOldestWaiterWithinAMillisecond) {
  auto seg = new_segment();
  shm::ClassSlot* slot = shm::class_slot(seg.get(), 11);
  GuardInput in = low();
  in.workers = 1;
  in.inflight = 0;
  auto holder = admit(seg.get(), slot, in, 1, 0, false);
  ASSERT_EQ(holder.decision.verdict, Verdict::Pass);
  in.may_wait = true;
  int first = shm::enter_wait(seg.get(), slot, 2, 10);
  int second = shm::enter_wait(seg.get(), slot, 3, 20);
  ASSERT_GE(first, 0);
  ASSERT_GE(second, 0);
  std::atomic<long> woke_after_us{-1};
  std::thread waiter([&] {
    auto t0 = std::chrono::steady_clock::now();
    shm::wait_turn(seg.get(), first, 2000L * 1000 * 1000);  // 2 s at most
    woke_after_us =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
            .count();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto t_release = std::chrono::steady_clock::now();
  shm::release_claim(seg.get(), holder.claim, holder.word);
  waiter.join();
  long since_release = std::chrono::duration_cast<std::chrono::microseconds>(
                           std::chrono::steady_clock::now() - t_release)
                           .count();
  EXPECT_GE(woke_after_us.load(), 40000) << "slept until the release";
  EXPECT_LT(since_release, 1000000) << "woken by the release, not the 2 s timeout";
  EXPECT_EQ(seg->waiters[second].state.load(), 1u) << "only the oldest waiter is woken";
  // The woken waiter, deciding as a waiter, now takes the worker.
  auto got = admit(seg.get(), slot, in, 2, 30, true);
  EXPECT_EQ(got.decision.verdict, Verdict::Pass);
}

TEST(Decide, AmpleRoomPassesWithoutReservingOrReadingWorkers) {
  GuardInput in = low();
  in.headroom = 16 * 64 * MiB;  // room for kAmpleWorkers workers
  in.workers = -1;              // not read
  Decision d = decide(in);
  EXPECT_EQ(d.verdict, Verdict::Pass);
  EXPECT_EQ(d.reserve_bytes, 0u);
  in.reserved = 64 * MiB;  // one spawn reserved: no longer ample, and the table is needed
  EXPECT_EQ(decide(in).verdict, Verdict::FailOpen);
}

TEST(Decide, UnmeasuredNeedAllowsOneSpawnOfTheClassAtATime) {
  GuardInput in = low();
  in.workers = 0;
  in.inflight = 0;
  in.headroom = 600 * MiB;
  in.need = 128 * MiB;  // the default: no worker measured yet
  in.need_known = false;
  in.may_wait = true;
  EXPECT_EQ(decide(in).verdict, Verdict::Pass);
  in.inflight = 1;  // that spawn is in flight: the next waits for it (and for the measured need)
  EXPECT_EQ(decide(in).verdict, Verdict::Wait);
  in.need_known = true;
  EXPECT_EQ(decide(in).verdict, Verdict::Pass);
}

// The default need (128M) may be far below a worker's real one (DokuWiki's OPcache 256M + APCu
// 32M): in the soak, six php-cgi started in 260 ms for room of three, each admitted once the one
// before it was on mod_fcgid's table, none measured yet.
TEST(Decide, UnmeasuredNeedWaitsForTheLastWorkerToBeMeasured) {
  GuardInput in = unmeasured();
  in.may_wait = true;
  in.class_waiting = 5;
  in.workers = 1;  // the first spawn's worker is up and busy, not measured yet
  in.inflight = 1;
  in.since_unmeasured_spawn_ms = 100;
  EXPECT_EQ(decide(in).verdict, Verdict::Wait);
  in.since_unmeasured_spawn_ms = kMeasureWaitMs;  // never measured (its maps unreadable): grow
  EXPECT_EQ(decide(in).claim, Claim::Spawn);
  in.since_unmeasured_spawn_ms = 100;
  in.need_known = true;  // measured
  EXPECT_EQ(decide(in).claim, Claim::Spawn);
}

TEST(Decide, ALeanWorkerOnlyWhereNoFullOneFits) {
  GuardInput in = low();
  in.action = Action::Degrade;
  in.lean_need = 0;
  in.headroom = 900 * MiB;  // a full worker fits
  in.may_wait = true;
  // Busy workers, 0 ms waited: a full spawn is due in 200 ms; a lean one now would skip that.
  EXPECT_EQ(decide(in).verdict, Verdict::Wait);
  // The default need, the last spawn's worker not measured yet: not a lean worker instead (the
  // wrapper would see room for a full one and start that, on a lean reservation).
  in.need_known = false;
  in.since_unmeasured_spawn_ms = 100;
  in.waited_ms = kSpawnAfterWaitMs;
  EXPECT_EQ(decide(in).verdict, Verdict::Wait);
  in.headroom = 10 * MiB;  // no full worker fits: lean
  EXPECT_EQ(decide(in).verdict, Verdict::Lean);
}

TEST(Decide, AClassWhoseWorkerIsBeingMeasuredWaitsRatherThanRefuses) {
  GuardInput in = unmeasured();  // the first php-cgi died at start (or mod_fcgid refused it)
  in.since_unmeasured_spawn_ms = 100;
  in.may_wait = true;
  EXPECT_EQ(decide(in).verdict, Verdict::Wait);
  in.may_wait = false;
  EXPECT_EQ(decide(in).verdict, Verdict::Refuse);
  in.since_unmeasured_spawn_ms = in.measure_wait_ms;
  EXPECT_EQ(decide(in).claim, Claim::Spawn);
}

TEST(Decide, LeanWorkersAreAddedOneAtATime) {
  GuardInput in = low();
  in.action = Action::Degrade;
  in.lean_need = 0;  // file cache only: no shared memory
  in.headroom = 0;
  in.workers = 2;
  in.inflight = 2;
  in.may_wait = true;
  EXPECT_EQ(decide(in).verdict, Verdict::Lean);
  in.inflight = 3;  // a lean spawn is in flight
  EXPECT_EQ(decide(in).verdict, Verdict::Wait);
}

TEST(Decide, TheModuleStartsALeanWorkerWhileTheClasssWorkersAreTaken) {
  // P6 degrade-1s: one full worker busy, room for lean ones only. mod_fcgid's handler would sleep
  // a second and take the full worker as it frees: the module asks for the lean spawn itself.
  GuardInput in = low();
  in.headroom = 40 * MiB;
  in.lean_need = 32 * MiB;
  in.action = Action::Degrade;
  Decision d = decide(in);
  ASSERT_EQ(d.verdict, Verdict::Lean);
  EXPECT_TRUE(module_starts_worker(in, d));
  in.workers = 0;  // no worker of the class: mod_fcgid spawns at once itself (not two)
  in.inflight = 0;
  d = decide(in);
  ASSERT_EQ(d.verdict, Verdict::Lean);
  EXPECT_FALSE(module_starts_worker(in, d));
}

TEST(Decide, TheModuleStartsAFullSpawnThatReservesItsNeedNotUnderLog) {
  GuardInput in = low();
  in.headroom = 300 * MiB;
  in.workers = 0;
  in.inflight = 0;
  Decision d = decide(in);
  ASSERT_EQ(d.claim, Claim::Spawn);
  EXPECT_TRUE(module_starts_worker(in, d));
  in.headroom = 64 * MiB * kAmpleWorkers;  // ample: counted, nothing reserved, mod_fcgid spawns
  d = decide(in);
  ASSERT_EQ(d.claim, Claim::Spawn);
  EXPECT_FALSE(module_starts_worker(in, d));
  in.headroom = 10 * MiB;
  in.action = Action::Log;
  d = decide(in);
  ASSERT_EQ(d.verdict, Verdict::WouldRefuse);
  EXPECT_FALSE(module_starts_worker(in, d));
  in = low();  // a free worker: nothing to start
  in.inflight = 0;
  d = decide(in);
  ASSERT_EQ(d.claim, Claim::Worker);
  EXPECT_FALSE(module_starts_worker(in, d));
}

TEST(Decide, BusyWorkersMeanWaitBeforeSpawning) {
  GuardInput in = low();
  in.headroom = 300 * MiB;  // room for a spawn
  in.may_wait = true;
  EXPECT_EQ(decide(in).verdict, Verdict::Wait) << "a busy worker usually frees within ms";
  in.waited_ms = kSpawnAfterWaitMs;
  EXPECT_EQ(decide(in).claim, Claim::Spawn);
  in.waited_ms = 0;
  in.may_wait = false;  // ShmGuardWait 0: spawn at once, as before waiting existed
  EXPECT_EQ(decide(in).claim, Claim::Spawn);
}

TEST(Decide, ALongQueueStartsAWorkerAtOnce) {
  GuardInput in = low();
  in.headroom = 300 * MiB;
  in.may_wait = true;
  in.class_waiting = 1;  // as many waiting as workers: wait for the busy one
  EXPECT_EQ(decide(in).verdict, Verdict::Wait);
  in.class_waiting = 2;  // more waiting than workers: start one (the room holds it)
  EXPECT_EQ(decide(in).claim, Claim::Spawn);
}

TEST(Claims, ConcurrentColdStartWithUnmeasuredNeedStartsOne) {
  auto seg = new_segment();
  shm::ClassSlot* slot = shm::class_slot(seg.get(), 31);
  GuardInput in = unmeasured();
  in.may_wait = true;
  std::vector<std::thread> threads;
  std::atomic<int> spawns{0};
  for (int t = 0; t < 32; ++t)
    threads.emplace_back([&, t] {
      auto a = admit(seg.get(), slot, in, 100 + t, static_cast<std::size_t>(t * 13), false);
      if (a.decision.claim == Claim::Spawn) spawns.fetch_add(1);
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(spawns.load(), 1);
}

TEST(Claims, TheNextUnmeasuredSpawnWaitsUntilTheFirstIsMeasured) {
  auto seg = new_segment();
  shm::ClassSlot* slot = shm::class_slot(seg.get(), 33);
  GuardInput in = unmeasured();
  auto first = admit(seg.get(), slot, in, 1, 0, false);
  ASSERT_EQ(first.decision.claim, Claim::Spawn);
  in.workers = 1;  // its worker is on mod_fcgid's table, serving the first request
  EXPECT_EQ(admit(seg.get(), slot, in, 2, 1, false).decision.verdict, Verdict::Refuse)
      << "a second spawn on the default need before the first worker is measured";
  slot->worker_need.store(288 * MiB);  // the sampler measured it
  in.need = 288 * MiB;
  in.need_known = true;
  EXPECT_EQ(admit(seg.get(), slot, in, 3, 2, false).decision.claim, Claim::Spawn);
}

TEST(Claims, TheMeasuringTimeSurvivesAClockStepAndRestartsWhenTheRequestEnds) {
  auto seg = new_segment();
  shm::ClassSlot* slot = shm::class_slot(seg.get(), 35);
  EXPECT_EQ(shm::since_unmeasured_spawn(slot, kNow), INT64_MAX);
  slot->unmeasured_spawn_ms.store(kNow);
  EXPECT_EQ(shm::since_unmeasured_spawn(slot, kNow + 300), 300);
  EXPECT_EQ(shm::since_unmeasured_spawn(slot, kNow - 500), 0);  // jitter
  EXPECT_EQ(shm::since_unmeasured_spawn(slot, kNow - 3600 * 1000), INT64_MAX)
      << "a clock stepped back an hour must not hold the class for that hour";
  EXPECT_EQ(measure_wait_ms(200), kMeasureWaitMs);
  EXPECT_EQ(measure_wait_ms(2000), 6000) << "three samples of a slow interval";
  // The spawn's request ends (its worker started, maybe slowly): the time starts again.
  GuardInput in = unmeasured();
  slot->unmeasured_spawn_ms.store(0);
  auto a = admit(seg.get(), slot, in, 1, 0, false);
  ASSERT_EQ(a.decision.claim, Claim::Spawn);
  slot->unmeasured_spawn_ms.store(1);  // admitted long ago
  shm::release_claim(seg.get(), a.claim, a.word);
  EXPECT_GT(slot->unmeasured_spawn_ms.load(), 1) << "restarted at the release";
}

TEST(Claims, RecordsTakenAtOnceKeepTheirOwnBytes) {
  auto seg = new_segment();
  shm::ClassSlot* slot = shm::class_slot(seg.get(), 51);
  std::vector<std::thread> threads;
  std::vector<int> idx(64, -1);
  for (int t = 0; t < 64; ++t)
    threads.emplace_back([&, t] {  // all start at the same record
      idx[t] = shm::record_claim(seg.get(), 1000 + t, slot, t % 2 ? Claim::Spawn : Claim::Worker,
                                 t % 2 ? 64 * MiB : 0, 0);
    });
  for (auto& t : threads) t.join();
  std::set<int> distinct(idx.begin(), idx.end());
  EXPECT_EQ(distinct.size(), 64u);
  for (int t = 0; t < 64; ++t) {
    ASSERT_GE(idx[t], 0);
    std::uint64_t w = seg->claims[idx[t]].word.load();
    EXPECT_EQ(shm::claim_pid(w), 1000 + t);
    EXPECT_EQ(seg->claims[idx[t]].bytes.load(), t % 2 ? 64 * MiB : 0u);
  }
}

// ---------------------------------------------------------------- the class key (issue 9 item 6)

namespace {
// Two suEXEC users whose vhosts share one FcgidWrapper: mod_fcgid keeps their workers apart
// (uid and gid are part of its class), so must the claim slots.
fcgid::ClassKey suexec_user(std::uint32_t uid) {
  fcgid::ClassKey k;
  k.inode = 1234567;
  k.deviceid = 65025;
  k.vhost_id = 1;
  k.uid = uid;
  k.gid = 1000;
  k.cmdline = "/usr/local/bin/php-wrapper";
  return k;
}
}  // namespace

TEST(ClassKey, ClassesDifferingOnlyByUidGetSeparateSlots) {
  auto seg = new_segment();
  const std::uint64_t a = fcgid::class_hash(suexec_user(1001));
  const std::uint64_t b = fcgid::class_hash(suexec_user(1002));
  ASSERT_NE(a, b);
  shm::ClassSlot* slot_a = shm::class_slot(seg.get(), a);
  shm::ClassSlot* slot_b = shm::class_slot(seg.get(), b);
  ASSERT_NE(slot_a, slot_b);
  // Each user has one idle worker of its own: both requests take one. One slot for both (the
  // key of vhost and inode only) counted user 1001's claim against user 1002's worker: refused.
  GuardInput in = low();
  in.workers = 1;
  in.inflight = 0;
  EXPECT_EQ(admit(seg.get(), slot_a, in, 100, 0, false).decision.verdict, Verdict::Pass);
  EXPECT_EQ(admit(seg.get(), slot_b, in, 100, 1, false).decision.verdict, Verdict::Pass);
  EXPECT_EQ(slot_a->inflight.load(), 1);
  EXPECT_EQ(slot_b->inflight.load(), 1);
}

TEST(ClassKey, EveryFieldOfModFcgidsClassCounts) {
  const fcgid::ClassKey base = suexec_user(1001);
  const std::uint64_t h = fcgid::class_hash(base);
  fcgid::ClassKey k = base;
  k.gid = 1001;
  EXPECT_NE(fcgid::class_hash(k), h) << "gid";
  k = base;
  k.cmdline = "/usr/local/bin/php-wrapper -c /etc/php/other.ini";
  EXPECT_NE(fcgid::class_hash(k), h) << "command line";
  k = base;
  k.vhost_id = 2;
  EXPECT_NE(fcgid::class_hash(k), h) << "vhost";
  k = base;
  k.inode = 7654321;
  EXPECT_NE(fcgid::class_hash(k), h) << "inode";
  k = base;
  k.deviceid = 65026;
  EXPECT_NE(fcgid::class_hash(k), h) << "device";
  k = base;
  std::string same(base.cmdline);  // equal text at another address: the same class
  k.cmdline = same.c_str();
  EXPECT_EQ(fcgid::class_hash(k), h);
}

TEST(ClassKey, NodeInTheTableHasTheRequestsKey) {
  // The sampler keys a worker by its node (class_hash_at); the request by its own fields
  // (class_hash): the same class must give the same slot, or the worker's measured need never
  // reaches the requests of its class.
  std::vector<unsigned char> table(fcgid::kSlots * fcgid::kNodeSize, 0);
  auto put_node = [&](int i, const fcgid::ClassKey& k, const char* cmd, std::size_t cmd_len) {
    unsigned char* n = table.data() + static_cast<std::size_t>(i) * fcgid::kNodeSize;
    std::memcpy(n + fcgid::off::inode, &k.inode, 8);
    std::memcpy(n + fcgid::off::deviceid, &k.deviceid, 8);
    std::memcpy(n + fcgid::off::vhost_id, &k.vhost_id, 4);
    std::memcpy(n + fcgid::off::uid, &k.uid, 4);
    std::memcpy(n + fcgid::off::gid, &k.gid, 4);
    std::memcpy(n + fcgid::off::cmdline, cmd, cmd_len);
    const int pid = 100 + i;
    const std::int64_t start = 1000 + i;
    std::memcpy(n + fcgid::off::pid, &pid, 4);
    std::memcpy(n + fcgid::off::start_time, &start, 8);
  };
  auto at = [&](int i) { return fcgid::class_hash_at(table.data(), i, 100 + i, 1000 + i); };
  const fcgid::ClassKey a = suexec_user(1001), b = suexec_user(1002);
  put_node(4, a, a.cmdline, std::strlen(a.cmdline) + 1);
  put_node(5, b, b.cmdline, std::strlen(b.cmdline) + 1);
  EXPECT_EQ(at(4), fcgid::class_hash(a));
  EXPECT_EQ(at(5), fcgid::class_hash(b));
  EXPECT_NE(at(4), at(5));
  // The node now holds another process (freed and reused since the table was read): no key.
  EXPECT_EQ(fcgid::class_hash_at(table.data(), 4, 999, 1004), 0u);
  EXPECT_EQ(fcgid::class_hash_at(table.data(), 4, 104, 7), 0u);
  // A command line that fills its field without a NUL (torn, or hostile) is read bounded.
  const std::string full(fcgid::off::cmdline_max, 'x');
  put_node(6, a, full.data(), full.size());
  fcgid::ClassKey prefix = a;
  const std::string kept(fcgid::off::cmdline_max - 1, 'x');
  prefix.cmdline = kept.c_str();
  EXPECT_EQ(at(6), fcgid::class_hash(prefix));
  EXPECT_EQ(fcgid::class_hash_at(table.data(), 2, 102, 1002), 0u) << "a list head is no worker";
  EXPECT_EQ(fcgid::class_hash_at(nullptr, 4, 104, 1004), 0u);
  // A request command line longer than the node's field: the class cannot be compared whole, so
  // its workers are unknown (-1: the guard fails open), never "none".
  const std::string longer(fcgid::off::cmdline_max + 10, 'x');
  fcgid::ClassKey too_long = a;
  too_long.cmdline = longer.c_str();
  EXPECT_EQ(fcgid::count_class_workers(table.data(), too_long, nullptr), -1);
}

// ---------------------------------------------------------------- rule 8b: reclaim

namespace {
GuardInput nothing_coming() {  // no worker of the class, none coming, no room; it may wait
  GuardInput in = low();
  in.workers = 0;
  in.inflight = 0;
  in.may_wait = true;
  return in;
}
}  // namespace

TEST(Decide, NothingComingWithReclaimOnWaitsAndAsksForAReclaim) {
  GuardInput in = nothing_coming();
  EXPECT_EQ(decide(in).verdict, Verdict::Refuse) << "reclaim off: as before";
  EXPECT_FALSE(decide(in).reclaim);
  in.reclaim = true;
  Decision d = decide(in);
  EXPECT_EQ(d.verdict, Verdict::Wait);
  EXPECT_TRUE(d.reclaim);
  EXPECT_EQ(d.claim, Claim::None) << "nothing is claimed before the reclaim";
  in.may_wait = false;  // ShmGuardWait 0 or expired: nothing to retire a worker for
  EXPECT_EQ(decide(in).verdict, Verdict::Refuse);
  EXPECT_FALSE(decide(in).reclaim);
}

TEST(Decide, AReclaimInFlightMeansWaitAndNoSecondReclaim) {
  GuardInput in = nothing_coming();
  in.reclaim = true;
  in.reclaim_pending = true;
  Decision d = decide(in);
  EXPECT_EQ(d.verdict, Verdict::Wait) << "the room is coming: wait, not refuse";
  EXPECT_FALSE(d.reclaim) << "at most one reclaim in flight per class";
  in.reclaim = false;  // also when this request may not start one (its attempt found none)
  EXPECT_EQ(decide(in).verdict, Verdict::Wait);
  in.may_wait = false;
  EXPECT_EQ(decide(in).verdict, Verdict::Refuse);
}

TEST(Decide, NoReclaimWhileSomethingOfTheClassIsComing) {
  GuardInput in = nothing_coming();
  in.reclaim = true;
  in.workers = 1;  // its own busy worker frees
  in.inflight = 1;
  EXPECT_EQ(decide(in).verdict, Verdict::Wait);
  EXPECT_FALSE(decide(in).reclaim);
  in.workers = 0;  // a spawn of the class in flight
  EXPECT_FALSE(decide(in).reclaim);
  in.inflight = 0;
  in.headroom = 100 * MiB;  // room: a spawn, no reclaim
  EXPECT_EQ(decide(in).verdict, Verdict::Pass);
  EXPECT_FALSE(decide(in).reclaim);
}

TEST(Decide, ALeanWorkerComesBeforeAReclaim) {
  GuardInput in = nothing_coming();
  in.reclaim = true;
  in.action = Action::Degrade;
  in.lean_need = 8 * MiB;  // fits the 10 MiB
  Decision d = decide(in);
  EXPECT_EQ(d.verdict, Verdict::Lean);
  EXPECT_FALSE(d.reclaim);
}

TEST(Decide, UnderLogAReclaimIsOnlyFlagged) {
  GuardInput in = nothing_coming();
  in.reclaim = true;
  in.action = Action::Log;
  Decision d = decide(in);
  EXPECT_EQ(d.verdict, Verdict::WouldRefuse) << "served anyway, as every dry-run refusal";
  EXPECT_TRUE(d.reclaim) << "the glue logs which worker it would retire";
}

TEST(Claims, AReclaimIsInFlightForItsClassUntilItsWorkerStarts) {
  auto seg = new_segment();
  shm::ClassSlot* slot = shm::class_slot(seg.get(), 41);
  EXPECT_FALSE(shm::reclaim_in_flight(slot, kNow));
  EXPECT_TRUE(shm::begin_reclaim(slot, kNow));
  EXPECT_FALSE(shm::begin_reclaim(slot, kNow + 5)) << "one reclaim in flight per class";
  EXPECT_TRUE(shm::reclaim_in_flight(slot, kNow + kReclaimPendingMs - 1));
  EXPECT_FALSE(shm::reclaim_in_flight(slot, kNow + kReclaimPendingMs)) << "bounded";
  EXPECT_FALSE(shm::reclaim_in_flight(slot, kNow - 5000)) << "a clock stepped back ends it";

  // A request of the class that waits decides Wait on it, not Refuse.
  GuardInput in = nothing_coming();
  in.reclaim = true;
  EXPECT_EQ(admit(seg.get(), slot, in, 100, 0, true).decision.verdict, Verdict::Wait);
  EXPECT_FALSE(admit(seg.get(), slot, in, 100, 0, true).decision.reclaim);
  // The room shows in a sample: the class's spawn is admitted and the reclaim is done.
  in.headroom = 100 * MiB;
  auto a = admit(seg.get(), slot, in, 100, 0, true);
  EXPECT_EQ(a.decision.verdict, Verdict::Pass);
  EXPECT_EQ(a.decision.claim, Claim::Spawn);
  EXPECT_FALSE(shm::reclaim_in_flight(slot, kNow));
  EXPECT_TRUE(shm::begin_reclaim(slot, kNow + 10));
  shm::end_reclaim(slot);
  EXPECT_FALSE(shm::reclaim_in_flight(slot, kNow + 10));
}

TEST(Decide, AWaitSaysWhatItWaitsFor) {
  GuardInput in;
  in.fresh = in.bounded = in.may_wait = true;
  in.headroom = 1 << 20;
  in.need = 64 << 20;
  in.workers = in.inflight = 2;
  EXPECT_EQ(decide(in).wait_for, WaitFor::Worker);
  in.reclaim_pending = true;
  EXPECT_EQ(decide(in).wait_for, WaitFor::Reclaim);
  in.reclaim_pending = false;
  in.workers = in.inflight = 0;
  in.share_owed = true;
  EXPECT_EQ(decide(in).wait_for, WaitFor::Share);
  in.share_owed = false;
  in.need_known = false;
  in.since_unmeasured_spawn_ms = 10;
  EXPECT_EQ(decide(in).wait_for, WaitFor::Measure);
  in.need_known = true;
  in.reclaim = true;
  const Decision d = decide(in);
  EXPECT_TRUE(d.reclaim);
  EXPECT_EQ(d.wait_for, WaitFor::Reclaim);
  in.reclaim = false;
  EXPECT_EQ(decide(in).verdict, Verdict::Refuse);
  EXPECT_EQ(decide(in).wait_for, WaitFor::None);
  EXPECT_STREQ(wait_words(WaitFor::Measure), "waiting for the spawn being measured");
}

// ---------------------------------------------------------------- fit (issue 19 item 1)

// The one "how many fit" answer SG0201, the status page and the advisor give. The field case:
// a suEXEC worker mapping 182 MiB, 2 running, 100 MiB of room, 3 workers seen at most.
TEST(Fit, MoreMaxProcessesAndPerWorkerFromOneShare) {
  const std::uint64_t MiB = 1 << 20;
  FitAdvice f = fit_advice(100 * MiB, 2, 182 * MiB, 3);
  EXPECT_EQ(f.more, 0u);                           // 100 MiB holds no 182 MiB worker
  EXPECT_EQ(f.max_processes, 2u);                  // (100 + 2 × 182) / 182 = 2.5
  EXPECT_EQ(f.per_worker, (100 + 364) * MiB / 3);  // what each of 3 workers may map
  f = fit_advice(400 * MiB, 2, 182 * MiB, 0);
  EXPECT_EQ(f.more, 2u);
  EXPECT_EQ(f.max_processes, 4u);
  EXPECT_EQ(f.per_worker, 0u);  // no worker seen: nothing to say per worker
}

TEST(Fit, UnknownNeedFitsNothingAndHugeNumbersSaturate) {
  FitAdvice f = fit_advice(1 << 30, 5, 0, 5);
  EXPECT_EQ(f.more, 0u);
  EXPECT_EQ(f.max_processes, 0u);
  EXPECT_EQ(f.per_worker, (1u << 30) / 5);
  f = fit_advice(UINT64_MAX, UINT64_MAX, UINT64_MAX, 1);
  EXPECT_EQ(f.more, 1u);
  EXPECT_EQ(f.max_processes, 1u);  // saturated share, not a wrapped one
  EXPECT_EQ(f.per_worker, UINT64_MAX);
}
