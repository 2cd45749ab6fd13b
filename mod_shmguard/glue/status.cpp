// mod_shmguard glue: /shmguard-status (SetHandler shmguard-status) and the mod_status section.
// Reads only what the sampler published plus the module's own counters and configuration: no
// privileged read happens here (children run as User).
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "glue.hpp"
#include "shmguard/fcgid.hpp"
#include "shmguard/refusal.hpp"
#include "shmguard/json.hpp"
#include "shmguard/render.hpp"
#include "shmguard/status.hpp"
#include "shmguard/units.hpp"

#include "apr_strings.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "mod_status.h"

APLOG_USE_MODULE(shmguard);

namespace shmguard::glue {

namespace {

// ------------------------------------------------------------------------------ what we know

struct Reserve {
  bool is_auto = false;
  std::uint64_t bytes = 0;
  std::string source;  // where the value comes from, in words
};

struct VhostView {
  std::string label;  // unique among the vhosts: "name:port"
  std::string server_name;
  int port = 0;
  int fcgid_vhost_id = 0;  // 0: mod_fcgid not loaded
  const ServerConf* conf = nullptr;
  const shm::VhostCounters* counters = nullptr;
  Reserve reserve;
  // How many fit (issue: say how many): at the reserve's size, in the room left now; the
  // FcgidMaxProcessesPerClass that the vhost's share of the limit holds; the per-worker shared
  // memory that would have let the most workers seen at once fit.
  int workers_now = 0, most_seen = 0;
  std::uint64_t fit_more = 0, max_processes_fit = 0, per_worker_fit = 0;
};

// What ShmGuardReserve means for this vhost right now (the guard decides per mod_fcgid class;
// the vhost's value is the largest of its classes').
Reserve reserve_of(const ServerConf* c, int fcgid_vhost_id, const std::vector<fcgid::Node>& nodes) {
  Reserve r;
  if (c->reserve_auto == 0) {
    r.bytes = c->reserve;
    r.source = "ShmGuardReserve " + human_bytes(c->reserve);
    return r;
  }
  r.is_auto = true;
  std::set<std::uint64_t> seen;
  std::uint64_t best = 0;
  std::string best_class;
  for (const auto& n : nodes) {
    if (fcgid_vhost_id == 0 || n.vhost_id != fcgid_vhost_id) continue;
    const std::uint64_t key = fcgid::class_hash(fcgid::class_of(n));
    if (!seen.insert(key).second) continue;
    const shm::ClassSlot* slot = shm::class_slot(gen.seg, key, false);
    std::uint64_t v = slot ? slot->worker_need.load(std::memory_order_relaxed) : 0;
    if (v > best) {
      best = v;
      best_class = n.executable;
    }
  }
  if (best) {
    r.bytes = best;
    r.source =
        "auto: a worker's private shared segments (OPcache + APCu + any other) summed, largest "
        "seen in this vhost's mod_fcgid workers (" +
        std::to_string(seen.size()) + (seen.size() == 1 ? " class" : " classes") + ", largest in " +
        best_class + ")";
  } else {
    r.bytes = kDefaultReserve;
    r.source = "auto: no mod_fcgid worker of this vhost is running, so the default " +
               human_bytes(kDefaultReserve) +
               " (or what an earlier worker of the class mapped); PHP-FPM requests use the default";
  }
  return r;
}

std::vector<VhostView> vhosts() {
  std::vector<VhostView> out;
  std::vector<fcgid::Node> nodes;
  if (gen.fcgid_table) nodes = fcgid::read_table(gen.fcgid_table);
  std::set<std::string> labels;
  for (server_rec* s = gen.main_server; s; s = s->next) {
    const ServerConf* c = server_conf(s);
    if (c->vhost_index < 0) continue;
    VhostView v;
    v.server_name = s->server_hostname ? s->server_hostname : "";
    v.port = static_cast<int>(s->port);
    if (!v.port && s->is_virtual && s->addrs) v.port = static_cast<int>(s->addrs->host_port);
    v.label = v.server_name + (v.port ? ":" + std::to_string(v.port) : std::string());
    if (v.label.empty()) v.label = "(no name)";
    if (!labels.insert(v.label).second) {
      v.label += " #" + std::to_string(c->vhost_index);
      labels.insert(v.label);
    }
    if (gen.fcgid_module) {
      // vhost_id is the first member of mod_fcgid's server config (as guard.cpp reads it).
      const int* id =
          static_cast<const int*>(ap_get_module_config(s->module_config, gen.fcgid_module));
      if (id) v.fcgid_vhost_id = *id;
    }
    v.conf = c;
    v.counters = &gen.seg->vhosts[c->vhost_index];
    v.reserve = reserve_of(c, v.fcgid_vhost_id, nodes);
    std::set<std::uint64_t> classes;
    for (const auto& n : nodes) {
      if (v.fcgid_vhost_id == 0 || n.vhost_id != v.fcgid_vhost_id || n.list == fcgid::List::Error)
        continue;
      ++v.workers_now;
      classes.insert(fcgid::class_hash(fcgid::class_of(n)));
    }
    for (std::uint64_t k : classes)
      if (const shm::ClassSlot* slot = shm::class_slot(gen.seg, k, false))
        v.most_seen = std::max(v.most_seen, slot->max_workers_seen.load());
    std::int64_t h = gen.seg->headroom.load(), res = gen.seg->reserved.load();
    if (h >= 0) {
      std::uint64_t room =
          static_cast<std::uint64_t>(h) > static_cast<std::uint64_t>(res > 0 ? res : 0)
              ? static_cast<std::uint64_t>(h - (res > 0 ? res : 0))
              : 0;
      std::uint64_t share = room + static_cast<std::uint64_t>(v.workers_now) * v.reserve.bytes;
      v.fit_more = workers_that_fit(room, v.reserve.bytes);
      v.max_processes_fit = workers_that_fit(share, v.reserve.bytes);
      if (v.most_seen > 0) v.per_worker_fit = share / static_cast<std::uint64_t>(v.most_seen);
    }
    out.push_back(std::move(v));
  }
  return out;
}

struct Health {
  std::int32_t pid = 0;
  std::int64_t interval_ms = 0, sampled_ms = 0, age_ms = -1, bound_ms = 0;
  std::uint64_t samples = 0, starts = 0, log_reads = 0;
  bool fresh = false;
};

Health health() {
  Health h;
  h.pid = gen.seg->sampler_pid.load();
  h.interval_ms = gen.seg->interval_ms.load();
  h.sampled_ms = gen.seg->sample_wall_ms.load(std::memory_order_acquire);
  h.samples = gen.seg->samples.load();
  h.starts = gen.seg->sampler_starts.load();
  h.log_reads = gen.seg->log_reads.load(std::memory_order_relaxed);
  h.bound_ms = shm::staleness_bound_ms(gen.seg);  // the guard's own bound
  const std::int64_t now = wall_ms();
  if (h.sampled_ms > 0) h.age_ms = std::max<std::int64_t>(0, now - h.sampled_ms);
  h.fresh = shm::sample_fresh(gen.seg, now);  // the guard's own rule (core freshness())
  return h;
}

enum class State { Ok, Warning, Refusing, FailingOpen };
const char* state_key(State s) {
  switch (s) {
    case State::Ok:
      return "ok";
    case State::Warning:
      return "warning";
    case State::Refusing:
      return "refusing";
    case State::FailingOpen:
      return "failing_open";
  }
  return "";
}
const char* state_word(State s) {
  switch (s) {
    case State::Ok:
      return "OK";
    case State::Warning:
      return "warning";
    case State::Refusing:
      return "refusing new workers";
    case State::FailingOpen:
      return "failing open";
  }
  return "";
}

struct Headline {
  State state = State::Ok;
  std::string detail;  // one sentence
  std::int64_t headroom = -1;
  std::string binding;
  std::int64_t limit = 0, used = 0;
};

Headline headline(const Health& h, const std::vector<VhostView>& vs,
                  const std::optional<StatusSections>& sec) {
  Headline out;
  out.headroom = gen.seg->headroom.load();
  out.binding = shm::binding_name(gen.seg->binding.load());
  out.limit = gen.seg->binding_limit.load();
  out.used = gen.seg->binding_used.load();
  if (!h.fresh) {
    out.state = State::FailingOpen;
    out.detail = h.sampled_ms > 0 ? "The last sample is " + std::to_string(h.age_ms) +
                                        " ms old (limit " + std::to_string(h.bound_ms) +
                                        " ms): the guard serves every request unguarded."
                                  : "The sampler has not published a sample yet: the guard "
                                    "serves every request unguarded.";
    return out;
  }
  std::vector<std::string> refusing, would;
  std::uint64_t reserve = 0;
  for (const auto& v : vs) {
    if (!conf_enabled(v.conf) || out.headroom < 0) continue;
    if (static_cast<std::uint64_t>(out.headroom) >= v.reserve.bytes) continue;
    (conf_dry_run(v.conf) ? would : refusing).push_back(v.label);
    reserve = std::max(reserve, v.reserve.bytes);
  }
  auto list = [](const std::vector<std::string>& l) {
    std::string s;
    for (std::size_t i = 0; i < l.size() && i < 5; ++i) s += (i ? ", " : "") + l[i];
    if (l.size() > 5) s += " and " + std::to_string(l.size() - 5) + " more";
    return s;
  };
  std::string hr = out.headroom < 0 ? "" : human_bytes(static_cast<std::uint64_t>(out.headroom));
  if (!refusing.empty()) {
    out.state = State::Refusing;
    out.detail = "Headroom " + hr + " is below the reserve (up to " + human_bytes(reserve) +
                 ") of " + list(refusing) +
                 ": requests that would need a new worker get 503; requests an idle worker can "
                 "serve still pass.";
    return out;
  }
  std::vector<std::string> why;
  if (!would.empty())
    why.push_back("headroom " + hr + " is below the reserve of " + list(would) +
                  " (ShmGuardAction log: counted and logged, not refused)");
  if (gen.seg->warn_state.load()) why.push_back("headroom is below ShmGuardWarnBelow");
  if (sec && sec->failures_last_minute > 0)
    why.push_back("failure counters rose by " + std::to_string(sec->failures_last_minute) +
                  " in the last minute");
  if (sec && sec->findings_critical > 0)
    why.push_back(std::to_string(sec->findings_critical) + " critical finding" +
                  (sec->findings_critical == 1 ? "" : "s"));
  if (!why.empty()) {
    out.state = State::Warning;
    for (std::size_t i = 0; i < why.size(); ++i) out.detail += (i ? "; " : "") + why[i];
    out.detail[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out.detail[0])));
    out.detail += ".";
    return out;
  }
  out.detail = out.headroom < 0 ? "No finite shared-memory limit is known: nothing to guard."
                                : "Headroom covers every guarded vhost's reserve.";
  return out;
}

