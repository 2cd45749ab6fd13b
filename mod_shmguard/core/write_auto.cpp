// mod_shmguard core: the ?auto writer ("Key: value" lines, like mod_status's ?auto), for the status
// page and the mod_status section. One function per part of the model.
#include <cctype>

#include "shmguard/status.hpp"
#include "writers.hpp"

namespace shmguard {

namespace {
using writers::AutoLines;

void headroom_lines(AutoLines& a, const std::optional<std::uint64_t>& headroom,
                    std::string_view binding) {
  if (headroom)
    a.line("ShmGuardHeadroomBytes", *headroom);
  else
    a.line("ShmGuardHeadroomBytes", "unbounded");
  a.line("ShmGuardBinding", binding.empty() ? std::string_view("none") : binding);
}

std::optional<std::uint64_t> hot_headroom(const HotValues& hot) {
  if (hot.headroom < 0) return std::nullopt;
  return static_cast<std::uint64_t>(hot.headroom);
}

void health_lines(AutoLines& a, const StatusModel& m) {
  const SamplerHealth& h = m.sampler;
  a.line("ShmGuardState", state_word(m.headline.state));
  a.line("ShmGuardStateDetail", m.headline.detail);
  a.line("ShmGuardFailingOpen", h.fresh ? "0" : "1");
  a.line("ShmGuardSamplerPid", static_cast<std::int64_t>(h.pid));
  a.line("ShmGuardSamplerIntervalMs", h.interval_ms);
  a.line("ShmGuardSampleAgeMs", h.age_ms);
  a.line("ShmGuardSamples", h.samples);
  a.line("ShmGuardSamplerStarts", h.starts);
  a.line("ShmGuardClassTableFullRequests", h.class_table_full);
}

void limit_lines(AutoLines& a, const Snapshot& snap) {
  for (const auto& l : snap.limits) {
    a.line("ShmGuardLimitBytes", l.name, l.limit_bytes);
    a.line("ShmGuardUsedBytes", l.name, l.used_bytes);
    if (l.reclaimable_bytes) a.line("ShmGuardReclaimableBytes", l.name, *l.reclaimable_bytes);
  }
}

void counter_lines(AutoLines& a, const Snapshot& snap) {
  for (const auto& c : snap.counters) {
    // The counters that matter for shared memory, and any other that ever rose.
    bool relevant = c.name.rfind("cgroup:", 0) == 0 ||
                    c.name.find(":shmpages:") != std::string::npos ||
                    c.name.find(":privvmpages:") != std::string::npos || c.value > 0;
    if (!relevant) continue;
    a.line("ShmGuardFailures", c.name, c.value);
    a.line("ShmGuardFailuresLastMinute", c.name, c.last_minute);
  }
  for (const auto& u : snap.unavailable) a.line("ShmGuardUnavailable", u.source, u.reason);
}

// The memory cgroup's PSI (v2 memory.pressure): ShmGuardMemoryPressure[some_avg10]: 1.20, ...
void pressure_lines(AutoLines& a, const Snapshot& snap) {
  if (!snap.cgroup || !snap.cgroup->pressure) return;
  const Psi& p = *snap.cgroup->pressure;
  for (const auto& [kind, line] :
       {std::pair<std::string, const std::optional<PsiLine>*>{"some", &p.some},
        {"full", &p.full}}) {
    if (!*line) continue;
    a.line("ShmGuardMemoryPressure", kind + "_avg10", psi_percent((*line)->avg10));
    a.line("ShmGuardMemoryPressure", kind + "_avg60", psi_percent((*line)->avg60));
    a.line("ShmGuardMemoryPressure", kind + "_avg300", psi_percent((*line)->avg300));
    a.line("ShmGuardMemoryPressureStalledUs", kind, (*line)->total_us);
  }
}

void worker_lines(AutoLines& a, const WorkerTotals& t) {
  a.line("ShmGuardWorkers", t.workers);
  a.line("ShmGuardWorkerSegments", t.segments);
  a.line("ShmGuardWorkerSegmentBytes", t.segment_bytes);
  a.line("ShmGuardWorkersDegraded", t.lean);
  a.line("ShmGuardWorkerPrivateSegments", t.private_segments);
  a.line("ShmGuardWorkerSharedResidentBytes", t.rss);
}

void finding_lines(AutoLines& a, const std::vector<Finding>& findings) {
  a.line("ShmGuardFindings", static_cast<std::uint64_t>(findings.size()));
  for (const auto& f : findings) a.line("ShmGuardFinding", f.id, f.text);
}

// A pool's name as a key's part: any local process may call itself "php-fpm: pool <name>".
std::string pool_key(std::string_view name) {
  std::string k;
  for (char c : name)
    k += std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_' ? c : '_';
  return k;
}

void fpm_pool_lines(AutoLines& a, const FpmPool& f, const std::string& key) {
  const std::string b = pool_key(key);
  a.line("ShmGuardFpmPoolUp", b, f.ok ? 1u : 0u);
  if (f.configured) {
    a.line("ShmGuardFpmPoolForkFailures", b, f.fork_failures);
    a.line("ShmGuardFpmPoolTranslated", b, f.translated);
  }
  if (!f.ok) return;
  a.line("ShmGuardFpmPoolIdle", b, f.status.idle);
  a.line("ShmGuardFpmPoolActive", b, f.status.active);
  a.line("ShmGuardFpmPoolTotal", b, f.status.total);
  a.line("ShmGuardFpmPoolListenQueue", b, f.status.listen_queue);
  a.line("ShmGuardFpmPoolMaxChildrenReached", b, f.status.max_children_reached);
  a.line("ShmGuardFpmPoolSlowRequests", b, f.status.slow_requests);
}

void vhost_lines(AutoLines& a, const VhostStatus& v) {
  const VhostCounts& c = v.counts;
  const std::string b = v.label;
  a.line("ShmGuardVhostGuard", b, v.guard ? "on" : "off");
  a.line("ShmGuardVhostReserveBytes", b, v.reserve.bytes);
  a.line("ShmGuardVhostNeedBasis", b, v.reserve.basis);
  a.line("ShmGuardVhostAction", b, v.action);
  a.line("ShmGuardVhostGuarded", b, c.guarded);
  a.line("ShmGuardVhostPassed", b, c.passed);
  a.line("ShmGuardVhostRefused", b, c.refused);
  a.line("ShmGuardVhostWouldRefuse", b, c.would_refuse);
  a.line("ShmGuardVhostFailedOpen", b, c.failed_open);
  a.line("ShmGuardVhostTranslated", b, c.translated);
  a.line("ShmGuardVhostWaited", b, c.waited);
  a.line("ShmGuardVhostWaitServed", b, c.wait_served);
  a.line("ShmGuardVhostWaitExpired", b, c.wait_expired);
  a.line("ShmGuardVhostQueueFull", b, c.queue_full);
  a.line("ShmGuardVhostLeanStarts", b, c.lean_starts);
  a.line("ShmGuardVhostReclaimsGiven", b, c.reclaims_given);
  a.line("ShmGuardVhostReclaimsTaken", b, c.reclaims_taken);
  if (v.fair_share >= 0)
    a.line("ShmGuardVhostFairShare", b, static_cast<std::uint64_t>(v.fair_share));
  a.line("ShmGuardVhostWaitingForWorker", b, v.waiting_now[static_cast<int>(WaitFor::Worker)]);
  a.line("ShmGuardVhostWaitingForReclaim", b, v.waiting_now[static_cast<int>(WaitFor::Reclaim)]);
  a.line("ShmGuardVhostWaitingForMeasure", b, v.waiting_now[static_cast<int>(WaitFor::Measure)]);
  a.line("ShmGuardVhostWaitingForShare", b, v.waiting_now[static_cast<int>(WaitFor::Share)]);
  a.line("ShmGuardVhostFpm", b, c.fpm);
  a.line("ShmGuardVhostFpmLowHeadroom", b, c.fpm_low);
  a.line("ShmGuardVhostWorkersFit", b, v.fit_more);
  a.line("ShmGuardVhostMaxProcessesFit", b, v.max_processes_fit);
  a.line("ShmGuardVhostPerWorkerFitBytes", b, v.per_worker_fit);
  a.line("ShmGuardVhostLastRefusal", b,
         c.last_refusal_ms ? iso_time(c.last_refusal_ms) : std::string("never"));
}

}  // namespace

std::string write_status_auto(const StatusModel& m) {
  std::string o;
  AutoLines a(o);
  health_lines(a, m);
  if (m.part) {
    const Snapshot& snap = m.part->snap;
    headroom_lines(a, snap.headroom_bytes, snap.binding);
    limit_lines(a, snap);
    counter_lines(a, snap);
    pressure_lines(a, snap);
    worker_lines(a, m.part->workers.totals);
    finding_lines(a, m.part->findings);
    const std::vector<std::string> keys = fpm_pool_keys(m.part->fpm_pools);
    for (std::size_t i = 0; i < keys.size(); ++i) fpm_pool_lines(a, m.part->fpm_pools[i], keys[i]);
  } else {  // nothing published yet: the hot values only
    headroom_lines(a, hot_headroom(m.headline.hot), m.headline.hot.binding);
  }
  for (const auto& v : m.vhosts) vhost_lines(a, v);
  return o;
}

ModStatusSums mod_status_sums(const StatusModel& m) {
  ModStatusSums s;
  for (const auto& v : m.vhosts) {
    s.guarded += v.counts.guarded;
    s.refused += v.counts.refused;
    s.translated += v.counts.translated;
  }
  if (m.part) {
    s.critical = m.part->findings_with("critical");
    s.warning = m.part->findings_with("warning");
  }
  return s;
}

std::string write_mod_status_auto(const StatusModel& m) {
  const ModStatusSums s = mod_status_sums(m);
  std::string o;
  AutoLines a(o);
  a.line("ShmGuardState", state_word(m.headline.state));
  headroom_lines(a, hot_headroom(m.headline.hot), m.headline.hot.binding);
  a.line("ShmGuardFailingOpen", m.sampler.fresh ? "0" : "1");
  a.line("ShmGuardSampleAgeMs", m.sampler.age_ms);
  a.line("ShmGuardGuarded", s.guarded);
  a.line("ShmGuardRefused", s.refused);
  a.line("ShmGuardTranslated", s.translated);
  a.line("ShmGuardFindingsCritical", s.critical);
  a.line("ShmGuardFindingsWarning", s.warning);
  return o;
}

}  // namespace shmguard
