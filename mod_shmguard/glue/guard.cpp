// mod_shmguard glue: the request path. In fixups (after the handler is chosen) a FastCGI-bound
// request is checked against the published headroom; a refusal is answered by our own handler
// before the backend is touched. A 500 from a backend that died of a shared-memory allocation
// failure is turned into the same diagnosed 503 in insert_error_filter.
//
// With ample headroom the path reads a few atomics from the shared segment and makes no syscall.
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "glue.hpp"
#include "shmguard/fcgid.hpp"
#include "shmguard/guard.hpp"
#include "shmguard/units.hpp"

#include "apr_strings.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "unixd.h"
#include "util_filter.h"

APLOG_USE_MODULE(shmguard);

namespace shmguard::glue {

namespace {

enum class Backend { None, Fcgid, ProxyFcgi, Listed };

// What the guard noted about a request (per-request config).
struct RequestNote {
  Backend backend;
  Verdict verdict;
  shm::ClassSlot* slot;  // in-flight accounting, mod_fcgid only
  bool counted;          // slot->inflight was incremented for this request
  std::int64_t start_ms;
  std::uint64_t php_errors, failcnt_sum, oom_kills;  // at fixups: evidence must be newer
  std::uint64_t reserve;
  std::int64_t headroom;
  bool translated;
};

bool starts_with(const char* s, const char* prefix) {
  return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

bool is_proxy_fcgi(const request_rec* r) {
  const char* h = r->handler;
  if (starts_with(h, "proxy:") && strstr(h, "fcgi://")) return true;  // SetHandler proxy:...fcgi
  if (h && strcmp(h, "proxy-server") == 0 && starts_with(r->filename, "proxy:fcgi://")) return true;
  return false;
}

Backend classify(const request_rec* r, const ServerConf* c) {
  if (!r->handler) return Backend::None;
  if (!c->handlers) {
    if (strcmp(r->handler, "fcgid-script") == 0) return Backend::Fcgid;
    if (is_proxy_fcgi(r)) return Backend::ProxyFcgi;
    return Backend::None;
  }
  const auto* names = reinterpret_cast<const char* const*>(c->handlers->elts);
  for (int i = 0; i < c->handlers->nelts; ++i) {
    const char* n = names[i];
    if (strcmp(n, "fcgid-script") == 0 && strcmp(r->handler, "fcgid-script") == 0)
      return Backend::Fcgid;
    if (strcmp(n, "proxy-fcgi") == 0 && is_proxy_fcgi(r)) return Backend::ProxyFcgi;
    if (strcmp(n, r->handler) == 0) return Backend::Listed;
  }
  return Backend::None;
}

// mod_fcgid's process-class key for this request (see fcgid_bridge.c apply_free_procnode).
struct FcgidClass {
  fcgid::ClassKey key;
  std::uint64_t hash;
};
bool fcgid_class(request_rec* r, FcgidClass& out) {
  if (!gen.fcgid_module || !gen.fcgid_get_wrapper_info) return false;
  // fcgid_cmd_conf: {const char* cgipath; const char* cmdline; apr_ino_t inode; apr_dev_t dev;}
  struct WrapperConf {
    const char* cgipath;
    const char* cmdline;
    apr_ino_t inode;
    apr_dev_t deviceid;
  };
  auto* w = static_cast<const WrapperConf*>(gen.fcgid_get_wrapper_info(r->filename, r));
  if (w) {
    out.key.inode = static_cast<std::uint64_t>(w->inode);
    out.key.deviceid = static_cast<std::uint64_t>(w->deviceid);
    out.key.cmdline = w->cmdline;
  } else {
    if (r->finfo.inode == 0 && r->finfo.device == 0) return false;
    out.key.inode = static_cast<std::uint64_t>(r->finfo.inode);
    out.key.deviceid = static_cast<std::uint64_t>(r->finfo.device);
    out.key.cmdline = nullptr;
  }
  // vhost_id is the first member of mod_fcgid's server config.
  const int* vhost_id =
      static_cast<const int*>(ap_get_module_config(r->server->module_config, gen.fcgid_module));
  if (!vhost_id) return false;
  out.key.vhost_id = *vhost_id;
  ap_unix_identity_t* ugid = ap_run_get_suexec_identity(r);
  out.key.uid = ugid ? static_cast<std::uint32_t>(ugid->uid) : 0xffffffffu;
  out.key.gid = ugid ? static_cast<std::uint32_t>(ugid->gid) : 0xffffffffu;
  out.hash = shm::class_key(out.key.vhost_id, out.key.deviceid, out.key.inode);
  return true;
}

bool pid_alive(int pid) {
  return kill(pid, 0) == 0 || errno == EPERM;
}

apr_status_t release_inflight(void* data) {
  auto* note = static_cast<RequestNote*>(data);
  if (note->counted && note->slot) note->slot->inflight.fetch_sub(1, std::memory_order_acq_rel);
  note->counted = false;
  return APR_SUCCESS;
}

shm::VhostCounters* counters_for(const ServerConf* c) {
  if (!gen.seg || c->vhost_index < 0) return nullptr;
  return &gen.seg->vhosts[c->vhost_index];
}

const char* host_of(const request_rec* r) {
  return r->hostname ? r->hostname : (r->server->server_hostname ? r->server->server_hostname : "");
}

std::string binding_detail() {
  std::int32_t b = gen.seg->binding.load(std::memory_order_relaxed);
  std::string out = shm::binding_name(b);
  std::int64_t lim = gen.seg->binding_limit.load(), used = gen.seg->binding_used.load();
  if (b == shm::kShmpages || b == shm::kPrivvmpages) {
    out += " " + std::to_string(used / 4096) + "/" + std::to_string(lim / 4096) + " pages";
  } else if (lim > 0) {
    out += " " + human_bytes(static_cast<std::uint64_t>(used)) + "/" +
           human_bytes(static_cast<std::uint64_t>(lim));
  }
  std::int64_t rise = gen.seg->binding_failcnt_rise_minute.load();
  if (rise > 0) out += ", failcnt +" + std::to_string(rise) + " in 60 s";
  return out;
}

// One error-log line per burst of refusals (at most one per 10 s per vhost), with the numbers.
void log_refusal(request_rec* r, shm::VhostCounters* vc, const RequestNote& note, bool dry,
                 int workers, int inflight) {
  std::int64_t now = apr_time_as_msec(r->request_time);
  if (vc) {
    vc->refused_since_log.fetch_add(1);
    std::int64_t last = vc->last_log_ms.load();
    if (now - last < 10000 || !vc->last_log_ms.compare_exchange_strong(last, now)) return;
  }
  std::uint64_t burst = vc ? vc->refused_since_log.exchange(0) : 1;
  std::string workers_text;
  if (note.backend == Backend::Fcgid) {
    if (workers < 0)
      workers_text = "; worker table unreadable";
    else
      workers_text = "; " + std::to_string(workers) + " workers, " + std::to_string(inflight) +
                     " busy or claimed, none idle";
  } else {
    workers_text = "; backend does not spawn per request (reserve alone decides)";
  }
  ap_log_rerror(
      APLOG_MARK, APLOG_ERR, 0, r,
      "SG0201 %s %s on %s: shared-memory headroom %s < reserve %s (%s)%s%s",
      dry ? "would refuse (ShmGuardAction log)" : "refused", r->uri, host_of(r),
      human_bytes(static_cast<std::uint64_t>(note.headroom)).c_str(),
      human_bytes(note.reserve).c_str(), binding_detail().c_str(), workers_text.c_str(),
      burst > 1 ? ("; " + std::to_string(burst) + " refusals in this burst").c_str() : "");
}

std::uint64_t reserve_for(const ServerConf* c, const shm::ClassSlot* slot) {
  if (c->reserve_auto == 0) return c->reserve;
  if (slot) {
    std::uint64_t seen = slot->max_segment.load(std::memory_order_relaxed);
    if (seen) return seen;
  }
  return kDefaultReserve;
}

// Sets the content type and returns the refusal body (JSON when the client prefers it).
std::string refusal_body(request_rec* r, const ServerConf* c, bool translated) {
  RefusalInfo info;
  info.retry_after = static_cast<std::uint64_t>(conf_retry_after(c));
  info.detail = c->detail == 1;
  auto* note = static_cast<RequestNote*>(ap_get_module_config(r->request_config, &shmguard_module));
  if (note) {
    info.headroom = note->headroom < 0 ? 0 : static_cast<std::uint64_t>(note->headroom);
    info.reserve = note->reserve;
  }
  info.binding = shm::binding_name(gen.seg ? gen.seg->binding.load() : 0);
  info.host = host_of(r);
  info.translated = translated;
  const char* accept = apr_table_get(r->headers_in, "Accept");
  if (accept && prefers_json(accept)) {
    ap_set_content_type(r, "application/json");
    return render_refusal_json(info);
  }
  ap_set_content_type(r, "text/html; charset=utf-8");
  return c->errordoc_body ? std::string(c->errordoc_body) : render_refusal_html(info);
}

// Status, Retry-After and no caching: the same for a refusal and a translated 500.
void set_refusal_headers(request_rec* r, const ServerConf* c) {
  r->status = HTTP_SERVICE_UNAVAILABLE;
  apr_table_setn(r->err_headers_out, "Retry-After",
                 apr_pstrdup(r->pool, std::to_string(conf_retry_after(c)).c_str()));
  apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
}

}  // namespace

int guard_fixups(request_rec* r) {
  if (!gen.seg || !r->handler || r->main) return DECLINED;  // no segment: fail open
  const ServerConf* c = server_conf(r->server);
  if (!conf_enabled(c)) return DECLINED;
  Backend backend = classify(r, c);
  if (backend == Backend::None) return DECLINED;

  shm::Segment* seg = gen.seg;
  shm::VhostCounters* vc = counters_for(c);
  if (vc) vc->guarded.fetch_add(1, std::memory_order_relaxed);

  auto* note = static_cast<RequestNote*>(apr_pcalloc(r->pool, sizeof(RequestNote)));
  note->backend = backend;
  note->start_ms = apr_time_as_msec(r->request_time);
  note->php_errors = seg->php_errors.load(std::memory_order_acquire);
  note->failcnt_sum = seg->failcnt_sum.load(std::memory_order_relaxed);
  note->oom_kills = seg->oom_kills.load(std::memory_order_relaxed);
  ap_set_module_config(r->request_config, &shmguard_module, note);

  FcgidClass klass{};
  bool have_class = backend == Backend::Fcgid && fcgid_class(r, klass);
  if (have_class) note->slot = shm::class_slot(seg, klass.hash);

  GuardInput in;
  std::int64_t sampled = seg->sample_wall_ms.load(std::memory_order_acquire);
  std::int64_t age = note->start_ms - sampled;
  // A sample "from the future" by more than a second means the clock jumped: stale too.
  in.fresh = sampled > 0 && age > -1000 && age <= shm::staleness_bound_ms(seg);
  std::int64_t headroom = seg->headroom.load(std::memory_order_relaxed);
  in.bounded = headroom >= 0;
  in.headroom = in.bounded ? static_cast<std::uint64_t>(headroom) : 0;
  in.reserve = reserve_for(c, note->slot);
  in.spawns_workers = backend == Backend::Fcgid;
  in.dry_run = conf_dry_run(c);
  note->headroom = headroom;
  note->reserve = in.reserve;

  int workers = -1, inflight = 0;
  Verdict v;
  if (!in.fresh || !in.bounded || in.headroom >= in.reserve || !in.spawns_workers) {
    v = decide(in);  // the fast path: no worker table needed
    if (note->slot) {
      note->slot->inflight.fetch_add(1, std::memory_order_acq_rel);
      note->counted = true;
    }
  } else if (!note->slot) {
    v = decide(in);  // idle_workers unknown: fails open
  } else {
    // Low headroom: serve only if a running worker of this class is free. Workers are counted in
    // mod_fcgid's table (idle and busy lists, live pids); requests in flight are ours. Claiming
    // with a compare-and-swap keeps concurrent children from taking the same free worker.
    workers = fcgid::count_class_workers(gen.fcgid_table, klass.key, pid_alive);
    for (;;) {
      inflight = note->slot->inflight.load(std::memory_order_acquire);
      in.idle_workers = workers < 0 ? -1 : (workers > inflight ? workers - inflight : 0);
      v = decide(in);
      if (v != Verdict::Pass) break;
      if (note->slot->inflight.compare_exchange_weak(inflight, inflight + 1,
                                                     std::memory_order_acq_rel)) {
        note->counted = true;
        break;
      }
    }
    if (v == Verdict::WouldRefuse || v == Verdict::FailOpen) {
      note->slot->inflight.fetch_add(1, std::memory_order_acq_rel);
      note->counted = true;
    }
  }
  note->verdict = v;
  if (APLOGrdebug(r))
    ap_log_rerror(
        APLOG_MARK, APLOG_DEBUG, 0, r, "%s",
        ("SG0205 " + std::string(to_string(v)) + ": headroom " + std::to_string(headroom) +
         ", reserve " + std::to_string(in.reserve) + ", fresh " + std::to_string(in.fresh) +
         ", class " + (have_class ? "known" : "unknown") + " (vhost " +
         std::to_string(klass.key.vhost_id) + ", dev " + std::to_string(klass.key.deviceid) +
         ", inode " + std::to_string(klass.key.inode) + "), workers " + std::to_string(workers) +
         ", in flight " + std::to_string(inflight))
            .c_str());
  if (note->counted)
    apr_pool_cleanup_register(r->pool, note, release_inflight, apr_pool_cleanup_null);

  switch (v) {
    case Verdict::Pass:
      if (vc) vc->passed.fetch_add(1, std::memory_order_relaxed);
      return DECLINED;
    case Verdict::FailOpen:
      if (vc) vc->failed_open.fetch_add(1, std::memory_order_relaxed);
      if (!in.fresh) {
        // One warning per 10 s across all children: the guard is not guarding.
        std::int64_t last = seg->failopen_log_ms.load();
        if (note->start_ms - last >= 10000 &&
            seg->failopen_log_ms.compare_exchange_strong(last, note->start_ms))
          ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                        "SG0204 no fresh sample (sampler pid %d, last sample %s ms ago): the "
                        "guard is failing open (serving unguarded)",
                        static_cast<int>(seg->sampler_pid.load()),
                        sampled ? std::to_string(age).c_str() : "never");
      }
      return DECLINED;
    case Verdict::WouldRefuse:
      if (vc) vc->would_refuse.fetch_add(1, std::memory_order_relaxed);
      log_refusal(r, vc, *note, true, workers, inflight);
      return DECLINED;
    case Verdict::Refuse:
      break;
  }
  if (vc) {
    vc->refused.fetch_add(1, std::memory_order_relaxed);
    vc->last_refusal_ms.store(note->start_ms, std::memory_order_relaxed);
  }
  log_refusal(r, vc, *note, false, workers, inflight);
  r->handler = "shmguard-refusal";  // our handler answers; the backend is never touched
  return OK;
}

int refusal_handler(request_rec* r) {
  const ServerConf* c = server_conf(r->server);
  set_refusal_headers(r, c);
  std::string body = refusal_body(r, c, false);
  ap_set_content_length(r, static_cast<apr_off_t>(body.size()));
  if (!r->header_only) ap_rwrite(body.data(), static_cast<int>(body.size()), r);
  return OK;
}

// ---------------------------------------------------------------- 500 -> 503 translation

namespace {

const char kReplaceFilter[] = "SHMGUARD_REPLACE";

// Waits (at most 300 ms) until the sampler has looked at the counters and the error log once
// after this call. Only on the path of a 500 from a FastCGI backend.
void wait_for_evidence_scan() {
  if (gen.wake_write < 0 || !gen.seg) return;
  std::uint64_t ticket = gen.seg->wake_requests.fetch_add(1) + 1;
  ssize_t w = write(gen.wake_write, "x", 1);
  (void)w;  // a full pipe already wakes the sampler
  for (int i = 0; i < 60; ++i) {
    if (gen.seg->evidence_gen.load(std::memory_order_acquire) >= ticket) return;
    struct timespec ts {
      0, 5 * 1000 * 1000
    };
    nanosleep(&ts, nullptr);
  }
}

// Replaces the canned 500 body with our 503 page (runs before the header filter).
apr_status_t replace_filter_impl(ap_filter_t* f, apr_bucket_brigade* bb);
apr_status_t replace_filter(ap_filter_t* f, apr_bucket_brigade* bb) {
  try {
    return replace_filter_impl(f, bb);
  } catch (...) {
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, f->r, "SG0901 internal error in the 503 filter");
    ap_remove_output_filter(f);
    return ap_pass_brigade(f->next, bb);
  }
}
apr_status_t replace_filter_impl(ap_filter_t* f, apr_bucket_brigade* bb) {
  request_rec* r = f->r;
  if (f->ctx) {  // already sent: swallow the rest
    apr_brigade_cleanup(bb);
    return APR_SUCCESS;
  }
  f->ctx = f;
  apr_brigade_cleanup(bb);
  const ServerConf* c = server_conf(r->server);
  r->status = HTTP_SERVICE_UNAVAILABLE;
  r->status_line = nullptr;
  apr_table_unset(r->headers_out, "Content-Length");
  std::string body = refusal_body(r, c, true);
  ap_set_content_length(r, static_cast<apr_off_t>(body.size()));
  apr_bucket_brigade* out = apr_brigade_create(r->pool, f->c->bucket_alloc);
  if (!r->header_only)
    APR_BRIGADE_INSERT_TAIL(
        out, apr_bucket_pool_create(apr_pstrmemdup(r->pool, body.data(), body.size()), body.size(),
                                    r->pool, f->c->bucket_alloc));
  APR_BRIGADE_INSERT_TAIL(out, apr_bucket_eos_create(f->c->bucket_alloc));
  return ap_pass_brigade(f->next, out);
}

}  // namespace

