// Fair shares among sites while every worker is busy (core fair_shares, share_view, share_owed,
// choose_handover; issue 18 item 2).
#include <gtest/gtest.h>

#include <vector>

#include "shmguard/rules.hpp"
#include "shmguard/share.hpp"

using namespace shmguard;

namespace {
constexpr std::uint64_t MiB = 1ULL << 20;
constexpr std::int64_t kNowUs = 1'700'000'000'000'000;
constexpr std::uint64_t A = 0xA, B = 0xB, C = 0xC;

ClassLoad cls(std::uint64_t key, int idle, int busy, int waiting = 0, int inflight = -1) {
  ClassLoad c;
  c.key = key;
  c.idle = idle;
  c.busy = busy;
  c.waiting = waiting;
  c.inflight = inflight < 0 ? busy : inflight;
  c.need = 182 * MiB;
  return c;
}
IdleWorker idle_worker(std::uint64_t key, int index, int pid, std::int64_t idle_ms) {
  IdleWorker w;
  w.index = index;
  w.pid = pid;
  w.class_key = key;
  w.last_active_us = kNowUs - idle_ms * 1000;
  w.start_time_us = w.last_active_us - 1000000;
  return w;
}
// The scenario while A is hammered: a budget of 3 workers of 182 MiB, all A's and busy,
// 13 of A's requests waiting; B's request finds no worker, no room and nothing idle.
ReclaimInput a_busy_b_asks() {
  ReclaimInput in;
  in.requester = B;
  in.requester_need = 182 * MiB;
  in.room = 10 * MiB;
  in.now_us = kNowUs;
  in.classes = {cls(A, 0, 3, 13), cls(B, 0, 0, 1)};
  return in;
}
// The moment one of A's requests has given its worker back (the worker is idle, the request no
// longer counted in flight), B still waiting.
ReclaimInput a_frees_one() {
  ReclaimInput in = a_busy_b_asks();
  in.requester = 0;
  in.classes = {cls(A, 1, 2, 13), cls(B, 0, 0, 1)};
  in.idle = {idle_worker(A, 5, 501, 0)};
  return in;
}
}  // namespace

TEST(FairShares, EqualPartsAmongClassesWithDemand) {
  EXPECT_EQ(fair_shares(6, {10, 10, 10}, {6, 0, 0}), (std::vector<int>{2, 2, 2}));
  EXPECT_EQ(fair_shares(6, {10, 0, 10}, {6, 0, 0}), (std::vector<int>{3, 0, 3}))
      << "a class without demand has no share";
}

TEST(FairShares, WhatAClassDoesNotWantGoesToTheOthers) {
  // Max-min: B wants one, A and C divide the rest.
  EXPECT_EQ(fair_shares(7, {10, 1, 10}, {0, 0, 0}), (std::vector<int>{3, 1, 3}));
  EXPECT_EQ(fair_shares(3, {17, 2}, {3, 0}), (std::vector<int>{2, 1}));
  EXPECT_EQ(fair_shares(10, {2, 3}, {0, 0}), (std::vector<int>{2, 3})) << "never above demand";
}

TEST(FairShares, AnUnevenRemainderStaysWithTheClassHoldingMore) {
  EXPECT_EQ(fair_shares(3, {10, 10}, {0, 3}), (std::vector<int>{1, 2}));
  EXPECT_EQ(fair_shares(3, {10, 10}, {3, 0}), (std::vector<int>{2, 1}));
  EXPECT_EQ(fair_shares(3, {10, 10}, {0, 0}), (std::vector<int>{2, 1})) << "ties: lower index";
}

TEST(FairShares, AtLeastOneEachWhileTheBudgetHoldsOnePerClass) {
  for (int classes = 1; classes <= 8; ++classes)
    for (int budget = classes; budget <= 12; ++budget) {
      std::vector<int> demand(static_cast<std::size_t>(classes), 20), held(demand.size(), 0);
      held[0] = budget;  // one class holds everything now
      const std::vector<int> s = fair_shares(budget, demand, held);
      int sum = 0;
      for (int x : s) {
        EXPECT_GE(x, 1) << classes << " classes, budget " << budget;
        sum += x;
      }
      EXPECT_EQ(sum, budget) << "every worker the budget holds is someone's share";
    }
  EXPECT_EQ(fair_shares(2, {5, 5, 5}, {0, 2, 0}), (std::vector<int>{1, 1, 0}))
      << "fewer workers than classes: one each, to the class holding them first, then the lower "
         "index";
  EXPECT_EQ(fair_shares(0, {5}, {0}), (std::vector<int>{0}));
  EXPECT_EQ(fair_shares(-3, {5}, {0}), (std::vector<int>{0}));
}

TEST(Share, TheAskingClassIsOwedAWorkerOfTheBusySiteAboveItsShare) {
  const ReclaimInput in = a_busy_b_asks();
  const ShareView v = share_view(in);
  EXPECT_EQ(v.budget, 3);
  EXPECT_EQ(v.classes_with_demand, 2);
  ASSERT_EQ(v.classes.size(), 2u);
  EXPECT_EQ(v.classes[0].share, 2);
  EXPECT_EQ(v.classes[1].share, 1);
  EXPECT_TRUE(share_owed(in));
  EXPECT_FALSE(choose_reclaim(in)) << "nothing idle: no reclaim, the share waits for a worker";
}

TEST(Share, TheRequesterNeedNotBeInTheTable) {
  ReclaimInput in = a_busy_b_asks();
  in.classes.pop_back();
  EXPECT_TRUE(share_owed(in));
}

