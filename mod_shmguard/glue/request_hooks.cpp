// mod_shmguard glue: the request path. In fixups (after the handler is chosen) a FastCGI-bound
// request is admitted by the core's rules (decide(), through shm::try_admit): it takes a free
// worker of its class, or a spawn the headroom holds, or a lean spawn (degrade), or it waits for
// a worker of its class (ShmGuardWait), or it is refused by our own handler before the backend is
// touched. A request with a body is admitted when its body has been read (mod_fcgid reads it
// before it takes a worker), by an input filter. The claim is given back when the response's end
// passes our output filter (mod_fcgid has given its worker back by then), so a slow client does
// not hold it. A 500 from a backend that died of a shared-memory allocation failure is turned
// into the same diagnosed 503 in insert_error_filter.
//
// With ample headroom the path reads a few atomics and mod_fcgid's table and makes no syscall.
#include <dlfcn.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include <pthread.h>

#include "shm/claims.hpp"
#include "fcgid_abi.hpp"
#include "glue.hpp"
#include "shmguard/fcgid.hpp"
#include "shmguard/fpm.hpp"
#include "shmguard/rules.hpp"
#include "shmguard/lean.hpp"
#include "shmguard/model.hpp"
#include "shmguard/need.hpp"
#include "shmguard/reclaim.hpp"
#include "shmguard/workers.hpp"
#include "shmguard/refusal.hpp"
#include "shmguard/share.hpp"
#include "shmguard/units.hpp"

#include "apr_strings.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "mod_proxy.h"
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
  int claim;             // claim record, -1 none
  std::uint64_t claim_word;
  std::int64_t start_ms;
  EvidenceCounters at_start;  // evidence must be newer than the request
  std::uint64_t reserve;
  std::int64_t headroom;
  std::uint64_t room;  // headroom less what is reserved for workers being started (rule room())
  std::int64_t waited_ms;
  int workers, inflight;
  bool have_class;
  bool admitted;      // a decision was taken (fixups, or the body gate)
  bool refused_late;  // refused by the body gate: the error response becomes our 503
  bool translated;
  fcgid::ClassKey key;
  std::uint64_t key_hash;
  const void* fcgid_wrapper;  // mod_fcgid's fcgid_cmd_conf for the request's wrapper, or nullptr
  bool fresh;                 // the sample the decision was taken on was fresh
  // mod_proxy_fcgi to a ShmGuardFpmPool pool: its index (-1 none), its FPM log's counters when
  // the request started (evidence must be newer), and what SG0230 said (the 503's page).
  int fpm_pool;
  std::uint64_t fpm_forks_at_start, fpm_max_children_at_start;
  const char* fpm_cause;
  const char* fpm_bound;
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

// ProxyPass/ProxyPassMatch "unix:/run/php/www.sock|fcgi://localhost/…": mod_proxy takes the
// socket out of the URL at configuration (ap_proxy_de_socketfy: r->filename is
// "proxy:fcgi://localhost/…") and keeps it in the worker (uds_path). The worker is found as
// mod_proxy finds it, by its ap_proxy_get_worker (looked up by name: mod_proxy is loaded with
// RTLD_GLOBAL, and not linked into this module). nullptr: no such worker, or not a Unix socket.
using GetWorker = decltype(&ap_proxy_get_worker);  // its type from mod_proxy.h, not the symbol
const char* proxypass_socket(request_rec* r) {
  const auto get_worker = reinterpret_cast<GetWorker>(gen.proxy_get_worker);
  if (!get_worker || !starts_with(r->filename, "proxy:fcgi://")) return nullptr;
  auto* conf = static_cast<proxy_server_conf*>(
      ap_get_module_config(r->server->module_config, gen.proxy_module));
  if (!conf) return nullptr;
  proxy_worker* w = get_worker(r->pool, nullptr, conf, r->filename + strlen("proxy:"));
  return w && w->s && w->s->uds_path[0] ? w->s->uds_path : nullptr;
}

// The ShmGuardFpmPool pool (its index) a mod_proxy_fcgi request goes to: the Unix socket in the
// handler ("proxy:unix:/run/php/www.sock|fcgi://localhost"), in the URL (r->filename), or in
// ProxyPass's worker (proxypass_socket), compared with each pool's socket. -1: none.
int fpm_pool_of(request_rec* r) {
  const ServerConf* m = server_conf(gen.main_server);
  if (!m->fpm_pools) return -1;
  const char* url = starts_with(r->handler, "proxy:unix:") ? r->handler : r->filename;
  const char* path = nullptr;
  if (starts_with(url, "proxy:unix:"))
    path = url + strlen("proxy:unix:");
  else if (!(path = proxypass_socket(r)))
    return -1;
  const char* bar = strchr(path, '|');
  const std::size_t n = bar ? static_cast<std::size_t>(bar - path) : strlen(path);
  const auto* v = reinterpret_cast<const char* const*>(m->fpm_pools->elts);
  for (int i = 0; i + 2 < m->fpm_pools->nelts; i += 3)
    if (strlen(v[i]) == n && strncmp(v[i], path, n) == 0) return i / 3;
  return -1;
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

// Before the module asks for a lean spawn: waits until shmguard-php-wrapper's state file counts
// this request's reservation (state_counts_claim), two samples at most, so the wrapper plans on
// it (a file from before could hold a full worker's room that this reservation took). False when
// the samples do not come within four intervals (at least 2 s): mod_fcgid spawns as before.
bool state_file_counts_claim() {
  if (gen.state_file.empty()) return false;
  const std::uint64_t at = gen.seg->samples.load(std::memory_order_acquire);
  const std::int64_t interval = gen.seg->interval_ms.load(std::memory_order_relaxed);
  const std::int64_t give_up = mono_ms() + (interval > 500 ? 4 * interval : 2000);
  while (!state_counts_claim(at, gen.seg->samples.load(std::memory_order_acquire))) {
    if (mono_ms() >= give_up) return false;
    const timespec nap{0, 10 * 1000 * 1000};
    nanosleep(&nap, nullptr);
  }
  return true;
}

// Gives the request's claim back (once: the release filter, or the pool cleanup at the latest).
// A spawn's reservation always waits for the samples to see the new worker: even when the
// request got a worker that freed meanwhile, the spawn mod_fcgid was asked for may still come
// (its process manager starts it later).
void release(RequestNote* note) {
  if (note->claim >= 0 && gen.seg) shm::release_claim(gen.seg, note->claim, note->claim_word);
  note->claim = -1;
}
apr_status_t release_cleanup(void* data) {
  release(static_cast<RequestNote*>(data));
  return APR_SUCCESS;
}

const char kReleaseFilter[] = "SHMGUARD_RELEASE";
const char kGateFilter[] = "SHMGUARD_GATE";

bool handover_wanted(const request_rec* r, const RequestNote* note);
void hand_over(request_rec* r, RequestNote* note) noexcept;

// The end of the response (EOS) passes here after mod_fcgid's handler has returned, i.e. after
// mod_fcgid has put its worker back on the idle list: the claim goes back now, not when a slow
// client has read the last byte. While another site waits for its fair share (share.hpp), the
// brigade is passed first (mod_fcgid's stream read to its end: the worker is on the idle list),
// then the worker may be handed over, and only then is the claim given back: until then this
// request's claim keeps the class's waiters from counting that worker as free.
apr_status_t release_filter(ap_filter_t* f, apr_bucket_brigade* bb) {
  for (apr_bucket* b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb);
       b = APR_BUCKET_NEXT(b)) {
    if (APR_BUCKET_IS_EOS(b)) {
      auto* note = static_cast<RequestNote*>(f->ctx);
      ap_remove_output_filter(f);
      if (handover_wanted(f->r, note)) {
        apr_status_t rv = ap_pass_brigade(f->next, bb);
        hand_over(f->r, note);
        release(note);
        return rv;
      }
      release(note);
      break;
    }
  }
  return ap_pass_brigade(f->next, bb);
}

