// mod_shmguard core: reclaiming an idle worker of another class (several sites on one budget).
// When a request finds no worker of its class and no room (rules.hpp rule 8b), and another class
// holds an idle worker, one idle worker is retired the way mod_fcgid retires one past its idle
// timeout (fcgid::retire_idle_node). These are the rules of "should we, and which": pure, over a
// description of mod_fcgid's workers and the guard's counts of each class.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "shmguard/fcgid.hpp"

namespace shmguard {

// A worker on mod_fcgid's idle list: the one kind that may be retired.
struct IdleWorker {
  int index = 0;  // its node in mod_fcgid's table
  int pid = 0;
  std::int64_t start_time_us = 0;   // with pid: the process (a freed node is reused)
  std::int64_t last_active_us = 0;  // when its last request took it (mod_fcgid's clock: wall us)
  std::uint64_t class_key = 0;      // fcgid::class_hash of its class
  int vhost_id = 0;                 // mod_fcgid's vhost id (for the log)
};

// A process class as the decision sees it.
struct ClassLoad {
  std::uint64_t key = 0;
  int idle = 0, busy = 0;  // workers on mod_fcgid's idle and busy lists
  int waiting = 0;         // the guard's requests of the class waiting for a worker
  int inflight = 0;        // the guard's requests holding (or about to take) one of its workers
  std::uint64_t need = 0;  // what one of its workers maps (measured); 0: not known
  int vhost_id = 0;        // mod_fcgid's vhost id of its workers (add_table; 0: none seen)
  int floor = 0;           // ShmGuardMinWorkers of its vhost: never retired below this many
};

struct ReclaimInput {
  std::uint64_t requester = 0;       // the class of the request that finds nothing
  std::uint64_t requester_need = 0;  // what a new worker of it needs (bytes)
  std::uint64_t room = 0;            // headroom - reserved now (bytes)
  std::int64_t now_us = 0;           // wall clock, as mod_fcgid's times
  std::vector<ClassLoad> classes;    // the classes with workers (the requester's may be absent)
  std::vector<IdleWorker> idle;      // every worker on the idle list
};

struct ReclaimChoice {
  IdleWorker victim;
  std::int64_t idle_ms = 0;     // since its last request took it
  int budget_workers = 0;       // the workers the budget holds: all workers + what the room fits
  int classes_with_demand = 0;  // among which the budget is shared (max-min, share.hpp)
};

// The rules:
//  - the shares are share_view()'s (share.hpp, the hand-over's too): the workers the budget
//    holds divided max-min among the classes with demand (a busy worker, a request of ours
//    waiting or in flight, the requester); a class without demand has a share of 0;
//  - only for a requester below its share (its workers < share), and only when retiring one
//    worker makes room for the requester's (room + that class's need, or the requester's own
//    need when not measured, >= requester_need): one request never retires several;
//  - a class's idle worker is a candidate only while the class has more idle workers than requests
//    of ours about to take one (in flight beyond its busy workers) and waiting: never the worker
//    an admitted request was counted on (mod_fcgid would start another for it, unreserved);
//  - the victim class: of the other classes with such a worker, the one furthest above its share
//    (workers - share > 0; ties: the one whose idle worker has been idle longest);
//  - never from a class holding no more workers than its floor (ShmGuardMinWorkers);
//  - the victim: that class's longest idle worker (oldest last_active_us; ties: oldest start).
// nullopt: nothing to retire.
std::optional<ReclaimChoice> choose_reclaim(const ReclaimInput& in);

// The classes and idle workers of mod_fcgid's table, from read_table()'s nodes (a node on the
// error list is dying: neither a worker nor a candidate). Waiting, inflight and need are left 0
// for the caller (the guard's segment) to fill in.
void add_table(ReclaimInput& in, const std::vector<fcgid::Node>& nodes);

}  // namespace shmguard
