// mod_shmguard glue: mod_fcgid's private ABI, in one place. mod_fcgid 2.3.9 exports no API for
// what the guard needs; this file is everything of it the module touches from httpd's side: the
// symbols its shared object exports (found and checked once per generation, find_fcgid), its
// wrapper configuration (fcgid_cmd_conf), the vhost id at the head of its server configuration,
// its process-class key, the spawn command its handler would send (with the handler's own
// refusals mirrored), and its table lock. The process table's layout (node offsets, list heads,
// sizes) is core's include/shmguard/fcgid.hpp, read by core/fcgid.cpp.
#include <dlfcn.h>

#include <cstring>
#include <string>

#include "fcgid_abi.hpp"
#include "shmguard/fcgid.hpp"

#include "apr_strings.h"
#include "http_core.h"
#include "http_log.h"
#include "http_request.h"
#include "unixd.h"

APLOG_USE_MODULE(shmguard);

namespace shmguard::glue {

namespace {
// mod_fcgid 2.3.9's fcgid_cmd_conf (fcgid_conf.h).
struct WrapperConf {
  const char* cgipath;
  const char* cmdline;
  apr_ino_t inode;
  apr_dev_t deviceid;
  int is_virtual;
};

// Room for mod_fcgid's fcgid_command (13 160 bytes in 2.3.9).
constexpr std::size_t kFcgidCommandBytes = 64 * 1024;
}  // namespace

int fcgid_vhost_id(const server_rec* s) {
  if (!gen.fcgid_module || !s) return 0;
  // vhost_id is the first member of mod_fcgid's server config (fcgid_conf.h fcgid_server_conf).
  const int* id = static_cast<const int*>(ap_get_module_config(s->module_config, gen.fcgid_module));
  return id ? *id : 0;
}

// The server whose mod_fcgid vhost id is `id` (nullptr: none).
server_rec* server_of_fcgid_vhost(int id) {
  if (id == 0) return nullptr;
  for (server_rec* v = gen.main_server; v; v = v->next) {
    if (fcgid_vhost_id(v) == id) return v;
  }
  return nullptr;
}

bool fcgid_class(request_rec* r, FcgidClass& out) {
  if (!gen.fcgid_module || !gen.fcgid_get_wrapper_info) return false;
  auto* w = static_cast<const WrapperConf*>(gen.fcgid_get_wrapper_info(r->filename, r));
  out.wrapper = w;
  if (w) {
    out.key.inode = static_cast<std::uint64_t>(w->inode);
    out.key.deviceid = static_cast<std::uint64_t>(w->deviceid);
    out.key.cmdline = w->cmdline;
  } else {
    if (r->finfo.inode == 0 && r->finfo.device == 0) return false;
    out.key.inode = static_cast<std::uint64_t>(r->finfo.inode);
    out.key.deviceid = static_cast<std::uint64_t>(r->finfo.device);
    out.key.cmdline = r->filename;  // mod_fcgid's command line without a wrapper
  }
  out.key.vhost_id = fcgid_vhost_id(r->server);
  if (out.key.vhost_id == 0) return false;
  ap_unix_identity_t* ugid = ap_run_get_suexec_identity(r);
  out.key.uid = ugid ? static_cast<std::uint32_t>(ugid->uid) : 0xffffffffu;
  out.key.gid = ugid ? static_cast<std::uint32_t>(ugid->gid) : 0xffffffffu;
  out.hash = fcgid::class_hash(out.key);
  return true;
}

// A spawn the guard admitted is asked of mod_fcgid's process manager at once, as mod_fcgid's
// handler would ask for it (procmgr_init_spawn_cmd + procmgr_send_spawn_cmd, the same command it
// builds from the same configuration; the manager still applies FcgidMaxProcesses*, the spawn
// score and its own limits). mod_fcgid's handler, when all workers of the class are busy, sleeps
// a whole second before it asks: meanwhile a worker that freed stayed idle (the spawn's claim
// kept it from the waiters) and the request then took that worker instead of starting one, so
// under load a class could not grow. Asked now, the new worker is on the idle list when the
// handler looks. Nothing is asked where mod_fcgid's handler would refuse before it spawns (no
// such file, a directory).
void start_worker(request_rec* r, const void* wrapper) {
  if (!gen.fcgid_init_spawn_cmd || !gen.fcgid_send_spawn_cmd) return;
  // fcgid_handler's refusals before it spawns: no ExecCGI (and not ScriptAliased), rejected path
  // info, no such file or a directory, a command longer than its fields.
  const char* forced = apr_table_get(r->notes, "alias-forced-type");
  const bool script_aliased = forced && strcasecmp(forced, "cgi-script") == 0;
  if (!(ap_allow_options(r) & OPT_EXECCGI) && !script_aliased) return;
  if (r->used_path_info == AP_REQ_REJECT_PATH_INFO && r->path_info && *r->path_info) return;
  const auto* w = static_cast<const WrapperConf*>(wrapper);
  if ((!w || !w->is_virtual) && r->finfo.filetype != APR_REG) return;
  const char* cgipath = w ? w->cgipath : r->filename;
  const char* cmdline = w ? w->cmdline : r->filename;
  if (!cgipath || !cmdline || strlen(cgipath) >= fcgid::off::path_max ||
      strlen(cmdline) >= fcgid::off::cmdline_max)
    return;
  if (!w) {  // no wrapper: the script itself is the command (the handler's dummy configuration)
    auto* d = static_cast<WrapperConf*>(apr_pcalloc(r->pool, sizeof(WrapperConf)));
    d->cgipath = d->cmdline = r->filename;
    d->inode = r->finfo.inode;
    d->deviceid = r->finfo.device;
    w = d;
  }
  // fcgid_command is 13 160 bytes in 2.3.9 (paths, options, 64 environment pairs; 2.3.10's is
  // larger); its writer and the process manager's reader agree on its size, this buffer only has
  // to hold it.
  void* cmd = apr_pcalloc(r->pool, kFcgidCommandBytes);
  gen.fcgid_init_spawn_cmd(cmd, r, const_cast<WrapperConf*>(w));
  gen.fcgid_send_spawn_cmd(cmd, r);
}

// Finds mod_fcgid's process table and wrapper lookup (exported by its shared object), after
// checking that this mod_fcgid is the version whose private structures the module knows and that
// its table has the expected geometry. On anything else nothing of mod_fcgid's is read (not its
// table, wrapper configuration or server configuration): SG0102, and its requests fail open.
void find_fcgid(server_rec* s) {
  module* m = ap_find_linked_module("mod_fcgid.c");
  gen.fcgid_module = nullptr;
  gen.fcgid_table = nullptr;
  gen.fcgid_get_wrapper_info = nullptr;
  gen.fcgid_init_spawn_cmd = nullptr;
  gen.fcgid_send_spawn_cmd = nullptr;
  gen.fcgid_lock = gen.fcgid_unlock = nullptr;
  if (!m) return;
  auto fail = [&](const std::string& why) {
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                 "SG0102 mod_fcgid is loaded but its process table is not used: %s; the guard "
                 "cannot tell idle workers apart and will fail open for mod_fcgid requests",
                 why.c_str());
  };
  const char* desc = ap_get_server_description();
  const std::string version = fcgid::version_in(desc ? desc : "");
  if (!fcgid::version_supported(version)) {
    fail(version.empty() ? std::string("its version is not in the server description")
                         : "version " + version +
                               " is not one whose layout this module knows "
                               "(2.3.9)");
    return;
  }
  using PtrFn = void* (*)();
  using SizeFn = std::size_t (*)();
  auto sym = [](const char* name) { return dlsym(RTLD_DEFAULT, name); };
  auto call = [&](const char* name) -> const unsigned char* {
    auto f = reinterpret_cast<PtrFn>(sym(name));
    return f ? static_cast<const unsigned char*>(f()) : nullptr;
  };
  auto wrapper = reinterpret_cast<void* (*)(const char*, request_rec*)>(sym("get_wrapper_info"));
  auto size_fn = reinterpret_cast<SizeFn>(sym("proctable_get_table_size"));
  if (!wrapper || !size_fn || !sym("proctable_get_table_array") ||
      !sym("proctable_get_idle_list") || !sym("proctable_get_busy_list") ||
      !sym("proctable_get_error_list") || !sym("proctable_get_free_list")) {
    fail("symbols proctable_get_table_array/_table_size/_*_list or get_wrapper_info not exported");
    return;
  }
  fcgid::TableGeometry g;
  g.table = call("proctable_get_table_array");
  g.table_size = size_fn();
  g.idle = call("proctable_get_idle_list");
  g.busy = call("proctable_get_busy_list");
  g.error = call("proctable_get_error_list");
  g.free = call("proctable_get_free_list");
  std::string why = fcgid::check_table(g);
  if (!why.empty()) {
    fail("the table does not have the layout of mod_fcgid 2.3.9 (" + why + ")");
    return;
  }
  gen.fcgid_module = m;
  gen.fcgid_table = g.table;
  gen.fcgid_get_wrapper_info = wrapper;
  // Optional: without them an admitted spawn is left to mod_fcgid's handler (a second later
  // when workers of the class are busy).
  auto init = reinterpret_cast<void (*)(void*, request_rec*, void*)>(sym("procmgr_init_spawn_cmd"));
  auto send =
      reinterpret_cast<apr_status_t (*)(void*, request_rec*)>(sym("procmgr_send_spawn_cmd"));
  if (init && send) {
    gen.fcgid_init_spawn_cmd = init;
    gen.fcgid_send_spawn_cmd = send;
  }
  // Optional: without them no idle worker is reclaimed for another class (ShmGuardReclaim).
  auto lock = reinterpret_cast<void (*)(request_rec*)>(sym("proctable_lock"));
  auto unlock = reinterpret_cast<void (*)(request_rec*)>(sym("proctable_unlock"));
  if (lock && unlock) {
    gen.fcgid_lock = lock;
    gen.fcgid_unlock = unlock;
  }
}

}  // namespace shmguard::glue
