// mod_shmguard glue: what the hook files share. C++ standard headers first, then httpd's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "shm/segment.hpp"
#include "shmguard/rules.hpp"
#include "shmguard/model.hpp"
#include "shmguard/reclaim.hpp"

#include "httpd.h"  // first: the other httpd headers need its types
#include "apr_shm.h"
#include "apr_thread_proc.h"
#include "http_config.h"

extern "C" {
extern module AP_MODULE_DECLARE_DATA shmguard_module;
}

namespace shmguard::glue {

// Per-server configuration (the main server and each <VirtualHost>). Allocated from the config
// pool, so plain data only: -1 means "not set here" and is resolved by merging and defaults.
struct ServerConf {
  int enabled;                // ShmGuard On|Off
  int reserve_auto;           // ShmGuardReserve: 1 auto, 0 fixed size
  apr_uint64_t reserve;       // bytes when fixed
  int action;                 // ShmGuardAction: Action (refuse, log, degrade)
  apr_int64_t wait_ms;        // ShmGuardWait
  apr_int64_t lean_reserve;   // ShmGuardLeanReserve bytes (-1: unset; 0: no shared memory)
  apr_int64_t retry_after;    // ShmGuardRetryAfter seconds
  int detail;                 // ShmGuardDetail On|Off
  const char* errordoc_path;  // ShmGuardErrorDocument FILE (read at config time)
  const char* errordoc_body;
  apr_array_header_t* handlers;  // ShmGuardHandlers (const char*), nullptr: defaults

  // Server-wide (refused inside <VirtualHost>; read from the main server).
  int warn_set;
  int warn_is_percent;
  double warn_percent;
  apr_uint64_t warn_bytes;
  apr_int64_t interval_ms;
  int max_waiting;  // ShmGuardMaxWaiting (0: auto)
  const char* procfs;
  const char* sysfs;
  const char* beancounters;  // FILE, or "off"
  const char* container;
  int cgroup_mode;  // -1 unset, else CgroupOptions::Mode
  const char* cgroup_dir;

  int vhost_index;  // slot in shm::Segment::vhosts

  // Server-wide: ShmGuardStatusCommands name|full (-1 unset: name).
  int status_commands;

  // Server-wide: ShmGuardReclaim On|Off (-1 unset: On).
  int reclaim;
  // ShmGuardMinWorkers N (server, vhost; -1 unset: 0): the vhost's classes are never reclaimed
  // or handed over below N workers.
  int min_workers;
  // Server-wide: ShmGuardFpmPool SOCKET STATUS_PATH [ERROR_LOG], triples of const char* (the
  // log "" when not given; nullptr: no pool).
  apr_array_header_t* fpm_pools;
};
constexpr int kMaxFpmPoolDirectives = static_cast<int>(shm::kFpmPoolSlots);

// Defaults, in one place (a directive left unset means this value).
constexpr apr_uint64_t kDefaultReserve = 128ULL << 20;     // ShmGuardReserve auto, no worker yet
constexpr apr_int64_t kDefaultRetryAfter = 30;             // ShmGuardRetryAfter
constexpr apr_int64_t kDefaultIntervalMs = 500;            // ShmGuardInterval
constexpr apr_int64_t kDefaultWaitMs = 5000;               // ShmGuardWait
constexpr apr_uint64_t kDefaultLeanReserve = 48ULL << 20;  // ShmGuardLeanReserve
// ShmGuardMaxWaiting auto: half of MaxRequestWorkers, so waiting never takes every thread.
constexpr int kDefaultMaxWaitingPercent = 50;

// Per-directory configuration (<Location>, <Directory>, server and vhost; never .htaccess).
struct DirConf {
  int status_page;  // ShmGuardStatusPage On|Off; -1 unset (Off)
};
void* create_dir_conf(apr_pool_t* p, char* dir);
void* merge_dir_conf(apr_pool_t* p, void* base, void* add);
inline bool conf_status_commands_full(const ServerConf* c) {
  return c->status_commands == 1;
}

inline bool conf_enabled(const ServerConf* c) {
  return c->enabled != 0;
}
inline Action conf_action(const ServerConf* c) {
  return c->action < 0 ? Action::Refuse : static_cast<Action>(c->action);
}
inline bool conf_dry_run(const ServerConf* c) {
  return conf_action(c) == Action::Log;
}
inline apr_int64_t conf_wait_ms(const ServerConf* c) {
  return c->wait_ms < 0 ? kDefaultWaitMs : c->wait_ms;
}
inline apr_uint64_t conf_lean_reserve(const ServerConf* c) {
  return c->lean_reserve < 0 ? kDefaultLeanReserve : static_cast<apr_uint64_t>(c->lean_reserve);
}
inline apr_int64_t conf_retry_after(const ServerConf* c) {
  return c->retry_after < 0 ? kDefaultRetryAfter : c->retry_after;
}
inline apr_int64_t conf_interval_ms(const ServerConf* c) {
  return c->interval_ms <= 0 ? kDefaultIntervalMs : c->interval_ms;
}
inline bool conf_reclaim(const ServerConf* c) {
  return c->reclaim != 0;
}
constexpr int kMaxMinWorkers = 10000;  // ShmGuardMinWorkers' largest value
inline int conf_min_workers(const ServerConf* c) {
  return c->min_workers < 0 ? 0 : c->min_workers;
}
inline ServerConf* server_conf(const server_rec* s) {
  return static_cast<ServerConf*>(ap_get_module_config(s->module_config, &shmguard_module));
}

extern const command_rec directives[];
void* create_server_conf(apr_pool_t* p, server_rec* s);
void* merge_server_conf(apr_pool_t* p, void* base, void* add);
// The core's probe configuration from the main server's directives.
ProbeConfig probe_config(const ServerConf* main);

// Process-wide state of this server generation, set in post_config (parent, root) and inherited
// by the sampler and the children.
struct Generation {
  apr_pool_t* pconf = nullptr;
  server_rec* main_server = nullptr;
  apr_shm_t* shm = nullptr;
  shm::Segment* seg = nullptr;
  int wake_read = -1, wake_write = -1;  // children wake the sampler for a fresh evidence scan
  pid_t parent_pid = 0;
  pid_t child_pid = 0;  // this process (child_init): claims name their owner without a syscall
  apr_proc_t sampler{};
  bool sampler_running = false;
  bool sampler_registered = false;  // with apr_proc_other_child_register (unregister exactly once)
  std::string state_file;  // headroom for shmguard-php-wrapper (some vhost degrades), else ""
  std::string error_log;   // the main error log file (where php-cgi's stderr goes), "" if none