std::string iso_time(std::int64_t ms) {
  if (ms <= 0) return "";
  time_t t = static_cast<time_t>(ms / 1000);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string ago(std::int64_t ms) {
  if (ms <= 0) return "never";
  std::int64_t s = std::max<std::int64_t>(0, (wall_ms() - ms) / 1000);
  return human_duration(s) + " ago (" + iso_time(ms) + ")";
}

// The name the page shows for a mod_fcgid vhost id (the sampler only knows ids).
std::string fcgid_vhost_label(const std::vector<VhostView>& vs, std::int32_t id) {
  for (const auto& v : vs)
    if (v.fcgid_vhost_id == id && id != 0) return v.label;
  return "";
}

// ------------------------------------------------------------------------------ formats

struct Args {
  enum { Html, Auto, Json, Metrics } format = Html;
  int refresh = 0;
};

Args parse_args(const char* q) {
  Args a;
  std::string s = q ? q : "";
  std::size_t pos = 0;
  while (pos <= s.size()) {
    std::size_t end = s.find_first_of("&;", pos);
    if (end == std::string::npos) end = s.size();
    std::string tok = s.substr(pos, end - pos);
    if (tok == "auto")
      a.format = Args::Auto;
    else if (tok == "json")
      a.format = Args::Json;
    else if (tok == "metrics")
      a.format = Args::Metrics;
    else if (tok == "html")
      a.format = Args::Html;
    else if (tok.rfind("refresh", 0) == 0) {
      a.refresh = 1;  // like mod_status: a missing or bad number means 1 s
      if (tok.size() > 8 && tok[7] == '=') {
        auto v = parse_u64(tok.substr(8));
        if (v && *v > 0) a.refresh = static_cast<int>(std::min<std::uint64_t>(*v, 86400));
      }
    }
    pos = end + 1;
  }
  return a;
}

const char* kCss =
    "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:110em}"
    "h1{margin:0 0 .3em}h2{margin-top:1.6em;border-bottom:1px solid #ccc}"
    "table{border-collapse:collapse;margin:.5em 0}"
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

std::string render_html(const Args& args, const Health& h, const Headline& hl,
                        const std::vector<VhostView>& vs,
                        const std::optional<StatusSections>& sec) {
  std::string o =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  if (args.refresh)
    o += "<meta http-equiv=\"refresh\" content=\"" + std::to_string(args.refresh) + "\">\n";
  o += "<title>mod_shmguard status</title>\n<style>" + std::string(kCss) +
       "</style>\n</head>\n<body>\n<h1>mod_shmguard status</h1>\n";
  o += "<div class=\"headline " + std::string(state_key(hl.state)) + "\">\n<p class=\"state\">" +
       html_escape(state_word(hl.state)) + "</p>\n<p>Shared-memory headroom <strong>";
  if (hl.headroom < 0)
    o += "unbounded</strong> (no finite limit known)";
  else
    o += html_escape(human_bytes(static_cast<std::uint64_t>(hl.headroom))) + "</strong> (" +
         std::to_string(hl.headroom) + " bytes), bound by <strong>" + html_escape(hl.binding) +
         "</strong>: " + html_escape(human_bytes(static_cast<std::uint64_t>(hl.used))) + " of " +
         html_escape(human_bytes(static_cast<std::uint64_t>(hl.limit))) + " used";
  o += ".</p>\n<p>" + html_escape(hl.detail) + "</p>\n</div>\n";
  o += "<nav>Also as <a href=\"?auto\">?auto</a><a href=\"?json\">?json</a>"
       "<a href=\"?metrics\">?metrics</a><a href=\"?refresh=5\">refresh every 5 s</a></nav>\n";
  if (sec) {
    o += sec->html_findings;
    o += sec->html_limits;
  } else {
    o += "<p class=\"bad\">No sample from the sampler is available yet.</p>\n";
  }

  o += "<h2 id=\"vhosts\">Virtual hosts</h2>\n<table>\n<thead><tr><th>vhost</th><th>guard</th>"
       "<th>reserve</th><th>action</th><th>guarded</th><th>passed</th><th>refused</th>"
       "<th>would refuse</th><th>failed open</th><th>translated 500s</th><th>last refusal</th>"
       "<th>waited (served / expired / queue full)</th><th>lean starts</th><th>how many fit</th>"
       "</tr></thead>\n<tbody>\n";
  for (const auto& v : vs) {
    const auto* c = v.counters;
    o += "<tr><th scope=\"row\">" + html_escape(v.label);
    if (v.fcgid_vhost_id)
      o += "<br><small>mod_fcgid vhost id " + std::to_string(v.fcgid_vhost_id) + "</small>";
    o += "</th><td>" + std::string(conf_enabled(v.conf) ? "on" : "off") + "</td><td>" +
         html_escape(human_bytes(v.reserve.bytes)) + "<br><small>" + html_escape(v.reserve.source) +
         "</small></td><td>" +
         (conf_dry_run(v.conf) ? std::string("log (dry run)")
                               : std::string(to_string(conf_action(v.conf)))) +
         "</td><td>" + std::to_string(c->guarded.load()) + "</td><td>" +
         std::to_string(c->passed.load()) + "</td><td" +
         (c->refused.load() ? " class=\"bad\"" : "") + ">" + std::to_string(c->refused.load()) +
         "</td><td>" + std::to_string(c->would_refuse.load()) + "</td><td>" +
         std::to_string(c->failed_open.load()) + "</td><td>" +
         std::to_string(c->translated.load()) + "</td><td>" +
         html_escape(ago(c->last_refusal_ms.load())) + "</td><td>" +
         std::to_string(c->waited.load()) + " (" + std::to_string(c->wait_served.load()) + " / " +
         std::to_string(c->wait_expired.load()) + " / " + std::to_string(c->queue_full.load()) +
         ")</td><td>" + std::to_string(c->lean_spawns.load()) + "</td><td>" +
         (gen.seg->headroom.load() < 0
              ? std::string("unbounded")
              : std::to_string(v.fit_more) + " more at " +
                    html_escape(human_bytes(v.reserve.bytes)) +
                    "<br><small>FcgidMaxProcessesPerClass &le; " +
                    std::to_string(v.max_processes_fit) +
                    (v.most_seen > 0 ? "; or &le; " + html_escape(human_bytes(v.per_worker_fit)) +
                                           " shared memory per worker for the " +
                                           std::to_string(v.most_seen) + " seen at once"
                                     : std::string()) +
                    "</small>") +
         "</td></tr>\n";
  }
  o += "</tbody>\n</table>\n";

  if (sec) {
    o += sec->html_workers.fill([&](std::int32_t id) {
      std::string n = fcgid_vhost_label(vs, id);
      return n.empty() ? std::string("<small>unknown</small>") : html_escape(n);
    });
    o += sec->html_sources;
  }

  o += "<h2 id=\"sampler\">Sampler</h2>\n<table>\n<tbody>\n";
  auto row = [&](const char* k, const std::string& v) {
    o += std::string("<tr><th scope=\"row\">") + k + "</th><td>" + v + "</td></tr>\n";
  };
  row("pid", h.pid ? std::to_string(h.pid) : "not running");
  row("interval", std::to_string(h.interval_ms) + " ms");
  row("last sample", h.sampled_ms ? std::to_string(h.age_ms) + " ms ago (" +
                                        html_escape(iso_time(h.sampled_ms)) + ")"
                                  : "none yet");
  row("samples taken", std::to_string(h.samples));
  row("started", std::to_string(h.starts) + (h.starts == 1 ? " time" : " times") +
                     " in this server generation");
  row("guard", h.fresh ? "guarding (samples are fresh)"
                       : "<span class=\"bad\">failing open: no sample younger than " +
                             std::to_string(h.bound_ms) + " ms</span>");
  o += "</tbody>\n</table>\n</body>\n</html>\n";
  return o;
}

std::string render_auto(const Health& h, const Headline& hl, const std::vector<VhostView>& vs,
                        const std::optional<StatusSections>& sec) {
  std::string o;
  auto line = [&](const std::string& k, const std::string& v) { o += k + ": " + v + "\n"; };
  line("ShmGuardState", state_word(hl.state));
  line("ShmGuardStateDetail", hl.detail);
  line("ShmGuardFailingOpen", h.fresh ? "0" : "1");
  line("ShmGuardSamplerPid", std::to_string(h.pid));
  line("ShmGuardSamplerIntervalMs", std::to_string(h.interval_ms));
  line("ShmGuardSampleAgeMs", std::to_string(h.age_ms));
  line("ShmGuardSamples", std::to_string(h.samples));
  line("ShmGuardSamplerStarts", std::to_string(h.starts));
  if (sec) {
    o += sec->auto_text;
  } else {  // nothing published yet: the hot values only
    line("ShmGuardHeadroomBytes", hl.headroom < 0 ? "unbounded" : std::to_string(hl.headroom));
    line("ShmGuardBinding", hl.binding.empty() ? "none" : hl.binding);
  }
  for (const auto& v : vs) {
    const auto* c = v.counters;
    const std::string b = "[" + v.label + "]";
    line("ShmGuardVhostGuard" + b, conf_enabled(v.conf) ? "on" : "off");
    line("ShmGuardVhostReserveBytes" + b, std::to_string(v.reserve.bytes));
    line("ShmGuardVhostAction" + b, to_string(conf_action(v.conf)));
    line("ShmGuardVhostGuarded" + b, std::to_string(c->guarded.load()));
    line("ShmGuardVhostPassed" + b, std::to_string(c->passed.load()));
    line("ShmGuardVhostRefused" + b, std::to_string(c->refused.load()));
    line("ShmGuardVhostWouldRefuse" + b, std::to_string(c->would_refuse.load()));
    line("ShmGuardVhostFailedOpen" + b, std::to_string(c->failed_open.load()));
    line("ShmGuardVhostTranslated" + b, std::to_string(c->translated.load()));
    line("ShmGuardVhostWaited" + b, std::to_string(c->waited.load()));
    line("ShmGuardVhostWaitServed" + b, std::to_string(c->wait_served.load()));
    line("ShmGuardVhostWaitExpired" + b, std::to_string(c->wait_expired.load()));
    line("ShmGuardVhostQueueFull" + b, std::to_string(c->queue_full.load()));
    line("ShmGuardVhostLeanStarts" + b, std::to_string(c->lean_spawns.load()));
    line("ShmGuardVhostWorkersFit" + b, std::to_string(v.fit_more));
    line("ShmGuardVhostMaxProcessesFit" + b, std::to_string(v.max_processes_fit));
    line("ShmGuardVhostPerWorkerFitBytes" + b, std::to_string(v.per_worker_fit));
    line("ShmGuardVhostLastRefusal" + b,
         c->last_refusal_ms.load() ? iso_time(c->last_refusal_ms.load()) : "never");
  }
  return o;
}

std::string render_json(const Health& h, const Headline& hl, const std::vector<VhostView>& vs,
                        const std::optional<StatusSections>& sec) {
  JsonWriter w;
  w.begin_object();
  w.field("state", state_key(hl.state)).field("state_text", state_word(hl.state));
  w.field("state_detail", hl.detail);
  if (!sec) {  // nothing published yet: the probe's keys from the hot values
    if (hl.headroom < 0)
      w.key("headroom_bytes").null();
    else
      w.field("headroom_bytes", hl.headroom);
    if (hl.binding.empty())
      w.key("binding").null();
    else
      w.field("binding", hl.binding);
    w.key("sources").begin_array().end_array();
    w.key("unavailable").begin_array().end_array();
    w.key("workers").begin_array().end_array();
    w.key("findings").begin_array().end_array();
  }
  w.key("sampler")
      .begin_object()
      .field("pid", h.pid)
      .field("interval_ms", h.interval_ms)
      .field("samples", h.samples)
      .field("error_log_reads", h.log_reads)
      .field("starts", h.starts);
  if (h.sampled_ms)
    w.field("last_sample_ms", h.sampled_ms).field("last_sample_age_ms", h.age_ms);
  else
    w.key("last_sample_ms").null().key("last_sample_age_ms").null();
  w.field("staleness_bound_ms", h.bound_ms)
      .field("fresh", h.fresh)
      .field("failing_open", !h.fresh)
      .end_object();
  w.key("vhosts").begin_array();
  for (const auto& v : vs) {
    const auto* c = v.counters;
    w.begin_object()
        .field("name", v.label)
        .field("server_name", v.server_name)
        .field("port", v.port)
        .field("fcgid_vhost_id", v.fcgid_vhost_id)
        .field("guard", conf_enabled(v.conf))
        .field("action", to_string(conf_action(v.conf)));
    w.key("reserve")
        .begin_object()
        .field("mode", v.reserve.is_auto ? "auto" : "fixed")
        .field("bytes", v.reserve.bytes)
        .field("source", v.reserve.source)
        .end_object();
    w.field("guarded", c->guarded.load())
        .field("passed", c->passed.load())
        .field("refused", c->refused.load())
        .field("would_refuse", c->would_refuse.load())
        .field("failed_open", c->failed_open.load())
        .field("translated", c->translated.load())
        .field("waited", c->waited.load())
        .field("wait_served", c->wait_served.load())
        .field("wait_expired", c->wait_expired.load())
        .field("queue_full", c->queue_full.load())
        .field("lean_starts", c->lean_spawns.load());
    w.key("fit")
        .begin_object()
        .field("workers_now", v.workers_now)
        .field("more_workers", v.fit_more)
        .field("max_processes_per_class", v.max_processes_fit)
        .field("most_workers_seen", v.most_seen)
        .field("per_worker_bytes", v.per_worker_fit)
        .end_object();
    std::int64_t last = c->last_refusal_ms.load();
    if (last)
      w.field("last_refusal_ms", last).field("last_refusal", iso_time(last));
    else
      w.key("last_refusal_ms").null().key("last_refusal").null();
    w.end_object();
  }
  w.end_array();
  w.end_object();
  std::string out = w.take();
  if (sec && !sec->json_members.text.empty()) {
    out.pop_back();  // '}'
    out += "," + sec->json_members.fill([&](std::int32_t id) {
      std::string n = fcgid_vhost_label(vs, id);
      return n.empty() ? std::string("null") : json_string(n);
    });
    out += "}";
  }
  return out + "\n";
}

// The handler's own metric families (the sampler's section never uses these names).
std::string render_metrics(const Health& h, const Headline& hl, const std::vector<VhostView>& vs) {
  std::string o;
  auto family = [&](const char* name, const char* type, const char* help) {
    o += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  };
  auto sample = [&](const char* name, const std::string& labels, const std::string& v) {
    o += name;
    if (!labels.empty()) o += "{" + labels + "}";
    o += " " + v + "\n";
  };
  family("shmguard_state", "gauge", "1 for the current state of the guard, 0 for the others.");
  for (State s : {State::Ok, State::Warning, State::Refusing, State::FailingOpen})
    sample("shmguard_state", std::string("state=\"") + state_key(s) + "\"",
           s == hl.state ? "1" : "0");
  family("shmguard_failing_open", "gauge", "1 while no fresh sample exists (the guard serves).");
  sample("shmguard_failing_open", "", h.fresh ? "0" : "1");
  family("shmguard_sampler_up", "gauge", "1 if a sampler process is running.");
  sample("shmguard_sampler_up", "", h.pid ? "1" : "0");
  family("shmguard_sample_age_seconds", "gauge", "Age of the last published sample.");
  sample("shmguard_sample_age_seconds", "",
         h.age_ms < 0
             ? "+Inf"
             : std::to_string(h.age_ms / 1000) + "." + std::to_string(h.age_ms % 1000 / 100));
  family("shmguard_sampler_interval_seconds", "gauge", "ShmGuardInterval.");
  sample("shmguard_sampler_interval_seconds", "",
         std::to_string(h.interval_ms / 1000) + "." +
             std::string(3 - std::to_string(h.interval_ms % 1000).size(), '0') +
             std::to_string(h.interval_ms % 1000));
  family("shmguard_samples_total", "counter", "Samples taken in this server generation.");
  sample("shmguard_samples_total", "", std::to_string(h.samples));
  family("shmguard_sampler_starts_total", "counter",
         "Sampler processes started in this server generation.");
  sample("shmguard_sampler_starts_total", "", std::to_string(h.starts));
  if (vs.empty()) return o;
  auto vl = [](const VhostView& v) { return "vhost=\"" + prom_label(v.label) + "\""; };
  family("shmguard_vhost_guard_enabled", "gauge", "ShmGuard On (1) or Off (0) per vhost.");
  for (const auto& v : vs)
    sample("shmguard_vhost_guard_enabled", vl(v), conf_enabled(v.conf) ? "1" : "0");
  family("shmguard_vhost_dry_run", "gauge", "ShmGuardAction log (1) or refuse (0) per vhost.");
  for (const auto& v : vs)
    sample("shmguard_vhost_dry_run", vl(v), conf_dry_run(v.conf) ? "1" : "0");
  family("shmguard_vhost_reserve_bytes", "gauge",
         "Headroom a new worker of the vhost needs (ShmGuardReserve, auto resolved).");
  for (const auto& v : vs)
    sample("shmguard_vhost_reserve_bytes", vl(v), std::to_string(v.reserve.bytes));
  family("shmguard_vhost_requests_total", "counter",
         "FastCGI-bound requests the guard decided on, by verdict.");
  for (const auto& v : vs) {
    const auto* c = v.counters;
    const std::pair<const char*, std::uint64_t> verdicts[] = {
        {"passed", c->passed.load()},
        {"refused", c->refused.load()},
        {"would_refuse", c->would_refuse.load()},
        {"failed_open", c->failed_open.load()}};
    for (const auto& [name, n] : verdicts)
      sample("shmguard_vhost_requests_total", vl(v) + ",verdict=\"" + name + "\"",
             std::to_string(n));
  }
  family("shmguard_vhost_waits_total", "counter",
         "Requests that waited for a worker, by outcome (served, expired, queue_full).");
  for (const auto& v : vs) {
    const auto* c = v.counters;
    sample("shmguard_vhost_waits_total", vl(v) + ",outcome=\"served\"",
           std::to_string(c->wait_served.load()));
    sample("shmguard_vhost_waits_total", vl(v) + ",outcome=\"expired\"",
           std::to_string(c->wait_expired.load()));
    sample("shmguard_vhost_waits_total", vl(v) + ",outcome=\"queue_full\"",
           std::to_string(c->queue_full.load()));
  }
  family("shmguard_vhost_lean_starts_total", "counter",
         "Lean workers the guard let start (ShmGuardAction degrade).");
  for (const auto& v : vs)
    sample("shmguard_vhost_lean_starts_total", vl(v),
           std::to_string(v.counters->lean_spawns.load()));
  family("shmguard_vhost_workers_fit", "gauge",
         "More workers of the vhost's reserve that the headroom holds now.");
  for (const auto& v : vs) sample("shmguard_vhost_workers_fit", vl(v), std::to_string(v.fit_more));
  family("shmguard_vhost_max_processes_fit", "gauge",
         "The FcgidMaxProcessesPerClass the vhost's share of the limit holds.");
  for (const auto& v : vs)
    sample("shmguard_vhost_max_processes_fit", vl(v), std::to_string(v.max_processes_fit));
  family("shmguard_vhost_translated_total", "counter",
         "Backend 500s caused by shared-memory exhaustion, answered as 503.");
  for (const auto& v : vs)
    sample("shmguard_vhost_translated_total", vl(v), std::to_string(v.counters->translated.load()));
  family("shmguard_vhost_last_refusal_timestamp_seconds", "gauge",
         "When the vhost last refused a request (0: never).");
  for (const auto& v : vs)
    sample("shmguard_vhost_last_refusal_timestamp_seconds", vl(v),
           std::to_string(v.counters->last_refusal_ms.load() / 1000));
  return o;
}

}  // namespace

