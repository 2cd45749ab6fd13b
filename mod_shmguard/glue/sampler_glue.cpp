// mod_shmguard glue: forking the sampler from the parent, restarting it when it dies, ending it
// with its generation. What the forked sampler does with its privileges (open as root, close the
// inherited descriptors, become User) is sampler/privileges.cpp; this file passes it httpd's User,
// Group and whether CAP_SYS_PTRACE is needed.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <thread>
#include <vector>

#include "../sampler/privileges.hpp"
#include "../sampler/sampler.hpp"
#include "glue.hpp"
#include "shmguard/scope.hpp"
#include "shmguard/watchdog.hpp"

#include "ap_mpm.h"
#include "http_config.h"
#include "http_log.h"
#include "unixd.h"

APLOG_USE_MODULE(shmguard);

namespace shmguard::glue {

namespace {

volatile sig_atomic_t g_stop = 0;
void on_term(int) {
  g_stop = 1;
}

std::int64_t g_last_start_ms = 0;  // when the last sampler started (or will, after its delay)

void start_sampler_after(bool restart);

void sampler_maintenance_impl(int reason, void* data, apr_wait_t status);
// Called by APR in the parent: no exception may escape.
void sampler_maintenance(int reason, void* data, apr_wait_t status) {
  try {
    sampler_maintenance_impl(reason, data, status);
  } catch (...) {
    ap_log_error(APLOG_MARK, APLOG_ERR, 0, gen.main_server,
                 "SG0901 internal error while restarting the sampler");
  }
}

void sampler_maintenance_impl(int reason, void* data, apr_wait_t status) {
  auto* proc = static_cast<apr_proc_t*>(data);
  switch (reason) {
    case APR_OC_REASON_DEATH:
    case APR_OC_REASON_LOST: {
      if (gen.sampler_registered) apr_proc_other_child_unregister(data);
      gen.sampler_registered = false;
      gen.sampler_running = false;
      int mpm_state = AP_MPMQ_RUNNING;
      ap_mpm_query(AP_MPMQ_MPM_STATE, &mpm_state);
      if (mpm_state == AP_MPMQ_STOPPING || !gen.seg) return;
      gen.seg->sampler_pid.store(0);
      if (status == sampler::kExitPrivileges ||
          (WIFEXITED(status) && WEXITSTATUS(status) == sampler::kExitPrivileges)) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, gen.main_server,
                     "SG0114 the sampler (pid %d) exited because it could not drop its "
                     "privileges (see SG0113): it is not started again; the guard fails open "
                     "until the server is restarted",
                     static_cast<int>(proc->pid));
        return;
      }
      if (status == sampler::kExitReopen ||
          (WIFEXITED(status) && WEXITSTATUS(status) == sampler::kExitReopen)) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, gen.main_server,
                     "SG0118 sampler (pid %d) ended to reopen a rotated log (SG0117); starting "
                     "a new one; until it publishes, the guard fails open",
                     static_cast<int>(proc->pid));
        start_sampler_after(true);
        break;
      }
      ap_log_error(APLOG_MARK, APLOG_WARNING, 0, gen.main_server,
                   "SG0111 sampler (pid %d) ended (status %d); starting a new one; until it "
                   "publishes, the guard fails open",
                   static_cast<int>(proc->pid), static_cast<int>(status));
      start_sampler_after(true);
      break;
    }
    default:  // RESTART, UNREGISTER, RUNNING: the generation cleanup handles these
      break;
  }
}

// When the forked sampler starts its work (a restart after a quick death waits there, not in the
// parent): set by the parent before each fork, read by the child.
std::int64_t g_start_delay_ms = 0;

// CAP_SYS_PTRACE is kept only where the sampler must read /proc/PID/maps of processes of another
// user or that are not dumpable: mod_fcgid workers started through suexec (suexec enabled and
// mod_suexec or mod_userdir loaded), and PHP-FPM (mod_proxy_fcgi loaded: its master runs as root,
// its workers are not dumpable). "" when not needed, else why.
std::string ptrace_needed() {
  if (ap_unixd_config.suexec_enabled &&
      (ap_find_linked_module("mod_suexec.c") || ap_find_linked_module("mod_userdir.c")))
    return "suexec: mod_fcgid workers may run as other users";
  if (ap_find_linked_module("mod_proxy_fcgi.c"))
    return "mod_proxy_fcgi: PHP-FPM's processes run as root or are not dumpable";
  return "";
}