shm::VhostCounters* counters_for(const ServerConf* c) {
  if (!gen.seg || c->vhost_index < 0) return nullptr;
  return &gen.seg->vhosts[c->vhost_index];
}

const char* host_of(const request_rec* r) {
  return r->hostname ? r->hostname : (r->server->server_hostname ? r->server->server_hostname : "");
}

std::string binding_detail() {
  const auto b = static_cast<BindingLimit>(gen.seg->binding.load(std::memory_order_relaxed));
  std::string out = binding_name(b);
  std::int64_t lim = gen.seg->binding_limit.load(), used = gen.seg->binding_used.load();
  if (b == BindingLimit::Shmpages || b == BindingLimit::Privvmpages) {
    out += " " + std::to_string(used / 4096) + "/" + std::to_string(lim / 4096) + " pages";
  } else if (lim > 0) {
    out += " " + human_bytes(static_cast<std::uint64_t>(used)) + "/" +
           human_bytes(static_cast<std::uint64_t>(lim));
  }
  std::int64_t rise = gen.seg->binding_failcnt_rise_minute.load();
  if (rise > 0) out += ", failcnt +" + std::to_string(rise) + " in 60 s";
  return out;
}

EvidenceCounters evidence_counters(const shm::Segment* seg) {
  EvidenceCounters e;
  e.php_errors = seg->php_errors.load(std::memory_order_acquire);
  e.apcu_errors = seg->apcu_errors.load(std::memory_order_acquire);
  e.failcnt_sum = seg->failcnt_sum.load(std::memory_order_relaxed);
  e.oom_kills = seg->oom_kills.load(std::memory_order_relaxed);
  return e;
}

// One error-log line per burst of refusals (at most one per 10 s per vhost), with the numbers and
// how many workers fit: the values that would have avoided the exhaustion.
void log_refusal(request_rec* r, shm::VhostCounters* vc, const RequestNote& note, bool dry,
                 const char* why) {
  std::int64_t now = apr_time_as_msec(r->request_time);
  if (vc) {
    vc->refused_since_log.fetch_add(1);
    std::int64_t last = vc->last_log_ms.load();
    if (now - last < 10000 || !vc->last_log_ms.compare_exchange_strong(last, now)) return;
  }
  std::uint64_t burst = vc ? vc->refused_since_log.exchange(0) : 1;
  std::string workers_text;
  if (note.backend == Backend::Fcgid) {
    if (note.workers < 0) {
      workers_text = "; worker table unreadable";
    } else {
      workers_text = "; " + std::to_string(note.workers) + " workers, " +
                     std::to_string(note.inflight) + " busy or claimed, none free for this request";
      // What fits, from the room the decision saw (headroom less what is reserved).
      std::int32_t most = note.slot ? note.slot->max_workers_seen.load() : 0;
      const FitAdvice fit =
          fit_advice(note.room, static_cast<std::uint64_t>(note.workers), note.reserve,
                     most > 0 ? static_cast<std::uint64_t>(most) : 0);
      workers_text += "; " + std::to_string(fit.more) + " more fit at " +
                      human_bytes(note.reserve) + " each; FcgidMaxProcessesPerClass " +
                      std::to_string(fit.max_processes) + " would have avoided it";
      if (most > 0)
        workers_text +=
            ", or at most " + human_bytes(fit.per_worker) +
            " of shared memory per worker (opcache.memory_consumption + apc.shm_size) for the " +
            std::to_string(most) + " workers seen";
    }
  } else {
    workers_text = std::string("; handler ") + r->handler +
                   " is guarded by the reserve alone (ShmGuardHandlers: neither mod_fcgid nor "
                   "PHP-FPM)";
  }
  std::int64_t reserved = gen.seg->reserved.load(std::memory_order_relaxed);
  std::string reserved_text = reserved > 0
                                  ? " (" + human_bytes(static_cast<std::uint64_t>(reserved)) +
                                        " more reserved for workers being started)"
                                  : std::string();
  ap_log_rerror(
      APLOG_MARK, APLOG_ERR, 0, r,
      "SG0201 %s %s on %s: shared-memory headroom %s%s < reserve %s (%s)%s%s%s%s",
      dry ? "would refuse (ShmGuardAction log)" : "refused", r->uri, host_of(r),
      human_bytes(static_cast<std::uint64_t>(note.headroom < 0 ? 0 : note.headroom)).c_str(),
      reserved_text.c_str(), human_bytes(note.reserve).c_str(), binding_detail().c_str(),
      workers_text.c_str(), why ? "; " : "", why ? why : "",
      burst > 1 ? ("; " + std::to_string(burst) + " refusals in this burst").c_str() : "");
}

// A PHP-FPM request served while the headroom is below ShmGuardWarnBelow: one warning per 10 s
// per vhost (the requests since the last line counted in it). Never a refusal: FPM's running
// children share the master's one OPcache segment; what can fail is FPM forking a new child
// (pm = dynamic/ondemand), whose private writable pages are charged to privvmpages.
void log_fpm_low(request_rec* r, shm::VhostCounters* vc, const RequestNote& note,
                 const GuardInput& in, const Decision& d) {
  const std::int64_t now = apr_time_as_msec(r->request_time);
  // A vhost past the counter slots (SG0103) has no rate limit of its own: no line (a tenant's
  // traffic must not flood the log).
  if (!vc) return;
  vc->fpm_low_since_log.fetch_add(1);
  std::int64_t last = vc->fpm_log_ms.load();
  if (now - last < 10000 || !vc->fpm_log_ms.compare_exchange_strong(last, now)) return;
  const std::uint64_t since = vc->fpm_low_since_log.exchange(0);
  if (d.fork_short) {  // rule 2.2
    const auto* v =
        reinterpret_cast<const char* const*>(server_conf(gen.main_server)->fpm_pools->elts);
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                  "SG0221 %s on %s served by PHP-FPM: pool %s has no idle child and FPM would "
                  "fork one, whose private pages (%s, the largest of its children) do not fit "
                  "the headroom for private memory (%s): not refused (FPM keeps the request in "
                  "its listen queue), but the fork may fail; %s such requests since the last "
                  "warning",
                  r->uri, host_of(r), v[note.fpm_pool * 3], human_bytes(in.fpm_child_need).c_str(),
                  human_bytes(in.private_headroom).c_str(), std::to_string(since).c_str());
    return;
  }
  ap_log_rerror(
      APLOG_MARK, APLOG_WARNING, 0, r,
      "SG0220 %s on %s served by PHP-FPM with shared-memory headroom %s (%s) below "
      "ShmGuardWarnBelow: not refused (FPM's children share one OPcache; a request maps "
      "no new shared memory), but a new FPM child (pm = dynamic/ondemand) needs "
      "privvmpages for its private pages; %s such requests since the last warning",
      r->uri, host_of(r),
      human_bytes(static_cast<std::uint64_t>(note.headroom < 0 ? 0 : note.headroom)).c_str(),
      binding_detail().c_str(), std::to_string(since).c_str());
}