namespace {
// Asks the sampler to render `formats` now and waits for it (at most 500 ms; then the previous
// rendering is shown). The sampler renders only on request, so an unwatched server pays nothing.
std::optional<StatusSections> fresh_sections(unsigned formats) {
  shm::Segment* seg = gen.seg;
  if (gen.wake_write >= 0 && seg->sampler_pid.load() > 0) {
    seg->status_wanted.fetch_or(formats);  // before the ticket: see Sampler::sample()
    std::uint64_t ticket = seg->status_requests.fetch_add(1) + 1;
    ssize_t w = write(gen.wake_write, "s", 1);
    (void)w;  // a full pipe wakes the sampler as well
    for (int i = 0; i < 2500 && seg->status_gen.load() < ticket; ++i) {  // 0.2 ms steps
      struct timespec ts {
        0, 200 * 1000
      };
      nanosleep(&ts, nullptr);
    }
  }
  std::string blob;
  if (!shm::read_blob(seg, blob)) return std::nullopt;
  return decode_sections(blob);
}
}  // namespace

int status_handler(request_rec* r) {
  // Served only where the server configuration says ShmGuardStatusPage On: SetHandler alone can
  // come from a tenant's .htaccess (AllowOverride FileInfo), ShmGuardStatusPage cannot.
  const auto* d =
      static_cast<const DirConf*>(ap_get_module_config(r->per_dir_config, &shmguard_module));
  if (!d || d->status_page != 1) {
    static std::atomic<std::int64_t> last_log{0};  // per process, at most once a minute
    std::int64_t now = wall_ms(), last = last_log.load();
    if (now - last >= 60000 && last_log.compare_exchange_strong(last, now))
      ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                    "SG0501 the shmguard-status handler was asked for %s, where "
                    "ShmGuardStatusPage is not On: answered 404 (enable the page with "
                    "ShmGuardStatusPage On next to its SetHandler in the server configuration)",
                    ap_escape_logitem(r->pool, r->uri));
    return HTTP_NOT_FOUND;
  }
  // GET and HEAD (HEAD has method_number M_GET) only.
  if (r->method_number != M_GET) {
    r->allowed = AP_METHOD_BIT << M_GET;
    ap_allow_methods(r, REPLACE_ALLOW, "GET", "HEAD", static_cast<char*>(nullptr));
    return HTTP_METHOD_NOT_ALLOWED;
  }
  if (!gen.seg) return HTTP_SERVICE_UNAVAILABLE;
  Args args = parse_args(r->args);
  unsigned formats = args.format == Args::Json      ? kJson
                     : args.format == Args::Auto    ? kAuto
                     : args.format == Args::Metrics ? kMetrics
                                                    : kHtml;
  std::optional<StatusSections> sec = fresh_sections(formats);
  Health h = health();
  std::vector<VhostView> vs = vhosts();
  Headline hl = headline(h, vs, sec);

  std::string out;
  switch (args.format) {
    case Args::Json:
      out = render_json(h, hl, vs, sec);
      ap_set_content_type(r, "application/json");
      break;
    case Args::Auto:
      out = render_auto(h, hl, vs, sec);
      ap_set_content_type(r, "text/plain; charset=utf-8");
      break;
    case Args::Metrics:
      if (sec) out = sec->metrics;
      out += render_metrics(h, hl, vs);
      ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
      break;
    case Args::Html:
      out = render_html(args, h, hl, vs, sec);
      ap_set_content_type(r, "text/html; charset=utf-8");
      break;
  }
  if (args.refresh)
    apr_table_setn(r->headers_out, "Refresh", apr_psprintf(r->pool, "%d", args.refresh));
  apr_table_setn(r->headers_out, "Cache-Control", "no-store");
  apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
  ap_set_content_length(r, static_cast<apr_off_t>(out.size()));
  if (!r->header_only) ap_rwrite(out.data(), static_cast<int>(out.size()), r);
  return OK;
}

