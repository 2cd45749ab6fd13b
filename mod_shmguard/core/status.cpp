// mod_shmguard core: status sections (rendered by the sampler, concatenated by the handler).
#include "shmguard/status.hpp"

#include <algorithm>
#include <cstring>

#include "shmguard/guard.hpp"
#include "shmguard/json.hpp"
#include "shmguard/render.hpp"
#include "shmguard/units.hpp"

namespace shmguard {

std::string Template::fill(const std::function<std::string(std::int32_t)>& name) const {
  std::string out;
  out.reserve(text.size() + holes.size() * 16);
  std::size_t pos = 0;
  for (const auto& [off, id] : holes) {
    std::size_t at = std::min<std::size_t>(std::max<std::size_t>(off, pos), text.size());
    out.append(text, pos, at - pos);
    out += name(id);
    pos = at;
  }
  out.append(text, pos, std::string::npos);
  return out;
}

std::string human_duration(std::int64_t s) {
  if (s < 0) return "unknown";
  auto two = [](std::int64_t a, const char* ua, std::int64_t b, const char* ub) {
    std::string out = std::to_string(a) + ua;
    if (b) out += " " + std::to_string(b) + ub;
    return out;
  };
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return two(s / 60, "m", s % 60, "s");
  if (s < 86400) return two(s / 3600, "h", s / 60 % 60, "m");
  return two(s / 86400, "d", s / 3600 % 24, "h");
}

// ------------------------------------------------------------------------------ encoding
namespace {
constexpr std::string_view kMagic = "SGB2";

void put_u32(std::string& out, std::uint32_t v) {
  char b[4];
  std::memcpy(b, &v, 4);
  out.append(b, 4);
}
bool get_u32(std::string_view& in, std::uint32_t& v) {
  if (in.size() < 4) return false;
  std::memcpy(&v, in.data(), 4);
  in.remove_prefix(4);
  return true;
}
void put_str(std::string& out, const std::string& s) {
  put_u32(out, static_cast<std::uint32_t>(s.size()));
  out += s;
}
bool get_str(std::string_view& in, std::string& s) {
  std::uint32_t n;
  if (!get_u32(in, n) || n > in.size()) return false;
  s.assign(in.data(), n);
  in.remove_prefix(n);
  return true;
}
void put_tpl(std::string& out, const Template& t) {
  put_str(out, t.text);
  put_u32(out, static_cast<std::uint32_t>(t.holes.size()));
  for (const auto& [off, id] : t.holes) {
    put_u32(out, off);
    put_u32(out, static_cast<std::uint32_t>(id));
  }
}
bool get_tpl(std::string_view& in, Template& t) {
  std::uint32_t n;
  if (!get_str(in, t.text) || !get_u32(in, n) || n > in.size() / 8) return false;
  std::uint32_t prev = 0;
  for (std::uint32_t i = 0; i < n; ++i) {
    std::uint32_t off, id;
    if (!get_u32(in, off) || !get_u32(in, id)) return false;
    if (off < prev || off > t.text.size()) return false;  // holes in order, inside the text
    prev = off;
    t.holes.emplace_back(off, static_cast<std::int32_t>(id));
  }
  return true;
}
}  // namespace

std::string encode_sections(const StatusSections& s) {
  std::string out(kMagic);
  put_str(out, s.html_findings);
  put_str(out, s.html_limits);
  put_tpl(out, s.html_workers);
  put_str(out, s.html_sources);
  put_str(out, s.auto_text);
  put_tpl(out, s.json_members);
  put_str(out, s.metrics);
  put_u32(out, s.findings_critical);
  put_u32(out, s.findings_warning);
  put_u32(out, static_cast<std::uint32_t>(s.failures_last_minute & 0xffffffffu));
  put_u32(out, static_cast<std::uint32_t>(s.failures_last_minute >> 32));
  return out;
}

std::optional<StatusSections> decode_sections(std::string_view in) {
  if (in.substr(0, kMagic.size()) != kMagic) return std::nullopt;
  in.remove_prefix(kMagic.size());
  StatusSections s;
  std::uint32_t lo = 0, hi = 0;
  if (!get_str(in, s.html_findings) || !get_str(in, s.html_limits) ||
      !get_tpl(in, s.html_workers) || !get_str(in, s.html_sources) || !get_str(in, s.auto_text) ||
      !get_tpl(in, s.json_members) || !get_str(in, s.metrics) ||
      !get_u32(in, s.findings_critical) || !get_u32(in, s.findings_warning) || !get_u32(in, lo) ||
      !get_u32(in, hi) || !in.empty())
    return std::nullopt;
  s.failures_last_minute = (static_cast<std::uint64_t>(hi) << 32) | lo;
  return s;
}

// ------------------------------------------------------------------------------ rendering
namespace {

std::string esc(std::string_view s) {
  return html_escape(s);
}
std::string num(std::uint64_t v) {
  return std::to_string(v);
}

// "64.0 MiB<br><small>67108864 B</small>"
std::string bytes_cell(std::uint64_t v) {
  return esc(human_bytes(v)) + "<br><small>" + num(v) + " B</small>";
}

std::uint64_t sat_mul(std::uint64_t a, std::uint64_t b) {
  if (b != 0 && a > UINT64_MAX / b) return UINT64_MAX;
  return a * b;
}

std::string dev_inode(const Segment& s) {
  return std::to_string(s.dev_major) + ":" + std::to_string(s.dev_minor) + " inode " +
         std::to_string(s.inode);
}

const Counter* counter_named(const Snapshot& s, const std::string& name) {
  for (const auto& c : s.counters)
    if (c.name == name) return &c;
  return nullptr;
}

std::string rise_words(const Counter* c) {
  if (!c) return "";
  return "+" + num(c->since_start) + " since start, +" + num(c->last_minute) + " last minute";
}

std::string render_findings_html(const std::vector<Finding>& findings) {
  std::string h = "<h2 id=\"findings\">Findings</h2>\n";
  if (findings.empty())
    return h + "<p class=\"quiet\">Nothing on the data below calls for action.</p>\n";
  h += "<ul class=\"findings\">\n";
  for (const auto& f : findings)
    h += "<li class=\"" + esc(f.severity) + "\"><span class=\"sev\">" + esc(f.severity) +
         "</span> " + esc(f.text) + "</li>\n";
  return h + "</ul>\n";
}

std::string render_limits_html(const Snapshot& s) {
  std::string h = "<h2 id=\"limits\">Limits</h2>\n";
  if (s.limits.empty())
    return h + "<p>No finite limit on new shared memory was found among the sources read.</p>\n";
  h += "<p>A new shared anonymous mapping (what OPcache allocates) is refused by whichever of "
       "these has the least headroom.</p>\n"
       "<table>\n<thead><tr><th>limit</th><th>used</th><th>limit</th><th>headroom</th>"
       "<th>failures</th></tr></thead>\n<tbody>\n";
  for (const auto& l : s.limits) {
    bool binding = l.name == s.binding;
    const Counter* c = nullptr;
    if (l.name.rfind("beancounter:", 0) == 0) c = counter_named(s, l.name + ":failcnt");
    if (l.name == "cgroup:memory") c = counter_named(s, "cgroup:oom_kill");
    h += std::string("<tr") + (binding ? " class=\"binding\"" : "") + "><th scope=\"row\">" +
         esc(l.name) + (binding ? " <span class=\"tag\">binding</span>" : "") + "</th><td>" +
         bytes_cell(l.used_bytes) + "</td><td>" + bytes_cell(l.limit_bytes) + "</td><td>" +
         bytes_cell(l.headroom_bytes()) + "</td><td>" +
         (c ? num(c->value) + "<br><small>" + esc(rise_words(c)) + "</small>" : "") +
         "</td></tr>\n";
  }
  return h + "</tbody>\n</table>\n";
}

void render_workers_html(Template& t, const std::vector<WorkerRow>& workers,
                         const std::vector<SegmentUse>& uses) {
  t += "<h2 id=\"workers\">FastCGI workers</h2>\n";
  if (workers.empty()) {
    t += "<p class=\"quiet\">No FastCGI worker is running (mod_fcgid's process table is empty "
         "and no php-fpm process was found).</p>\n";
    return;
  }
  t += "<table class=\"workers\">\n<thead><tr><th>pid</th><th>backend</th><th>vhost</th>"
       "<th>class</th><th>state</th><th>command</th><th>uptime</th><th>shared resident</th>"
       "<th>shared segments (device inode, size, sharing)</th></tr></thead>\n<tbody>\n";
  auto users = [&](const Segment& s) -> std::size_t {
    for (const auto& u : uses)
      if (u.seg == s) return u.pids.size();
    return 0;
  };
  for (const auto& w : workers) {
    t += "<tr><td>" + std::to_string(w.pid) + "</td><td>" + esc(w.backend) + "<br><small>" +
         esc(w.kind) + "</small></td><td>";
    if (w.vhost_id != 0) {
      t.hole(w.vhost_id);
      t += "<br><small>mod_fcgid vhost id " + std::to_string(w.vhost_id) + "</small>";
    } else {
      t += "<small>not known</small>";
    }
    t += "</td><td class=\"cmd\">" + esc(w.klass) + "</td><td>" + esc(w.state) +
         "</td><td class=\"cmd\">" + esc(w.command) + "</td><td>" +
         esc(human_duration(w.uptime_s)) + "</td><td>" + bytes_cell(w.rss_shmem) + "</td><td>";
    if (!w.error.empty()) t += "<span class=\"err\">" + esc(w.error) + "</span><br>";
    if (w.segments.empty() && w.error.empty()) t += "<small>none</small>";
    for (const auto& s : w.segments) {
      std::size_t n = users(s);
      t += esc(s.kind) + " " + esc(dev_inode(s)) + ", " + esc(human_bytes(s.size)) + ", " +
           (n > 1 ? "<span class=\"shared\">shared by " + std::to_string(n) + " processes</span>"
                  : std::string("<span class=\"private\">private</span>")) +
           "<br>";
    }
    t += "</td></tr>\n";
  }
  t += "</tbody>\n";
  std::uint64_t bytes = 0, priv = 0, priv_bytes = 0, rss = 0;
  for (const auto& u : uses) {
    bytes += u.seg.size;
    if (!u.shared()) {
      ++priv;
      priv_bytes += u.seg.size;
    }
  }
  for (const auto& w : workers) rss += w.rss_shmem;
  t += "<tfoot><tr><th scope=\"row\">total</th><td colspan=\"6\">" +
       std::to_string(workers.size()) + (workers.size() == 1 ? " worker; " : " workers; ") +
       std::to_string(uses.size()) +
       (uses.size() == 1 ? " distinct segment" : " distinct segments") + " holding " +
       esc(human_bytes(bytes)) + " (" + std::to_string(priv) +
       " private: " + esc(human_bytes(priv_bytes)) + "; " + std::to_string(uses.size() - priv) +
       " shared: " + esc(human_bytes(bytes - priv_bytes)) + ")</td><td>" + bytes_cell(rss) +
       "</td><td></td></tr></tfoot>\n</table>\n";
}

std::string opt_bytes_cell(const std::optional<std::uint64_t>& v) {
  return v ? bytes_cell(*v) : std::string("<small>unknown</small>");
}

std::string render_sources_html(const Snapshot& s) {
  std::string h = "<h2 id=\"sources\">Sources</h2>\n";
  if (s.beancounters) {
    const auto& bc = *s.beancounters;
    h += "<h3>Beancounters</h3>\n<p>" + esc(bc.file) + ", container " + esc(bc.block.id);
    if (!bc.version.empty()) h += ", version " + esc(bc.version);
    if (!bc.version_known) h += " (not 2.5: parsed because the columns match)";
    if (bc.blocks_in_file > 1) h += ", " + num(bc.blocks_in_file) + " containers in the file";
    h += "</p>\n<table>\n<thead><tr><th>resource</th><th>held</th><th>maxheld</th><th>barrier</th>"
         "<th>limit</th><th>failcnt</th></tr></thead>\n<tbody>\n";
    for (const auto& r : bc.block.rows) {
      auto cell = [&](std::uint64_t v, bool unlimited) {
        if (unlimited) return std::string("unlimited<br><small>") + num(v) + "</small>";
        std::string raw = num(v);
        if (r.unit == BcUnit::Pages)
          return esc(human_bytes(sat_mul(v, s.page_size))) + "<br><small>" + raw + " pages</small>";
        if (r.unit == BcUnit::Bytes) return bytes_cell(v);
        return raw;
      };
      const Counter* c = counter_named(s, "beancounter:" + r.resource + ":failcnt");
      bool watched = r.resource == "shmpages" || r.resource == "privvmpages";
      h += std::string("<tr") + (watched ? " class=\"watched\"" : "") + "><th scope=\"row\">" +
           esc(r.resource) + "</th><td>" + cell(r.held, false) + "</td><td>" +
           cell(r.maxheld, false) + "</td><td>" + cell(r.barrier, r.barrier_unlimited()) +
           "</td><td>" + cell(r.limit, r.limit_unlimited()) + "</td><td" +
           (r.failcnt ? " class=\"bad\"" : "") + ">" + num(r.failcnt) +
           (c && r.resource != "dummy" ? "<br><small>" + esc(rise_words(c)) + "</small>" : "") +
           "</td></tr>\n";
    }
    h += "</tbody>\n</table>\n";
  }
  if (s.cgroup) {
    const auto& c = *s.cgroup;
    h += "<h3>Memory cgroup (v" + std::to_string(c.version) + ")</h3>\n<table>\n<tbody>\n";
    h += "<tr><th scope=\"row\">directory</th><td class=\"cmd\">" + esc(c.dir) + "</td></tr>\n";
    h += "<tr><th scope=\"row\">limit</th><td>" +
         (c.limit ? bytes_cell(*c.limit) : std::string("unlimited")) + "</td></tr>\n";
    h += "<tr><th scope=\"row\">usage</th><td>" + opt_bytes_cell(c.usage) + "</td></tr>\n";
    h += "<tr><th scope=\"row\">shmem</th><td>" + opt_bytes_cell(c.shmem) + "</td></tr>\n";
    for (const char* ev : {"max", "oom", "oom_kill", "failcnt"}) {
      const Counter* k = counter_named(s, std::string("cgroup:") + ev);
      if (!k) continue;
      h += std::string("<tr><th scope=\"row\">") + ev + "</th><td>" + num(k->value) +
           "<br><small>" + esc(rise_words(k)) + "</small></td></tr>\n";
    }
    for (std::size_t i = 1; i < c.levels.size(); ++i)
      if (c.levels[i].limit)
        h += "<tr><th scope=\"row\">ancestor " + esc(c.levels[i].dir) + "</th><td>limit " +
             esc(human_bytes(*c.levels[i].limit)) + "</td></tr>\n";
    h += "</tbody>\n</table>\n";
  }
  if (s.overcommit) {
    const auto& m = *s.overcommit;
    h += "<h3>Overcommit</h3>\n<table>\n<tbody>\n<tr><th scope=\"row\">vm.overcommit_memory</th>"
         "<td>" +
         std::to_string(m.mode) +
         (m.mode == 2 ? " (strict: every shared mapping is charged at mmap)"
                      : " (does not refuse mappings)") +
         "</td></tr>\n";
    h += "<tr><th scope=\"row\">CommitLimit</th><td>" + opt_bytes_cell(m.commit_limit) +
         "</td></tr>\n<tr><th scope=\"row\">Committed_AS</th><td>" +
         opt_bytes_cell(m.committed_as) + "</td></tr>\n<tr><th scope=\"row\">Shmem</th><td>" +
         opt_bytes_cell(m.shmem) + "</td></tr>\n<tr><th scope=\"row\">MemAvailable</th><td>" +
         opt_bytes_cell(m.mem_available) + "</td></tr>\n</tbody>\n</table>\n";
  }
  if (s.sysv) {
    const auto& v = *s.sysv;
    h += "<h3>SysV shared memory</h3>\n<p>Binds SysV segments only.</p>\n<table>\n<tbody>\n";
    h += "<tr><th scope=\"row\">shmmax</th><td>" + opt_bytes_cell(v.shmmax) + "</td></tr>\n";
    h += "<tr><th scope=\"row\">shmall</th><td>" +
         (v.shmall ? esc(human_bytes(sat_mul(*v.shmall, s.page_size))) + "<br><small>" +
                         num(*v.shmall) + " pages</small>"
                   : std::string("<small>unknown</small>")) +
         "</td></tr>\n";
    if (v.segments)
      h += "<tr><th scope=\"row\">segments</th><td>" + num(v.segments->size()) + ", " +
           esc(human_bytes(v.segments_bytes())) + "</td></tr>\n";
    h += "</tbody>\n</table>\n";
  }
  if (s.devshm)
    h += "<h3>/dev/shm</h3>\n<p>" + esc(s.devshm->path) +
         " (tmpfs; does not limit anonymous "
         "shared mappings): " +
         esc(human_bytes(s.devshm->total)) + " size, " + esc(human_bytes(s.devshm->avail)) +
         " available.</p>\n";
  if (!s.unavailable.empty()) {
    h += "<h3>Unavailable</h3>\n<ul class=\"unavailable\">\n";
    for (const auto& u : s.unavailable)
      h += "<li><strong>" + esc(u.source) + "</strong>: " + esc(u.reason) + "</li>\n";
    h += "</ul>\n";
  }
  return h;
}

// Writes one worker's JSON object; the "vhost" value is a hole (see Template).
void write_worker_json(JsonWriter& w, const WorkerRow& wr, const std::vector<SegmentUse>& uses,
                       std::vector<std::pair<std::size_t, std::int32_t>>& nulls) {
  w.begin_object()
      .field("pid", wr.pid)
      .field("backend", wr.backend)
      .field("kind", wr.kind)
      .field("state", wr.state)
      .field("fcgid_vhost_id", wr.vhost_id);
  w.key("vhost");
  nulls.emplace_back(w.str().size(), wr.vhost_id);
  w.null();
  w.field("class", wr.klass)
      .field("command", wr.command)
      .field("uptime_s", wr.uptime_s)
      .field("rss_shmem_bytes", wr.rss_shmem);
  if (!wr.error.empty()) w.field("error", wr.error);
  w.key("segments").begin_array();
  for (const auto& seg : wr.segments) {
    std::uint64_t n = 0;
    for (const auto& u : uses)
      if (u.seg == seg) n = u.pids.size();
    w.begin_object()
        .field("dev", std::to_string(seg.dev_major) + ":" + std::to_string(seg.dev_minor))
        .field("inode", seg.inode)
        .field("size_bytes", seg.size)
        .field("kind", seg.kind)
        .field("mapped_by", n)
        .field("shared", n > 1)
        .end_object();
  }
  w.end_array().end_object();
}

std::string auto_line(const std::string& key, const std::string& value) {
  std::string v = value;
  std::replace(v.begin(), v.end(), '\n', ' ');
  return key + ": " + v + "\n";
}

}  // namespace

StatusSections render_sampler_sections(const Snapshot& snap,
                                       const std::vector<WorkerRow>& workers) {
  StatusSections out;
  const std::vector<SegmentUse> uses = segment_uses(workers);
  const std::vector<Finding> findings = advise(snap, workers);
  for (const auto& f : findings) {
    if (f.severity == "critical") ++out.findings_critical;
    if (f.severity == "warning") ++out.findings_warning;
  }
  for (const auto& c : snap.counters) out.failures_last_minute += c.last_minute;

  std::uint64_t seg_bytes = 0, priv = 0, priv_bytes = 0, rss = 0, fcgid = 0, fpm = 0;
  std::uint64_t rss_fcgid = 0, rss_fpm = 0;
  for (const auto& u : uses) {
    seg_bytes += u.seg.size;
    if (!u.shared()) {
      ++priv;
      priv_bytes += u.seg.size;
    }
  }
  for (const auto& w : workers) {
    rss += w.rss_shmem;
    if (w.backend == "php-fpm") {
      ++fpm;
      rss_fpm += w.rss_shmem;
    } else {
      ++fcgid;
      rss_fcgid += w.rss_shmem;
    }
  }

  // ---- HTML
  out.html_findings = render_findings_html(findings);
  out.html_limits = render_limits_html(snap);
  render_workers_html(out.html_workers, workers, uses);
  out.html_sources = render_sources_html(snap);

  // ---- ?auto
  std::string& a = out.auto_text;
  a += auto_line("ShmGuardHeadroomBytes",
                 snap.headroom_bytes ? num(*snap.headroom_bytes) : std::string("unbounded"));
  a += auto_line("ShmGuardBinding", snap.binding.empty() ? "none" : snap.binding);
  for (const auto& l : snap.limits) {
    a += auto_line("ShmGuardLimitBytes[" + l.name + "]", num(l.limit_bytes));
    a += auto_line("ShmGuardUsedBytes[" + l.name + "]", num(l.used_bytes));
  }
  for (const auto& c : snap.counters) {
    // The counters that matter for shared memory, and any other that ever rose.
    bool relevant = c.name.rfind("cgroup:", 0) == 0 ||
                    c.name.find(":shmpages:") != std::string::npos ||
                    c.name.find(":privvmpages:") != std::string::npos || c.value > 0;
    if (!relevant) continue;
    a += auto_line("ShmGuardFailures[" + c.name + "]", num(c.value));
    a += auto_line("ShmGuardFailuresLastMinute[" + c.name + "]", num(c.last_minute));
  }
  for (const auto& u : snap.unavailable)
    a += auto_line("ShmGuardUnavailable[" + u.source + "]", u.reason);
  a += auto_line("ShmGuardWorkers", num(workers.size()));
  a += auto_line("ShmGuardWorkerSegments", num(uses.size()));
  a += auto_line("ShmGuardWorkerSegmentBytes", num(seg_bytes));
  a += auto_line("ShmGuardWorkerPrivateSegments", num(priv));
  a += auto_line("ShmGuardWorkerSharedResidentBytes", num(rss));
  a += auto_line("ShmGuardFindings", num(findings.size()));
  for (const auto& f : findings) a += auto_line("ShmGuardFinding[" + f.id + "]", f.text);

  // ---- ?json (members; the handler adds its own)
  JsonWriter w;
  w.begin_object();
  write_json_members(w, snap);
  std::vector<std::pair<std::size_t, std::int32_t>> nulls;
  w.key("workers").begin_array();
  for (const auto& wr : workers) write_worker_json(w, wr, uses, nulls);
  w.end_array();
  w.key("worker_totals")
      .begin_object()
      .field("workers", static_cast<std::uint64_t>(workers.size()))
      .field("segments", static_cast<std::uint64_t>(uses.size()))
      .field("segment_bytes", seg_bytes)
      .field("private_segments", priv)
      .field("private_segment_bytes", priv_bytes)
      .field("shared_segments", static_cast<std::uint64_t>(uses.size()) - priv)
      .field("shared_segment_bytes", seg_bytes - priv_bytes)
      .field("rss_shmem_bytes", rss)
      .end_object();
  w.key("findings").begin_array();
  for (const auto& f : findings) {
    w.begin_object().field("id", f.id).field("severity", f.severity).field("text", f.text);
    w.key("numbers").begin_object();
    for (const auto& [k, v] : f.numbers) w.field(k, v);
    w.end_object().end_object();
  }
  w.end_array();
  w.end_object();
  std::string j = w.take();
  // Without the braces, and with each worker's "vhost" null cut out as a hole.
  Template& t = out.json_members;
  std::size_t pos = 1;
  for (const auto& [at, id] : nulls) {
    t += std::string_view(j).substr(pos, at - pos);
    t.hole(id);
    pos = at + 4;  // "null"
  }
  t += std::string_view(j).substr(pos, j.size() - 1 - pos);

  // ---- ?metrics
  std::string& m = out.metrics;
  m = render_prometheus(snap);
  m += "# HELP shmguard_sample_timestamp_seconds When the sampler took this snapshot.\n"
       "# TYPE shmguard_sample_timestamp_seconds gauge\n"
       "shmguard_sample_timestamp_seconds " +
       std::to_string(snap.taken_at_ms / 1000) + "." +
       std::string(3 - std::min<std::size_t>(3, std::to_string(snap.taken_at_ms % 1000).size()),
                   '0') +
       std::to_string(snap.taken_at_ms % 1000) + "\n";
  m += "# HELP shmguard_fastcgi_workers FastCGI worker processes seen by the sampler.\n"
       "# TYPE shmguard_fastcgi_workers gauge\n"
       "shmguard_fastcgi_workers{backend=\"mod_fcgid\"} " +
       num(fcgid) + "\nshmguard_fastcgi_workers{backend=\"php-fpm\"} " + num(fpm) + "\n";
  m += "# HELP shmguard_fastcgi_shared_resident_bytes Resident shared memory (RssShmem) of the "
       "workers.\n# TYPE shmguard_fastcgi_shared_resident_bytes gauge\n"
       "shmguard_fastcgi_shared_resident_bytes{backend=\"mod_fcgid\"} " +
       num(rss_fcgid) + "\nshmguard_fastcgi_shared_resident_bytes{backend=\"php-fpm\"} " +
       num(rss_fpm) + "\n";
  m += "# HELP shmguard_fastcgi_segments Distinct shared segments the workers map, by whether one "
       "worker or several map each.\n# TYPE shmguard_fastcgi_segments gauge\n"
       "shmguard_fastcgi_segments{sharing=\"private\"} " +
       num(priv) + "\nshmguard_fastcgi_segments{sharing=\"shared\"} " + num(uses.size() - priv) +
       "\n";
  m += "# HELP shmguard_fastcgi_segment_bytes Size of those segments.\n"
       "# TYPE shmguard_fastcgi_segment_bytes gauge\n"
       "shmguard_fastcgi_segment_bytes{sharing=\"private\"} " +
       num(priv_bytes) + "\nshmguard_fastcgi_segment_bytes{sharing=\"shared\"} " +
       num(seg_bytes - priv_bytes) + "\n";
  m += "# HELP shmguard_findings Advisor findings on the current data, by severity.\n"
       "# TYPE shmguard_findings gauge\n";
  for (const char* sev : {"critical", "warning", "info"}) {
    std::uint64_t n = 0;
    for (const auto& f : findings) n += f.severity == sev;
    m += std::string("shmguard_findings{severity=\"") + sev + "\"} " + num(n) + "\n";
  }
  return out;
}

}  // namespace shmguard