// The class's reserve (need.hpp effective_reserve: fixed, measured, or the default).
Reserve reserve_for(const ServerConf* c, const shm::ClassSlot* slot) {
  return effective_reserve(c->reserve_auto != 0, c->reserve,
                           slot ? slot->worker_need.load(std::memory_order_relaxed) : 0,
                           kDefaultReserve);
}

// This thread's starting place in the claim and waiter tables (spreads contention; no syscall).
std::size_t thread_hint() {
  // Threads' pthread_self() values are a stack size apart: mix all their bits (and the pid).
  std::uint64_t t = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(pthread_self())) ^
                    (static_cast<std::uint64_t>(static_cast<std::uint32_t>(gen.child_pid)) << 40);
  t *= 0x9E3779B97F4A7C15ULL;
  return static_cast<std::size_t>(t >> 40);
}

// ---------------------------------------------------------------- reclaim (ShmGuardReclaim)

const char* server_name_of(const server_rec* v) {
  return v && v->server_hostname ? v->server_hostname : "?";
}

// Each class's floor: ShmGuardMinWorkers of the vhost its workers belong to.
void set_floors(ReclaimInput& ri) {
  for (ClassLoad& cl : ri.classes)
    if (cl.vhost_id)
      if (const server_rec* v = server_of_fcgid_vhost(cl.vhost_id))
        cl.floor = conf_min_workers(server_conf(v));
}

// What choose_reclaim() decides on: mod_fcgid's workers by class, the guard's counts of each.
ReclaimInput reclaim_input(const std::vector<fcgid::Node>& nodes, const RequestNote* note,
                           const GuardInput& in) {
  ReclaimInput ri;
  ri.requester = note->key_hash;
  ri.requester_need = in.need;
  ri.room = room(in);
  ri.now_us = wall_ms() * 1000;
  add_table(ri, nodes);
  set_floors(ri);
  bool listed = false;
  for (ClassLoad& cl : ri.classes) {
    listed = listed || cl.key == ri.requester;
    if (const shm::ClassSlot* slot = shm::class_slot(gen.seg, cl.key, false)) {
      cl.waiting = slot->waiting.load(std::memory_order_relaxed);
      cl.inflight = slot->inflight.load(std::memory_order_relaxed);
      cl.need = slot->worker_need.load(std::memory_order_relaxed);
    }
  }
  if (!listed) {
    ClassLoad own;
    own.key = ri.requester;
    if (note->slot) {
      own.waiting = note->slot->waiting.load(std::memory_order_relaxed);
      own.inflight = note->slot->inflight.load(std::memory_order_relaxed);
    }
    ri.classes.push_back(own);
  }
  return ri;
}

// A claim the reclaiming request holds on the victim's class while it retires the worker, and a
// little after: a request of that class that counted the victim as its free worker before it
// was retired fails its compare-and-swap on the class's count and decides again on the table
// as it is now (given back after the first ~50 ms, or when the request's admission ends).
struct HeldClaim {
  int index = -1;
  std::uint64_t word = 0;
  std::int64_t since_ms = 0;
  HeldClaim() = default;
  HeldClaim(const HeldClaim&) = delete;
  HeldClaim& operator=(const HeldClaim&) = delete;
  ~HeldClaim() { release(); }
  void release() {
    if (index >= 0 && gen.seg) shm::release_claim(gen.seg, index, word);
    index = -1;
  }
};

// Rule 8b for this request: retires the idle worker choose_reclaim() picks, as mod_fcgid's
// scan_idlelist retires one past its idle timeout (under mod_fcgid's table lock, off the idle
// list onto the error list, diewhy "idle timeout"): the process manager signals and reaps it on
// its next error scans; the guard never signals a worker itself. `dry` (ShmGuardAction log): only
// the log line (SG0211), at most one per 10 s per vhost. True when a reclaim for the class is in
// flight (this one, or another request's).
// `owed`: set when there was nothing to retire but the class is owed a worker of a class above
// its fair share (share_owed(): it waits for the next one that frees there, rule 8c).
bool reclaim_for_unguarded(request_rec* r, RequestNote* note, const ServerConf* c,
                           const GuardInput& in, bool dry, HeldClaim& held, bool& owed);
// Runs while the request may already hold a claim whose cleanup is registered only after the
// admit loop: nothing may escape (an allocation failure would leave the claim reserved until the
// child exits). Anything thrown: nothing retired.
bool reclaim_for(request_rec* r, RequestNote* note, const ServerConf* c, const GuardInput& in,
                 bool dry, HeldClaim& held, bool& owed) noexcept {
  try {
    return reclaim_for_unguarded(r, note, c, in, dry, held, owed);
  } catch (const std::exception& e) {
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "SG0901 internal error in reclaim: %s", e.what());
  } catch (...) {
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "SG0901 internal error in reclaim");
  }
  return false;
}

