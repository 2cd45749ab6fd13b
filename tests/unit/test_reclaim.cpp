// Reclaiming an idle worker of another class (core choose_reclaim, add_table): whether at all,
// from which class, and which worker.
#include <gtest/gtest.h>

#include <vector>

#include "shmguard/fcgid.hpp"
#include "shmguard/reclaim.hpp"

using namespace shmguard;

namespace {
constexpr std::uint64_t MiB = 1ULL << 20;
constexpr std::int64_t kNowUs = 1'700'000'000'000'000;
constexpr std::uint64_t A = 0xA, B = 0xB, C = 0xC;

ClassLoad cls(std::uint64_t key, int idle, int busy, int waiting = 0) {
  ClassLoad c;
  c.key = key;
  c.idle = idle;
  c.busy = busy;
  c.waiting = waiting;
  c.need = 182 * MiB;
  return c;
}
IdleWorker idle_worker(std::uint64_t key, int index, int pid, std::int64_t idle_s) {
  IdleWorker w;
  w.index = index;
  w.pid = pid;
  w.class_key = key;
  w.last_active_us = kNowUs - idle_s * 1000000;
  w.start_time_us = w.last_active_us - 1000000;
  w.vhost_id = static_cast<int>(key);
  return w;
}
// The scenario: a budget of 3 workers of 182 MiB, all held by site A, now quiet; a
// request of site B finds no worker and no room.
ReclaimInput a_quiet_b_asks() {
  ReclaimInput in;
  in.requester = B;
  in.requester_need = 182 * MiB;
  in.room = 10 * MiB;
  in.now_us = kNowUs;
  in.classes = {cls(A, 3, 0), cls(B, 0, 0, 1)};
  in.idle = {idle_worker(A, 4, 401, 20), idle_worker(A, 5, 402, 90), idle_worker(A, 6, 403, 5)};
  return in;
}
}  // namespace

TEST(Reclaim, TheLongestIdleWorkerOfTheQuietSiteIsRetired) {
  auto c = choose_reclaim(a_quiet_b_asks());
  ASSERT_TRUE(c);
  EXPECT_EQ(c->victim.pid, 402);
  EXPECT_EQ(c->victim.index, 5);
  EXPECT_EQ(c->idle_ms, 90000);
  EXPECT_EQ(c->budget_workers, 3);
  EXPECT_EQ(c->classes_with_demand, 1) << "A is quiet: no demand, a share of 0";
}

TEST(Reclaim, TheRequesterNeedNotBeInTheTable) {
  ReclaimInput in = a_quiet_b_asks();
  in.classes.pop_back();  // B has no worker and no count of ours yet
  auto c = choose_reclaim(in);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->victim.pid, 402);
}

TEST(Reclaim, NothingIdleElsewhereNothingRetired) {
  ReclaimInput in = a_quiet_b_asks();
  in.classes[0] = cls(A, 0, 3);  // A is busy: its workers are on the busy list
  in.idle.clear();
  EXPECT_FALSE(choose_reclaim(in));
}

TEST(Reclaim, NeverAWorkerOfTheRequestersOwnClass) {
  ReclaimInput in = a_quiet_b_asks();
  in.classes = {cls(B, 1, 0, 1)};
  in.idle = {idle_worker(B, 7, 700, 100)};
  EXPECT_FALSE(choose_reclaim(in));
}

TEST(Reclaim, AClassWithASpareIdleWorkerIsAboveItsShare) {
  // Budget 4 (A 1 idle + 1 busy, C 2 busy, no room), and A, B, C with demand: max-min shares of
  // 1 (A wants its busy one), 1 (B) and 2 (C). A's 2 are above it: its idle worker may go.
  ReclaimInput in = a_quiet_b_asks();
  in.classes = {cls(A, 1, 1), cls(B, 0, 0, 1), cls(C, 0, 2)};
  in.idle = {idle_worker(A, 4, 401, 30)};
  auto c = choose_reclaim(in);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->victim.pid, 401);
  // The same with room for two more workers: budget 6, but a share is never more than the class
  // wants (A 1, B 1, C 2): a worker no request of A counts on is above A's share, always.
  in.room = 2 * 182 * MiB + 10 * MiB;
  c = choose_reclaim(in);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->victim.pid, 401);
  EXPECT_EQ(c->budget_workers, 6);
}

