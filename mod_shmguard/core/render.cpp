// mod_shmguard core: text, JSON and Prometheus renderings of a snapshot.
#include "text.hpp"
#include "shmguard/render.hpp"

#include <cstdio>
#include <sstream>

#include "shmguard/units.hpp"

namespace shmguard {
using text::sat_mul;

namespace {

// Bytes for a beancounter value (pages converted, counts have none).
std::optional<std::uint64_t> bc_bytes(const BeancounterRow& r, std::uint64_t v,
                                      std::uint64_t page) {
  switch (r.unit) {
    case BcUnit::Pages:
      return sat_mul(v, page);
    case BcUnit::Bytes:
      return v;
    case BcUnit::Count:
      return std::nullopt;
  }
  return std::nullopt;
}

std::string opt_human(const std::optional<std::uint64_t>& v) {
  return v ? human_bytes(*v) + " (" + std::to_string(*v) + ")" : std::string("unknown");
}

const char* overcommit_mode_name(int mode) {
  switch (mode) {
    case 0:
      return "heuristic";
    case 1:
      return "always";
    case 2:
      return "strict";
  }
  return "unknown";
}

std::string limit_detail(const Snapshot& s, const Limit& l) {
  std::string out = human_bytes(l.used_bytes) + " of " + human_bytes(l.limit_bytes) + " used";
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
    o << "  shmem " << opt_human(c.shmem);
    if (c.file) o << ", file " << opt_human(c.file);
    if (c.anon) o << ", anon " << opt_human(c.anon);
    o << "\n";
    if (c.events_max || c.events_oom || c.events_oom_kill)
      o << "  events: max " << c.events_max.value_or(0) << ", oom " << c.events_oom.value_or(0)
        << ", oom_kill " << c.events_oom_kill.value_or(0) << "\n";
    if (c.failcnt) o << "  failcnt " << *c.failcnt << "\n";
    for (std::size_t i = 1; i < c.levels.size(); ++i)
      if (c.levels[i].limit)
        o << "  ancestor " << c.levels[i].dir << ": limit " << opt_human(c.levels[i].limit)
          << ", usage " << opt_human(c.levels[i].usage) << "\n";
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
        << " since start, +" << c.last_minute << " in the last minute)\n";
    }
  }

  if (!s.unavailable.empty()) {
    o << "\nUnavailable:\n";
    for (const auto& u : s.unavailable) o << "  " << pad(u.source, 12, false) << u.reason << "\n";
  }
  return o.str();
}

void write_json_members(JsonWriter& w, const Snapshot& s) {
  w.field("headroom_bytes", s.headroom_bytes);
  if (s.binding.empty())
    w.key("binding").null();
  else
    w.field("binding", s.binding);
  w.field("taken_at_ms", s.taken_at_ms);
  w.field("page_size", s.page_size);

  w.key("limits").begin_array();
  for (const auto& l : s.limits) {
    w.begin_object()
        .field("name", l.name)
        .field("limit_bytes", l.limit_bytes)
        .field("used_bytes", l.used_bytes)
        .field("headroom_bytes", l.headroom_bytes())
        .field("binding", l.name == s.binding)
        .end_object();
  }
  w.end_array();

  if (s.beancounters && s.beancounters->lenient) {
    // Only with --lenient: whether the file is the kernel's exact format, and how it differs.
    const auto& bc = *s.beancounters;
    w.key("beancounter_format").begin_object();
    w.field("read", "lenient");
    w.field("exact", bc.format_notes.empty());
    w.key("notes").begin_array();
    for (const auto& n : bc.format_notes) w.value(n);
    w.end_array();
    w.end_object();
  }

  w.key("sources").begin_array();
  if (s.beancounters) {
    const auto& bc = *s.beancounters;
    for (const auto& r : bc.block.rows) {
      w.begin_object()
          .field("source", "beancounter")
          .field("container", bc.block.id)
          .field("file", bc.file)
          .field("version", bc.version)
          .field("version_known", bc.version_known)
          .field("resource", r.resource)
          .field("held", r.held)
          .field("maxheld", r.maxheld)
          .field("barrier", r.barrier)
          .field("limit", r.limit)
          .field("failcnt", r.failcnt)
          .field("unit", to_string(r.unit))
          .field("barrier_unlimited", r.barrier_unlimited())
          .field("limit_unlimited", r.limit_unlimited())
          .field("held_bytes", bc_bytes(r, r.held, s.page_size))
          .field("maxheld_bytes", bc_bytes(r, r.maxheld, s.page_size));
      w.key("barrier_bytes");
      if (r.barrier_unlimited())
        w.null();
      else
        w.value(bc_bytes(r, r.barrier, s.page_size));
      w.key("limit_bytes");
      if (r.limit_unlimited())
        w.null();
      else
        w.value(bc_bytes(r, r.limit, s.page_size));
      w.end_object();
    }
  }
  if (s.cgroup) {
    const auto& c = *s.cgroup;
    w.begin_object()
        .field("source", "cgroup")
        .field("version", c.version)
        .field("dir", c.dir)
        .field("limit_bytes", c.limit)
        .field("usage_bytes", c.usage)
        .field("shmem_bytes", c.shmem)
        .field("file_bytes", c.file)
        .field("anon_bytes", c.anon)
        .field("failcnt", c.failcnt);
    w.key("events")
        .begin_object()
        .field("max", c.events_max)
        .field("oom", c.events_oom)
        .field("oom_kill", c.events_oom_kill)
        .end_object();
    w.key("levels").begin_array();
    for (const auto& l : c.levels)
      w.begin_object()
          .field("dir", l.dir)
          .field("limit_bytes", l.limit)
          .field("usage_bytes", l.usage)
          .end_object();
    w.end_array().end_object();
  }
  if (s.overcommit) {
    const auto& m = *s.overcommit;
    w.begin_object()
        .field("source", "overcommit")
        .field("mode", m.mode)
        .field("mode_name", overcommit_mode_name(m.mode))
        .field("commit_limit_bytes", m.commit_limit)
        .field("committed_as_bytes", m.committed_as)
        .field("shmem_bytes", m.shmem)
        .field("mem_available_bytes", m.mem_available)
        .field("mem_total_bytes", m.mem_total)
        .end_object();
  }
  if (s.sysv) {
    const auto& v = *s.sysv;
    w.begin_object()
        .field("source", "sysv")
        .field("shmmax_bytes", v.shmmax)
        .field("shmall_pages", v.shmall);
    w.key("shmall_bytes");
    if (v.shmall)
      w.value(sat_mul(*v.shmall, s.page_size));
    else
      w.null();
    w.field("shmmni", v.shmmni);
    w.key("segments");
    if (v.segments)
      w.value(static_cast<std::uint64_t>(v.segments->size()));
    else
      w.null();
    w.field("segments_bytes", v.segments_bytes()).end_object();
  }
  if (s.devshm) {
    w.begin_object()
        .field("source", "devshm")
        .field("path", s.devshm->path)
        .field("total_bytes", s.devshm->total)
        .field("free_bytes", s.devshm->free)
        .field("avail_bytes", s.devshm->avail)
        .end_object();
  }
  w.end_array();

  w.key("unavailable").begin_array();
  for (const auto& u : s.unavailable)
    w.begin_object().field("source", u.source).field("reason", u.reason).end_object();
  w.end_array();

  w.key("counters").begin_array();
  for (const auto& c : s.counters)
    w.begin_object()
        .field("name", c.name)
        .field("value", c.value)
        .field("since_start", c.since_start)
        .field("last_minute", c.last_minute)
        .end_object();
  w.end_array();
}