bool reclaim_for_unguarded(request_rec* r, RequestNote* note, const ServerConf* c,
                           const GuardInput& in, bool dry, HeldClaim& held, bool& owed) {
  if (!gen.fcgid_lock || !gen.fcgid_unlock || !gen.fcgid_table || !note->slot) return false;
  // A look without the lock first: most rounds find nothing to retire, and mod_fcgid's lock is
  // every request's.
  const ReclaimInput first = reclaim_input(fcgid::read_table(gen.fcgid_table), note, in);
  auto choice = choose_reclaim(first);
  const std::int64_t now = wall_ms();
  if (!choice) {
    // Nothing idle to retire: a class above its share hands its next freed worker over (not
    // under log: nothing is retired there, and the request is served anyway).
    owed = !dry && share_owed(first);
    if (owed) {
      gen.seg->share_wanted_ms.store(now, std::memory_order_release);
      if (c->vhost_index >= 0) note->slot->vhost_plus1.store(c->vhost_index + 1);
      note->slot->owed_need.store(in.need);
    }
    return false;
  }
  if (dry) {
    shm::VhostCounters* vc = counters_for(c);
    std::int64_t last = vc ? vc->last_would_reclaim_ms.load() : 0;
    if (vc && (now - last < 10000 || !vc->last_would_reclaim_ms.compare_exchange_strong(last, now)))
      return false;
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                  "SG0211 would reclaim idle worker pid %d of %s (idle %s ms) for %s on %s "
                  "(ShmGuardAction log: nothing retired)",
                  choice->victim.pid,
                  server_name_of(server_of_fcgid_vhost(choice->victim.vhost_id)),
                  std::to_string(choice->idle_ms).c_str(), r->uri, host_of(r));
    return false;
  }
  if (!shm::begin_reclaim(note->slot, now)) return true;  // another request's is in flight
  const std::uint64_t victim_class = choice->victim.class_key;
  shm::ClassSlot* vslot = shm::class_slot(gen.seg, victim_class);
  if (vslot) {
    vslot->inflight.fetch_add(1, std::memory_order_acq_rel);
    held.index = shm::record_claim(gen.seg, gen.child_pid, vslot, Claim::Worker, 0, thread_hint());
    if (held.index < 0) vslot->inflight.fetch_sub(1, std::memory_order_acq_rel);
  }
  if (held.index < 0) {  // no claim record left: do not race that class's requests
    shm::end_reclaim(note->slot);
    return false;
  }
  held.word = gen.seg->claims[held.index].word.load(std::memory_order_relaxed);
  held.since_ms = now;
  bool retired = false;
  {
    FcgidTableLock lock(r);
    // Decided again on the table as it is under the lock (mod_fcgid may have handed that worker
    // to a request meanwhile: then it is on the busy list and not touched), and on the counts
    // of now, without the claim just taken.
    ReclaimInput ri = reclaim_input(fcgid::read_table(gen.fcgid_table), note, in);
    for (ClassLoad& cl : ri.classes)
      if (cl.key == victim_class && cl.inflight > 0) --cl.inflight;
    choice = choose_reclaim(ri);
    if (choice && choice->victim.class_key == victim_class)
      retired = fcgid::retire_idle_node(const_cast<unsigned char*>(gen.fcgid_table),
                                        choice->victim.index, choice->victim.pid,
                                        choice->victim.start_time_us, fcgid::kDieIdleTimeout);
  }
  if (!retired) {
    held.release();
    shm::end_reclaim(note->slot);
    return false;
  }
  shm::promise_room(gen.seg, note->slot, in.need, now);  // its room is this class's
  server_rec* victim_server = server_of_fcgid_vhost(choice->victim.vhost_id);
  if (shm::VhostCounters* vc = counters_for(c)) vc->reclaims_taken.fetch_add(1);
  if (victim_server)
    if (shm::VhostCounters* vc = counters_for(server_conf(victim_server)))
      vc->reclaims_given.fetch_add(1);
  ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                "SG0210 reclaimed idle worker pid %d of %s (idle %s ms) for %s on %s: no worker "
                "of its class and no room (%d workers fit the budget, %d sites with demand); "
                "retired as mod_fcgid retires an idle worker, its room is due at mod_fcgid's next "
                "error scan (FcgidErrorScanInterval)",
                choice->victim.pid, server_name_of(victim_server),
                std::to_string(choice->idle_ms).c_str(), r->uri, host_of(r), choice->budget_workers,
                choice->classes_with_demand);
  return true;
}

// ---------------------------------------------------------------- fair share (hand-over)

// A waiting request was owed its share a moment ago (share_wanted_ms), and this request of
// mod_fcgid held a worker: look whether to hand it over. One atomic load when no one waits.
bool handover_wanted(const request_rec* r, const RequestNote* note) {
  if (!gen.seg || gen.seg->waiting.load(std::memory_order_acquire) <= 0) return false;
  const std::int64_t wanted = gen.seg->share_wanted_ms.load(std::memory_order_acquire);
  const std::int64_t since = wall_ms() - wanted;
  if (!wanted || since > 2000 || since < -1000) return false;
  return note->backend == Backend::Fcgid && note->slot && note->claim >= 0 && gen.fcgid_lock &&
         gen.fcgid_unlock && gen.fcgid_table && conf_reclaim(server_conf(gen.main_server)) &&
         conf_action(server_conf(r->server)) != Action::Log;
}

// The server whose counters are `index` (nullptr: none).
server_rec* server_of_counters(int index) {
  for (server_rec* v = gen.main_server; v; v = v->next)
    if (server_conf(v)->vhost_index == index) return v;
  return nullptr;
}

// What choose_handover() decides on: the table, every class's counts, this request's claim not
// counted (it is giving its worker back); the room less every promise made.
ReclaimInput handover_input(const std::vector<fcgid::Node>& nodes, const RequestNote* note) {
  ReclaimInput ri = class_loads(nodes, wall_ms());
  for (ClassLoad& cl : ri.classes)
    if (cl.key == note->key_hash && cl.inflight > 0) --cl.inflight;  // this request's claim
  return ri;
}

void hand_over_unguarded(request_rec* r, RequestNote* note) {
  auto h =
      choose_handover(handover_input(fcgid::read_table(gen.fcgid_table), note), note->key_hash);
  if (!h) return;
  shm::ClassSlot* to = shm::class_slot(gen.seg, h->to, false);
  const std::int64_t now = wall_ms();
  if (!to || !shm::begin_reclaim(to, now)) return;  // its room is coming already
  bool retired = false;
  {
    FcgidTableLock lock(r);
    // Decided again on the table under mod_fcgid's lock (a request may have taken the worker).
    h = choose_handover(handover_input(fcgid::read_table(gen.fcgid_table), note), note->key_hash);
    if (h && h->to == to->key.load())
      retired =
          fcgid::retire_idle_node(const_cast<unsigned char*>(gen.fcgid_table), h->victim.index,
                                  h->victim.pid, h->victim.start_time_us, fcgid::kDieIdleTimeout);
  }
  if (!retired) {
    shm::end_reclaim(to);
    return;
  }
  shm::promise_room(gen.seg, to, h->to_need, now);
  const int to_index = to->vhost_plus1.load() - 1;
  server_rec* to_server = to_index >= 0 ? server_of_counters(to_index) : nullptr;
  if (shm::VhostCounters* vc = counters_for(server_conf(r->server)))
    vc->reclaims_given.fetch_add(1);
  if (to_server)
    if (shm::VhostCounters* vc = counters_for(server_conf(to_server)))
      vc->reclaims_taken.fetch_add(1);
  const std::int64_t idle_us = now * 1000 - h->victim.last_active_us;
  ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                "SG0212 handed worker pid %d of %s (idle %s ms) over to %s as it freed: %s holds "
                "%d workers, its fair share is %d; %s holds %d, its share %d and it waits (%d "
                "workers fit the budget, %d sites with demand); retired as mod_fcgid retires an "
                "idle worker, its room is reserved for %s and due at mod_fcgid's next error scan "
                "(FcgidErrorScanInterval)",
                h->victim.pid, host_of(r), std::to_string(idle_us > 0 ? idle_us / 1000 : 0).c_str(),
                server_name_of(to_server), host_of(r), h->from_held, h->from_share,
                server_name_of(to_server), h->to_held, h->to_share, h->budget_workers,
                h->classes_with_demand, server_name_of(to_server));
}

