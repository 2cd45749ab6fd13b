// mod_shmguard glue: the module record and its hooks. Each hook translates httpd types and calls
// the core; every C++ entry point catches all exceptions (an exception never crosses into httpd).
#include <sys/stat.h>

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <exception>

#include "fcgid_abi.hpp"
#include "glue.hpp"
#include "shmguard/fcgid.hpp"

#include "ap_mpm.h"
#include "apr_general.h"
#include "apr_strings.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "mod_status.h"
#include "mpm_common.h"
#include "unixd.h"

APLOG_USE_MODULE(shmguard);

namespace shmguard::glue {

Generation gen;

std::int64_t wall_ms() {
  return now_ms();
}

namespace {

// Runs f; an exception is logged (SG0901) and turned into `fallback`.
template <class F, class R>
R guarded(server_rec* s, const char* where, R fallback, F&& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "SG0901 internal error in %s: %s", where, e.what());
  } catch (...) {
    ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "SG0901 internal error in %s", where);
  }
  return fallback;
}

apr_status_t generation_cleanup(void*) {
  // Only the parent owns the sampler and the segment; children inherit this cleanup, ignore it.
  if (getpid() != gen.parent_pid) return APR_SUCCESS;
  try {
    stop_sampler();
  } catch (...) {
  }
  if (gen.wake_read >= 0) close(gen.wake_read);
  if (gen.wake_write >= 0) close(gen.wake_write);
  gen.wake_read = gen.wake_write = -1;
  gen.seg = nullptr;  // the segment itself is destroyed by its own pconf cleanup (apr_shm)
  gen.shm = nullptr;
  return APR_SUCCESS;
}

// Under ShmGuardAction degrade (any vhost) the sampler publishes the headroom for
// shmguard-php-wrapper in <DefaultRuntimeDir>/shmguard/headroom (a directory the User owns, so
// the sampler can replace the file atomically after dropping root).
void state_dir_for_degrade(server_rec* s, apr_pool_t* p) {
  gen.state_file.clear();
  bool degrade = false;
  for (server_rec* v = s; v; v = v->next)
    if (conf_action(server_conf(v)) == Action::Degrade) degrade = true;
  if (!degrade) return;
  const char* dir = ap_runtime_dir_relative(p, "shmguard");
  if (!dir) return;
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    ap_log_error(APLOG_MARK, APLOG_WARNING, errno, s,
                 "SG0104 cannot create %s: shmguard-php-wrapper will start full workers", dir);
    return;
  }
  if (geteuid() == 0 && chown(dir, ap_unixd_config.user_id, ap_unixd_config.group_id) != 0)
    ap_log_error(APLOG_MARK, APLOG_WARNING, errno, s, "SG0104 cannot hand %s to User", dir);
  gen.state_file = std::string(dir) + "/headroom";
}

// ShmGuardMaxWaiting: the configured number, or half of MaxRequestWorkers (threads x processes).
int max_waiting(const ServerConf* c) {
  if (c->max_waiting > 0) return c->max_waiting;
  int threads = 1, daemons = 1;
  if (ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads) != APR_SUCCESS || threads < 1) threads = 1;
  if (ap_mpm_query(AP_MPMQ_MAX_DAEMONS, &daemons) != APR_SUCCESS || daemons < 1) daemons = 1;
  long workers = static_cast<long>(threads) * daemons;
  long n = workers * kDefaultMaxWaitingPercent / 100;
  if (n < 1) n = 1;
  if (n > static_cast<long>(shm::kWaiters)) n = static_cast<long>(shm::kWaiters);
  return static_cast<int>(n);
}

int post_config(apr_pool_t* pconf, apr_pool_t*, apr_pool_t* ptemp, server_rec* s) {
  if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) return OK;
  return guarded(s, "post_config", static_cast<int>(HTTP_INTERNAL_SERVER_ERROR), [&]() -> int {
    gen.pconf = pconf;
    gen.main_server = s;
    gen.parent_pid = getpid();
    // A new secret for the class hash each generation (the children and the sampler forked from
    // here on inherit it): a tenant cannot choose a command line whose class collides with
    // another's.
    {
      unsigned char secret[16];
      if (apr_generate_random_bytes(secret, sizeof secret) != APR_SUCCESS) {
        const std::uint64_t t = static_cast<std::uint64_t>(apr_time_now()) ^
                                (static_cast<std::uint64_t>(getpid()) << 40) ^
                                reinterpret_cast<std::uintptr_t>(&secret);
        std::memcpy(secret, &t, 8);
        std::memcpy(secret + 8, &t, 8);
      }
      fcgid::set_class_hash_secret(secret);
    }
    // Number the virtual hosts: each gets its own counters in the segment.
    int n = 0;
    for (server_rec* v = s; v; v = v->next) {
      ServerConf* c = server_conf(v);
      // A vhost with no ShmGuard directive of its own shares the main server's configuration
      // (httpd merges nothing for it): it gets a copy, and with it counters of its own.
      if (v != s && c == server_conf(s)) {
        c = static_cast<ServerConf*>(apr_pmemdup(pconf, c, sizeof(ServerConf)));
        ap_set_module_config(v->module_config, &shmguard_module, c);
      }
      c->vhost_index = n < static_cast<int>(shm::kMaxVhosts) ? n : -1;
      ++n;
    }
    if (n > static_cast<int>(shm::kMaxVhosts))
      ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                   "SG0103 %d virtual hosts: only the first %zu get their own counters", n,
                   shm::kMaxVhosts);

    apr_status_t rv = apr_shm_create(&gen.shm, sizeof(shm::Segment), nullptr, pconf);
    if (rv != APR_SUCCESS) {
      ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                   "SG0101 cannot create the shared segment (%zu bytes): mod_shmguard is off "
                   "(requests are served unguarded)",
                   sizeof(shm::Segment));
      gen.seg = nullptr;
      return OK;  // fail open
    }
    gen.seg = static_cast<shm::Segment*>(apr_shm_baseaddr_get(gen.shm));
    shm::init(gen.seg, static_cast<std::uint32_t>(n), conf_interval_ms(server_conf(s)));
    gen.seg->max_waiting.store(max_waiting(server_conf(s)));

    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0) {
      gen.wake_read = fds[0];
      gen.wake_write = fds[1];
    }
    gen.error_log.clear();
    if (s->error_fname && s->error_fname[0] != '|' && strncmp(s->error_fname, "syslog", 6) != 0) {
      const char* path = ap_server_root_relative(ptemp, s->error_fname);
      if (path) gen.error_log = path;
    }
    find_fcgid(s);
    find_proxy();
    state_dir_for_degrade(s, pconf);
    // A pre-cleanup runs before the pool's other cleanups (and APR's own unregistering of the
    // sampler as an "other child"), while the segment is still mapped.
    apr_pool_pre_cleanup_register(pconf, nullptr, generation_cleanup);
    start_sampler();
    return OK;
  });
}

