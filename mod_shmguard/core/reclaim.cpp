// mod_shmguard core: which idle worker of another class to retire, if any (see reclaim.hpp).
#include "shmguard/reclaim.hpp"

#include "shmguard/rules.hpp"
#include "shmguard/share.hpp"

namespace shmguard {

namespace {
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
  // The shares are the hand-over's (share.hpp): max-min over the workers the budget holds.
  const ShareView v = share_view(in);
  if (v.budget <= 0) return std::nullopt;
  for (const ClassShare& s : v.classes)
    if (s.key == in.requester && s.held >= s.share) return std::nullopt;

  const ClassLoad* best = nullptr;
  int best_excess = 0;
  const IdleWorker* best_worker = nullptr;
  for (std::size_t i = 0; i < in.classes.size(); ++i) {
    const ClassLoad& c = in.classes[i];
    if (c.key == in.requester || spare_idle(c) <= 0 || c.idle + c.busy <= c.floor) continue;
    const int excess = v.classes[i].held - v.classes[i].share;
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
  out.budget_workers = v.budget;
  out.classes_with_demand = v.classes_with_demand;
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