TEST(Reclaim, FromTheClassFurthestAboveItsShare) {
  // Budget 5, A and B with demand (shares 2.5), C quiet (share 0).
  ReclaimInput in;
  in.requester = B;
  in.requester_need = 182 * MiB;
  in.room = 0;
  in.now_us = kNowUs;
  in.classes = {cls(A, 1, 2), cls(B, 0, 0, 1), cls(C, 2, 0)};
  in.idle = {idle_worker(A, 4, 401, 300), idle_worker(C, 8, 801, 10), idle_worker(C, 9, 802, 20)};
  auto c = choose_reclaim(in);
  ASSERT_TRUE(c);
  // A: 3 - 2.5 = 0.5 above; C: 2 - 0 = 2 above. C's, although A's worker has been idle longer.
  EXPECT_EQ(c->victim.class_key, C);
  EXPECT_EQ(c->victim.pid, 802);
  EXPECT_EQ(c->classes_with_demand, 2);
  EXPECT_EQ(c->budget_workers, 5);
}

TEST(Reclaim, TiesGoToTheLongestIdleWorker) {
  ReclaimInput in;
  in.requester = B;
  in.requester_need = 182 * MiB;
  in.now_us = kNowUs;
  in.classes = {cls(A, 1, 0), cls(B, 0, 0, 1), cls(C, 1, 0)};
  in.idle = {idle_worker(A, 4, 401, 30), idle_worker(C, 8, 801, 60)};
  auto c = choose_reclaim(in);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->victim.pid, 801);
}

TEST(Reclaim, OnlyWhenOneWorkerMakesRoomForTheRequesters) {
  ReclaimInput in = a_quiet_b_asks();
  for (auto& c : in.classes) c.need = 100 * MiB;  // A's workers map 100 MiB; B needs 182
  EXPECT_FALSE(choose_reclaim(in)) << "retiring one would not be enough: none is retired";
  in.room = 90 * MiB;
  EXPECT_TRUE(choose_reclaim(in)) << "90 + 100 >= 182";
  in.room = 10 * MiB;
  in.classes[0].need = 0;  // not measured: taken to be the requester's
  EXPECT_TRUE(choose_reclaim(in));
}

TEST(Reclaim, NotForARequesterAtItsShare) {
  // Budget 5 (A 2 idle + 1 busy, B 2 busy), A, B and C (two waiters, no worker) with demand:
  // max-min shares of 1 (A wants 1), 2 and 2 (B asks for 3, C wants 2: the 4 left split evenly).
  // B holds 2, its share: it waits for its own, although A is above its share (C, below, may
  // take A's worker).
  ReclaimInput in = a_quiet_b_asks();
  in.classes = {cls(A, 2, 1), cls(B, 0, 2, 1), cls(C, 0, 0, 2)};
  in.idle = {idle_worker(A, 4, 401, 30), idle_worker(A, 5, 402, 40)};
  EXPECT_FALSE(choose_reclaim(in));
  in.requester = C;
  auto c = choose_reclaim(in);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->victim.pid, 402);
}

TEST(Reclaim, AQuietSitesIdleWorkerIsFairGameWhateverItsCount) {
  ReclaimInput in = a_quiet_b_asks();
  in.classes = {cls(A, 1, 0), cls(B, 0, 1, 1)};  // B busy with one, waiting for a second
  in.idle = {idle_worker(A, 4, 401, 30)};
  auto c = choose_reclaim(in);
  ASSERT_TRUE(c) << "A has no demand (share 0), B is below its share of 2";
  EXPECT_EQ(c->victim.pid, 401);
}

TEST(Reclaim, NoNeedNoBudgetNoReclaim) {
  ReclaimInput in = a_quiet_b_asks();
  in.requester_need = 0;
  EXPECT_FALSE(choose_reclaim(in));
  in = a_quiet_b_asks();
  in.classes[0].idle = 0;  // the count says none idle: the idle list is not trusted alone
  EXPECT_FALSE(choose_reclaim(in));
}