void child_init(apr_pool_t*, server_rec* s) {
  guarded(s, "child_init", 0, [&] {
    gen.child_pid = getpid();
    return 0;
  });
}

int fixups(request_rec* r) {
  return guarded(r->server, "fixups", static_cast<int>(DECLINED), [&] { return guard_fixups(r); });
}

int handler(request_rec* r) {
  if (!r->handler) return DECLINED;
  return guarded(r->server, "handler", static_cast<int>(DECLINED), [&]() -> int {
    if (strcmp(r->handler, "shmguard-refusal") == 0) return refusal_handler(r);
    if (strcmp(r->handler, "shmguard-status") == 0) return status_handler(r);
    return DECLINED;
  });
}

void insert_error_filter(request_rec* r) {
  guarded(r->server, "insert_error_filter", 0, [&] {
    translate_insert_error_filter(r);
    return 0;
  });
}

void* create_dir_conf_c(apr_pool_t* p, char* dir) {
  return create_dir_conf(p, dir);
}
void* merge_dir_conf_c(apr_pool_t* p, void* b, void* a) {
  return merge_dir_conf(p, b, a);
}

int status_hook_c(request_rec* r, int flags) {
  return guarded(r->server, "status_hook", static_cast<int>(OK),
                 [&] { return status_hook(r, flags); });
}

// In the parent, about every 10 s (ap_wait_or_timeout): a sampler that published nothing for
// long (SIGSTOPped by code running as User) is killed; its death starts a new one.
int monitor(apr_pool_t*, server_rec* s) {
  return guarded(s, "monitor", static_cast<int>(DECLINED), [&] {
    watch_sampler();
    return static_cast<int>(DECLINED);
  });
}

void register_hooks(apr_pool_t*) {
  // After mod_fcgid's post_config, which creates its process table.
  static const char* const after_fcgid[] = {"mod_fcgid.c", nullptr};
  ap_hook_post_config(post_config, after_fcgid, nullptr, APR_HOOK_LAST);
  ap_hook_child_init(child_init, nullptr, nullptr, APR_HOOK_MIDDLE);
  ap_hook_monitor(monitor, nullptr, nullptr, APR_HOOK_MIDDLE);
  // Last, so that SetHandler/AddHandler and mod_proxy have chosen the handler.
  ap_hook_fixups(fixups, nullptr, nullptr, APR_HOOK_REALLY_LAST);
  ap_hook_handler(handler, nullptr, nullptr, APR_HOOK_REALLY_FIRST);
  ap_hook_insert_error_filter(insert_error_filter, nullptr, nullptr, APR_HOOK_MIDDLE);
  APR_OPTIONAL_HOOK(ap, status_hook, status_hook_c, nullptr, nullptr, APR_HOOK_MIDDLE);
  register_filters();
}

void* create_server_conf_c(apr_pool_t* p, server_rec* s) {
  return create_server_conf(p, s);
}
void* merge_server_conf_c(apr_pool_t* p, void* b, void* a) {
  return merge_server_conf(p, b, a);
}

}  // namespace
}  // namespace shmguard::glue

extern "C" {
// Written out instead of STANDARD20_MODULE_STUFF so that the module's name is "mod_shmguard.c"
// (for <IfModule mod_shmguard.c>), not this C++ file's name.
module AP_MODULE_DECLARE_DATA shmguard_module = {
    MODULE_MAGIC_NUMBER_MAJOR,
    MODULE_MAGIC_NUMBER_MINOR,
    -1,
    "mod_shmguard.c",
    nullptr,
    nullptr,
    MODULE_MAGIC_COOKIE,
    nullptr,
    shmguard::glue::create_dir_conf_c,
    shmguard::glue::merge_dir_conf_c,
    shmguard::glue::create_server_conf_c,
    shmguard::glue::merge_server_conf_c,
    shmguard::glue::directives,
    shmguard::glue::register_hooks,
    0,
};
}
