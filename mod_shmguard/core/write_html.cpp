// mod_shmguard core: the HTML writer (the status page and the mod_status section). Every text that
// does not come from this file is escaped. One function per section, in page order.
#include <ctime>

#include "shmguard/chart.hpp"
#include "shmguard/refusal.hpp"
#include "shmguard/status.hpp"
#include "shmguard/units.hpp"
#include "writers.hpp"

namespace shmguard {

namespace {
using fast::put_human_bytes;
using fast::put_u;
using text::sat_mul;
using writers::counter_named;

// "64.0 MiB<br><small>67108864 B</small>"
void put_bytes_cell(std::string& o, std::uint64_t v) {
  put_human_bytes(o, v);
  o += "<br><small>";
  put_u(o, v);
  o += " B</small>";
}

std::string esc(std::string_view s) {
  return html_escape(s);
}
std::string num(std::uint64_t v) {
  return std::to_string(v);
}

std::string bytes_cell(std::uint64_t v) {
  std::string o;
  put_bytes_cell(o, v);
  return o;
}

const char* kCss =
    "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:110em}"
    "h1{margin:0 0 .3em}h2{margin-top:1.6em;border-bottom:1px solid #ccc}"
    "table{border-collapse:collapse;margin:.5em 0;display:block;overflow-x:auto;max-width:100%}"
    "th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}"
    "thead th{background:#f0f0f0}tfoot{background:#fafafa}small{color:#666}"
    "td.cmd{font-family:monospace;font-size:90%;word-break:break-all;max-width:28em}"
    ".headline{padding:.6em 1em;border-left:.5em solid #2a2;background:#f3fbf3}"
    ".headline.warning{border-color:#d90;background:#fdf8ec}"
    ".headline.refusing,.headline.failing_open{border-color:#c22;background:#fdf0f0}"
    ".headline .state{font-size:160%;font-weight:bold;margin:0}"
    ".findings li{margin:.3em 0}.sev{display:inline-block;min-width:5em;font-weight:bold}"
    ".critical .sev,.bad,.err{color:#b00}.warning .sev{color:#a60}.info .sev{color:#357}"
    "tr.binding{background:#fff6e0}.tag{font-size:80%;background:#eee;padding:0 .3em}"
    ".shared{color:#272}.private{color:#a50}.quiet{color:#555}nav{margin:.6em 0}nav "
    "a{margin-right:1em}";

void head_section(std::string& o, int refresh) {
  o += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  if (refresh) o += "<meta http-equiv=\"refresh\" content=\"" + std::to_string(refresh) + "\">\n";
  o += "<title>mod_shmguard status</title>\n<style>" + std::string(kCss) +
       "</style>\n</head>\n<body>\n<h1>mod_shmguard status</h1>\n";
}

void headline_section(std::string& o, const Headline& hl) {
  const HotValues& hot = hl.hot;
  o += "<div class=\"headline " + std::string(state_key(hl.state)) + "\">\n<p class=\"state\">" +
       esc(state_word(hl.state)) + "</p>\n<p>Shared-memory headroom <strong>";
  if (hot.headroom < 0)
    o += "unbounded</strong> (no finite limit known)";
  else
    o += esc(human_bytes(static_cast<std::uint64_t>(hot.headroom))) + "</strong> (" +
         std::to_string(hot.headroom) + " bytes), bound by <strong>" + esc(hot.binding) +
         "</strong>: " + esc(human_bytes(static_cast<std::uint64_t>(hot.used))) + " of " +
         esc(human_bytes(static_cast<std::uint64_t>(hot.limit))) + " used";
  o += ".</p>\n<p>" + esc(hl.detail) + "</p>\n</div>\n";
  o += "<nav>Also as <a href=\"?auto\">?auto</a><a href=\"?json\">?json</a>"
       "<a href=\"?metrics\">?metrics</a><a href=\"?refresh=5\">refresh every 5 s</a></nav>\n";
}

std::string rise_words(const Counter* c) {
  if (!c) return "";
  return "+" + num(c->since_start) + " since start, +" + num(c->last_minute) + " last minute";
}
std::string findings_html(const std::vector<Finding>& findings) {
  std::string h = "<h2 id=\"findings\">Findings</h2>\n";
  if (findings.empty())
    return h + "<p class=\"quiet\">Nothing on the data below calls for action.</p>\n";
  h += "<ul class=\"findings\">\n";
  for (const auto& f : findings)
    h += "<li class=\"" + esc(f.severity) + "\"><span class=\"sev\">" + esc(f.severity) +
         "</span> " + esc(f.text) + "</li>\n";
  return h + "</ul>\n";
}

std::string limits_html(const Snapshot& s) {
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
    if (binding_limit(l.name) == BindingLimit::Cgroup) c = counter_named(s, "cgroup:oom_kill");
    h += std::string("<tr") + (binding ? " class=\"binding\"" : "") + "><th scope=\"row\">" +
         esc(l.name) + (binding ? " <span class=\"tag\">binding</span>" : "") + "</th><td>" +
         bytes_cell(l.used_bytes) +
         (l.reclaimable_bytes
              ? "<br><small>usage " + esc(human_bytes(l.used_bytes + *l.reclaimable_bytes)) +
                    " less reclaimable cache " + esc(human_bytes(*l.reclaimable_bytes)) + "</small>"
              : std::string()) +
         "</td><td>" + bytes_cell(l.limit_bytes) + "</td><td>" + bytes_cell(l.headroom_bytes()) +
         "</td><td>" + (c ? num(c->value) + "<br><small>" + esc(rise_words(c)) + "</small>" : "") +
         "</td></tr>\n";
  }
  return h + "</tbody>\n</table>\n";
}

std::string ago(std::int64_t ms, std::int64_t now_ms) {
  if (ms <= 0) return "never";
  std::int64_t s = std::max<std::int64_t>(0, (now_ms - ms) / 1000);
  return human_duration(s) + " ago (" + iso_time(ms) + ")";
}

void vhost_row(std::string& o, const VhostStatus& v, const StatusModel& m) {
  const VhostCounts& c = v.counts;
  o += "<tr><th scope=\"row\">" + esc(v.label);
  if (v.fcgid_vhost_id)
    o += "<br><small>mod_fcgid vhost id " + std::to_string(v.fcgid_vhost_id) + "</small>";
  o += "</th><td>" + std::string(v.guard ? "on" : "off") + "</td><td>" +
       esc(human_bytes(v.reserve.bytes)) + "<br><small>need: " + esc(v.reserve.basis_text) + "; " +
       esc(v.reserve.source) + "</small></td><td>" +
       (v.dry_run ? std::string("log (dry run)") : esc(v.action)) + "</td><td>" + num(c.guarded) +
       "</td><td>" + num(c.passed) + "</td><td" + (c.refused ? " class=\"bad\"" : "") + ">" +
       num(c.refused) + "</td><td>" + num(c.would_refuse) + "</td><td>" + num(c.failed_open) +
       "</td><td>" + num(c.translated) + "</td><td>" + esc(ago(c.last_refusal_ms, m.now_ms)) +
       "</td><td>" + num(c.waited) + " (" + num(c.wait_served) + " / " + num(c.wait_expired) +
       " / " + num(c.queue_full) + ")</td><td>" + num(c.lean_starts) + "</td><td>" +
       num(c.reclaims_given) + " / " + num(c.reclaims_taken) + "</td><td>" +
       (v.fair_share < 0 ? std::string("-")
                         : num(v.fair_share) + " of " + num(v.budget_workers) + " workers") +
       "</td><td>";
  bool waits = false;
  for (std::size_t i = 1; i < kWaitReasons; ++i) {
    if (!v.waiting_now[i]) continue;
    o += std::string(waits ? "<br>" : "") + num(v.waiting_now[i]) + " " +
         esc(wait_words(static_cast<WaitFor>(i)));
    waits = true;
  }
  if (!waits) o += "none";
  o += "</td><td>" + num(c.fpm) + " (" + num(c.fpm_low) + ")</td><td>";
  if (m.headline.hot.headroom < 0) {
    o += "unbounded";
  } else {
    o += num(v.fit_more) + " more at " + esc(human_bytes(v.reserve.bytes)) +
         "<br><small>FcgidMaxProcessesPerClass &le; " + num(v.max_processes_fit);
    if (v.most_seen > 0)
      o += "; or &le; " + esc(human_bytes(v.per_worker_fit)) +
           " shared memory per worker for the " + std::to_string(v.most_seen) + " seen at once";
    o += "</small>";
  }
  o += "</td></tr>\n";
}

void fpm_pools_section(std::string& o, const std::vector<FpmPool>& pools) {
  if (pools.empty()) return;
  o += "<h2 id=\"fpm\">PHP-FPM pools</h2>\n<table>\n<thead><tr><th>pool</th><th>status from</th>"
       "<th>process manager</th><th>idle</th><th>active</th><th>total</th><th>listen queue</th>"
       "<th>max children reached</th><th>slow requests</th></tr></thead>\n<tbody>\n";
  for (const FpmPool& f : pools) {
    o += "<tr><th scope=\"row\">" + esc(f.name.empty() ? "?" : f.name) + "</th><td class=\"cmd\">" +
         (f.configured ? esc(f.socket) + " " + esc(f.status_path) : std::string("-")) + "</td>";
    if (f.ok) {
      const FpmPoolStatus& s = f.status;
      o += "<td>" + esc(s.process_manager) + "</td><td>" + num(s.idle) + "</td><td>" +
           num(s.active) + "</td><td>" + num(s.total) + "</td><td>" + num(s.listen_queue) +
           "</td><td" + (s.max_children_reached ? " class=\"bad\"" : "") + ">" +
           num(s.max_children_reached) + "</td><td>" + num(s.slow_requests) + "</td></tr>\n";
    } else {
      o += "<td colspan=\"7\"><small>" + esc(fpm_status_hint(f)) + "</small></td></tr>\n";
    }
    if (f.configured && (f.fork_failures || f.translated || !f.log.empty()))
      o +=
          "<tr><td></td><td colspan=\"8\"><small>FPM's log " +
          esc(f.log.empty() ? std::string("not named (ShmGuardFpmPool's third argument)") : f.log) +
          ": " + num(f.fork_failures) + " failed forks" +
          (f.last_failure.empty() ? std::string() : " (last: " + esc(f.last_failure) + ")") + "; " +
          num(f.translated) + " errors answered with the diagnosed 503</small></td></tr>\n";
  }
  o += "</tbody>\n</table>\n";
}

void vhosts_section(std::string& o, const StatusModel& m) {
  o += "<h2 id=\"vhosts\">Virtual hosts</h2>\n<table>\n<thead><tr><th>vhost</th><th>guard</th>"
       "<th>reserve</th><th>action</th><th>guarded</th><th>passed</th><th>refused</th>"
       "<th>would refuse</th><th>failed open</th><th>translated 500s</th><th>last refusal</th>"
       "<th>waited (served / expired / queue full)</th><th>lean starts</th>"
       "<th>idle workers reclaimed (given / taken)</th><th>fair share</th><th>waiting now</th>"
       "<th>PHP-FPM (headroom low)</th>"
       "<th>how many fit</th>"
       "</tr></thead>\n<tbody>\n";
  bool reclaims = false;
  for (const auto& v : m.vhosts) {
    vhost_row(o, v, m);
    reclaims = reclaims || v.counts.reclaims_given || v.counts.reclaims_taken;
  }
  o += "</tbody>\n</table>\n";
  if (reclaims)
    o += "<p><small>A reclaimed idle worker (ShmGuardReclaim) is ended by mod_fcgid's process "
         "manager at its next error scan: the waiting request is served once it has gone, within "
         "FcgidErrorScanInterval (default 3 s; 1 s recommended) and a sample.</small></p>\n";
}

// One worker's row, appended through `out` (room for it already made).
void worker_row(fast::Writer& out, const WorkerTable& t, std::size_t i, const std::string& vhost) {
  const WorkerRow& w = t.rows[i];
  out.lit("<tr><td>");
  out.i(w.pid);
  out.lit("</td><td>");
  out.esc(w.backend);
  out.lit("<br><small>");
  out.esc(w.kind);
  out.lit("</small></td><td>");
  if (w.vhost_id != 0) {
    if (vhost.empty())
      out.lit("<small>unknown</small>");
    else
      out.esc(vhost);
    out.lit("<br><small>mod_fcgid vhost id ");
    out.i(w.vhost_id);
    out.lit("</small>");
  } else {
    out.lit("<small>not known</small>");
  }
  out.lit("</td><td class=\"cmd\">");
  out.esc(w.klass);
  out.lit("</td><td>");
  out.esc(w.state);
  if (!w.lean.empty()) {
    out.lit("<br><small class=\"err\">lean: ");
    out.esc(w.lean);
    out.lit("</small>");
  }
  out.lit("</td><td class=\"cmd\">");
  out.esc(w.command);
  out.lit("</td><td>");
  out.duration(w.uptime_s);
  out.lit("</td><td>");
  out.bytes(w.rss_shmem);
  out.lit("<br><small>");
  out.u(w.rss_shmem);
  out.lit(" B</small></td><td>");
  if (!w.error.empty()) {
    out.lit("<span class=\"err\">");
    out.esc(w.error);
    out.lit("</span><br>");
  }
  if (w.segments.empty() && w.error.empty()) out.lit("<small>none</small>");
  for (std::size_t k = 0; k < w.segments.size(); ++k) {
    const Segment& s = w.segments[k];
    std::uint32_t n = t.users(i, k);
    out.esc(s.kind);
    out.ch(' ');
    out.u(s.dev_major);
    out.ch(':');
    out.u(s.dev_minor);
    out.lit(" inode ");
    out.u(s.inode);
    out.lit(", ");
    out.bytes(s.size);
    out.lit(", ");
    if (n > 1) {
      out.lit("<span class=\"shared\">shared by ");
      out.u(n);
      out.lit(" processes</span>");
    } else {
      out.lit("<span class=\"private\">private</span>");
    }
    out.lit("<br>");
  }
  out.lit("</td></tr>\n");
}

void workers_foot(std::string& o, const WorkerTable& t) {
  const std::size_t listed = t.rows.size();
  if (t.not_listed) {
    o += "<tr><td colspan=\"9\" class=\"quiet\">";
    put_u(o, t.not_listed);
    o += t.not_listed == 1 ? " more worker" : " more workers";
    o += " not listed (the page lists at most ";
    put_u(o, listed);
    o += "; the totals below count every one)</td></tr>\n";
  }
  o += "</tbody>\n";
  const WorkerTotals& tot = t.totals;
  o += "<tfoot><tr><th scope=\"row\">total</th><td colspan=\"6\">";
  put_u(o, tot.workers);
  o += tot.workers == 1 ? " worker; " : " workers; ";
  put_u(o, tot.segments);
  o += tot.segments == 1 ? " distinct segment" : " distinct segments";
  o += " holding ";
  put_human_bytes(o, tot.segment_bytes);
  o += " (";
  put_u(o, tot.private_segments);
  o += " private: ";
  put_human_bytes(o, tot.private_bytes);
  o += "; ";
  put_u(o, tot.segments - tot.private_segments);
  o += " shared: ";
  put_human_bytes(o, tot.segment_bytes - tot.private_bytes);
  o += ")</td><td>";
  put_bytes_cell(o, tot.rss);
  o += "</td><td></td></tr></tfoot>\n</table>\n";
}

void workers_section(std::string& o, const StatusModel& m, const WorkerTable& t) {
  o += "<h2 id=\"workers\">FastCGI workers</h2>\n";
  if (t.totals.workers == 0) {
    o += "<p class=\"quiet\">No FastCGI worker is running (mod_fcgid's process table is empty "
         "and no php-fpm process was found).</p>\n";
    return;
  }
  o += "<table class=\"workers\">\n<thead><tr><th>pid</th><th>backend</th><th>vhost</th>"
       "<th>class</th><th>state</th><th>command</th><th>uptime</th><th>shared resident</th>"
       "<th>shared segments (device inode, size, sharing)</th></tr></thead>\n<tbody>\n";
  fast::Writer out(o);
  out.room(t.rows.size() * 560);  // a typical row; room() below guarantees each one
  for (std::size_t i = 0; i < t.rows.size(); ++i) {
    const WorkerRow& w = t.rows[i];
    const std::string& vhost = m.fcgid_vhost_label(w.vhost_id);
    // Bound: the markup, 6 bytes per byte of escaped text, 20 per number.
    std::size_t segs_text = 0;
    for (const auto& s : w.segments) segs_text += s.kind.size();
    out.room(640 +
             6 * (w.backend.size() + w.kind.size() + w.klass.size() + w.state.size() +
                  w.command.size() + w.error.size() + w.lean.size() + segs_text + vhost.size()) +
             w.segments.size() * 224);
    worker_row(out, t, i, vhost);
  }
  out.finish();
  workers_foot(o, t);
}

std::string opt_bytes_cell(const std::optional<std::uint64_t>& v) {
  return v ? bytes_cell(*v) : std::string("<small>unknown</small>");
}

std::string sources_html(const Snapshot& s) {
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
    if (!c.levels.empty())
      h += "<tr><th scope=\"row\">reclaimable cache</th><td>" +
           esc(writers::reclaimable_words(c.levels.front())) + "</td></tr>\n";
    h += "<tr><th scope=\"row\">shmem</th><td>" + opt_bytes_cell(c.shmem) + "</td></tr>\n";
    if (c.pressure)
      h += "<tr><th scope=\"row\">memory pressure (PSI)</th><td>" +
           esc(writers::pressure_words(*c.pressure)) +
           "<br><small>shown and warned about, never a reason to refuse</small></td></tr>\n";
    for (const char* ev : {"max", "oom", "oom_kill", "failcnt"}) {
      const Counter* k = counter_named(s, std::string("cgroup:") + ev);
      if (!k) continue;
      h += std::string("<tr><th scope=\"row\">") + ev + "</th><td>" + num(k->value) +
           "<br><small>" + esc(rise_words(k)) +
           (counter_is_failure(k->name) ? "" : "; reclaim at the limit, not a failure") +
           "</small></td></tr>\n";
    }
    for (std::size_t i = 1; i < c.levels.size(); ++i)
      if (c.levels[i].limit)
        h += "<tr><th scope=\"row\">ancestor " + esc(c.levels[i].dir) + "</th><td>limit " +
             esc(human_bytes(*c.levels[i].limit)) + ", usage " +
             esc(c.levels[i].usage ? human_bytes(*c.levels[i].usage) : std::string("unknown")) +
             ", reclaimable cache " + esc(writers::reclaimable_words(c.levels[i])) + "</td></tr>\n";
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

void sampler_section(std::string& o, const SamplerHealth& h) {
  o += "<h2 id=\"sampler\">Sampler</h2>\n<table>\n<tbody>\n";
  auto row = [&](const char* k, const std::string& v) {
    o += std::string("<tr><th scope=\"row\">") + k + "</th><td>" + v + "</td></tr>\n";
  };
  row("pid", h.pid ? std::to_string(h.pid) : "not running");
  row("interval", std::to_string(h.interval_ms) + " ms");
  row("last sample",
      h.sampled_ms ? std::to_string(h.age_ms) + " ms ago (" + esc(iso_time(h.sampled_ms)) + ")"
                   : "none yet");
  row("samples taken", std::to_string(h.samples));
  row("started", std::to_string(h.starts) + (h.starts == 1 ? " time" : " times") +
                     " in this server generation");
  row("guard", h.fresh ? "guarding (samples are fresh)"
                       : "<span class=\"bad\">failing open: no sample younger than " +
                             std::to_string(h.bound_ms) + " ms</span>");
  o += "</tbody>\n</table>\n";
}

}  // namespace

std::string write_status_html(const StatusModel& m, int refresh) {
  std::string o;
  if (m.part) o.reserve(64 * 1024 + m.part->workers.rows.size() * 700);
  head_section(o, refresh);
  headline_section(o, m.headline);
  if (m.part) {
    o += findings_html(m.part->findings);
    if (m.part->history)  // the last hour, before the limits it charts
      o += render_history_html(m.part->history->window, m.part->history->bucket_ms);
    o += limits_html(m.part->snap);
  } else {
    o += "<p class=\"bad\">No sample from the sampler is available yet.</p>\n";
  }
  vhosts_section(o, m);
  if (m.part) {
    fpm_pools_section(o, m.part->fpm_pools);
    workers_section(o, m, m.part->workers);
    o += sources_html(m.part->snap);
  }
  sampler_section(o, m.sampler);
  o += "</body>\n</html>\n";
  return o;
}

std::string write_mod_status_html(const StatusModel& m) {
  const ModStatusSums s = mod_status_sums(m);
  const HotValues& hot = m.headline.hot;
  std::string o = "<hr>\n<h2>mod_shmguard</h2>\n<p><strong>" + esc(state_word(m.headline.state)) +
                  "</strong>: " + esc(m.headline.detail) + "</p>\n<p>Shared-memory headroom ";
  if (hot.headroom < 0)
    o += "unbounded";
  else
    o += esc(human_bytes(static_cast<std::uint64_t>(hot.headroom))) + " (" + esc(hot.binding) + ")";
  o += "; " + num(s.guarded) + " FastCGI requests guarded, " + num(s.refused) + " refused, " +
       num(s.translated) + " 500s translated to 503; " + num(s.critical) + " critical and " +
       num(s.warning) +
       " warning findings. Details: the <code>shmguard-status</code> handler.</p>\n";
  return o;
}

}  // namespace shmguard