void hand_over(request_rec* r, RequestNote* note) noexcept {
  try {
    hand_over_unguarded(r, note);
  } catch (const std::exception& e) {
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "SG0901 internal error in the share hand-over: %s",
                  e.what());
  } catch (...) {
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "SG0901 internal error in the share hand-over");
  }
}

// Rule 2's pool inputs from the sampler's last read of its status (FpmPoolHot), when that read
// is at most kFpmStatusFreshMs old (the sampler reads the pools every 2 s): else not known.
constexpr std::int64_t kFpmStatusFreshMs = 7000;
void fpm_pool_input(GuardInput& in, int pool, std::int64_t now) {
  const shm::FpmPoolHot& hot = gen.seg->fpm_pools[pool];
  const std::int64_t read = hot.status_wall_ms.load(std::memory_order_acquire);
  if (!freshness(read, now, kFpmStatusFreshMs)) return;
  in.fpm_pool = true;
  in.fpm_idle = fpm_free_now(hot.free_children.load(std::memory_order_relaxed),
                             hot.total.load(std::memory_order_relaxed),
                             hot.inflight_at_read.load(std::memory_order_relaxed),
                             hot.inflight.load(std::memory_order_relaxed));
  in.fpm_forks = hot.forks.load(std::memory_order_relaxed) != 0;
  in.fpm_child_need = hot.child_need.load(std::memory_order_relaxed);
  const std::int64_t priv = gen.seg->private_headroom.load(std::memory_order_relaxed);
  in.private_bounded = priv >= 0;
  in.private_headroom = priv > 0 ? static_cast<std::uint64_t>(priv) : 0;
}