  // mod_fcgid, when loaded (symbols exported by its .so; nullptr when absent).
  module* fcgid_module = nullptr;
  const unsigned char* fcgid_table = nullptr;
  void* (*fcgid_get_wrapper_info)(const char*, request_rec*) = nullptr;
  // procmgr_init_spawn_cmd(fcgid_command*, request_rec*, fcgid_cmd_conf*) and
  // procmgr_send_spawn_cmd(fcgid_command*, request_rec*): the guard asks for an admitted spawn.
  void (*fcgid_init_spawn_cmd)(void*, request_rec*, void*) = nullptr;
  apr_status_t (*fcgid_send_spawn_cmd)(void*, request_rec*) = nullptr;
  // proctable_lock(request_rec*) and proctable_unlock(request_rec*): mod_fcgid's own table lock,
  // taken to retire an idle worker of another class (ShmGuardReclaim).
  void (*fcgid_lock)(request_rec*) = nullptr;
  void (*fcgid_unlock)(request_rec*) = nullptr;
  // mod_proxy, when loaded: its module record and its exported ap_proxy_get_worker (as void*:
  // mod_proxy.h stays out of this header), found each generation by find_proxy().
  module* proxy_module = nullptr;
  void* proxy_get_worker = nullptr;
};
extern Generation gen;

// sampler.cpp
void start_sampler();  // fork it (post_config, and again when it dies)
void stop_sampler();   // end it and reap it (pconf cleanup)
void watch_sampler();  // the parent's look at a stalled sampler (monitor hook, ~every 10 s)

// request_hooks.cpp
void find_proxy();  // post_config: gen.proxy_module and gen.proxy_get_worker
int guard_fixups(request_rec* r);
int refusal_handler(request_rec* r);
void translate_insert_error_filter(request_rec* r);
void register_filters();
// Every class's load as the share rules see it (share.hpp): mod_fcgid's table `nodes`, the
// guard's counts per class, the classes that only wait; the room less every promised room.
ReclaimInput class_loads(const std::vector<fcgid::Node>& nodes, std::int64_t now_ms);

// status.cpp
int status_handler(request_rec* r);
int status_hook(request_rec* r, int flags);

// Wall clock in ms.
std::int64_t wall_ms();

}  // namespace shmguard::glue
