// mod_shmguard core: the Prometheus writer. The snapshot's families (shmguard-probe --format
// prometheus writes them alone), then, for the status page's ?metrics, the workers', the
// findings', the sampler's and the vhosts'.
#include "shmguard/render.hpp"
#include "shmguard/status.hpp"
#include "writers.hpp"

namespace shmguard {

std::string prom_label(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out.push_back(c);
  }
  return out;
}

namespace {
using writers::Prom;

std::string lbl(std::initializer_list<std::pair<const char*, std::string>> kv) {
  std::string out;
  for (const auto& [k, v] : kv) {
    if (!out.empty()) out += ',';
    out += k;
    out += "=\"" + prom_label(v) + "\"";
  }
  return out;
}
}  // namespace

std::string render_prometheus(const Snapshot& s) {
  std::string out;
  if (s.beancounters && s.beancounters->lenient && !s.beancounters->format_notes.empty()) {
    // A comment line (neither HELP nor TYPE), one line whatever the file name holds.
    std::string note = "# NOTE: " + s.beancounters->file +
                       " is not in the kernel's exact format of /proc/user_beancounters (read "
                       "with --lenient)";
    for (const auto& n : s.beancounters->format_notes) note += "; " + n;
    for (char& c : note)
      if (c == '\n' || c == '\r') c = ' ';
    out += note + "\n";
  }
  Prom p(out);
  p.family("shmguard_headroom_bytes", "gauge",
           "Bytes of new shared memory the tightest limit still allows (+Inf: no finite limit).");
  if (s.headroom_bytes)
    p.sample("", *s.headroom_bytes);
  else
    p.sample_inf("");

  if (!s.limits.empty()) {
    p.family("shmguard_limit_bytes", "gauge", "Each limit that refuses a new shared mapping.");
    for (const auto& l : s.limits) p.sample(lbl({{"limit", l.name}}), l.limit_bytes);
    p.family("shmguard_limit_used_bytes", "gauge", "What is charged against each limit.");
    for (const auto& l : s.limits) p.sample(lbl({{"limit", l.name}}), l.used_bytes);
    p.family("shmguard_limit_binding", "gauge", "1 for the limit with the least headroom.");
    for (const auto& l : s.limits) p.sample(lbl({{"limit", l.name}}), l.name == s.binding ? 1 : 0);
  }

  p.family("shmguard_source_up", "gauge", "1 if the source could be read, 0 if unavailable.");
  auto up = [&](const char* src, bool ok) { p.sample(lbl({{"source", src}}), ok ? 1 : 0); };
  bool bc_unavail = false, cg_unavail = false;
  for (const auto& u : s.unavailable) {
    if (u.source == "beancounter") bc_unavail = true;
    if (u.source == "cgroup") cg_unavail = true;
  }
  if (s.beancounters || bc_unavail) up("beancounter", s.beancounters.has_value());
  if (s.cgroup || cg_unavail) up("cgroup", s.cgroup.has_value());
  up("overcommit", s.overcommit.has_value());
  up("sysv", s.sysv.has_value());
  up("devshm", s.devshm.has_value());

  if (s.beancounters) {
    const auto& bc = *s.beancounters;
    // One series per resource: placeholder rows (OpenVZ lists four "dummy") appear once.
    std::vector<const BeancounterRow*> rows;
    for (const auto& r : bc.block.rows) {
      bool seen = false;
      for (const auto* o : rows) seen = seen || o->resource == r.resource;
      if (!seen) rows.push_back(&r);
    }
    struct Col {
      const char* name;
      const char* help;
      std::uint64_t BeancounterRow::*field;
    };
    const Col cols[] = {
        {"shmguard_beancounter_held", "Beancounter held, in the resource's unit.",
         &BeancounterRow::held},
        {"shmguard_beancounter_maxheld", "Beancounter maxheld, in the resource's unit.",
         &BeancounterRow::maxheld},
        {"shmguard_beancounter_barrier", "Beancounter barrier (+Inf: unlimited).",
         &BeancounterRow::barrier},
        {"shmguard_beancounter_limit", "Beancounter limit (+Inf: unlimited).",
         &BeancounterRow::limit},
    };
    for (const auto& col : cols) {
      p.family(col.name, "gauge", col.help);
      for (const BeancounterRow* r : rows) {
        std::string l = lbl(
            {{"container", bc.block.id}, {"resource", r->resource}, {"unit", to_string(r->unit)}});
        bool inf = (col.field == &BeancounterRow::barrier && r->barrier_unlimited()) ||
                   (col.field == &BeancounterRow::limit && r->limit_unlimited());
        if (inf)
          p.sample_inf(l);
        else
          p.sample(l, r->*col.field);
      }
    }
    p.family("shmguard_beancounter_failcnt_total", "counter",
             "Times the kernel refused an allocation for this resource (failcnt).");
    for (const BeancounterRow* r : rows)
      p.sample(lbl({{"container", bc.block.id}, {"resource", r->resource}}), r->failcnt);
  }

  if (s.cgroup) {
    const auto& c = *s.cgroup;
    std::string l = lbl({{"dir", c.dir}, {"version", std::to_string(c.version)}});
    p.family("shmguard_cgroup_memory_limit_bytes", "gauge",
             "Memory cgroup limit (+Inf: unlimited).");
    if (c.limit)
      p.sample(l, *c.limit);
    else
      p.sample_inf(l);
    if (c.usage) {
      p.family("shmguard_cgroup_memory_usage_bytes", "gauge", "Memory cgroup usage.");
      p.sample(l, *c.usage);
    }
    if (auto r = c.levels.empty() ? std::nullopt : cgroup_reclaimable(c.levels.front())) {
      p.family("shmguard_cgroup_memory_reclaimable_bytes", "gauge",
               "Clean file cache the kernel reclaims before it fails a charge (inactive_file + "
               "active_file - dirty - writeback); headroom counts it as free.");
      p.sample(l, *r);
    }
    if (c.shmem) {
      p.family("shmguard_cgroup_memory_shmem_bytes", "gauge",
               "Shared memory (tmpfs, SysV, shared anonymous) charged to the cgroup.");
      p.sample(l, *c.shmem);
    }
    if (c.events_max || c.events_oom || c.events_oom_kill || c.failcnt) {
      p.family("shmguard_cgroup_memory_events_total", "counter",
               "Memory cgroup events (v2 memory.events; v1 failcnt and memory.oom_control "
               "oom_kill). Only oom and oom_kill are failures: max and failcnt count reclaim at "
               "the limit.");
      if (c.events_max) p.sample(lbl({{"dir", c.dir}, {"event", "max"}}), *c.events_max);
      if (c.events_oom) p.sample(lbl({{"dir", c.dir}, {"event", "oom"}}), *c.events_oom);
      if (c.events_oom_kill)
        p.sample(lbl({{"dir", c.dir}, {"event", "oom_kill"}}), *c.events_oom_kill);
      if (c.failcnt) p.sample(lbl({{"dir", c.dir}, {"event", "failcnt"}}), *c.failcnt);
    }
    if (c.pressure) {
      const std::pair<const char*, const std::optional<PsiLine>*> kinds[] = {
          {"some", &c.pressure->some}, {"full", &c.pressure->full}};
      p.family("shmguard_cgroup_memory_pressure_percent", "gauge",
               "Memory cgroup PSI (v2 memory.pressure): share of the last 10/60/300 s in which "
               "some or all (full) of its tasks were stalled on memory. Shown, never refused on.");
      for (const auto& [kind, line] : kinds)
        if (*line)
          for (const auto& [window, v] :
               {std::pair<const char*, std::uint32_t>{"avg10", (*line)->avg10},
                {"avg60", (*line)->avg60},
                {"avg300", (*line)->avg300}})
            p.line(lbl({{"dir", c.dir}, {"kind", kind}, {"window", window}}), psi_percent(v));
      p.family("shmguard_cgroup_memory_pressure_stalled_seconds_total", "counter",
               "Memory cgroup PSI total stall time (v2 memory.pressure total=, in seconds).");
      for (const auto& [kind, line] : kinds)
        if (*line)
          p.line(lbl({{"dir", c.dir}, {"kind", kind}}), writers::stall_seconds((*line)->total_us));
    }
  }

  // A gauge without labels, written only when the value is known.
  auto g = [&](const char* name, const char* help, const std::optional<std::uint64_t>& v) {
    if (!v) return;
    p.family(name, "gauge", help);
    p.sample("", *v);
  };
  if (s.overcommit) {
    const auto& m = *s.overcommit;
    p.family("shmguard_overcommit_mode", "gauge", "vm.overcommit_memory (2 = strict).");
    p.sample("", static_cast<std::uint64_t>(m.mode < 0 ? 0 : m.mode));
    g("shmguard_meminfo_commit_limit_bytes", "CommitLimit from /proc/meminfo.", m.commit_limit);
    g("shmguard_meminfo_committed_as_bytes", "Committed_AS from /proc/meminfo.", m.committed_as);
    g("shmguard_meminfo_shmem_bytes", "Shmem from /proc/meminfo.", m.shmem);
    g("shmguard_meminfo_available_bytes", "MemAvailable from /proc/meminfo.", m.mem_available);
  }

  if (s.sysv) {
    const auto& v = *s.sysv;
    g("shmguard_sysv_shmmax_bytes", "kernel.shmmax: largest SysV segment.", v.shmmax);
    g("shmguard_sysv_shmall_pages", "kernel.shmall: SysV shared memory in pages.", v.shmall);
    g("shmguard_sysv_shmmni", "kernel.shmmni: most SysV segments.", v.shmmni);
    if (v.segments) {
      p.family("shmguard_sysv_segments", "gauge", "SysV segments in /proc/sysvipc/shm.");
      p.sample("", v.segments->size());
      p.family("shmguard_sysv_segments_bytes", "gauge", "Total size of SysV segments.");
      p.sample("", v.segments_bytes());
    }
  }

  if (s.devshm) {
    std::string l = lbl({{"path", s.devshm->path}});
    p.family("shmguard_devshm_size_bytes", "gauge", "Size of the /dev/shm tmpfs.");
    p.sample(l, s.devshm->total);
    p.family("shmguard_devshm_avail_bytes", "gauge", "Space available in the /dev/shm tmpfs.");
    p.sample(l, s.devshm->avail);
  }

  if (!s.counters.empty()) {
    p.family("shmguard_failures_last_minute", "gauge",
             "Rise of each failure counter over the last minute.");
    for (const auto& c : s.counters) p.sample(lbl({{"counter", c.name}}), c.last_minute);
  }
  return out;
}