// Decides for a request (and waits for a worker of its class when the rules say so). Sets
// note->verdict, the claim, and the numbers for the log.
void admit(request_rec* r, RequestNote* note, const ServerConf* c) {
  shm::Segment* seg = gen.seg;
  note->admitted = true;
  GuardInput in;
  const std::int64_t now = wall_ms();
  in.lean_need = conf_lean_reserve(c);
  in.spawns_workers = note->backend == Backend::Fcgid;
  in.fpm = note->backend == Backend::ProxyFcgi;
  in.action = conf_action(c);

  const std::int64_t wait_ms = conf_wait_ms(c);
  const std::int64_t deadline = now + wait_ms;
  const std::size_t hint = thread_hint();
  int waiter = -1;
  const char* why = nullptr;
  Verdict v = Verdict::FailOpen;
  Decision decision;
  const bool reclaim_on = note->backend == Backend::Fcgid && note->slot &&
                          conf_reclaim(server_conf(gen.main_server)) && gen.fcgid_lock;
  bool reclaim_tried = false;  // in the round before: decide this one without rule 8b
  HeldClaim held;              // on a reclaimed worker's class, for a moment (reclaim_for)
  bool owed = false;           // reclaim_for found the class owed its share (rule 8c)
  shm::VhostCounters* const vcw = counters_for(c);
  WaitFor waiting_for = WaitFor::None;  // counted in vcw->waiting_for while it waits
  for (;;) {
    if (held.index >= 0 && wall_ms() - held.since_ms >= 50) held.release();
    in.reclaim = reclaim_on && !reclaim_tried;
    in.share_owed = owed;  // for the round after reclaim_for's look, then looked at again
    owed = false;
    reclaim_tried = false;
    // Every round decides on the sample published now (the rounds of a wait span samples):
    // try_admit() reads it, and the class's workers for it, for the decision it records.
    const std::int64_t t = wall_ms();
    const Reserve reserve = reserve_for(c, note->slot);
    in.need = in.fpm ? 0 : reserve.bytes;  // no reserve means anything for FPM
    in.need_known = reserve.measured;
    in.may_wait = wait_ms > 0 && t < deadline;
    in.waited_ms = t - now;
    // The table is read only when the sample is fresh and the room not ample; liveness (one
    // kill(0) per worker) only when there is no room for a spawn.
    auto count_workers = [&](const GuardInput& g) {
      if (!g.spawns_workers) return -1;
      if (!g.fresh || ample(g)) return 0;  // not looked at by decide()
      const bool low = g.bounded && room(g) < g.need;
      return fcgid::count_class_workers(gen.fcgid_table, note->key, low ? pid_alive : nullptr);
    };
    shm::Admission a;
    if (note->slot) {
      a = shm::try_admit(seg, note->slot, in, t, count_workers, gen.child_pid, hint, waiter >= 0);
    } else {  // the class is unknown: fail open (mod_fcgid), or PHP-FPM's rules
      shm::read_room(seg, in, t);
      in.low = seg->warn_state.load(std::memory_order_relaxed) == 1;
      in.workers = -1;
      if (in.fpm && note->fpm_pool >= 0) fpm_pool_input(in, note->fpm_pool, t);
      a.decision = decide(in);
    }
    v = a.decision.verdict;
    decision = a.decision;
    if (decision.reclaim && v == Verdict::WouldRefuse) {
      reclaim_for(r, note, c, in, true, held, owed);  // ShmGuardAction log: only said
    } else if (decision.reclaim) {
      // Nothing was claimed: decide again, waiting for the reclaim in flight (this request's or
      // another's), or refusing as without rule 8b when there was nothing to retire.
      reclaim_for(r, note, c, in, false, held, owed);
      reclaim_tried = true;
      continue;
    }
    // `in` now holds the numbers the decision was taken on.
    note->headroom = in.bounded ? static_cast<std::int64_t>(in.headroom) : -1;
    note->room = room(in);
    note->reserve = in.need;
    note->fresh = in.fresh;
    note->claim = a.claim;
    note->claim_word = a.word;
    note->workers = in.workers;
    note->inflight = note->slot ? note->slot->inflight.load() : 0;
    if (v != Verdict::Wait) break;
    if (vcw && decision.wait_for != waiting_for) {
      if (waiting_for != WaitFor::None)
        vcw->waiting_for[static_cast<int>(waiting_for)].fetch_sub(1, std::memory_order_relaxed);
      vcw->waiting_for[static_cast<int>(decision.wait_for)].fetch_add(1, std::memory_order_relaxed);
      waiting_for = decision.wait_for;
    }
    if (waiter < 0) {
      waiter = shm::enter_wait(seg, note->slot, gen.child_pid, hint);
      if (waiter < 0) {  // ShmGuardMaxWaiting requests wait already: answer at once
        if (shm::VhostCounters* vc = counters_for(c)) vc->queue_full.fetch_add(1);
        why = "the wait queue is full (ShmGuardMaxWaiting)";
        v = Verdict::Refuse;
        break;
      }
      if (shm::VhostCounters* vc = counters_for(c)) vc->waited.fetch_add(1);
      if (c->vhost_index >= 0) note->slot->vhost_plus1.store(c->vhost_index + 1);
    }
    std::int64_t left = deadline - wall_ms();
    if (left <= 0) continue;  // may_wait turns false: the rules answer
    // Woken when a worker of the class is given back or a sample is published; else every 50 ms
    // (and once kSpawnAfterWaitMs have passed, when a spawn may be due).
    std::int64_t until_spawn = kSpawnAfterWaitMs - (wall_ms() - now);
    std::int64_t nap = left < 50 ? left : 50;
    if (until_spawn > 0 && until_spawn < nap) nap = until_spawn;
    shm::wait_turn(seg, waiter, (nap > 0 ? nap : 1) * 1000000L);
  }
  held.release();
  if (vcw && waiting_for != WaitFor::None)
    vcw->waiting_for[static_cast<int>(waiting_for)].fetch_sub(1, std::memory_order_relaxed);
  // The claim goes back with the request's pool at the latest, whatever happens from here on.
  if (note->claim >= 0)
    apr_pool_cleanup_register(r->pool, note, release_cleanup, apr_pool_cleanup_null);
  if (waiter >= 0) {
    shm::leave_wait(seg, note->slot, waiter);
    note->waited_ms = wall_ms() - now;
    if (shm::VhostCounters* vc = counters_for(c)) {
      if (v == Verdict::Refuse) {
        vc->wait_expired.fetch_add(1);
        why = "no worker of the class became free within ShmGuardWait";
      } else {
        vc->wait_served.fetch_add(1);
      }
    }
  }
  note->verdict = v;
  if (v == Verdict::Lean)
    if (shm::VhostCounters* vc = counters_for(c)) vc->lean_spawns.fetch_add(1);
  if (APLOGrdebug(r))
    ap_log_rerror(
        APLOG_MARK, APLOG_DEBUG, 0, r, "%s",
        ("SG0205 " + std::string(to_string(v)) + ": headroom " + std::to_string(note->headroom) +
         ", reserve " + std::to_string(note->reserve) + ", reserved " +
         std::to_string(seg->reserved.load()) + ", fresh " + std::to_string(note->fresh) +
         ", class " + (note->have_class ? "known" : "unknown") + " (vhost " +
         std::to_string(note->key.vhost_id) + ", dev " + std::to_string(note->key.deviceid) +
         ", inode " + std::to_string(note->key.inode) + "), workers " +
         std::to_string(note->workers) + ", in flight " + std::to_string(note->inflight) +
         ", waited " + std::to_string(note->waited_ms) + " ms")
            .c_str());
  if (note->claim >= 0) {
    ap_add_output_filter(kReleaseFilter, note, r, r->connection);
    // A full spawn the rules admitted on the room it reserves (not the ample path, where nothing
    // waits behind a claim and mod_fcgid spawns as it always does), or a lean one while the
    // class's workers are taken (module_starts_worker); a lean one once the wrapper's state file
    // counts its reservation. Never under `log` (a dry run leaves mod_fcgid's spawning as it is).
    if (module_starts_worker(in, decision) &&
        (decision.claim != Claim::Lean || state_file_counts_claim()))
      start_worker(r, note->fcgid_wrapper);
  }
  shm::VhostCounters* vc = counters_for(c);
  if (in.fpm && vc) vc->fpm.fetch_add(1, std::memory_order_relaxed);
  if (decision.warn && v == Verdict::Pass) {
    if (vc) vc->fpm_low.fetch_add(1, std::memory_order_relaxed);
    log_fpm_low(r, vc, *note, in, decision);
  }
  switch (v) {
    case Verdict::Pass:
    case Verdict::Lean:
      if (vc) vc->passed.fetch_add(1, std::memory_order_relaxed);
      break;
    case Verdict::FailOpen:
      if (vc) vc->failed_open.fetch_add(1, std::memory_order_relaxed);
      if (!note->fresh) {
        // One warning per 10 s across all children: the guard is not guarding.
        std::int64_t last = seg->failopen_log_ms.load();
        std::int64_t sampled = seg->sample_wall_ms.load();
        if (note->start_ms - last >= 10000 &&
            seg->failopen_log_ms.compare_exchange_strong(last, note->start_ms))
          ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                        "SG0204 no fresh sample (sampler pid %d, last sample %s ms ago): the "
                        "guard is failing open (serving unguarded)",
                        static_cast<int>(seg->sampler_pid.load()),
                        sampled ? std::to_string(now - sampled).c_str() : "never");
      }
      break;
    case Verdict::WouldRefuse:
      if (vc) vc->would_refuse.fetch_add(1, std::memory_order_relaxed);
      log_refusal(r, vc, *note, true, why);
      break;
    case Verdict::Wait:  // not reached: the loop answers
    case Verdict::Refuse:
      if (vc) {
        vc->refused.fetch_add(1, std::memory_order_relaxed);
        vc->last_refusal_ms.store(note->start_ms, std::memory_order_relaxed);
      }
      log_refusal(r, vc, *note, false, why);
      break;
  }
}

bool has_body(const request_rec* r) {
  const char* te = apr_table_get(r->headers_in, "Transfer-Encoding");
  if (te) return true;
  const char* cl = apr_table_get(r->headers_in, "Content-Length");
  return cl && !(cl[0] == '0' && cl[1] == '\0') && cl[0] != '\0';
}

// Input filter for a request with a body: mod_fcgid reads the whole body before it takes a
// worker, so the request is admitted (and may wait) when the body's end is handed to mod_fcgid.
apr_status_t gate_filter(ap_filter_t* f, apr_bucket_brigade* bb, ap_input_mode_t mode,
                         apr_read_type_e block, apr_off_t bytes) {
  apr_status_t rv = ap_get_brigade(f->next, bb, mode, block, bytes);
  if (rv != APR_SUCCESS) return rv;
  auto* note = static_cast<RequestNote*>(f->ctx);
  bool eos = false;
  for (apr_bucket* b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb); b = APR_BUCKET_NEXT(b))
    if (APR_BUCKET_IS_EOS(b)) eos = true;
  if (!eos || note->admitted) return rv;
  ap_remove_input_filter(f);
  // The body read by httpd after the handler answered an error (ap_discard_request_body: 403,
  // 404, FcgidMaxRequestLen...): no worker will be taken, nothing to admit.
  if (f->r->status != HTTP_OK) return rv;
  try {
    admit(f->r, note, server_conf(f->r->server));
  } catch (...) {
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, f->r, "SG0901 internal error in the body gate");
    return rv;  // fail open
  }
  if (note->verdict == Verdict::Refuse) {
    note->refused_late = true;  // mod_fcgid answers an error; insert_error_filter makes it our 503
    apr_brigade_cleanup(bb);
    return APR_EGENERAL;
  }
  return rv;
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
  info.binding = binding_name(static_cast<BindingLimit>(gen.seg ? gen.seg->binding.load() : 0));
  info.host = host_of(r);
  info.translated = translated;
  if (note && note->fpm_cause) {
    info.fpm_cause = note->fpm_cause;
    info.fpm_bound = note->fpm_bound ? note->fpm_bound : "";
  }
  const char* accept = apr_table_get(r->headers_in, "Accept");
  if (accept && prefers_json(accept)) {
    ap_set_content_type(r, "application/json");
    return render_refusal_json(info);
  }
  ap_set_content_type(r, "text/html; charset=utf-8");
  return c->errordoc_body ? std::string(c->errordoc_body) : render_refusal_html(info);
}