int status_hook(request_rec* r, int flags) {
  if (!gen.seg) return OK;
  std::optional<StatusSections> sec = fresh_sections((flags & AP_STATUS_SHORT) ? kAuto : kHtml);
  Health h = health();
  std::vector<VhostView> vs = vhosts();
  Headline hl = headline(h, vs, sec);
  std::uint64_t refused = 0, translated = 0, guarded = 0;
  for (const auto& v : vs) {
    refused += v.counters->refused.load();
    translated += v.counters->translated.load();
    guarded += v.counters->guarded.load();
  }
  std::string o;
  if (flags & AP_STATUS_SHORT) {
    auto line = [&](const char* k, const std::string& v) { o += std::string(k) + ": " + v + "\n"; };
    line("ShmGuardState", state_word(hl.state));
    line("ShmGuardHeadroomBytes", hl.headroom < 0 ? "unbounded" : std::to_string(hl.headroom));
    line("ShmGuardBinding", hl.binding.empty() ? "none" : hl.binding);
    line("ShmGuardFailingOpen", h.fresh ? "0" : "1");
    line("ShmGuardSampleAgeMs", std::to_string(h.age_ms));
    line("ShmGuardGuarded", std::to_string(guarded));
    line("ShmGuardRefused", std::to_string(refused));
    line("ShmGuardTranslated", std::to_string(translated));
    line("ShmGuardFindingsCritical", std::to_string(sec ? sec->findings_critical : 0));
    line("ShmGuardFindingsWarning", std::to_string(sec ? sec->findings_warning : 0));
  } else {
    o = "<hr>\n<h2>mod_shmguard</h2>\n<p><strong>" + html_escape(state_word(hl.state)) +
        "</strong>: " + html_escape(hl.detail) + "</p>\n<p>Shared-memory headroom ";
    if (hl.headroom < 0)
      o += "unbounded";
    else
      o += html_escape(human_bytes(static_cast<std::uint64_t>(hl.headroom))) + " (" +
           html_escape(hl.binding) + ")";
    o += "; " + std::to_string(guarded) + " FastCGI requests guarded, " + std::to_string(refused) +
         " refused, " + std::to_string(translated) + " 500s translated to 503; " +
         std::to_string(sec ? sec->findings_critical : 0) + " critical and " +
         std::to_string(sec ? sec->findings_warning : 0) +
         " warning findings. Details: the <code>shmguard-status</code> handler.</p>\n";
  }
  ap_rwrite(o.data(), static_cast<int>(o.size()), r);
  return OK;
}

}  // namespace shmguard::glue