namespace {

void sample_time_family(Prom& p, std::int64_t taken_at_ms) {
  p.family("shmguard_sample_timestamp_seconds", "gauge", "When the sampler took this snapshot.");
  std::string v;
  fast::put_i(v, taken_at_ms / 1000);
  v.push_back('.');
  std::string ms = std::to_string(taken_at_ms % 1000);
  v.append(3 - std::min<std::size_t>(3, ms.size()), '0');
  v += ms;
  p.line("", v);
}

void worker_families(Prom& p, const WorkerTotals& t) {
  p.family("shmguard_fastcgi_workers", "gauge", "FastCGI worker processes seen by the sampler.");
  p.sample("backend=\"mod_fcgid\"", t.fcgid);
  p.sample("backend=\"php-fpm\"", t.fpm);
  p.family("shmguard_workers_degraded", "gauge", "Workers started lean (ShmGuardAction degrade).");
  p.sample("backend=\"mod_fcgid\"", t.lean);
  p.family("shmguard_fastcgi_shared_resident_bytes", "gauge",
           "Resident shared memory (RssShmem) of the workers.");
  p.sample("backend=\"mod_fcgid\"", t.rss_fcgid);
  p.sample("backend=\"php-fpm\"", t.rss_fpm);
  p.family("shmguard_fastcgi_segments", "gauge",
           "Distinct shared segments the workers map, by whether one worker or several map each.");
  p.sample("sharing=\"private\"", t.private_segments);
  p.sample("sharing=\"shared\"", t.segments - t.private_segments);
  p.family("shmguard_fastcgi_segment_bytes", "gauge", "Size of those segments.");
  p.sample("sharing=\"private\"", t.private_bytes);
  p.sample("sharing=\"shared\"", t.segment_bytes - t.private_bytes);
}

void finding_families(Prom& p, const SamplerPart& part) {
  p.family("shmguard_findings", "gauge", "Advisor findings on the current data, by severity.");
  for (const char* sev : {"critical", "warning", "info"})
    p.sample(std::string("severity=\"") + sev + "\"", part.findings_with(sev));
}

// "12.3" from ms, one decimal (the sample's age)
std::string seconds_tenths(std::int64_t ms) {
  return std::to_string(ms / 1000) + "." + std::to_string(ms % 1000 / 100);
}
// "0.500" from ms, three decimals (the interval)
std::string seconds_millis(std::int64_t ms) {
  std::string frac = std::to_string(ms % 1000);
  return std::to_string(ms / 1000) + "." +
         std::string(3 - std::min<std::size_t>(3, frac.size()), '0') + frac;
}

void health_families(Prom& p, const StatusModel& m) {
  const SamplerHealth& h = m.sampler;
  p.family("shmguard_state", "gauge", "1 for the current state of the guard, 0 for the others.");
  for (GuardState s :
       {GuardState::Ok, GuardState::Warning, GuardState::Refusing, GuardState::FailingOpen})
    p.sample(std::string("state=\"") + state_key(s) + "\"", s == m.headline.state ? 1 : 0);
  p.family("shmguard_failing_open", "gauge", "1 while no fresh sample exists (the guard serves).");
  p.sample("", h.fresh ? 0 : 1);
  p.family("shmguard_sampler_up", "gauge", "1 if a sampler process is running.");
  p.sample("", h.pid ? 1 : 0);
  p.family("shmguard_sample_age_seconds", "gauge", "Age of the last published sample.");
  if (h.age_ms < 0)
    p.sample_inf("");
  else
    p.line("", seconds_tenths(h.age_ms));
  p.family("shmguard_sampler_interval_seconds", "gauge", "ShmGuardInterval.");
  p.line("", seconds_millis(h.interval_ms));
  p.family("shmguard_samples_total", "counter", "Samples taken in this server generation.");
  p.sample("", h.samples);
  p.family("shmguard_sampler_starts_total", "counter",
           "Sampler processes started in this server generation.");
  p.sample("", h.starts);
  p.family("shmguard_class_table_full_requests_total", "counter",
           "Requests of a mod_fcgid class that found the class table full: not guarded.");
  p.sample("", h.class_table_full);
}

void vhost_families(Prom& p, const std::vector<VhostStatus>& vs) {
  if (vs.empty()) return;
  std::vector<std::string> vl;
  for (const auto& v : vs) vl.push_back("vhost=\"" + prom_label(v.label) + "\"");
  auto each = [&](const char* name, const char* type, const char* help, auto value) {
    p.family(name, type, help);
    for (std::size_t i = 0; i < vs.size(); ++i)
      p.sample(vl[i], static_cast<std::uint64_t>(value(vs[i])));
  };
  each("shmguard_vhost_guard_enabled", "gauge", "ShmGuard On (1) or Off (0) per vhost.",
       [](const VhostStatus& v) { return v.guard ? 1 : 0; });
  each("shmguard_vhost_dry_run", "gauge", "ShmGuardAction log (1) or refuse (0) per vhost.",
       [](const VhostStatus& v) { return v.dry_run ? 1 : 0; });
  each("shmguard_vhost_reserve_bytes", "gauge",
       "Headroom a new worker of the vhost needs (ShmGuardReserve, auto resolved).",
       [](const VhostStatus& v) { return v.reserve.bytes; });
  p.family("shmguard_vhost_need_basis", "gauge",
           "Which need the reserve is (1): mapped (a limit that charges at mmap), touched (a "
           "memory cgroup charges pages as touched) or fixed (ShmGuardReserve SIZE).");
  for (std::size_t i = 0; i < vs.size(); ++i)
    if (!vs[i].reserve.basis.empty())
      p.sample(vl[i] + ",basis=\"" + prom_label(vs[i].reserve.basis) + "\"", 1);
  p.family("shmguard_vhost_requests_total", "counter",
           "FastCGI-bound requests the guard decided on, by verdict.");
  for (std::size_t i = 0; i < vs.size(); ++i) {
    const VhostCounts& c = vs[i].counts;
    const std::pair<const char*, std::uint64_t> verdicts[] = {{"passed", c.passed},
                                                              {"refused", c.refused},
                                                              {"would_refuse", c.would_refuse},
                                                              {"failed_open", c.failed_open}};
    for (const auto& [name, n] : verdicts) p.sample(vl[i] + ",verdict=\"" + name + "\"", n);
  }
  p.family("shmguard_vhost_waits_total", "counter",
           "Requests that waited for a worker, by outcome (served, expired, queue_full).");
  for (std::size_t i = 0; i < vs.size(); ++i) {
    const VhostCounts& c = vs[i].counts;
    p.sample(vl[i] + ",outcome=\"served\"", c.wait_served);
    p.sample(vl[i] + ",outcome=\"expired\"", c.wait_expired);
    p.sample(vl[i] + ",outcome=\"queue_full\"", c.queue_full);
  }
  each("shmguard_vhost_lean_starts_total", "counter",
       "Lean workers the guard let start (ShmGuardAction degrade).",
       [](const VhostStatus& v) { return v.counts.lean_starts; });
  p.family("shmguard_vhost_reclaims_total", "counter",
           "Idle workers retired for another vhost's request (ShmGuardReclaim), by direction: "
           "given (the vhost's worker) or taken (for the vhost's request).");
  for (std::size_t i = 0; i < vs.size(); ++i) {
    const VhostCounts& c = vs[i].counts;
    p.sample(vl[i] + ",direction=\"given\"", c.reclaims_given);
    p.sample(vl[i] + ",direction=\"taken\"", c.reclaims_taken);
  }
  p.family("shmguard_vhost_fair_share_workers", "gauge",
           "The vhost's fair share of the workers the limit holds (max-min among the sites with "
           "demand); only where known (a finite limit, mod_fcgid).");
  for (std::size_t i = 0; i < vs.size(); ++i)
    if (vs[i].fair_share >= 0) p.sample(vl[i], static_cast<std::uint64_t>(vs[i].fair_share));
  p.family("shmguard_vhost_waiting_requests", "gauge",
           "The vhost's requests waiting now, by what for: worker (of its class), reclaim (room "
           "freed by a reclaim), measure (the spawn being measured), share (its fair share).");
  for (std::size_t i = 0; i < vs.size(); ++i)
    for (std::size_t r = 1; r < kWaitReasons; ++r)
      p.sample(vl[i] + ",reason=\"" + to_string(static_cast<WaitFor>(r)) + "\"",
               static_cast<std::uint64_t>(vs[i].waiting_now[r]));
  each("shmguard_vhost_fpm_requests_total", "counter",
       "PHP-FPM-bound requests (mod_proxy_fcgi): never refused for shared memory.",
       [](const VhostStatus& v) { return v.counts.fpm; });
  each("shmguard_vhost_fpm_low_headroom_total", "counter",
       "PHP-FPM-bound requests served with the headroom below ShmGuardWarnBelow.",
       [](const VhostStatus& v) { return v.counts.fpm_low; });
  each("shmguard_vhost_workers_fit", "gauge",
       "More workers of the vhost's reserve that the headroom holds now.",
       [](const VhostStatus& v) { return v.fit_more; });
  each("shmguard_vhost_max_processes_fit", "gauge",
       "The FcgidMaxProcessesPerClass the vhost's share of the limit holds.",
       [](const VhostStatus& v) { return v.max_processes_fit; });
  each("shmguard_vhost_translated_total", "counter",
       "Backend 500s caused by shared-memory exhaustion, answered as 503.",
       [](const VhostStatus& v) { return v.counts.translated; });
  p.family("shmguard_vhost_last_refusal_timestamp_seconds", "gauge",
           "When the vhost last refused a request (0: never).");
  for (std::size_t i = 0; i < vs.size(); ++i)
    p.line(vl[i], std::to_string(vs[i].counts.last_refusal_ms / 1000));
}

}  // namespace