TEST(Reclaim, TheTableIsGroupedByClassAndTheErrorListIgnored) {
  std::vector<fcgid::Node> nodes(4);
  auto node = [&](int i, fcgid::List list, int pid, int vhost) {
    fcgid::Node& n = nodes[static_cast<std::size_t>(i)];
    n.index = 4 + i;
    n.list = list;
    n.pid = pid;
    n.vhost_id = vhost;
    n.inode = 77;
    n.deviceid = 65024;
    n.uid = n.gid = 0xffffffffu;
    n.cmdline = "/srv/wrap.sh";
    n.last_active_us = kNowUs - pid;
    n.start_time_us = pid;
  };
  node(0, fcgid::List::Idle, 100, 1);
  node(1, fcgid::List::Busy, 101, 1);
  node(2, fcgid::List::Idle, 200, 2);
  node(3, fcgid::List::Error, 300, 2);  // dying
  ReclaimInput in;
  add_table(in, nodes);
  ASSERT_EQ(in.classes.size(), 2u);
  EXPECT_EQ(in.classes[0].key, fcgid::class_hash(fcgid::class_of(nodes[0])));
  EXPECT_EQ(in.classes[0].idle, 1);
  EXPECT_EQ(in.classes[0].busy, 1);
  EXPECT_EQ(in.classes[1].idle, 1);
  EXPECT_EQ(in.classes[1].busy, 0) << "the error list's worker is neither";
  ASSERT_EQ(in.idle.size(), 2u);
  EXPECT_EQ(in.idle[1].pid, 200);
  EXPECT_EQ(in.idle[1].index, 6);
  EXPECT_EQ(in.idle[1].vhost_id, 2);
  EXPECT_EQ(in.idle[1].class_key, in.classes[1].key);
  EXPECT_EQ(in.idle[1].start_time_us, 200);
}

TEST(Reclaim, NeverAWorkerAnAdmittedRequestCountsOn) {
  ReclaimInput in = a_quiet_b_asks();
  in.classes[0] = cls(A, 1, 0);
  in.idle = {idle_worker(A, 4, 401, 30)};
  ASSERT_TRUE(choose_reclaim(in));
  in.classes[0].inflight = 1;  // a request of A was admitted on that idle worker
  EXPECT_FALSE(choose_reclaim(in)) << "mod_fcgid would start another for it, unreserved";
  in.classes[0].inflight = 0;
  in.classes[0].waiting = 1;  // a waiter of A is about to take it
  EXPECT_FALSE(choose_reclaim(in));
  in.classes[0] = cls(A, 2, 1);
  in.classes[0].inflight = 2;  // one holds the busy worker, one is about to take an idle one
  in.idle = {idle_worker(A, 4, 401, 30), idle_worker(A, 5, 402, 10)};
  auto c = choose_reclaim(in);
  ASSERT_TRUE(c) << "one idle worker is spare";
  EXPECT_EQ(c->victim.pid, 401);
}

TEST(Reclaim, NeverBelowTheVictimClasssFloor) {
  ReclaimInput in = a_quiet_b_asks();
  in.classes[0].floor = 3;  // ShmGuardMinWorkers 3 on A's vhost: A keeps its three
  EXPECT_FALSE(choose_reclaim(in));
  in.classes[0].floor = 2;
  auto c = choose_reclaim(in);
  ASSERT_TRUE(c) << "above its floor: one may go";
  EXPECT_EQ(c->victim.pid, 402);
}

TEST(Reclaim, TheTableGivesEachClassItsVhostId) {
  std::vector<fcgid::Node> nodes(1);
  nodes[0].list = fcgid::List::Idle;
  nodes[0].vhost_id = 7;
  nodes[0].pid = 70;
  ReclaimInput in;
  add_table(in, nodes);
  ASSERT_EQ(in.classes.size(), 1u);
  EXPECT_EQ(in.classes[0].vhost_id, 7);
}

TEST(Reclaim, TheVictimClassIsFurthestAboveItsMaxMinShare) {
  // Budget 6, no room. A holds 3 (2 busy, 1 idle: demand 2), C holds 3 (1 busy, 2 idle: demand
  // 1), B asks (demand 1). An equal split (2 each) puts A and C one above their shares, and the
  // tie would go to A's worker, idle longer. The max-min share (share.hpp, the one the hand-over
  // uses) gives C only what it wants (1) and A its 2: C is 2 above its share, A 1. C's goes.
  ReclaimInput in;
  in.requester = B;
  in.requester_need = 182 * MiB;
  in.room = 0;
  in.now_us = kNowUs;
  in.classes = {cls(A, 1, 2), cls(B, 0, 0, 1), cls(C, 2, 1)};
  in.idle = {idle_worker(A, 4, 401, 300), idle_worker(C, 8, 801, 10), idle_worker(C, 9, 802, 20)};
  auto c = choose_reclaim(in);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->victim.class_key, C);
  EXPECT_EQ(c->victim.pid, 802);
  EXPECT_EQ(c->budget_workers, 6);
  EXPECT_EQ(c->classes_with_demand, 3);
}