apr_status_t fpm_request_ended(void* inflight) {
  static_cast<std::atomic<std::int64_t>*>(inflight)->fetch_sub(1, std::memory_order_relaxed);
  return APR_SUCCESS;
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
  if (shm::VhostCounters* vc = counters_for(c)) vc->guarded.fetch_add(1, std::memory_order_relaxed);

  auto* note = static_cast<RequestNote*>(apr_pcalloc(r->pool, sizeof(RequestNote)));
  note->backend = backend;
  note->claim = -1;
  note->workers = -1;
  note->start_ms = apr_time_as_msec(r->request_time);
  note->at_start = evidence_counters(seg);
  ap_set_module_config(r->request_config, &shmguard_module, note);

  note->fpm_pool = backend == Backend::ProxyFcgi ? fpm_pool_of(r) : -1;
  if (note->fpm_pool >= 0) {
    const shm::FpmPoolHot& hot = seg->fpm_pools[note->fpm_pool];
    note->fpm_forks_at_start = hot.fork_failures.load(std::memory_order_acquire);
    note->fpm_max_children_at_start = hot.max_children_lines.load(std::memory_order_acquire);
  }

  FcgidClass klass{};
  note->have_class = backend == Backend::Fcgid && fcgid_class(r, klass);
  if (note->have_class) {
    note->key = klass.key;
    note->key_hash = klass.hash;
    note->fcgid_wrapper = klass.wrapper;
    note->slot = shm::class_slot(seg, klass.hash);
    if (!note->slot) {  // every slot taken by other classes: this request is not guarded
      seg->class_table_full.fetch_add(1, std::memory_order_relaxed);
      if (seg->class_table_full_logged.exchange(1, std::memory_order_relaxed) == 0)
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "SG0206 the class table is full (%d mod_fcgid classes): %s and every other "
                      "request of a new class is not guarded (fails open) until the server is "
                      "restarted; the status page counts them",
                      static_cast<int>(shm::kClassSlots), r->uri);
    }
  }
  if (backend == Backend::Fcgid && has_body(r)) {
    // Decided when the body has been read (gate_filter): an upload does not hold a worker.
    ap_add_input_filter(kGateFilter, note, r, r->connection);
    return DECLINED;
  }
  admit(r, note, c);
  if (note->fpm_pool >= 0) {  // in flight to its pool until the request ends (fpm_free_now)
    std::atomic<std::int64_t>* inflight = &seg->fpm_pools[note->fpm_pool].inflight;
    inflight->fetch_add(1, std::memory_order_relaxed);
    apr_pool_cleanup_register(r->pool, inflight, fpm_request_ended, apr_pool_cleanup_null);
  }
  if (note->verdict != Verdict::Refuse) return DECLINED;
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

// The module's own look at a pool's socket when mod_proxy_fcgi failed: a non-blocking connect
// (0: accepted, else its errno; -1: not tried). Only on the path of an error from the pool.
int probe_connect(const char* path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof(a.sun_path)) return -1;
  memcpy(a.sun_path, path, strlen(path));
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int rc = connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a));
  const int err = rc == 0 || errno == EINPROGRESS ? 0 : errno;
  close(fd);
  return err;
}

// mod_proxy_fcgi's error (503 when the socket refuses or the request failed, 504 on its timeout)
// for a ShmGuardFpmPool pool becomes the diagnosed 503 + Retry-After (SG0230) when what the
// module saw explains it (fpm_failure): FPM's "fork() failed" or "reached pm.max_children" lines
// read from FPM's own log since the request started, the pool's status read during the request
// (all children busy, requests queued), its socket refusing the module's own connect. Nothing
// seen: left exactly as mod_proxy_fcgi made it.
void translate_fpm(request_rec* r, RequestNote* note, const ServerConf* c) {
  if (r->sent_bodyct || r->connection->aborted) return;
  const ServerConf* m = server_conf(gen.main_server);
  const auto* v = reinterpret_cast<const char* const*>(m->fpm_pools->elts);
  const char* socket_path = v[note->fpm_pool * 3];
  const bool has_log = v[note->fpm_pool * 3 + 2][0] != '\0';
  if (has_log) wait_for_evidence_scan();  // the sampler reads FPM's log once more
  shm::FpmPoolHot& hot = gen.seg->fpm_pools[note->fpm_pool];
  FpmFailureInput in;
  in.pool = socket_path;
  in.fork_failures = hot.fork_failures.load(std::memory_order_acquire) - note->fpm_forks_at_start;
  in.fork_errno = hot.fork_errno.load(std::memory_order_relaxed);
  in.max_children_lines =
      hot.max_children_lines.load(std::memory_order_acquire) - note->fpm_max_children_at_start;
  in.max_children = hot.max_children.load(std::memory_order_relaxed);
  const std::int64_t read_ms = hot.status_wall_ms.load(std::memory_order_acquire);
  in.status_fresh = read_ms != 0 && read_ms >= note->start_ms;
  in.status.idle = hot.idle.load(std::memory_order_relaxed);
  in.status.active = hot.active.load(std::memory_order_relaxed);
  in.status.total = hot.total.load(std::memory_order_relaxed);
  in.status.listen_queue = hot.listen_queue.load(std::memory_order_relaxed);
  in.status.max_children_reached = hot.max_children_reached.load(std::memory_order_relaxed);
  // After the counters: a connect to an ondemand pool makes FPM try a fork, whose failure would
  // be the module's own doing.
  in.connect_errno = probe_connect(socket_path);
  in.memory_limit = binding_detail();
  const auto failure = fpm_failure(in);
  if (!failure) return;  // nothing seen: mod_proxy_fcgi's answer stays
  note->translated = true;
  hot.translated.fetch_add(1, std::memory_order_relaxed);
  const bool dry = conf_dry_run(c);
  hot.since_log.fetch_add(1);
  const std::int64_t now = apr_time_as_msec(r->request_time);
  std::int64_t last = hot.log_ms.load();
  if (now - last >= 10000 && hot.log_ms.compare_exchange_strong(last, now)) {
    const std::uint64_t since = hot.since_log.exchange(0);
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                  "SG0230 PHP-FPM pool %s could not serve %s on %s: %s; the bound: %s: %s (%s "
                  "such errors since the last line)",
                  socket_path, r->uri, host_of(r), failure->cause.c_str(), failure->bound.c_str(),
                  dry ? "ShmGuardAction log: left as mod_proxy_fcgi made it"
                      : "answered 503 with Retry-After",
                  std::to_string(since).c_str());
  }
  if (dry) return;
  note->fpm_cause = apr_pstrdup(r->pool, failure->cause.c_str());
  note->fpm_bound = apr_pstrdup(r->pool, failure->bound.c_str());
  set_refusal_headers(r, c);
  ap_add_output_filter(kReplaceFilter, nullptr, r, r->connection);
}

}  // namespace

