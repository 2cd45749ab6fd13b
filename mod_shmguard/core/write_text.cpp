// mod_shmguard core: the text writer (shmguard-probe's default output: vzubc-like and more).
#include <cstdio>
#include <sstream>

#include "shmguard/render.hpp"
#include "shmguard/units.hpp"
#include "writers.hpp"

namespace shmguard {
using text::sat_mul;
using writers::bc_bytes;
using writers::overcommit_mode_name;

namespace {

std::string opt_human(const std::optional<std::uint64_t>& v) {
  return v ? human_bytes(*v) + " (" + std::to_string(*v) + ")" : std::string("unknown");
}

std::string limit_detail(const Snapshot& s, const Limit& l) {
  std::string out = human_bytes(l.used_bytes) + " of " + human_bytes(l.limit_bytes) + " used";
  if (l.reclaimable_bytes)
    out += " (usage " + human_bytes(l.used_bytes + *l.reclaimable_bytes) +
           " less reclaimable cache " + human_bytes(*l.reclaimable_bytes) + ")";
  if (s.beancounters && l.name.rfind("beancounter:", 0) == 0) {
    const BeancounterRow* r = s.beancounters->block.find(l.name.substr(12));
    if (r)
      out += ", " + std::to_string(r->held) + "/" + std::to_string(r->barrier) +
             " pages held/barrier, failcnt " + std::to_string(r->failcnt);
  }
  return out;
}

std::string pad(std::string s, std::size_t w, bool right = true) {
  if (s.size() >= w) return s;
  return right ? std::string(w - s.size(), ' ') + s : s + std::string(w - s.size(), ' ');
}

}  // namespace

std::string render_text(const Snapshot& s) {
  std::ostringstream o;
  if (s.beancounters && s.beancounters->lenient) {
    const auto& bc = *s.beancounters;
    if (bc.format_notes.empty()) {
      o << "note: " << bc.file
        << " was read leniently (--lenient) and is in the kernel's exact format\n";
    } else {
      o << "NOTE: " << bc.file
        << " is NOT in the kernel's exact format of /proc/user_beancounters; read leniently "
           "(--lenient):";
      for (std::size_t i = 0; i < bc.format_notes.size(); ++i)
        o << (i ? "; " : " ") << bc.format_notes[i];
      o << "\n";
    }
  }
  if (s.headroom_bytes) {
    const Limit* b = s.binding_limit();
    o << "headroom " << human_bytes(*s.headroom_bytes) << " (" << *s.headroom_bytes
      << " bytes) for new shared memory, bound by " << s.binding;
    if (b) o << " (" << limit_detail(s, *b) << ")";
    o << "\n";
  } else {
    o << "headroom unbounded: no finite shared-memory limit found among the sources read\n";
  }

  if (!s.limits.empty()) {
    o << "\nLimits that refuse a new shared anonymous mapping (what OPcache allocates):\n";
    for (const auto& l : s.limits)
      o << "  " << pad(l.name, 26, false) << " headroom "
        << pad(human_bytes(l.headroom_bytes()), 10) << "  (" << limit_detail(s, l) << ")"
        << (l.name == s.binding ? "  <- binding" : "") << "\n";
  }

  if (s.beancounters) {
    const auto& bc = *s.beancounters;
    o << "\nBeancounters: " << bc.file << ", container " << bc.block.id;
    if (!bc.version.empty()) o << ", version " << bc.version;
    if (!bc.version_known && !bc.version.empty())
      o << " (not 2.5: parsed because the columns match)";
    if (bc.version.empty() && bc.lenient) o << ", no version (no 'Version:' line)";
    if (bc.blocks_in_file > 1) o << ", " << bc.blocks_in_file << " containers in the file";
    o << "\n  " << pad("resource", 14, false) << pad("held", 20) << pad("maxheld", 20)
      << pad("barrier", 20) << pad("limit", 20) << pad("failcnt", 10) << "  in use\n";
    for (const auto& r : bc.block.rows) {
      auto num = [](std::uint64_t v, bool unlimited) {
        return unlimited ? std::string("unlimited") : std::to_string(v);
      };
      o << "  " << pad(r.resource, 14, false) << pad(std::to_string(r.held), 20)
        << pad(std::to_string(r.maxheld), 20) << pad(num(r.barrier, r.barrier_unlimited()), 20)
        << pad(num(r.limit, r.limit_unlimited()), 20) << pad(std::to_string(r.failcnt), 10);
      auto held = bc_bytes(r, r.held, s.page_size);
      if (held) {
        o << "  " << human_bytes(*held);
        if (!r.barrier_unlimited())
          o << " of " << human_bytes(*bc_bytes(r, r.barrier, s.page_size));
      }
      o << "\n";
    }
  }

  if (s.cgroup) {
    const auto& c = *s.cgroup;
    o << "\ncgroup v" << c.version << " memory: " << c.dir << "\n";
    o << "  limit " << (c.limit ? opt_human(c.limit) : std::string("unlimited")) << ", usage "
      << opt_human(c.usage) << "\n";
    if (!c.levels.empty())
      o << "  reclaimable cache " << writers::reclaimable_words(c.levels.front()) << "\n";
    o << "  shmem " << opt_human(c.shmem);
    if (c.file) o << ", file " << opt_human(c.file);
    if (c.anon) o << ", anon " << opt_human(c.anon);
    o << "\n";
    if (c.version == 1 && c.events_oom_kill)
      o << "  oom_kill " << *c.events_oom_kill << " (memory.oom_control)\n";
    else if (c.events_max || c.events_oom || c.events_oom_kill)
      o << "  events: max " << c.events_max.value_or(0) << ", oom " << c.events_oom.value_or(0)
        << ", oom_kill " << c.events_oom_kill.value_or(0) << "\n";
    if (c.failcnt) o << "  failcnt " << *c.failcnt << "\n";
    if (c.pressure) o << "  memory pressure " << writers::pressure_words(*c.pressure) << "\n";
    for (std::size_t i = 1; i < c.levels.size(); ++i)
      if (c.levels[i].limit)
        o << "  ancestor " << c.levels[i].dir << ": limit " << opt_human(c.levels[i].limit)
          << ", usage " << opt_human(c.levels[i].usage) << ", reclaimable cache "
          << writers::reclaimable_words(c.levels[i]) << "\n";
  }

  if (s.overcommit) {
    const auto& m = *s.overcommit;
    o << "\nOvercommit: vm.overcommit_memory = " << m.mode << " (" << overcommit_mode_name(m.mode)
      << (m.mode == 2 ? ": every shared mapping is charged at mmap" : ": does not refuse mappings")
      << ")\n";
    o << "  CommitLimit " << opt_human(m.commit_limit) << ", Committed_AS "
      << opt_human(m.committed_as) << "\n";
    o << "  Shmem " << opt_human(m.shmem) << ", MemAvailable " << opt_human(m.mem_available)
      << "\n";
  }

  if (s.sysv) {
    const auto& v = *s.sysv;
    o << "\nSysV shared memory (binds SysV segments only):\n";
    o << "  shmmax " << opt_human(v.shmmax) << ", shmall ";
    if (v.shmall)
      o << *v.shmall << " pages (" << human_bytes(sat_mul(*v.shmall, s.page_size)) << ")";
    else
      o << "unknown";
    o << ", shmmni " << (v.shmmni ? std::to_string(*v.shmmni) : std::string("unknown")) << "\n";
    if (v.segments)
      o << "  " << v.segments->size() << " segments, " << human_bytes(v.segments_bytes()) << "\n";
  }

  if (s.devshm) {
    o << "\n/dev/shm (" << s.devshm->path
      << ", tmpfs; does not limit anonymous shared mappings): " << human_bytes(s.devshm->total)
      << " size, " << human_bytes(s.devshm->avail) << " available\n";
  }

  if (!s.counters.empty()) {
    bool any = false;
    for (const auto& c : s.counters) {
      if (c.value == 0 && c.since_start == 0) continue;
      if (!any) o << "\nFailure counters:\n";
      any = true;
      o << "  " << pad(c.name, 34, false) << " " << c.value << " (+" << c.since_start
        << " since start, +" << c.last_minute << " in the last minute)"
        << (counter_is_failure(c.name) ? "" : ": reclaim at the limit, not a failure") << "\n";
    }
  }

  if (!s.unavailable.empty()) {
    o << "\nUnavailable:\n";
    for (const auto& u : s.unavailable) o << "  " << pad(u.source, 12, false) << u.reason << "\n";
  }
  return o.str();
}

}  // namespace shmguard
