// mod_shmguard core: fair shares among sites, and handing a freed worker over (see share.hpp).
#include "shmguard/share.hpp"

#include <algorithm>
#include <numeric>

#include "shmguard/rules.hpp"

namespace shmguard {

std::vector<int> fair_shares(int budget, const std::vector<int>& demand,
                             const std::vector<int>& held) {
  const std::size_t n = demand.size();
  std::vector<int> share(n, 0);
  std::vector<std::size_t> open;  // classes whose share is below their demand
  for (std::size_t i = 0; i < n; ++i)
    if (demand[i] > 0) open.push_back(i);
  // Who gets an uneven remainder first: more workers held now, then the lower index.
  std::stable_sort(open.begin(), open.end(), [&](std::size_t a, std::size_t b) {
    const int ha = a < held.size() ? held[a] : 0, hb = b < held.size() ? held[b] : 0;
    return ha > hb;
  });
  int left = budget > 0 ? budget : 0;
  while (left > 0 && !open.empty()) {
    const int part = left / static_cast<int>(open.size());
    if (part == 0) {  // fewer workers than classes: one each, in the order above
      for (std::size_t i = 0; i < open.size() && left > 0; ++i, --left) ++share[open[i]];
      break;
    }
    std::vector<std::size_t> still;
    for (std::size_t i : open) {
      const int give = std::min(part, demand[i] - share[i]);
      share[i] += give;
      left -= give;
      if (share[i] < demand[i]) still.push_back(i);
    }
    open.swap(still);
  }
  return share;
}

namespace {
int about_to_take(const ClassLoad& c) {
  return c.inflight > c.busy ? c.inflight - c.busy : 0;
}
bool idler(const IdleWorker& a, const IdleWorker& b) {
  if (a.last_active_us != b.last_active_us) return a.last_active_us < b.last_active_us;
  return a.start_time_us < b.start_time_us;
}
}  // namespace

ShareView share_view(const ReclaimInput& in) {
  ShareView v;
  std::vector<int> demand, held;
  std::int64_t budget = 0;
  bool listed = false;
  for (const ClassLoad& c : in.classes) {
    ClassShare s;
    s.key = c.key;
    s.held = std::max(c.idle + c.busy, c.inflight);
    s.demand = std::max(c.inflight, c.busy) + c.waiting;
    if (in.requester && c.key == in.requester) {
      listed = true;
      s.demand = std::max(s.demand, s.held + 1);
    }
    budget += c.idle + c.busy;
    v.classes.push_back(s);
  }
  if (in.requester && !listed) {
    ClassShare s;
    s.key = in.requester;
    s.demand = 1;
    v.classes.push_back(s);
  }
  const std::uint64_t need = in.requester_need;
  budget += static_cast<std::int64_t>(workers_that_fit(in.room, need));
  v.budget = static_cast<int>(std::min<std::int64_t>(budget, 1 << 20));
  for (const ClassShare& s : v.classes) {
    demand.push_back(s.demand);
    held.push_back(s.held);
    if (s.demand > 0) ++v.classes_with_demand;
  }
  const std::vector<int> shares = fair_shares(v.budget, demand, held);
  for (std::size_t i = 0; i < v.classes.size(); ++i) v.classes[i].share = shares[i];
  return v;
}

bool share_owed(const ReclaimInput& in) {
  if (!in.requester || in.requester_need == 0) return false;
  const ShareView v = share_view(in);
  bool below = false;
  for (const ClassShare& s : v.classes)
    if (s.key == in.requester) below = s.held < s.share;
  if (!below) return false;
  for (std::size_t i = 0; i < in.classes.size(); ++i) {
    const ClassLoad& c = in.classes[i];
    if (c.key != in.requester && c.busy > 0 && v.classes[i].held > v.classes[i].share) return true;
  }
  return false;
}

std::optional<Handover> choose_handover(const ReclaimInput& in, std::uint64_t freed) {
  ReclaimInput asked = in;
  asked.requester = 0;  // the share as it stands: no class asks beyond its waiters
  const ClassLoad* from = nullptr;
  for (const ClassLoad& c : in.classes)
    if (c.key == freed) from = &c;
  if (!from || from->idle - about_to_take(*from) <= 0 || from->idle + from->busy <= from->floor)
    return std::nullopt;
  // The beneficiary: a class with waiters below its share, furthest below (ties: more waiters,
  // then the lower key). Shares are computed in its need (the room a worker of it takes).
  std::optional<Handover> best;
  int best_gap = 0, best_waiting = 0;
  for (const ClassLoad& to : in.classes) {
    if (to.key == freed || to.waiting <= 0) continue;
    const std::uint64_t need = to.need ? to.need : in.requester_need;
    if (need == 0) continue;
    asked.requester_need = need;
    const ShareView v = share_view(asked);
    const ClassShare *sf = nullptr, *st = nullptr;
    for (const ClassShare& s : v.classes) {
      if (s.key == freed) sf = &s;
      if (s.key == to.key) st = &s;
    }
    if (!sf || !st || sf->held <= sf->share || st->held >= st->share) continue;
    // One worker of `freed` must make room for one of `to`.
    const std::uint64_t frees = from->need ? from->need : need;
    if (in.room + frees < need) continue;
    const int gap = st->share - st->held;
    if (best && (gap < best_gap ||
                 (gap == best_gap && (to.waiting < best_waiting ||
                                      (to.waiting == best_waiting && to.key >= best->to)))))
      continue;
    Handover h;
    h.to = to.key;
    h.to_need = need;
    h.from_held = sf->held;
    h.from_share = sf->share;
    h.to_held = st->held;
    h.to_share = st->share;
    h.budget_workers = v.budget;
    h.classes_with_demand = v.classes_with_demand;
    best = h;
    best_gap = gap;
    best_waiting = to.waiting;
  }
  if (!best) return std::nullopt;
  const IdleWorker* oldest = nullptr;
  for (const IdleWorker& w : in.idle)
    if (w.class_key == freed && (!oldest || idler(w, *oldest))) oldest = &w;
  if (!oldest) return std::nullopt;
  best->victim = *oldest;
  return best;
}

}  // namespace shmguard
