// mod_shmguard core: probing every source and the headroom model.
#include "text.hpp"
#include "shmguard/model.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>

namespace shmguard {
using text::sat_mul;

namespace {

std::uint64_t machine_page_size() {
  long p = ::sysconf(_SC_PAGESIZE);
  return p > 0 ? static_cast<std::uint64_t>(p) : 4096;
}

void probe_beancounters(const ProbeConfig& cfg, Snapshot& s) {
  if (cfg.beancounters_off) return;  // switched off: neither a source nor unavailable
  const std::string path =
      cfg.beancounters.empty() ? cfg.procfs + "/user_beancounters" : cfg.beancounters;
  auto text = read_kept_file(cfg.beancounters_fd, path);
  if (!text) {
    // VZ7 also publishes /proc/bc/<id>/resources, readable where user_beancounters is not.
    if (cfg.container && cfg.beancounters.empty()) {
      const std::string alt = cfg.procfs + "/bc/" + *cfg.container + "/resources";
      auto alt_text = read_kept_file(cfg.bc_resources_fd, alt);
      if (alt_text) {
        auto block = parse_bc_resources(*alt_text.value, *cfg.container);
        if (block) {
          s.beancounters = Beancounters{alt, "", true, 1, std::move(*block.value), false, {}};
          return;
        }
        s.unavailable.push_back({"beancounter", block.error + " (" + alt + ")"});
        return;
      }
    }
    s.unavailable.push_back({"beancounter", text.error});
    return;
  }
  if (cfg.beancounters_lenient) {
    // A pasted copy (shmguard-probe --lenient): the whole file is read, its notes kept.
    auto lenient = parse_user_beancounters_lenient(*text.value);
    if (!lenient) {
      s.unavailable.push_back({"beancounter", lenient.error + " (" + path + ", read leniently)"});
      return;
    }
    LenientBeancounters& l = *lenient.value;
    auto block = select_beancounter_block(l.file, cfg.container);
    if (!block) {
      s.unavailable.push_back({"beancounter", block.error + " (" + path + ")"});
      return;
    }
    s.beancounters = Beancounters{path,
                                  std::move(l.file.version),
                                  l.file.version_known,
                                  l.file.blocks.size(),
                                  std::move(*block.value),
                                  true,
                                  std::move(l.notes)};
    return;
  }
  // Only the selected block is parsed: a hardware node's file lists every container (~1.5 MB for
  // 500), read every sample.
  auto sel = read_beancounter_block(*text.value, cfg.container);
  if (!sel) {
    s.unavailable.push_back({"beancounter", sel.error + " (" + path + ")"});
    return;
  }
  BeancounterSelection& b = *sel.value;
  s.beancounters = Beancounters{
      path, std::move(b.version), b.version_known, b.blocks_in_file, std::move(b.block), false, {}};
}

}  // namespace

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::int64_t mono_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

const Limit* Snapshot::binding_limit() const {
  for (const auto& l : limits)
    if (l.name == binding) return &l;
  return nullptr;
}

Snapshot probe(const ProbeConfig& cfg) {
  Snapshot s;
  s.taken_at_ms = now_ms();
  s.page_size = cfg.page_size ? cfg.page_size : machine_page_size();

  probe_beancounters(cfg, s);

  if (cfg.cgroup.mode != CgroupOptions::Mode::Off) {
    auto cg = read_cgroup(cfg.procfs, cfg.sysfs, cfg.cgroup);
    if (cg)
      s.cgroup = std::move(*cg.value);
    else
      s.unavailable.push_back({"cgroup", cg.error});
  }

  auto oc = read_overcommit(cfg.procfs);
  if (oc)
    s.overcommit = std::move(*oc.value);
  else
    s.unavailable.push_back({"overcommit", oc.error});

  auto sv = read_sysv(cfg.procfs);
  if (sv)
    s.sysv = std::move(*sv.value);
  else
    s.unavailable.push_back({"sysv", sv.error});

  if (!cfg.devshm.empty()) {
    auto ds = read_devshm(cfg.devshm);
    if (ds)
      s.devshm = std::move(*ds.value);
    else
      s.unavailable.push_back({"devshm", ds.error});
  }

  compute_headroom(s);
  return s;
}

const char* binding_name(BindingLimit b) {
  switch (b) {
    case BindingLimit::Shmpages:
      return "beancounter:shmpages";
    case BindingLimit::Privvmpages:
      return "beancounter:privvmpages";
    case BindingLimit::Cgroup:
      return "cgroup:memory";
    case BindingLimit::Overcommit:
      return "overcommit";
    case BindingLimit::None:
      break;
  }
  return "";
}

BindingLimit binding_limit(std::string_view name) {
  for (BindingLimit b : {BindingLimit::Shmpages, BindingLimit::Privvmpages, BindingLimit::Cgroup,
                         BindingLimit::Overcommit})
    if (name == binding_name(b)) return b;
  return BindingLimit::None;
}

void compute_headroom(Snapshot& s) {
  s.limits.clear();

  // OpenVZ charges a shared anonymous mapping to shmpages (UB_HARD, against the barrier) and to
  // privvmpages: both refuse it.
  if (s.beancounters) {
    for (BindingLimit b : {BindingLimit::Shmpages, BindingLimit::Privvmpages}) {
      const std::string name = binding_name(b);
      const BeancounterRow* row = s.beancounters->block.find(name.substr(name.find(':') + 1));
      if (!row || row->barrier_unlimited()) continue;
      s.limits.push_back(
          Limit{name, sat_mul(row->barrier, s.page_size), sat_mul(row->held, s.page_size)});
    }
  }
  // A memory cgroup (own level or any ancestor) limits the pages once they are touched. Before it
  // fails a charge or OOM-kills, the kernel reclaims the level's clean file cache: what counts
  // against the limit is usage - reclaimable, level by level (README "Memory cgroups").
  if (s.cgroup) {
    std::optional<Limit> tightest;
    for (const auto& lvl : s.cgroup->levels) {
      if (!lvl.limit || !lvl.usage) continue;
      const std::optional<std::uint64_t> reclaimable = cgroup_reclaimable(lvl);
      Limit l{binding_name(BindingLimit::Cgroup), *lvl.limit, *lvl.usage - reclaimable.value_or(0),
              reclaimable};
      if (!tightest || l.headroom_bytes() < tightest->headroom_bytes()) tightest = l;
    }
    if (tightest) s.limits.push_back(*tightest);
  }
  // Strict overcommit charges the whole mapping at mmap time.
  if (s.overcommit && s.overcommit->mode == 2 && s.overcommit->commit_limit &&
      s.overcommit->committed_as) {
    s.limits.push_back(Limit{binding_name(BindingLimit::Overcommit), *s.overcommit->commit_limit,
                             *s.overcommit->committed_as});
  }

  choose_binding(s);
}

void choose_binding(Snapshot& s) {
  s.headroom_bytes.reset();
  s.binding.clear();
  const Limit* best = nullptr;
  for (const auto& l : s.limits)
    if (!best || l.headroom_bytes() < best->headroom_bytes()) best = &l;
  if (best) {
    s.headroom_bytes = best->headroom_bytes();
    s.binding = best->name;
  }
}

std::vector<Counter> raw_counters(const Snapshot& s) {
  std::vector<Counter> out;
  if (s.beancounters) {
    for (const auto& row : s.beancounters->block.rows) {
      std::string name = "beancounter:" + row.resource + ":failcnt";
      bool dup = false;  // placeholder rows ("dummy") repeat: count each name once
      for (const auto& c : out) dup = dup || c.name == name;
      if (!dup) out.push_back(Counter{std::move(name), row.failcnt, 0, 0});
    }
  }
  if (s.cgroup) {
    if (s.cgroup->failcnt) out.push_back(Counter{"cgroup:failcnt", *s.cgroup->failcnt, 0, 0});
    if (s.cgroup->events_max) out.push_back(Counter{"cgroup:max", *s.cgroup->events_max, 0, 0});
    if (s.cgroup->events_oom) out.push_back(Counter{"cgroup:oom", *s.cgroup->events_oom, 0, 0});
    if (s.cgroup->events_oom_kill)
      out.push_back(Counter{"cgroup:oom_kill", *s.cgroup->events_oom_kill, 0, 0});
  }
  return out;
}

bool counter_is_failure(std::string_view name) {
  return name.rfind("beancounter:", 0) == 0 || name == "cgroup:oom" || name == "cgroup:oom_kill";
}

void FailcntTracker::observe(std::int64_t now_ms, Snapshot& s) {
  std::vector<Counter> now = raw_counters(s);
  for (auto& c : now) {
    auto it = std::find_if(first_.begin(), first_.end(),
                           [&](const Counter& f) { return f.name == c.name; });
    if (it == first_.end()) {
      first_.push_back(c);
      continue;
    }
    if (c.value < it->value) it->value = c.value;  // counter reset (container restart): re-base
    c.since_start = c.value - it->value;
  }
  // Keep the samples inside the window (and at least the newest older one as its baseline).
  history_.push_back(Sample{now_ms, now});
  while (history_.size() > 1 && history_[1].at_ms <= now_ms - window_ms_) history_.pop_front();
  const Sample& base = history_.front();
  for (auto& c : now) {
    for (const auto& b : base.values) {
      if (b.name == c.name) {
        c.last_minute = c.value >= b.value ? c.value - b.value : 0;
        break;
      }
    }
  }
  s.counters = std::move(now);
}

template <class T>
void LastGoodReadings::keep(const char* source, std::optional<T>& now, Kept<T>& kept, Snapshot& s,
                            std::int64_t bound_ms, std::vector<Event>& out) {
  auto failed = std::find_if(s.unavailable.begin(), s.unavailable.end(),
                             [&](const Unavail& u) { return u.source == source; });
  if (now || failed == s.unavailable.end()) {
    // Read well, or not a source at all now (switched off): what is read now is the last good.
    if (now && kept.failing)
      out.push_back({Event::Kind::Back, source, "", s.taken_at_ms - kept.failing_since_ms});
    kept.failing = kept.expired = false;
    kept.value = now;
    kept.at_ms = s.taken_at_ms;
    return;
  }
  const std::string reason = failed->reason;
  if (!kept.failing) kept.failing_since_ms = s.taken_at_ms;
  const bool first = !kept.failing;
  kept.failing = true;
  const char* const too_old =
      " (its last good reading is too old to use: its limit is not applied)";
  if (kept.expired) failed->reason += too_old;
  if (!kept.value) return;  // never read well, or given up: unavailable
  const std::int64_t age = s.taken_at_ms - kept.at_ms;
  if (age < 0 || age > bound_ms) {  // too old (or the clock stepped back): given up
    out.push_back({Event::Kind::Expired, source, reason, age});
    kept.expired = true;
    kept.value.reset();
    failed->reason += too_old;
    return;
  }
  now = kept.value;
  failed->reason += " (the last good reading, " + std::to_string(age) +
                    " ms old, is used for up to " + std::to_string(bound_ms) + " ms)";
  if (first) out.push_back({Event::Kind::Held, source, reason, age});
}

std::vector<LastGoodReadings::Event> LastGoodReadings::apply(Snapshot& s, std::int64_t bound_ms) {
  std::vector<Event> out;
  keep("beancounter", s.beancounters, beancounters_, s, bound_ms, out);
  keep("cgroup", s.cgroup, cgroup_, s, bound_ms, out);
  keep("overcommit", s.overcommit, overcommit_, s, bound_ms, out);
  compute_headroom(s);
  return out;
}

}  // namespace shmguard