// The Unix sockets of every mod_proxy_fcgi target in the server configuration (SetHandler
// "proxy:unix:...|fcgi://", ProxyPass and ProxyPassMatch to "unix:...|fcgi://", <Proxy>), with
// its variables resolved as httpd read it; .htaccess files are not in it (a tenant's SetHandler
// names no pool of this server's). At most 64 directives' worth of nesting and sockets.
void config_fpm_sockets(const ap_directive_t* d, int depth, std::vector<std::string>& out) {
  for (; d && depth < 64 && out.size() < 64; d = d->next) {
    if (d->args)
      for (std::string& p : fpm_sockets_in(d->args))
        if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(std::move(p));
    config_fpm_sockets(d->first_child, depth + 1, out);
  }
}

// In the forked process: never returns into httpd.
[[noreturn]] void sampler_main() {
  struct sigaction sa {};
  sa.sa_handler = on_term;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  for (int sig : {SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH, SIGPIPE}) sigaction(sig, &ign, nullptr);
  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, nullptr);
  prctl(PR_SET_NAME, "shmguard-smplr");
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);  // no ptrace, no core dump, /proc/PID owned by root

  ServerConf* main = server_conf(gen.main_server);
  sampler::Config cfg;
  cfg.probe = probe_config(main);
  cfg.interval_ms = conf_interval_ms(main);
  if (main->warn_set) {
    cfg.warn_is_percent = main->warn_is_percent != 0;
    cfg.warn_percent = main->warn_percent;
    cfg.warn_bytes = main->warn_bytes;
  }
  cfg.error_log = gen.error_log;
  cfg.fcgid_table = gen.fcgid_table;
  cfg.wake_fd = gen.wake_read;
  cfg.parent_pid = gen.parent_pid;
  cfg.state_file = gen.state_file;
  cfg.full_commands = conf_status_commands_full(main);
  cfg.status_max_bytes = shm::kBlobMax;
  if (main->fpm_pools) {
    const auto* v = reinterpret_cast<const char* const*>(main->fpm_pools->elts);
    for (int i = 0; i + 2 < main->fpm_pools->nelts; i += 3) {
      cfg.fpm_pools.emplace_back(v[i], v[i + 1]);
      cfg.fpm_logs.emplace_back(v[i + 2], -1);
    }
  }
  config_fpm_sockets(ap_conftree, 0, cfg.fpm_sockets);
  for (const auto& [socket, path] : cfg.fpm_pools)
    if (std::find(cfg.fpm_sockets.begin(), cfg.fpm_sockets.end(), socket) == cfg.fpm_sockets.end())
      cfg.fpm_sockets.push_back(socket);

  // Open what needs privileges, close what was inherited, then drop to User.
  sampler::Kept kept = sampler::open_kept(cfg.probe, cfg.error_log);
  cfg.probe.beancounters_fd = kept.beancounters;
  cfg.probe.bc_resources_fd = kept.bc_resources;
  cfg.error_log_fd = kept.error_log;
  cfg.error_log_watch_fd = kept.error_log_watch;
  std::vector<int> keep{gen.wake_read, kept.beancounters, kept.bc_resources, kept.error_log,
                        kept.error_log_watch};
  // FPM's own error logs (ShmGuardFpmPool's third argument), opened while root: FPM's master
  // writes them as root, often 0600.
  for (auto& [path, fd] : cfg.fpm_logs)
    if (!path.empty()) {
      fd = sampler::open_ro(path);
      if (fd >= 0) keep.push_back(fd);
    }
  apr_os_file_t log_fd = -1;  // where ap_log_error writes for the main server
  if (gen.main_server->error_log && apr_os_file_get(&log_fd, gen.main_server->error_log) == 0)
    keep.push_back(log_fd);
  sampler::close_inherited(keep);

  const std::string ptrace_why = ptrace_needed();
  std::string privileges;
  const std::string failed = sampler::drop_privileges(
      ap_unixd_config.user_id, ap_unixd_config.group_id, !ptrace_why.empty(), privileges);
  if (!failed.empty()) {
    ap_log_error(APLOG_MARK, APLOG_ERR, 0, gen.main_server,
                 "SG0113 the sampler cannot drop its privileges (%s): it exits; the guard fails "
                 "open until the server is restarted",
                 failed.c_str());
    _exit(sampler::kExitPrivileges);
  }
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);  // again: a uid change resets it to fs.suid_dumpable
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  prctl(PR_SET_PDEATHSIG, SIGTERM);           // after the credential change, which clears it
  if (getppid() != gen.parent_pid) _exit(0);  // the parent died before PDEATHSIG was set
  if (!ptrace_why.empty()) privileges += " (" + ptrace_why + ")";

  // A restart right after a quick death waits here, in the sampler, not in the parent.
  for (std::int64_t until = mono_ms() + g_start_delay_ms; !g_stop;) {
    std::int64_t left = until - mono_ms();
    if (left <= 0) break;
    struct timespec ts {
      static_cast<time_t>(left / 1000), static_cast<long>(left % 1000) * 1000000L
    };
    nanosleep(&ts, nullptr);  // SIGTERM interrupts it
  }
  if (g_stop) _exit(0);

  server_rec* s = gen.main_server;
  sampler::Logger log = [s](sampler::Level level, const std::string& msg) {
    int l = APLOG_INFO;
    switch (level) {
      case sampler::Level::Debug:
        l = APLOG_DEBUG;
        break;
      case sampler::Level::Info:
        l = APLOG_INFO;
        break;
      case sampler::Level::Notice:
        l = APLOG_NOTICE;
        break;
      case sampler::Level::Warning:
        l = APLOG_WARNING;
        break;
      case sampler::Level::Error:
        l = APLOG_ERR;
        break;
    }
    ap_log_error(APLOG_MARK, l, 0, s, "%s", msg.c_str());
  };
  gen.seg->sampler_pid.store(static_cast<std::int32_t>(getpid()));
  log(sampler::Level::Info, "SG0110 sampler started (pid " + std::to_string(getpid()) + ", every " +
                                std::to_string(cfg.interval_ms) + " ms, " + privileges + ")");
  _exit(sampler::run(cfg, gen.seg, log, [] { return g_stop != 0; }));
}

}  // namespace