std::string render_json(const Snapshot& s) {
  JsonWriter w;
  w.begin_object();
  write_json_members(w, s);
  w.end_object();
  return w.take() + "\n";
}

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
// Writes one metric family: HELP, TYPE, then samples.
class Prom {
 public:
  explicit Prom(std::string& out) : out_(out) {}
  void family(const char* name, const char* type, const char* help) {
    name_ = name;
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  void sample(const std::string& labels, std::uint64_t v) { line(labels, std::to_string(v)); }
  void sample_inf(const std::string& labels) { line(labels, "+Inf"); }
  void line(const std::string& labels, const std::string& v) {
    out_ += name_;
    if (!labels.empty()) out_ += "{" + labels + "}";
    out_ += ' ';
    out_ += v;
    out_ += '\n';
  }

 private:
  std::string& out_;
  std::string name_;
};

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
    if (c.shmem) {
      p.family("shmguard_cgroup_memory_shmem_bytes", "gauge",
               "Shared memory (tmpfs, SysV, shared anonymous) charged to the cgroup.");
      p.sample(l, *c.shmem);
    }
    if (c.events_max || c.events_oom || c.events_oom_kill || c.failcnt) {
      p.family("shmguard_cgroup_memory_events_total", "counter",
               "Memory cgroup events (v2 memory.events; v1 failcnt).");
      if (c.events_max) p.sample(lbl({{"dir", c.dir}, {"event", "max"}}), *c.events_max);
      if (c.events_oom) p.sample(lbl({{"dir", c.dir}, {"event", "oom"}}), *c.events_oom);
      if (c.events_oom_kill)
        p.sample(lbl({{"dir", c.dir}, {"event", "oom_kill"}}), *c.events_oom_kill);
      if (c.failcnt) p.sample(lbl({{"dir", c.dir}, {"event", "failcnt"}}), *c.failcnt);
    }
  }

  if (s.overcommit) {
    const auto& m = *s.overcommit;
    p.family("shmguard_overcommit_mode", "gauge", "vm.overcommit_memory (2 = strict).");
    p.sample("", static_cast<std::uint64_t>(m.mode < 0 ? 0 : m.mode));
    auto g = [&](const char* name, const char* help, const std::optional<std::uint64_t>& v) {
      if (!v) return;
      p.family(name, "gauge", help);
      p.sample("", *v);
    };
    g("shmguard_meminfo_commit_limit_bytes", "CommitLimit from /proc/meminfo.", m.commit_limit);
    g("shmguard_meminfo_committed_as_bytes", "Committed_AS from /proc/meminfo.", m.committed_as);
    g("shmguard_meminfo_shmem_bytes", "Shmem from /proc/meminfo.", m.shmem);
    g("shmguard_meminfo_available_bytes", "MemAvailable from /proc/meminfo.", m.mem_available);
  }

  if (s.sysv) {
    const auto& v = *s.sysv;
    auto g = [&](const char* name, const char* help, const std::optional<std::uint64_t>& val) {
      if (!val) return;
      p.family(name, "gauge", help);
      p.sample("", *val);
    };
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

}  // namespace shmguard