void translate_insert_error_filter(request_rec* r) {
  if (!gen.seg) return;
  auto* note = static_cast<RequestNote*>(ap_get_module_config(r->request_config, &shmguard_module));
  if (!note || note->translated || note->backend == Backend::None) return;
  const ServerConf* c = server_conf(r->server);
  if (note->refused_late) {  // the body gate refused: whatever error mod_fcgid made is our 503
    note->translated = true;
    set_refusal_headers(r, c);
    ap_add_output_filter(kReplaceFilter, nullptr, r, r->connection);
    return;
  }
  if (note->backend == Backend::ProxyFcgi && note->fpm_pool >= 0 &&
      (r->status == HTTP_SERVICE_UNAVAILABLE || r->status == HTTP_BAD_GATEWAY ||
       r->status == HTTP_GATEWAY_TIME_OUT)) {
    translate_fpm(r, note, c);
    return;
  }
  if (r->status != HTTP_INTERNAL_SERVER_ERROR) return;
  // A body that never reached its end (the client went away, or sent less than it promised):
  // mod_fcgid reads the whole body before it takes a worker, so no backend ran and none died.
  // No evidence to look for: no wait, no sampler wake (a flood of aborted uploads costs nothing).
  if (note->backend == Backend::Fcgid && !note->admitted) return;
  // The response had started (the client has its status line) or the client is gone: no 503
  // can reach it, so there is nothing to translate (a flood of clients that leave in the middle
  // of a response, which mod_fcgid answers with a 500, wakes nothing either).
  if (r->sent_bodyct || r->connection->aborted) return;
  shm::Segment* seg = gen.seg;
  // With ample headroom and no failure counter moved, a shared-memory failure is not what this
  // is: no wait for the sampler (a flood of unrelated 500s parks no child and wakes no sample),
  // except where OOM kills are counted (must_wait_for_evidence).
  {
    GuardInput in;
    shm::read_room(seg, in, wall_ms());
    in.need = note->reserve ? note->reserve : kDefaultReserve;
    EvidenceCounters now = evidence_counters(seg);
    bool moved = now.failcnt_sum != note->at_start.failcnt_sum ||
                 now.oom_kills != note->at_start.oom_kills ||
                 now.php_errors != note->at_start.php_errors ||
                 now.apcu_errors != note->at_start.apcu_errors;
    if (must_wait_for_evidence(in.fresh && in.bounded && ample(in), moved,
                               seg->oom_counted.load(std::memory_order_relaxed) == 1))
      wait_for_evidence_scan();
  }
  EvidenceDetail d;
  d.php_bytes = seg->php_error_bytes.load();
  d.php_pid = seg->php_error_pid.load();
  d.php_wall_ms = seg->php_error_wall_ms.load();
  d.apcu_bytes = seg->apcu_error_bytes.load();
  d.apcu_wall_ms = seg->apcu_error_wall_ms.load();
  std::string evidence = evidence_text(note->at_start, evidence_counters(seg), d, note->start_ms);
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
  ap_register_output_filter(kReleaseFilter, release_filter, nullptr, AP_FTYPE_CONTENT_SET);
  ap_register_input_filter(kGateFilter, gate_filter, nullptr, AP_FTYPE_CONTENT_SET);
}

// ---------------------------------------------------------------- class loads (share, status)

namespace {
// What a worker of the class needs: the need its owed request decided with while it waits (its
// ShmGuardReserve, or the default one before a worker is measured), else what one maps.
std::uint64_t class_need(const shm::ClassSlot* slot, int waiting) {
  const std::uint64_t owed = slot->owed_need.load(std::memory_order_relaxed);
  if (waiting > 0 && owed) return owed;
  return slot->worker_need.load(std::memory_order_relaxed);
}
}  // namespace

ReclaimInput class_loads(const std::vector<fcgid::Node>& nodes, std::int64_t now_ms) {
  ReclaimInput ri;
  GuardInput g;
  shm::read_room(gen.seg, g, now_ms);
  g.reserved += shm::promised_to_others(gen.seg, nullptr, now_ms);
  ri.room = g.bounded ? room(g) : 0;
  ri.requester_need = kDefaultReserve;  // a class whose worker is not measured yet
  ri.now_us = now_ms * 1000;
  add_table(ri, nodes);
  set_floors(ri);
  for (ClassLoad& cl : ri.classes) {
    if (const shm::ClassSlot* slot = shm::class_slot(gen.seg, cl.key, false)) {
      cl.waiting = slot->waiting.load(std::memory_order_relaxed);
      cl.inflight = slot->inflight.load(std::memory_order_relaxed);
      cl.need = class_need(slot, cl.waiting);
    }
  }
  // Classes that wait with no worker in the table: their slots, by the waiters' keys.
  if (gen.seg->waiting.load(std::memory_order_acquire) <= 0) return ri;
  for (std::size_t i = 0; i < shm::kWaiters; ++i) {
    const shm::WaiterRec& w = gen.seg->waiters[i];
    if (w.state.load(std::memory_order_acquire) == 0) continue;
    const std::uint64_t key = w.key.load(std::memory_order_relaxed);
    bool have = false;
    for (const ClassLoad& cl : ri.classes) have = have || cl.key == key;
    if (have) continue;
    if (const shm::ClassSlot* slot = shm::class_slot(gen.seg, key, false)) {
      ClassLoad cl;
      cl.key = key;
      cl.waiting = slot->waiting.load(std::memory_order_relaxed);
      cl.inflight = slot->inflight.load(std::memory_order_relaxed);
      cl.need = class_need(slot, cl.waiting);
      ri.classes.push_back(cl);
    }
  }
  return ri;
}

void find_proxy() {
  gen.proxy_module = ap_find_linked_module("mod_proxy.c");
  gen.proxy_get_worker = gen.proxy_module ? dlsym(RTLD_DEFAULT, "ap_proxy_get_worker") : nullptr;
}

}  // namespace shmguard::glue
