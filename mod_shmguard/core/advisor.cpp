// mod_shmguard core: the advisor.
#include "shmguard/advisor.hpp"
#include "shmguard/rules.hpp"
#include "shmguard/need.hpp"

#include <algorithm>
#include <cstdio>

#include "shmguard/units.hpp"

namespace shmguard {

std::string compact_bytes(std::uint64_t bytes) {
  std::string h = human_bytes(bytes);
  auto dot = h.find(".0 ");
  if (dot != std::string::npos) h.erase(dot, 2);
  return h;
}

std::vector<SegmentUse> segment_uses(const std::vector<WorkerRow>& workers) {
  return segment_sharing(workers).uses;
}

SegmentSharing segment_sharing(const std::vector<WorkerRow>& workers) {
  SegmentSharing out;
  out.first.reserve(workers.size() + 1);
  std::size_t total = 0;
  for (const auto& w : workers) {
    out.first.push_back(static_cast<std::uint32_t>(total));
    total += w.segments.size();
  }
  out.first.push_back(static_cast<std::uint32_t>(total));
  out.use_of.assign(total, 0);
  if (total == 0) return out;

  // Every worker segment once, sorted by identity then by position: a run of equal identities is
  // one segment, and its first element is where it was first seen.
  struct Entry {
    std::uint32_t dev_major, dev_minor;
    std::uint64_t inode;
    std::uint32_t at;      // position in worker then segment order
    std::uint32_t worker;  // index into workers
  };
  std::vector<Entry> es;
  es.reserve(total);
  for (std::size_t i = 0; i < workers.size(); ++i) {
    std::uint32_t at = out.first[i];
    for (const auto& s : workers[i].segments)
      es.push_back(Entry{s.dev_major, s.dev_minor, s.inode, at++, static_cast<std::uint32_t>(i)});
  }
  auto same = [](const Entry& a, const Entry& b) {
    return a.dev_major == b.dev_major && a.dev_minor == b.dev_minor && a.inode == b.inode;
  };
  std::sort(es.begin(), es.end(), [](const Entry& a, const Entry& b) {
    if (a.dev_major != b.dev_major) return a.dev_major < b.dev_major;
    if (a.dev_minor != b.dev_minor) return a.dev_minor < b.dev_minor;
    if (a.inode != b.inode) return a.inode < b.inode;
    return a.at < b.at;
  });
  // Runs [begin, end) of es, one per segment, indexed by where each was first seen: in that
  // order they are the uses.
  constexpr std::uint32_t kNone = UINT32_MAX;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> run_at(total, {kNone, kNone});
  std::size_t n_runs = 0;
  for (std::size_t b = 0, e; b < es.size(); b = e) {
    for (e = b + 1; e < es.size() && same(es[b], es[e]);) ++e;
    run_at[es[b].at] = {static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(e)};
    ++n_runs;
  }
  out.uses.reserve(n_runs);
  for (const auto& [b, e] : run_at) {
    if (b == kNone) continue;
    const Entry& head = es[b];
    SegmentUse u{workers[head.worker].segments[head.at - out.first[head.worker]], {}};
    u.pids.reserve(e - b);
    for (std::uint32_t k = b; k < e; ++k) {
      const Entry& x = es[k];
      const Segment& s = workers[x.worker].segments[x.at - out.first[x.worker]];
      if (s.size > u.seg.size) u.seg.size = s.size;
      u.pids.push_back(workers[x.worker].pid);
      out.use_of[x.at] = static_cast<std::uint32_t>(out.uses.size());
    }
    std::sort(u.pids.begin(), u.pids.end());
    u.pids.erase(std::unique(u.pids.begin(), u.pids.end()), u.pids.end());
    out.uses.push_back(std::move(u));
  }
  return out;
}

namespace {

std::string plural(std::uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// "beancounter:shmpages:failcnt" -> "beancounter shmpages failcnt"
std::string counter_words(const std::string& name) {
  std::string out = name;
  std::replace(out.begin(), out.end(), ':', ' ');
  if (name.rfind("cgroup:", 0) == 0) out = "cgroup memory " + name.substr(7) + " events";
  if (name == "cgroup:failcnt") out = "cgroup memory failcnt";
  return out;
}

bool is_memory_segment(const Segment& s) {
  return s.kind != "file";
}

// Smaller shared mappings are not a cache (php-fpm's scoreboard, for instance).
constexpr std::uint64_t kMinCache = 1u << 20;

}  // namespace

std::vector<Finding> advise(const Snapshot& snap, const std::vector<WorkerRow>& workers) {
  return advise(snap, workers, segment_sharing(workers));
}

std::vector<Finding> advise(const Snapshot& snap, const std::vector<WorkerRow>& workers,
                            const SegmentSharing& sharing) {
  std::vector<Finding> out;
  const std::vector<SegmentUse>& uses = sharing.uses;

  // 1. Failure counters that rose: the kernel refused allocations or OOM-killed. Not v1's failcnt
  // nor v2's "max": they count reclaim at the cgroup's limit, which a full page cache does.
  for (const auto& c : snap.counters) {
    if (!counter_is_failure(c.name)) continue;
    bool bc_shm =
        c.name == "beancounter:shmpages:failcnt" || c.name == "beancounter:privvmpages:failcnt";
    if (c.last_minute > 0) {
      std::string t = counter_words(c.name) + " rose by " + std::to_string(c.last_minute) +
                      " in the last minute (now " + std::to_string(c.value) + ")";
      if (bc_shm)
        t += ": the kernel refused that many allocations; a php-cgi that cannot get its OPcache "
             "segment dies with \"Unable to allocate shared memory segment\". Free shared memory "
             "or raise the container's limit.";
      else if (c.name.rfind("beancounter:", 0) == 0)
        t += ": the kernel refused that many allocations of this resource.";
      else if (c.name == "cgroup:oom_kill")
        t += ": the memory cgroup's OOM killer killed that many processes.";
      else
        t += ": the memory cgroup ran out of memory that reclaim could not free.";
      out.push_back(Finding{
          "failcnt-rose", "critical", t, {{"last_minute", c.last_minute}, {"value", c.value}}});
    } else if (c.since_start > 0) {
      out.push_back(Finding{"failcnt-rose-earlier",
                            "warning",
                            counter_words(c.name) + " rose by " + std::to_string(c.since_start) +
                                " since the sampler started (now " + std::to_string(c.value) +
                                "), none in the last minute.",
                            {{"since_start", c.since_start}, {"value", c.value}}});
    }
  }

  // 2. php-cgi workers under mod_fcgid, each with its own segment: PHP-FPM would share one. A
  // worker's OPcache is the largest shared segment it maps; count it when no other worker maps it.
  std::uint64_t k_workers = 0, total = 0, largest_worker = 0;
  std::uint64_t smallest_seg = UINT64_MAX, largest_seg = 0;
  for (std::size_t i = 0; i < workers.size(); ++i) {
    const WorkerRow& w = workers[i];
    if (w.backend != "mod_fcgid") continue;
    const Segment* big = nullptr;
    std::size_t big_k = 0;
    for (std::size_t k = 0; k < w.segments.size(); ++k) {
      const Segment& s = w.segments[k];
      if (is_memory_segment(s) && (!big || s.size > big->size)) {
        big = &s;
        big_k = k;
      }
    }
    if (!big || big->size < kMinCache || sharing.users(i, big_k) != 1) continue;
    ++k_workers;
    total += big->size;
    smallest_seg = std::min(smallest_seg, big->size);
    largest_seg = std::max(largest_seg, big->size);
  }
  // A worker's whole need (need.hpp): every memory segment only it maps (OPcache + APCu + any
  // other), or under a memory cgroup what it touched.
  for (std::size_t i = 0; i < workers.size(); ++i) {
    const WorkerRow& w = workers[i];
    if (w.backend != "mod_fcgid") continue;
    std::uint64_t own = 0;
    for (std::size_t k = 0; k < w.segments.size(); ++k)
      if (is_memory_segment(w.segments[k]) && sharing.users(i, k) == 1) own += w.segments[k].size;
    largest_worker =
        std::max(largest_worker, class_need(snap, own, touched_bytes(w.rss_shmem, w.rss_anon)));
  }
  const NeedBasis basis = need_basis(snap.binding);
  const std::string need_words =
      std::string(" A worker's need here is ") + need_basis_text(basis, snap.binding) + ".";
  const std::uint64_t n_segments = k_workers;
  if (k_workers >= 2) {
    std::uint64_t saving = total - largest_seg;
    std::string sizes = smallest_seg == largest_seg
                            ? compact_bytes(largest_seg)
                            : compact_bytes(smallest_seg) + " to " + compact_bytes(largest_seg);
    std::string t = plural(k_workers, "php-cgi worker", "php-cgi workers") + " hold " +
                    plural(n_segments, "separate OPcache segment", "separate OPcache segments") +
                    " of " + sizes + " (" + compact_bytes(total) +
                    "); under PHP-FPM they would share one: " + compact_bytes(saving) +
                    " less. Serve PHP through PHP-FPM (mod_proxy_fcgi) instead of php-cgi under "
                    "mod_fcgid.";
    // What the pool would need (issue 21 item 4): one shared segment, against today's headroom
    // plus what these workers free when they stop; its children's private pages are charged to
    // privvmpages (or the memory cgroup) at each fork, not to shmpages.
    if (snap.headroom_bytes) {
      const std::uint64_t room = *snap.headroom_bytes + total;
      t += " A pool of " + std::to_string(k_workers) + " children needs one segment of " +
           compact_bytes(largest_seg) + " against today's headroom of " +
           compact_bytes(*snap.headroom_bytes) + " plus the " + compact_bytes(total) +
           " these workers free (" + (room >= largest_seg ? "it fits" : "it does not fit") +
           "), and " + std::to_string(k_workers) +
           " children's private pages, which a fork charges to privvmpages (or the memory "
           "cgroup), not to shmpages.";
    }
    out.push_back(Finding{"fcgid-private-opcache",
                          saving >= (64u << 20) ? "warning" : "info",
                          t,
                          {{"workers", k_workers},
                           {"segments", n_segments},
                           {"segment_bytes_min", smallest_seg},
                           {"segment_bytes_max", largest_seg},
                           {"total_bytes", total},
                           {"saving_bytes", saving}}});
  }

  // 3. How many more php-cgi workers the headroom allows (each allocates its own segments).
  if (snap.headroom_bytes && largest_worker > 0) {
    std::uint64_t h = *snap.headroom_bytes;
    const FitAdvice fit = fit_advice(h, k_workers, largest_worker, 0);
    const std::uint64_t more = fit.more;
    std::string bound = snap.binding.empty() ? std::string() : " (bound by " + snap.binding + ")";
    Finding f;
    f.id = "headroom-workers";
    f.numbers = {{"headroom_bytes", h},
                 {"worker_segment_bytes", largest_worker},
                 {"more_workers", more},
                 {"workers_now", k_workers},
                 {"need_touched", basis == NeedBasis::Touched ? 1u : 0u}};
    if (more == 0) {
      f.severity = "critical";
      f.text = "Headroom " + compact_bytes(h) + bound + " is less than the " +
               compact_bytes(largest_worker) +
               (basis == NeedBasis::Touched
                    ? " a new php-cgi worker touches: the kernel would have to OOM-kill to "
                      "charge it"
                    : " a new php-cgi worker allocates (all its private shared segments): a new "
                      "worker would die with \"Unable to allocate shared memory segment\"") +
               ", so mod_shmguard refuses requests that would need one. "
               "Free shared memory or move PHP to PHP-FPM.";
    } else {
      f.severity = more <= 2 ? "warning" : "info";
      f.text = "Headroom " + compact_bytes(h) + bound + " allows " +
               plural(more, "more php-cgi worker", "more php-cgi workers") + " of " +
               compact_bytes(largest_worker) + "; with the " + std::to_string(k_workers) +
               " running, keep FcgidMaxProcesses at or below " + std::to_string(fit.max_processes) +
               " or each worker beyond that will fail to start.";
    }
    f.text += need_words;
    out.push_back(std::move(f));
  }

  // 4. PHP-FPM processes sharing one segment (what the second finding recommends, seen working):
  // one finding per segment of cache size that only php-fpm processes map, several of them; the
  // largest kMaxFpmShareFindings, the others summed in one.
  std::vector<int> fpm_pids;  // pids of the php-fpm rows, sorted (a pid listed twice counts twice)
  bool fpm_pids_ready = false;
  struct FpmShare {
    std::size_t use, processes;
  };
  std::vector<FpmShare> shares;
  for (std::size_t ui = 0; ui < uses.size(); ++ui) {
    const SegmentUse& u = uses[ui];
    if (!u.shared() || !is_memory_segment(u.seg) || u.seg.size < kMinCache) continue;
    if (!fpm_pids_ready) {
      for (const auto& w : workers)
        if (w.backend == "php-fpm") fpm_pids.push_back(w.pid);
      std::sort(fpm_pids.begin(), fpm_pids.end());
      fpm_pids_ready = true;
    }
    std::size_t fpm = 0;
    for (int pid : u.pids) {
      auto [lo, hi] = std::equal_range(fpm_pids.begin(), fpm_pids.end(), pid);
      fpm += static_cast<std::size_t>(hi - lo);
    }
    if (fpm != u.pids.size()) continue;
    shares.push_back(FpmShare{ui, fpm});
  }
  if (shares.size() > kMaxFpmShareFindings) {  // the largest first (ties: first seen)
    std::stable_sort(shares.begin(), shares.end(), [&](const FpmShare& a, const FpmShare& b) {
      return uses[a.use].seg.size > uses[b.use].seg.size;
    });
  }
  for (std::size_t i = 0; i < shares.size() && i < kMaxFpmShareFindings; ++i) {
    const SegmentUse& u = uses[shares[i].use];
    // The saving measured: its pool children, as php-cgi workers under mod_fcgid, would each
    // map a segment of that size; shared, one.
    std::uint64_t children = 0;
    for (const auto& w : workers)
      if (w.backend == "php-fpm" && w.kind.rfind("php-fpm pool ", 0) == 0 &&
          std::binary_search(u.pids.begin(), u.pids.end(), w.pid))
        ++children;
    std::string t = std::to_string(shares[i].processes) +
                    " php-fpm processes share one OPcache segment of " + compact_bytes(u.seg.size) +
                    ": a new PHP-FPM worker needs no new shared memory.";
    const std::uint64_t saved = children >= 2 ? (children - 1) * u.seg.size : 0;
    if (saved)
      t += " Measured: as php-cgi workers under mod_fcgid its " + std::to_string(children) +
           " children would map " + compact_bytes(children * u.seg.size) + "; shared, " +
           compact_bytes(u.seg.size) + ": " + compact_bytes(saved) + " saved.";
    out.push_back(Finding{"fpm-shared-opcache",
                          "info",
                          t,
                          {{"processes", shares[i].processes},
                           {"segment_bytes", u.seg.size},
                           {"children", children},
                           {"saving_bytes", saved}}});
  }
  if (shares.size() > kMaxFpmShareFindings) {
    std::uint64_t n = shares.size() - kMaxFpmShareFindings, bytes = 0, most = 0;
    for (std::size_t i = kMaxFpmShareFindings; i < shares.size(); ++i) {
      bytes += uses[shares[i].use].seg.size;
      most = std::max<std::uint64_t>(most, shares[i].processes);
    }
    out.push_back(Finding{"fpm-shared-more",
                          "info",
                          plural(n, "more segment", "more segments") + " (" + compact_bytes(bytes) +
                              ") shared by php-fpm processes only (up to " + std::to_string(most) +
                              " processes each), listed as one finding.",
                          {{"segments", n}, {"total_bytes", bytes}, {"processes_max", most}}});
  }

  // 5. The memory cgroup is thrashing (PSI, v2): a warning, not a refusal. Pressure is not
  // headroom: it can be high with room left (reclaim of a busy page cache) and the guard cannot
  // tell from it what a new worker would cost; measured nowhere here (no v2 memory controller).
  if (snap.cgroup && snap.cgroup->pressure && snap.cgroup->pressure->full &&
      snap.cgroup->pressure->full->avg10 >= kPsiThrashingFullAvg10) {
    const PsiLine& full = *snap.cgroup->pressure->full;
    const std::uint32_t some = snap.cgroup->pressure->some ? snap.cgroup->pressure->some->avg10 : 0;
    out.push_back(Finding{
        "memory-pressure",
        "warning",
        "The memory cgroup " + snap.cgroup->dir +
            " is thrashing: all its tasks were stalled on "
            "memory " +
            psi_percent(full.avg10) + " % of the last 10 s (PSI full avg10; some " +
            psi_percent(some) + " %, full avg60 " + psi_percent(full.avg60) +
            " %). Reclaim cannot keep up and pages are read back as fast as they are dropped: "
            "PHP is slow although no allocation failed. mod_shmguard does not refuse on pressure; "
            "lower FcgidMaxProcesses or the workers' OPcache/APCu sizes, or raise the cgroup's "
            "memory.max.",
        {{"full_avg10_hundredths", full.avg10},
         {"full_avg60_hundredths", full.avg60},
         {"some_avg10_hundredths", some},
         {"full_total_us", full.total_us}}});
  }

  // 6. Nothing to guard against.
  if (!snap.headroom_bytes)
    out.push_back(
        Finding{"no-finite-limit",
                "info",
                "No finite limit on new shared memory was found among the sources read: "
                "the guard never refuses. If this is an OpenVZ/Virtuozzo container, check "
                "that /proc/user_beancounters is readable by the sampler.",
                {}});

  // At most kMaxFindings: the most severe kept (in their order), the rest said in one.
  if (out.size() > kMaxFindings) {
    auto rank = [](const Finding& f) {
      return f.severity == "critical" ? 0 : f.severity == "warning" ? 1 : 2;
    };
    std::stable_sort(out.begin(), out.end(),
                     [&](const Finding& a, const Finding& b) { return rank(a) < rank(b); });
    const std::uint64_t left = out.size() - (kMaxFindings - 1);
    out.resize(kMaxFindings - 1);
    out.push_back(Finding{"findings-left-out",
                          "info",
                          plural(left, "less severe finding", "less severe findings") +
                              " not shown (at most " + std::to_string(kMaxFindings) + ").",
                          {{"findings", left}}});
  }
  return out;
}

}  // namespace shmguard