void translate_insert_error_filter(request_rec* r) {
  if (!gen.seg || r->status != HTTP_INTERNAL_SERVER_ERROR) return;
  auto* note = static_cast<RequestNote*>(ap_get_module_config(r->request_config, &shmguard_module));
  if (!note || note->translated || note->backend == Backend::None) return;
  const ServerConf* c = server_conf(r->server);
  wait_for_evidence_scan();
  shm::Segment* seg = gen.seg;
  std::string evidence;
  std::uint64_t php = seg->php_errors.load(std::memory_order_acquire);
  if (php > note->php_errors && seg->php_error_wall_ms.load() >= note->start_ms - 5) {
    evidence = "PHP: \"Unable to allocate shared memory segment of " +
               std::to_string(seg->php_error_bytes.load()) + " bytes\" (pid " +
               std::to_string(seg->php_error_pid.load()) + ")";
  }
  std::uint64_t failcnt = seg->failcnt_sum.load();
  if (failcnt > note->failcnt_sum) {
    if (!evidence.empty()) evidence += "; ";
    evidence += "beancounter failcnt +" + std::to_string(failcnt - note->failcnt_sum);
  }
  std::uint64_t ooms = seg->oom_kills.load();
  if (ooms > note->oom_kills) {
    if (!evidence.empty()) evidence += "; ";
    evidence += "cgroup oom_kill/failcnt +" + std::to_string(ooms - note->oom_kills);
  }
  if (evidence.empty()) return;  // an unrelated 500 stays exactly as httpd makes it

  note->translated = true;
  if (shm::VhostCounters* vc = counters_for(c)) vc->translated.fetch_add(1);
  if (conf_dry_run(c)) {
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                  "SG0203 500 for %s on %s is a shared-memory allocation failure (%s); "
                  "ShmGuardAction log: left as 500",
                  r->uri, host_of(r), evidence.c_str());
    return;
  }
  ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                "SG0202 backend for %s on %s died of a shared-memory allocation failure: %s; "
                "headroom %s (%s): answered 503 instead of 500",
                r->uri, host_of(r), evidence.c_str(),
                seg->headroom.load() < 0
                    ? "unbounded"
                    : human_bytes(static_cast<std::uint64_t>(seg->headroom.load())).c_str(),
                binding_detail().c_str());
  set_refusal_headers(r, c);
  ap_add_output_filter(kReplaceFilter, nullptr, r, r->connection);
}

void register_filters() {
  ap_register_output_filter(kReplaceFilter, replace_filter, nullptr, AP_FTYPE_CONTENT_SET);
}

}  // namespace shmguard::glue
