// mod_shmguard glue: directives. Bad values fail `apachectl configtest` naming the directive and
// the value; server-wide directives are refused inside <VirtualHost>.
#include <cstdio>
#include <cstring>
#include <string>

#include "glue.hpp"
#include "shmguard/units.hpp"

#include "apr_file_io.h"
#include "apr_strings.h"
#include "http_log.h"

APLOG_USE_MODULE(shmguard);

namespace shmguard::glue {

namespace {

ServerConf* conf_of(cmd_parms* cmd) {
  return server_conf(cmd->server);
}

const char* bad(cmd_parms* cmd, const char* arg, const char* expected) {
  return apr_psprintf(cmd->pool, "%s: invalid value '%s': expected %s", cmd->directive->directive,
                      arg, expected);
}

// Server-wide directives: refused inside <VirtualHost> (and <Directory>, <Location>...).
const char* server_only(cmd_parms* cmd) {
  return ap_check_cmd_context(cmd, GLOBAL_ONLY);
}

const char* set_enabled(cmd_parms* cmd, void*, int on) {
  conf_of(cmd)->enabled = on ? 1 : 0;
  return nullptr;
}

const char* set_detail(cmd_parms* cmd, void*, int on) {
  conf_of(cmd)->detail = on ? 1 : 0;
  return nullptr;
}

const char* set_reserve(cmd_parms* cmd, void*, const char* arg) {
  ServerConf* c = conf_of(cmd);
  if (std::string(arg) == "auto") {
    c->reserve_auto = 1;
    return nullptr;
  }
  auto v = parse_size(arg);
  if (!v || *v == 0 || *v > (1ULL << 50))
    return bad(cmd, arg, "auto or a size above 0 such as 64M, 1G or a number of bytes");
  c->reserve_auto = 0;
  c->reserve = *v;
  return nullptr;
}

const char* set_action(cmd_parms* cmd, void*, const char* arg) {
  std::string a(arg);
  if (a == "refuse")
    conf_of(cmd)->action = static_cast<int>(Action::Refuse);
  else if (a == "log")
    conf_of(cmd)->action = static_cast<int>(Action::Log);
  else if (a == "degrade")
    conf_of(cmd)->action = static_cast<int>(Action::Degrade);
  else
    return bad(cmd, arg, "refuse, log or degrade");
  return nullptr;
}

const char* set_wait(cmd_parms* cmd, void*, const char* arg) {
  auto v = parse_duration_ms(arg);
  if (!v || *v > 300 * 1000)
    return bad(cmd, arg, "a duration from 0 (refuse at once) to 300s, such as 5s or 500ms");
  conf_of(cmd)->wait_ms = static_cast<apr_int64_t>(*v);
  return nullptr;
}

const char* set_max_waiting(cmd_parms* cmd, void*, const char* arg) {
  if (const char* e = server_only(cmd)) return e;
  if (std::string(arg) == "auto") {
    conf_of(cmd)->max_waiting = 0;
    return nullptr;
  }
  auto v = parse_u64(arg);
  if (!v || *v == 0 || *v > shm::kWaiters)
    return bad(cmd, arg,
               ("auto or a number of requests from 1 to " + std::to_string(shm::kWaiters)).c_str());
  conf_of(cmd)->max_waiting = static_cast<int>(*v);
  return nullptr;
}

const char* set_lean_reserve(cmd_parms* cmd, void*, const char* arg) {
  auto v = parse_size(arg);
  if (!v || *v > (1ULL << 40))
    return bad(cmd, arg,
               "a size such as 32M (what a lean worker may map; 0: OPcache file cache only)");
  conf_of(cmd)->lean_reserve = static_cast<apr_int64_t>(*v);
  return nullptr;
}

const char* set_retry_after(cmd_parms* cmd, void*, const char* arg) {
  auto v = parse_u64(arg);
  if (!v || *v > 86400 * 7) return bad(cmd, arg, "a whole number of seconds from 0 to 604800");
  conf_of(cmd)->retry_after = static_cast<apr_int64_t>(*v);
  return nullptr;
}

const char* set_errordoc(cmd_parms* cmd, void*, const char* arg) {
  const char* path = ap_server_root_relative(cmd->pool, arg);
  if (!path) return bad(cmd, arg, "a file path");
  apr_file_t* f = nullptr;
  apr_status_t rv = apr_file_open(&f, path, APR_FOPEN_READ, APR_OS_DEFAULT, cmd->pool);
  if (rv != APR_SUCCESS) {
    char buf[128];
    return apr_psprintf(cmd->pool, "%s: cannot read '%s': %s", cmd->directive->directive, path,
                        apr_strerror(rv, buf, sizeof buf));
  }
  apr_finfo_t fi;
  rv = apr_file_info_get(&fi, APR_FINFO_SIZE | APR_FINFO_TYPE, f);
  if (rv != APR_SUCCESS || fi.filetype != APR_REG || fi.size > (1 << 20)) {
    apr_file_close(f);
    return apr_psprintf(cmd->pool, "%s: '%s' is not a regular file of at most 1 MiB",
                        cmd->directive->directive, path);
  }
  apr_size_t n = static_cast<apr_size_t>(fi.size);
  char* body = static_cast<char*>(apr_palloc(cmd->pool, n + 1));
  rv = apr_file_read_full(f, body, n, &n);
  apr_file_close(f);
  if (rv != APR_SUCCESS && rv != APR_EOF)
    return apr_psprintf(cmd->pool, "%s: cannot read '%s'", cmd->directive->directive, path);
  body[n] = '\0';
  ServerConf* c = conf_of(cmd);
  c->errordoc_path = path;
  c->errordoc_body = body;
  return nullptr;
}

const char* add_handler(cmd_parms* cmd, void*, const char* arg) {
  ServerConf* c = conf_of(cmd);
  if (!*arg) return bad(cmd, arg, "handler names");
  if (!c->handlers) c->handlers = apr_array_make(cmd->pool, 4, sizeof(const char*));
  *static_cast<const char**>(apr_array_push(c->handlers)) = apr_pstrdup(cmd->pool, arg);
  return nullptr;
}

const char* set_warn_below(cmd_parms* cmd, void*, const char* arg) {
  if (const char* e = server_only(cmd)) return e;
  ServerConf* c = conf_of(cmd);
  if (auto p = parse_percent(arg)) {
    c->warn_set = 1;
    c->warn_is_percent = 1;
    c->warn_percent = *p;
    return nullptr;
  }
  if (auto v = parse_size(arg)) {
    c->warn_set = 1;
    c->warn_is_percent = 0;
    c->warn_bytes = *v;
    return nullptr;
  }
  return bad(cmd, arg, "a size such as 256M or a percent of the binding limit such as 25%");
}

const char* set_interval(cmd_parms* cmd, void*, const char* arg) {
  if (const char* e = server_only(cmd)) return e;
  auto v = parse_duration_ms(arg);
  if (!v || *v == 0 || *v > 3600 * 1000)
    return bad(cmd, arg, "a duration above 0 and at most 1 hour, such as 250ms or 1s");
  conf_of(cmd)->interval_ms = static_cast<apr_int64_t>(*v);
  return nullptr;
}

const char* set_dir(cmd_parms* cmd, const char* arg, const char** slot) {
  if (const char* e = server_only(cmd)) return e;
  if (arg[0] != '/') return bad(cmd, arg, "an absolute directory");
  apr_finfo_t fi;
  if (apr_stat(&fi, arg, APR_FINFO_TYPE, cmd->pool) != APR_SUCCESS || fi.filetype != APR_DIR)
    return bad(cmd, arg, "an existing directory");
  *slot = apr_pstrdup(cmd->pool, arg);
  return nullptr;
}

const char* set_procfs(cmd_parms* cmd, void*, const char* arg) {
  return set_dir(cmd, arg, &conf_of(cmd)->procfs);
}
const char* set_sysfs(cmd_parms* cmd, void*, const char* arg) {
  return set_dir(cmd, arg, &conf_of(cmd)->sysfs);
}

const char* set_beancounters(cmd_parms* cmd, void*, const char* arg) {
  if (const char* e = server_only(cmd)) return e;
  std::string a(arg);
  if (a != "off" && a[0] != '/') return bad(cmd, arg, "off or an absolute file path");
  // The file may appear later (it is read every interval); only its form is checked here.
  conf_of(cmd)->beancounters = apr_pstrdup(cmd->pool, arg);
  return nullptr;
}

const char* set_container(cmd_parms* cmd, void*, const char* arg) {
  if (const char* e = server_only(cmd)) return e;
  std::string a(arg);
  if (a.empty() || a.size() > 64 || a.find_first_of(" \t:/") != std::string::npos)
    return bad(cmd, arg, "a beancounter id such as 101 (no spaces, ':' or '/')");
  conf_of(cmd)->container = apr_pstrdup(cmd->pool, arg);
  return nullptr;
}

const char* set_cgroup(cmd_parms* cmd, void*, const char* arg) {
  if (const char* e = server_only(cmd)) return e;
  ServerConf* c = conf_of(cmd);
  std::string a(arg);
  if (a == "auto") {
    c->cgroup_mode = static_cast<int>(CgroupOptions::Mode::Auto);
  } else if (a == "off") {
    c->cgroup_mode = static_cast<int>(CgroupOptions::Mode::Off);
  } else if (a[0] == '/') {
    apr_finfo_t fi;
    if (apr_stat(&fi, arg, APR_FINFO_TYPE, cmd->pool) != APR_SUCCESS || fi.filetype != APR_DIR)
      return bad(cmd, arg, "auto, off or an existing cgroup directory");
    c->cgroup_mode = static_cast<int>(CgroupOptions::Mode::Dir);
    c->cgroup_dir = apr_pstrdup(cmd->pool, arg);
  } else {
    return bad(cmd, arg, "auto, off or an absolute cgroup directory");
  }
  return nullptr;
}

// ShmGuardStatusPage: per directory, and only in the server configuration (the directive table
// gives it no override bit, so .htaccess cannot use it).
const char* set_status_page(cmd_parms* cmd, void* dir, int on) {
  if (!dir) return apr_psprintf(cmd->pool, "%s: internal error", cmd->directive->directive);
  static_cast<DirConf*>(dir)->status_page = on ? 1 : 0;
  return nullptr;
}

const char* set_status_commands(cmd_parms* cmd, void*, const char* arg) {
  if (const char* e = server_only(cmd)) return e;
  std::string a(arg);
  if (a == "name")
    conf_of(cmd)->status_commands = 0;
  else if (a == "full")
    conf_of(cmd)->status_commands = 1;
  else
    return bad(cmd, arg, "name or full");
  return nullptr;
}

const char* set_reclaim(cmd_parms* cmd, void*, int on) {
  if (const char* e = server_only(cmd)) return e;
  conf_of(cmd)->reclaim = on ? 1 : 0;
  return nullptr;
}

const char* set_min_workers(cmd_parms* cmd, void*, const char* arg) {
  auto v = parse_u64(arg);
  if (!v || *v > static_cast<std::uint64_t>(kMaxMinWorkers))
    return bad(cmd, arg,
               ("a number of workers from 0 to " + std::to_string(kMaxMinWorkers)).c_str());
  conf_of(cmd)->min_workers = static_cast<int>(*v);
  return nullptr;
}

// ShmGuardFpmPool SOCKET STATUS_PATH [ERROR_LOG]: a PHP-FPM pool whose status (pm.status_path)
// the status page shows; the sampler asks it over FastCGI on its Unix socket, and follows FPM's
// own error log (its error_log) for failed forks.
const char* add_fpm_pool(cmd_parms* cmd, void*, const char* socket, const char* path,
                         const char* log) {
  if (const char* e = server_only(cmd)) return e;
  std::string s(socket);
  if (s.rfind("unix:", 0) == 0) s = s.substr(5);
  if (s.empty() || s[0] != '/' || s.size() >= 108)
    return apr_psprintf(cmd->pool,
                        "%s: invalid socket '%s': expected the absolute path of the pool's Unix "
                        "socket (listen = ...), shorter than 108 bytes",
                        cmd->directive->directive, socket);
  std::string p(path);
  if (p.empty() || p[0] != '/' || p.size() >= 1024)
    return apr_psprintf(cmd->pool,
                        "%s: invalid status path '%s': expected the pool's pm.status_path, such "
                        "as /fpm-status",
                        cmd->directive->directive, path);
  if (log && (log[0] != '/' || strlen(log) >= 4096))
    return apr_psprintf(cmd->pool,
                        "%s: invalid error log '%s': expected the absolute path of FPM's "
                        "error_log (a file)",
                        cmd->directive->directive, log);
  ServerConf* c = conf_of(cmd);
  if (!c->fpm_pools) c->fpm_pools = apr_array_make(cmd->pool, 6, sizeof(const char*));
  if (c->fpm_pools->nelts / 3 >= kMaxFpmPoolDirectives)
    return apr_psprintf(cmd->pool, "%s: at most %d pools", cmd->directive->directive,
                        kMaxFpmPoolDirectives);
  *static_cast<const char**>(apr_array_push(c->fpm_pools)) = apr_pstrdup(cmd->pool, s.c_str());
  *static_cast<const char**>(apr_array_push(c->fpm_pools)) = apr_pstrdup(cmd->pool, path);
  *static_cast<const char**>(apr_array_push(c->fpm_pools)) = apr_pstrdup(cmd->pool, log ? log : "");
  return nullptr;
}

// Non-designated initializers under C++: cmd_func is `const char* (*)()`.
// Directive handlers are entry points from httpd: no exception may escape them.
template <const char* (*F)(cmd_parms*, void*, const char*)>
const char* safe(cmd_parms* cmd, void* d, const char* arg) noexcept {
  try {
    return F(cmd, d, arg);
  } catch (...) {
    return apr_psprintf(cmd->pool, "%s: internal error", cmd->directive->directive);
  }
}
template <const char* (*F)(cmd_parms*, void*, const char*, const char*)>
const char* safe(cmd_parms* cmd, void* d, const char* a, const char* b) noexcept {
  try {
    return F(cmd, d, a, b);
  } catch (...) {
    return apr_psprintf(cmd->pool, "%s: internal error", cmd->directive->directive);
  }
}
template <const char* (*F)(cmd_parms*, void*, const char*, const char*, const char*)>
const char* safe(cmd_parms* cmd, void* d, const char* a, const char* b, const char* e) noexcept {
  try {
    return F(cmd, d, a, b, e);
  } catch (...) {
    return apr_psprintf(cmd->pool, "%s: internal error", cmd->directive->directive);
  }
}
template <const char* (*F)(cmd_parms*, void*, int)>
const char* safe(cmd_parms* cmd, void* d, int on) noexcept {
  try {
    return F(cmd, d, on);
  } catch (...) {
    return apr_psprintf(cmd->pool, "%s: internal error", cmd->directive->directive);
  }
}

template <class F>
cmd_func fn(F f) {
  return reinterpret_cast<cmd_func>(reinterpret_cast<void (*)()>(f));  // void(*)() matches all
}

}  // namespace

const command_rec directives[] = {
    {"ShmGuard", fn(safe<set_enabled>), nullptr, RSRC_CONF, FLAG,
     "On|Off: guard FastCGI-bound requests of this server (default On)"},
    {"ShmGuardReserve", fn(safe<set_reserve>), nullptr, RSRC_CONF, TAKE1,
     "SIZE|auto: shared-memory headroom a new worker needs (default auto)"},
    {"ShmGuardAction", fn(safe<set_action>), nullptr, RSRC_CONF, TAKE1,
     "refuse|log|degrade: answer 503, only count and log, or start a lean worker (default refuse)"},
    {"ShmGuardWait", fn(safe<set_wait>), nullptr, RSRC_CONF, TAKE1,
     "DURATION: how long a request waits for a busy worker before a 503 (default 5s; 0: none)"},
    {"ShmGuardMaxWaiting", fn(safe<set_max_waiting>), nullptr, RSRC_CONF, TAKE1,
     "auto|N: requests that may wait at once, server-wide (default auto: half of "
     "MaxRequestWorkers)"},
    {"ShmGuardLeanReserve", fn(safe<set_lean_reserve>), nullptr, RSRC_CONF, TAKE1,
     "SIZE: shared memory a lean worker maps under ShmGuardAction degrade (default 48M)"},
    {"ShmGuardRetryAfter", fn(safe<set_retry_after>), nullptr, RSRC_CONF, TAKE1,
     "seconds in the Retry-After header of a refusal (default 30)"},
    {"ShmGuardDetail", fn(safe<set_detail>), nullptr, RSRC_CONF, FLAG,
     "On|Off: show headroom and limits on the refusal page (default Off)"},
    {"ShmGuardErrorDocument", fn(safe<set_errordoc>), nullptr, RSRC_CONF, TAKE1,
     "FILE: HTML page sent instead of the built-in refusal page"},
    {"ShmGuardHandlers", fn(safe<add_handler>), nullptr, RSRC_CONF, ITERATE,
     "handler names to guard (default: fcgid-script proxy-fcgi)"},
    {"ShmGuardWarnBelow", fn(safe<set_warn_below>), nullptr, RSRC_CONF, TAKE1,
     "SIZE|PERCENT: log a warning when headroom falls below (default 25%)"},
    {"ShmGuardInterval", fn(safe<set_interval>), nullptr, RSRC_CONF, TAKE1,
     "DURATION: how often the sampler reads the limits (default 500ms)"},
    {"ShmGuardProcfs", fn(safe<set_procfs>), nullptr, RSRC_CONF, TAKE1,
     "DIR: procfs root (default /proc)"},
    {"ShmGuardSysfs", fn(safe<set_sysfs>), nullptr, RSRC_CONF, TAKE1,
     "DIR: sysfs root (default /sys)"},
    {"ShmGuardBeancounters", fn(safe<set_beancounters>), nullptr, RSRC_CONF, TAKE1,
     "FILE|off: beancounter file (default <procfs>/user_beancounters)"},
    {"ShmGuardContainer", fn(safe<set_container>), nullptr, RSRC_CONF, TAKE1,
     "ID: beancounter block to use on a hardware node"},
    {"ShmGuardCgroup", fn(safe<set_cgroup>), nullptr, RSRC_CONF, TAKE1,
     "auto|off|DIR: memory cgroup to read (default auto)"},
    // No OR_* bit: not allowed in .htaccess, whatever AllowOverride says.
    {"ShmGuardStatusPage", fn(safe<set_status_page>), nullptr, RSRC_CONF | ACCESS_CONF, FLAG,
     "On|Off: serve the shmguard-status handler here (server configuration only; default Off)"},
    {"ShmGuardStatusCommands", fn(safe<set_status_commands>), nullptr, RSRC_CONF, TAKE1,
     "name|full: worker command lines on the status page (default name)"},
    {"ShmGuardReclaim", fn(safe<set_reclaim>), nullptr, RSRC_CONF, FLAG,
     "On|Off: retire an idle worker of another class for a request that finds none of its own "
     "and no room (default On)"},
    {"ShmGuardMinWorkers", fn(safe<set_min_workers>), nullptr, RSRC_CONF, TAKE1,
     "N: workers of the vhost's classes that are never reclaimed for another site (default 0)"},
    {"ShmGuardFpmPool", fn(safe<add_fpm_pool>), nullptr, RSRC_CONF, TAKE23,
     "SOCKET STATUS_PATH [ERROR_LOG]: a PHP-FPM pool's Unix socket and pm.status_path, shown on "
     "the status page, and FPM's error_log (its failed forks explain mod_proxy_fcgi's 503s)"},
    {nullptr, nullptr, nullptr, 0, RAW_ARGS, nullptr},
};

void* create_dir_conf(apr_pool_t* p, char*) {
  auto* d = static_cast<DirConf*>(apr_pcalloc(p, sizeof(DirConf)));
  d->status_page = -1;
  return d;
}

void* merge_dir_conf(apr_pool_t* p, void* base_v, void* add_v) {
  auto* base = static_cast<DirConf*>(base_v);
  auto* add = static_cast<DirConf*>(add_v);
  auto* d = static_cast<DirConf*>(apr_pcalloc(p, sizeof(DirConf)));
  d->status_page = add->status_page >= 0 ? add->status_page : base->status_page;
  return d;
}

void* create_server_conf(apr_pool_t* p, server_rec* s) {
  auto* c = static_cast<ServerConf*>(apr_pcalloc(p, sizeof(ServerConf)));
  c->enabled = -1;
  c->reserve_auto = -1;
  c->action = -1;
  c->wait_ms = -1;
  c->lean_reserve = -1;
  c->retry_after = -1;
  c->detail = -1;
  c->interval_ms = -1;
  c->cgroup_mode = -1;
  c->vhost_index = s && s->is_virtual ? -1 : 0;
  c->status_commands = -1;
  c->reclaim = -1;
  c->min_workers = -1;
  return c;
}

void* merge_server_conf(apr_pool_t* p, void* base_v, void* add_v) {
  auto* base = static_cast<ServerConf*>(base_v);
  auto* add = static_cast<ServerConf*>(add_v);
  auto* c = static_cast<ServerConf*>(apr_pcalloc(p, sizeof(ServerConf)));
  *c = *add;
  if (add->enabled < 0) c->enabled = base->enabled;
  if (add->reserve_auto < 0) {
    c->reserve_auto = base->reserve_auto;
    c->reserve = base->reserve;
  }
  if (add->action < 0) c->action = base->action;
  if (add->wait_ms < 0) c->wait_ms = base->wait_ms;
  if (add->lean_reserve < 0) c->lean_reserve = base->lean_reserve;
  if (add->retry_after < 0) c->retry_after = base->retry_after;
  if (add->detail < 0) c->detail = base->detail;
  if (!add->errordoc_body) {
    c->errordoc_path = base->errordoc_path;
    c->errordoc_body = base->errordoc_body;
  }
  if (!add->handlers) c->handlers = base->handlers;
  if (add->min_workers < 0) c->min_workers = base->min_workers;
  // Server-wide values always come from the main server.
  c->warn_set = base->warn_set;
  c->warn_is_percent = base->warn_is_percent;
  c->warn_percent = base->warn_percent;
  c->warn_bytes = base->warn_bytes;
  c->interval_ms = base->interval_ms;
  c->max_waiting = base->max_waiting;
  c->procfs = base->procfs;
  c->sysfs = base->sysfs;
  c->beancounters = base->beancounters;
  c->container = base->container;
  c->cgroup_mode = base->cgroup_mode;
  c->cgroup_dir = base->cgroup_dir;
  c->vhost_index = -1;
  c->status_commands = base->status_commands;
  c->reclaim = base->reclaim;
  c->fpm_pools = base->fpm_pools;
  return c;
}

ProbeConfig probe_config(const ServerConf* m) {
  ProbeConfig cfg;
  if (m->procfs) cfg.procfs = m->procfs;
  if (m->sysfs) cfg.sysfs = m->sysfs;
  if (m->beancounters) {
    if (std::string(m->beancounters) == "off")
      cfg.beancounters_off = true;
    else
      cfg.beancounters = m->beancounters;
  }
  if (m->container) cfg.container = std::string(m->container);
  if (m->cgroup_mode >= 0) cfg.cgroup.mode = static_cast<CgroupOptions::Mode>(m->cgroup_mode);
  if (m->cgroup_dir) cfg.cgroup.dir = m->cgroup_dir;
  cfg.devshm = "/dev/shm";
  return cfg;
}

}  // namespace shmguard::glue