void fpm_pool_families(Prom& p, const std::vector<FpmPool>& pools) {
  if (pools.empty()) return;
  std::vector<std::string> pl;
  for (const std::string& k : fpm_pool_keys(pools)) pl.push_back("pool=\"" + prom_label(k) + "\"");
  p.family("shmguard_fpm_pool_up", "gauge",
           "PHP-FPM pool status read (1) or not (0: no ShmGuardFpmPool, or unreadable).");
  for (std::size_t i = 0; i < pools.size(); ++i) p.sample(pl[i], pools[i].ok ? 1 : 0);
  p.family("shmguard_fpm_pool_processes", "gauge", "PHP-FPM pool children by state.");
  for (std::size_t i = 0; i < pools.size(); ++i)
    if (pools[i].ok) {
      p.sample(pl[i] + ",state=\"idle\"", pools[i].status.idle);
      p.sample(pl[i] + ",state=\"active\"", pools[i].status.active);
    }
  auto each = [&](const char* name, const char* type, const char* help, auto value) {
    p.family(name, type, help);
    for (std::size_t i = 0; i < pools.size(); ++i)
      if (pools[i].ok) p.sample(pl[i], value(pools[i].status));
  };
  each("shmguard_fpm_pool_listen_queue", "gauge", "Requests waiting in the pool's listen queue.",
       [](const FpmPoolStatus& s) { return s.listen_queue; });
  each("shmguard_fpm_pool_max_children_reached_total", "counter",
       "Times the pool reached pm.max_children.",
       [](const FpmPoolStatus& s) { return s.max_children_reached; });
  each("shmguard_fpm_pool_slow_requests_total", "counter",
       "Requests over the pool's request_slowlog_timeout.",
       [](const FpmPoolStatus& s) { return s.slow_requests; });
  auto configured = [&](const char* name, const char* help, auto value) {
    p.family(name, "counter", help);
    for (std::size_t i = 0; i < pools.size(); ++i)
      if (pools[i].configured) p.sample(pl[i], value(pools[i]));
  };
  configured("shmguard_fpm_pool_fork_failures_total",
             "FPM's \"fork() failed\" lines in its error log (ShmGuardFpmPool's third argument).",
             [](const FpmPool& f) { return f.fork_failures; });
  configured("shmguard_fpm_pool_translated_total",
             "mod_proxy_fcgi errors for the pool answered with the diagnosed 503 (SG0230).",
             [](const FpmPool& f) { return f.translated; });
}

std::string write_status_prometheus(const StatusModel& m) {
  std::string out;
  if (m.part) {
    out = render_prometheus(m.part->snap);
    out.reserve(out.size() + 4096);
  }
  Prom p(out);
  if (m.part) {
    sample_time_family(p, m.part->snap.taken_at_ms);
    worker_families(p, m.part->workers.totals);
    finding_families(p, *m.part);
    fpm_pool_families(p, m.part->fpm_pools);
  }
  health_families(p, m);
  vhost_families(p, m.vhosts);
  return out;
}

}  // namespace shmguard
