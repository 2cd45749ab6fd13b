// mod_shmguard core: the fair share of the workers a budget holds, among the sites (mod_fcgid
// classes) that want them, while every worker is busy (issue 18 item 2). When a class that waits
// and holds fewer workers than its share cannot get one (no room, nothing idle to reclaim), the
// next worker that frees in a class above its share is retired for it (as reclaim.hpp retires an
// idle worker) instead of going back to its own class's queue. Pure rules over the same
// description of mod_fcgid's workers and the guard's counts as choose_reclaim().
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "shmguard/reclaim.hpp"

namespace shmguard {

// Max-min fair shares of `budget` workers among classes wanting demand[i] workers each: every
// class with demand gets an equal part, a class wanting less gets what it wants and the rest is
// divided again among the others; a part that does not divide evenly goes one worker each to the
// classes holding more workers now (held[i]; ties: the lower index), so a share does not move a
// worker only to move it back. A class without demand gets 0. So while the budget holds one
// worker per class with demand, every such class's share is at least one.
std::vector<int> fair_shares(int budget, const std::vector<int>& demand,
                             const std::vector<int>& held);

// One class's place in the share (for the decisions and the status page).
struct ClassShare {
  std::uint64_t key = 0;
  int held = 0;    // its workers (idle + busy), or its requests in flight when more (a spawn)
  int demand = 0;  // workers it wants: requests holding or about to take one, and its waiters
  int share = 0;
};
struct ShareView {
  int budget = 0;  // every worker there is, and what the room fits of the asking class's need
  int classes_with_demand = 0;
  std::vector<ClassShare> classes;  // in.classes' order
};
// The shares for `in` (in.requester, when set, wants at least one worker more than it holds):
// the one share rule, for the idle reclaim (choose_reclaim) and the hand-over alike.
ShareView share_view(const ReclaimInput& in);

// The requester waits for its share: it holds fewer workers than its share and another class,
// above its share, has a busy worker (its next one to free is retired for the requester by
// choose_handover()). Only when nothing else comes for it (decide()'s rule 8c).
bool share_owed(const ReclaimInput& in);

struct Handover {
  IdleWorker victim;          // the worker to retire (of the class that just freed one)
  std::uint64_t to = 0;       // the class it goes to
  std::uint64_t to_need = 0;  // what a worker of that class needs (the room reserved for it)
  int from_held = 0, from_share = 0, to_held = 0, to_share = 0;
  int budget_workers = 0, classes_with_demand = 0;
};
// A request of class `freed` has just given its worker back (in.classes counts it no longer in
// flight; in.requester is ignored). When `freed` holds more than its share and a class with
// waiters holds fewer than its share, the longest idle worker of `freed` is retired for that
// class (the one furthest below its share; ties: more waiters, then the lower key) -- never a
// worker one of `freed`'s admitted requests is about to take (its waiters do not keep it: they
// are above the share), never below `freed`'s floor (ShmGuardMinWorkers), and only when that
// worker's room makes room for the other class's.
std::optional<Handover> choose_handover(const ReclaimInput& in, std::uint64_t freed);

}  // namespace shmguard
