// mod_shmguard glue: /shmguard-status (SetHandler shmguard-status) and the mod_status section.
// Gathers the status model (status_model.hpp): the sampler's published part, plus what only a
// child knows (the sampler's health, the hot values, every vhost's name, configuration and
// counters), and writes the response with core's writer of the format. No privileged read happens
// here (children run as User).
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <string>
#include <vector>

#include "glue.hpp"
#include "shmguard/share.hpp"
#include "shmguard/fcgid.hpp"
#include "shmguard/need.hpp"
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

VhostCounts counts(const shm::VhostCounters& c) {
  VhostCounts v;
  v.guarded = c.guarded.load();
  v.passed = c.passed.load();
  v.refused = c.refused.load();
  v.would_refuse = c.would_refuse.load();
  v.failed_open = c.failed_open.load();
  v.translated = c.translated.load();
  v.waited = c.waited.load();
  v.wait_served = c.wait_served.load();
  v.wait_expired = c.wait_expired.load();
  v.queue_full = c.queue_full.load();
  v.lean_starts = c.lean_spawns.load();
  v.fpm = c.fpm.load();
  v.fpm_low = c.fpm_low.load();
  v.last_refusal_ms = c.last_refusal_ms.load();
  v.reclaims_given = c.reclaims_given.load();
  v.reclaims_taken = c.reclaims_taken.load();
  return v;
}

// What ShmGuardReserve means for this vhost right now (the guard decides per mod_fcgid class;
// the vhost's value is the largest of its classes'), on the basis the binding limit charges
// (need.hpp).
VhostReserve reserve_of(const ServerConf* c, int fcgid_vhost_id,
                        const std::vector<fcgid::Node>& nodes) {
  VhostReserve r;
  const char* binding = binding_name(static_cast<BindingLimit>(gen.seg->binding.load()));
  const NeedBasis basis = need_basis(binding);
  if (c->reserve_auto == 0) {
    const Reserve fixed = effective_reserve(false, c->reserve, 0, kDefaultReserve);
    r.bytes = fixed.bytes;
    r.source = "ShmGuardReserve " + human_bytes(c->reserve);
    r.basis = "fixed";
    r.basis_text = "fixed (ShmGuardReserve: the size set, whatever the limit charges)";
    return r;
  }
  r.is_auto = true;
  r.basis = need_basis_key(basis);
  r.basis_text = need_basis_text(basis, binding);
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
      r.mapped_bytes = slot->worker_mapped.load(std::memory_order_relaxed);
      r.touched_bytes = slot->worker_touched.load(std::memory_order_relaxed);
    }
  }
  const Reserve eff = effective_reserve(true, 0, best, kDefaultReserve);
  r.bytes = eff.bytes;
  if (eff.measured) {
    r.source = std::string("auto: ") +
               (basis == NeedBasis::Touched
                    ? "a worker's touched memory (RssShmem + RssAnon; its segments map "
                    : "a worker's private shared segments (OPcache + APCu + any other) summed (it "
                      "touched ") +
               human_bytes(basis == NeedBasis::Touched ? r.mapped_bytes : r.touched_bytes) +
               "), largest seen in this vhost's mod_fcgid workers (" + std::to_string(seen.size()) +
               (seen.size() == 1 ? " class" : " classes") + ", largest in " + best_class + ")";
  } else {
    r.source =
        "auto: no mod_fcgid worker of this vhost is running, so the default " +
        human_bytes(kDefaultReserve) +
        " (or what an earlier worker of the class mapped); no reserve applies to PHP-FPM requests "
        "(they map no new shared memory)";
  }
  return r;
}