TEST(Share, NotOwedAtItsShare) {
  ReclaimInput in = a_busy_b_asks();
  in.classes = {cls(A, 0, 2, 13), cls(B, 0, 1, 1)};  // B holds its one worker
  EXPECT_FALSE(share_owed(in));
}

TEST(Share, OwedOnlyWhileABusyClassIsAboveItsShare) {
  ReclaimInput in = a_busy_b_asks();
  in.classes = {cls(A, 0, 1, 5), cls(C, 0, 2, 0), cls(B, 0, 0, 1)};  // C wants only its two
  // Budget 3: A, B, C with demand 6, 1, 2 -> shares 1, 1, 1; C holds 2 > 1 and is busy: owed.
  EXPECT_TRUE(share_owed(in));
  in.classes = {cls(A, 0, 1, 0), cls(B, 0, 0, 1)};  // budget 1: A keeps the one it holds
  EXPECT_FALSE(share_owed(in));
  in.classes = {cls(A, 3, 0, 0), cls(B, 0, 0, 1)};  // A is idle: that is choose_reclaim's case
  EXPECT_FALSE(share_owed(in));
}

TEST(Share, NoNeedNothingOwed) {
  ReclaimInput in = a_busy_b_asks();
  in.requester_need = 0;
  EXPECT_FALSE(share_owed(in));
}

TEST(Handover, TheWorkerAClassAboveItsShareFreesGoesToTheWaitingClass) {
  auto h = choose_handover(a_frees_one(), A);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->victim.pid, 501);
  EXPECT_EQ(h->victim.index, 5);
  EXPECT_EQ(h->to, B);
  EXPECT_EQ(h->to_need, 182 * MiB);
  EXPECT_EQ(h->from_held, 3);
  EXPECT_EQ(h->from_share, 2);
  EXPECT_EQ(h->to_held, 0);
  EXPECT_EQ(h->to_share, 1);
  EXPECT_EQ(h->budget_workers, 3);
}

TEST(Handover, AClassAtItsShareKeepsItsWorker) {
  ReclaimInput in = a_frees_one();
  in.classes = {cls(A, 1, 1, 13), cls(B, 0, 1, 1)};  // A 2 = its share, B holds 1
  EXPECT_FALSE(choose_handover(in, A));
  in.classes = {cls(A, 1, 2, 13), cls(B, 0, 0, 0)};  // nobody else waits
  EXPECT_FALSE(choose_handover(in, A));
  EXPECT_FALSE(choose_handover(a_frees_one(), B)) << "B freed nothing";
}

TEST(Handover, NeverAWorkerAnAdmittedRequestOfTheClassIsAboutToTake) {
  ReclaimInput in = a_frees_one();
  in.classes[0].inflight = 3;  // one admitted request of A counted on the idle worker
  EXPECT_FALSE(choose_handover(in, A));
}

TEST(Handover, OnlyWhenOneWorkerMakesRoomForTheOthers) {
  ReclaimInput in = a_frees_one();
  in.classes[1].need = 300 * MiB;  // B's worker is larger than A's and the room
  EXPECT_FALSE(choose_handover(in, A));
  in.room = 120 * MiB;
  EXPECT_TRUE(choose_handover(in, A));
}

TEST(Handover, ToTheClassFurthestBelowItsShare) {
  ReclaimInput in = a_frees_one();
  // Budget 8: A 1 idle + 6 busy, C holds one and waits for one more, B waits with 3 and none:
  // shares A 3, C 2, B 3 -- B is 3 below, C 1.
  in.classes = {cls(A, 1, 6, 9), cls(C, 0, 1, 1), cls(B, 0, 0, 3)};
  auto h = choose_handover(in, A);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->to, B);
  EXPECT_EQ(h->to_share, 3);
  // Budget 5: C waits with 3 and none, B with 1: shares A 2, C 2, B 1: C is further below.
  in.classes = {cls(A, 1, 4, 9), cls(C, 0, 0, 3), cls(B, 0, 0, 1)};
  h = choose_handover(in, A);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->to, C);
}

TEST(Handover, TheLongestIdleWorkerOfTheClass) {
  ReclaimInput in = a_frees_one();
  in.classes[0] = cls(A, 2, 1, 13);
  in.idle = {idle_worker(A, 5, 501, 0), idle_worker(A, 6, 502, 40)};
  auto h = choose_handover(in, A);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->victim.pid, 502);
}

TEST(Decide, AClassOwedItsShareWaits) {
  GuardInput in;
  in.fresh = true;
  in.bounded = true;
  in.headroom = 10 * MiB;
  in.need = 182 * MiB;
  in.workers = 0;
  in.may_wait = true;
  EXPECT_EQ(decide(in).verdict, Verdict::Refuse) << "nothing coming: refused (rule 9)";
  in.share_owed = true;
  EXPECT_EQ(decide(in).verdict, Verdict::Wait) << "rule 8c";
  EXPECT_EQ(decide(in).claim, Claim::None);
  in.may_wait = false;
  EXPECT_EQ(decide(in).verdict, Verdict::Refuse) << "the wait is over";
  in.may_wait = true;
  in.action = Action::Log;
  EXPECT_EQ(decide(in).verdict, Verdict::WouldRefuse) << "a dry run never waits";
}

TEST(Handover, NeverBelowTheFreedClasssFloor) {
  ReclaimInput in = a_frees_one();
  in.classes[0].floor = 3;  // ShmGuardMinWorkers 3: A keeps its three, B waits for them
  EXPECT_FALSE(choose_handover(in, A));
  in.classes[0].floor = 2;
  EXPECT_TRUE(choose_handover(in, A));
}