void start_sampler() {
  start_sampler_after(false);
}

namespace {
// `restart`: after the previous sampler died. A sampler that dies at once must not be restarted in
// a tight loop: the new one is forked at once but starts its work at most once a second (it
// waits itself; the parent never sleeps).
void start_sampler_after(bool restart) {
  if (!gen.seg) return;
  std::int64_t now = mono_ms();
  g_start_delay_ms = 0;
  if (restart && g_last_start_ms && now - g_last_start_ms < 1000)
    g_start_delay_ms = 1000 - (now - g_last_start_ms);
  g_last_start_ms = now + g_start_delay_ms;
  apr_status_t rv = apr_proc_fork(&gen.sampler, gen.pconf);
  if (rv == APR_INCHILD) {
    try {
      sampler_main();
    } catch (...) {
    }
    _exit(1);
  }
  if (rv != APR_INPARENT) {
    ap_log_error(APLOG_MARK, APLOG_ERR, rv, gen.main_server,
                 "SG0112 cannot fork the sampler: the guard fails open until the next restart");
    return;
  }
  gen.sampler_running = true;
  gen.seg->sampler_starts.fetch_add(1);
  apr_proc_other_child_register(&gen.sampler, sampler_maintenance, &gen.sampler, nullptr,
                                gen.pconf);
  gen.sampler_registered = true;
}
}  // namespace

void watch_sampler() {
  if (!gen.seg || !gen.main_server) return;
  static std::optional<SamplerWatchdog> dog;  // for the generation's interval
  static std::int64_t dog_interval = -1;
  const std::int64_t interval = conf_interval_ms(server_conf(gen.main_server));
  if (!dog || dog_interval != interval) {
    dog.emplace(interval);
    dog_interval = interval;
  }
  const int pid = gen.sampler_running ? static_cast<int>(gen.sampler.pid) : 0;
  if (!dog->stalled(pid, gen.seg->samples.load(std::memory_order_acquire), mono_ms())) return;
  ap_log_error(APLOG_MARK, APLOG_ERR, 0, gen.main_server,
               "SG0115 the sampler (pid %d) published no sample for %s ms (stopped or stuck; "
               "the guard fails open meanwhile): killed, a new one is started",
               pid, std::to_string(dog->quiet_ms()).c_str());
  kill(pid, SIGKILL);  // its death (APR_OC_REASON_DEATH) starts the next one
}

void stop_sampler() {
  if (!gen.sampler_running) return;
  gen.sampler_running = false;
  // APR crashes on unregistering what is not registered: exactly once.
  if (gen.sampler_registered) apr_proc_other_child_unregister(&gen.sampler);
  gen.sampler_registered = false;
  pid_t pid = gen.sampler.pid;
  if (pid <= 0) return;
  // Waits for its exit on a pidfd (woken when it exits, at most 2 s), not in a sleep loop.
  int pfd = -1;
#ifdef SYS_pidfd_open
  pfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
#endif
  kill(pid, SIGTERM);
  if (pfd >= 0) {
    pollfd p{pfd, POLLIN, 0};
    int r;
    std::int64_t until = mono_ms() + 2000;
    do {
      r = poll(&p, 1, static_cast<int>(std::max<std::int64_t>(0, until - mono_ms())));
    } while (r < 0 && errno == EINTR);
    close(pfd);
    if (r <= 0) kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return;
  }
  for (int i = 0; i < 200; ++i) {  // no pidfd (Linux < 5.3): poll waitpid, up to 2 s
    pid_t r = waitpid(pid, nullptr, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

}  // namespace shmguard::glue