std::vector<VhostStatus> vhosts() {
  std::vector<VhostStatus> out;
  std::vector<fcgid::Node> nodes;
  if (gen.fcgid_table) nodes = fcgid::read_table(gen.fcgid_table);
  // The shares (share.hpp): only under a finite limit, where a budget of workers exists.
  const bool share_known = gen.fcgid_table && gen.seg->headroom.load() >= 0;
  const ReclaimInput loads = share_known ? class_loads(nodes, wall_ms()) : ReclaimInput{};
  std::set<std::string> labels;
  for (server_rec* s = gen.main_server; s; s = s->next) {
    const ServerConf* c = server_conf(s);
    if (c->vhost_index < 0) continue;
    VhostStatus v;
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
      // vhost_id is the first member of mod_fcgid's server config (as request_hooks.cpp reads it).
      const int* id =
          static_cast<const int*>(ap_get_module_config(s->module_config, gen.fcgid_module));
      if (id) v.fcgid_vhost_id = *id;
    }
    v.guard = conf_enabled(c);
    v.dry_run = conf_dry_run(c);
    v.action = to_string(conf_action(c));
    v.counts = counts(gen.seg->vhosts[c->vhost_index]);
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
      const FitAdvice fit = fit_advice(room, static_cast<std::uint64_t>(v.workers_now),
                                       v.reserve.bytes, static_cast<std::uint64_t>(v.most_seen));
      v.fit_more = fit.more;
      v.max_processes_fit = fit.max_processes;
      v.per_worker_fit = fit.per_worker;
    }
    if (share_known && v.fcgid_vhost_id != 0) {
      // Its classes: those with workers, and those that only wait (their last waiter's vhost).
      for (const ClassLoad& cl : loads.classes)
        if (const shm::ClassSlot* slot = shm::class_slot(gen.seg, cl.key, false))
          if (slot->vhost_plus1.load() == c->vhost_index + 1 && cl.waiting > 0)
            classes.insert(cl.key);
      ReclaimInput in = loads;
      in.requester_need = v.reserve.bytes ? v.reserve.bytes : in.requester_need;
      const ShareView sv = share_view(in);
      v.fair_share = 0;
      v.budget_workers = sv.budget;
      for (const ClassShare& cs : sv.classes)
        if (classes.count(cs.key)) v.fair_share += cs.share;
    }
    for (std::size_t i = 0; i < kWaitReasons; ++i) {
      const std::int32_t n = gen.seg->vhosts[c->vhost_index].waiting_for[i].load();
      v.waiting_now[i] = n > 0 ? static_cast<std::uint32_t>(n) : 0;
    }
    out.push_back(std::move(v));
  }
  return out;
}

SamplerHealth health(std::int64_t now) {
  SamplerHealth h;
  h.pid = gen.seg->sampler_pid.load();
  h.interval_ms = gen.seg->interval_ms.load();
  h.sampled_ms = gen.seg->sample_wall_ms.load(std::memory_order_acquire);
  h.samples = gen.seg->samples.load();
  h.starts = gen.seg->sampler_starts.load();
  h.class_table_full = gen.seg->class_table_full.load(std::memory_order_relaxed);
  h.log_reads = gen.seg->log_reads.load(std::memory_order_relaxed);
  h.bound_ms = shm::staleness_bound_ms(gen.seg);  // the guard's own bound
  if (h.sampled_ms > 0) h.age_ms = std::max<std::int64_t>(0, now - h.sampled_ms);
  h.fresh = shm::sample_fresh(gen.seg, now);  // the guard's own rule (core freshness())
  return h;
}

HotValues hot_values() {
  HotValues v;
  v.headroom = gen.seg->headroom.load();
  v.binding = binding_name(static_cast<BindingLimit>(gen.seg->binding.load()));
  v.limit = gen.seg->binding_limit.load();
  v.used = gen.seg->binding_used.load();
  v.warn = gen.seg->warn_state.load() != 0;
  return v;
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

// Asks the sampler to publish its part now and waits for it (at most 500 ms; then the previous
// one is shown). The sampler publishes only on request, so an unwatched server pays nothing.
std::optional<SamplerPart> fresh_part() {
  shm::Segment* seg = gen.seg;
  if (gen.wake_write >= 0 && seg->sampler_pid.load() > 0) {
    seg->status_wanted.store(1);  // before the ticket: see Sampler::render_status()
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
  return decode_sampler_part(blob);
}

// The model of one view: the sampler's part, and what only this child knows.
StatusModel model() {
  StatusModel m;
  m.part = fresh_part();
  m.now_ms = wall_ms();
  m.sampler = health(m.now_ms);
  m.vhosts = vhosts();
  m.headline = decide_headline(m.sampler, hot_values(), m.vhosts, m.part ? &*m.part : nullptr);
  return m;
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
  const StatusModel m = model();
  std::string out;
  switch (args.format) {
    case Args::Json:
      out = write_status_json(m);
      ap_set_content_type(r, "application/json");
      break;
    case Args::Auto:
      out = write_status_auto(m);
      ap_set_content_type(r, "text/plain; charset=utf-8");
      break;
    case Args::Metrics:
      out = write_status_prometheus(m);
      ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
      break;
    case Args::Html:
      out = write_status_html(m, args.refresh);
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
  const StatusModel m = model();
  const std::string o =
      (flags & AP_STATUS_SHORT) ? write_mod_status_auto(m) : write_mod_status_html(m);
  ap_rwrite(o.data(), static_cast<int>(o.size()), r);
  return OK;
}

}  // namespace shmguard::glue
