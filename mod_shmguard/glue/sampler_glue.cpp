// mod_shmguard glue: forking the sampler from the parent, restarting it when it dies, ending it
// with its generation.
#include <grp.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <thread>

#include "../sampler/sampler.hpp"
#include "glue.hpp"

#include "ap_mpm.h"
#include "http_log.h"
#include "unixd.h"

APLOG_USE_MODULE(shmguard);

namespace shmguard::glue {

namespace {

volatile sig_atomic_t g_stop = 0;
void on_term(int) {
  g_stop = 1;
}

std::int64_t g_last_start_ms = 0;

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
      ap_log_error(APLOG_MARK, APLOG_WARNING, 0, gen.main_server,
                   "SG0111 sampler (pid %d) ended (status %d); starting a new one; until it "
                   "publishes, the guard fails open",
                   static_cast<int>(proc->pid), static_cast<int>(status));
      gen.seg->sampler_pid.store(0);
      start_sampler();
      break;
    }
    default:  // RESTART, UNREGISTER, RUNNING: the generation cleanup handles these
      break;
  }
}

// Drops root: the sampler runs as the server's User and keeps only the capabilities its reads
// need — CAP_DAC_READ_SEARCH and CAP_DAC_OVERRIDE (/proc/user_beancounters is 0400 root and its
// open checks both; the error log is root:adm 0640) and CAP_SYS_PTRACE (other users'
// /proc/PID/maps). Returns a description for the log, or why it kept root.
std::string drop_privileges() {
  if (geteuid() != 0) return "not started as root: runs as uid " + std::to_string(geteuid());
  uid_t uid = ap_unixd_config.user_id;
  gid_t gid = ap_unixd_config.group_id;
  if (uid == 0) return "User is root: keeps root";
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) return "PR_SET_KEEPCAPS failed: keeps root";
  if (setgroups(1, &gid) != 0 || setresgid(gid, gid, gid) != 0 || setresuid(uid, uid, uid) != 0)
    return "setuid/setgid failed: keeps root";
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  for (int cap : {CAP_DAC_READ_SEARCH, CAP_DAC_OVERRIDE, CAP_SYS_PTRACE}) {
    data[cap / 32].permitted |= 1u << (cap % 32);
    data[cap / 32].effective |= 1u << (cap % 32);
  }
  if (syscall(SYS_capset, &hdr, data) != 0)
    return "capset failed: runs as uid " + std::to_string(uid) + " without extra capabilities";
  prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
  return "uid " + std::to_string(uid) + ", capabilities dac_read_search,dac_override,sys_ptrace";
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
  const std::string privileges = drop_privileges();
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  prctl(PR_SET_PDEATHSIG, SIGTERM);  // after the credential change, which clears it

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
  if (getppid() != gen.parent_pid) _exit(0);  // the parent died before PDEATHSIG was set

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
  sampler::run(cfg, gen.seg, log, [] { return g_stop != 0; });
  _exit(0);
}

}  // namespace

void start_sampler() {
  if (!gen.seg) return;
  // A sampler that dies at once must not be restarted in a tight loop.
  std::int64_t now = wall_ms();
  if (now - g_last_start_ms < 1000)
    std::this_thread::sleep_for(std::chrono::milliseconds(1000 - (now - g_last_start_ms)));
  g_last_start_ms = wall_ms();
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

void stop_sampler() {
  if (!gen.sampler_running) return;
  gen.sampler_running = false;
  // APR crashes on unregistering what is not registered: exactly once.
  if (gen.sampler_registered) apr_proc_other_child_unregister(&gen.sampler);
  gen.sampler_registered = false;
  pid_t pid = gen.sampler.pid;
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  for (int i = 0; i < 200; ++i) {  // up to 2 s
    pid_t r = waitpid(pid, nullptr, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

}  // namespace shmguard::glue
