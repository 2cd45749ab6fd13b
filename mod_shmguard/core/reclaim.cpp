// mod_shmguard core: which idle worker of another class to retire, if any (see reclaim.hpp).
#include "shmguard/reclaim.hpp"

#include "shmguard/rules.hpp"

namespace shmguard {

namespace {
bool has_demand(const ClassLoad& c, std::uint64_t requester) {
  return c.busy > 0 || c.waiting > 0 || c.inflight > 0 || c.key == requester;
}
// Idle workers no request of ours counts on: an admitted request about to take one (in flight,
// not yet on the busy list) and a waiter of the class come first.
int spare_idle(const ClassLoad& c) {
  const int about_to_take = c.inflight > c.busy ? c.inflight - c.busy : 0;
  return c.idle - about_to_take - c.waiting;
}
// The longer idle of two workers (ties: the older process).
bool idler(const IdleWorker& a, const IdleWorker& b) {
  if (a.last_active_us != b.last_active_us) return a.last_active_us < b.last_active_us;
  return a.start_time_us < b.start_time_us;
}
}  // namespace

std::optional<ReclaimChoice> choose_reclaim(const ReclaimInput& in) {
  if (in.requester_need == 0) return std::nullopt;
  // Workers the budget holds: every worker there is, and what the room fits of the requester's.
  std::int64_t budget = static_cast<std::int64_t>(workers_that_fit(in.room, in.requester_need));
  std::int64_t demand = 0, requester_workers = 0;
  bool requester_listed = false;
  for (const ClassLoad& c : in.classes) {
    budget += c.idle + c.busy;
    if (has_demand(c, in.requester)) ++demand;
    if (c.key == in.requester) {
      requester_listed = true;
      requester_workers = c.idle + c.busy;
    }
  }
  if (!requester_listed) ++demand;
  // Shares compared without dividing: workers * demand against budget (a class with demand) or 0.
  if (budget <= 0 || requester_workers * demand >= budget) return std::nullopt;

  const ClassLoad* best = nullptr;
  std::int64_t best_excess = 0;
  const IdleWorker* best_worker = nullptr;
  for (const ClassLoad& c : in.classes) {
    if (c.key == in.requester || spare_idle(c) <= 0 || c.idle + c.busy <= c.floor) continue;
    const std::int64_t excess = static_cast<std::int64_t>(c.idle + c.busy) * demand -
                                (has_demand(c, in.requester) ? budget : 0);
    if (excess <= 0) continue;
    // One worker of this class must make room for the requester's.
    const std::uint64_t freed = c.need ? c.need : in.requester_need;
    if (in.room + freed < in.requester_need) continue;
    const IdleWorker* oldest = nullptr;
    for (const IdleWorker& w : in.idle)
      if (w.class_key == c.key && (!oldest || idler(w, *oldest))) oldest = &w;
    if (!oldest) continue;  // its count and the list disagree: nothing to retire here
    if (!best || excess > best_excess || (excess == best_excess && idler(*oldest, *best_worker))) {
      best = &c;
      best_excess = excess;
      best_worker = oldest;
    }
  }
  if (!best_worker) return std::nullopt;
  ReclaimChoice out;
  out.victim = *best_worker;
  const std::int64_t idle_us = in.now_us - best_worker->last_active_us;
  out.idle_ms = idle_us > 0 ? idle_us / 1000 : 0;
  out.budget_workers = static_cast<int>(budget);
  out.classes_with_demand = static_cast<int>(demand);
  return out;
}

void add_table(ReclaimInput& in, const std::vector<fcgid::Node>& nodes) {
  for (const fcgid::Node& n : nodes) {
    if (n.list == fcgid::List::Error) continue;
    const std::uint64_t key = fcgid::class_hash(fcgid::class_of(n));
    ClassLoad* c = nullptr;
    for (ClassLoad& have : in.classes)
      if (have.key == key) c = &have;
    if (!c) {
      in.classes.push_back(ClassLoad{});
      c = &in.classes.back();
      c->key = key;
      c->vhost_id = n.vhost_id;
    }
    if (n.list == fcgid::List::Idle) {
      ++c->idle;
      in.idle.push_back(
          IdleWorker{n.index, n.pid, n.start_time_us, n.last_active_us, key, n.vhost_id});
    } else {
      ++c->busy;
    }
  }
}

}  // namespace shmguard
