// mod_shmguard sampler: opening what needs root, closing what httpd left open, dropping to User
// (see privileges.hpp).
#include "privileges.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace shmguard::sampler {

int open_ro(const std::string& path) {
  return open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
}

Kept open_kept(const ProbeConfig& probe, const std::string& error_log) {
  Kept k;
  if (!probe.beancounters_off) {
    k.beancounters = open_ro(probe.beancounters.empty() ? probe.procfs + "/user_beancounters"
                                                        : probe.beancounters);
    if (probe.container && probe.beancounters.empty())
      k.bc_resources = open_ro(probe.procfs + "/bc/" + *probe.container + "/resources");
  }
  if (!error_log.empty()) {
    k.error_log = open_ro(error_log);
    if (k.error_log >= 0) {
      k.error_log_watch = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
      if (k.error_log_watch >= 0 &&
          inotify_add_watch(k.error_log_watch, error_log.c_str(), IN_MODIFY) < 0) {
        close(k.error_log_watch);
        k.error_log_watch = -1;
      }
    }
  }
  return k;
}

void close_inherited(const std::vector<int>& keep) {
  closelog();  // syslog's socket: reopened on the next syslog() (ErrorLog syslog)
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    dup2(null, 0);  // dup2 clears FD_CLOEXEC on the copy
    dup2(null, 1);
    if (null > 2) close(null);
  }
  std::vector<int> open_fds;
  if (DIR* d = opendir("/proc/self/fd")) {
    int self = dirfd(d);
    while (dirent* e = readdir(d)) {
      char* end = nullptr;
      long fd = strtol(e->d_name, &end, 10);
      if (end != e->d_name && *end == '\0' && fd != self) open_fds.push_back(static_cast<int>(fd));
    }
    closedir(d);
  } else {  // no /proc: every possible number
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = 3; fd < (max > 0 && max < 65536 ? max : 65536); ++fd)
      open_fds.push_back(static_cast<int>(fd));
  }
  for (int fd : open_fds)
    if (fd > 2 && std::find(keep.begin(), keep.end(), fd) == keep.end()) close(fd);
}

std::string drop_privileges(uid_t target_uid, gid_t target_gid, bool keep_ptrace,
                            std::string& held) {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct want[2]{};
  if (keep_ptrace) {
    want[CAP_SYS_PTRACE / 32].permitted |= 1u << (CAP_SYS_PTRACE % 32);
    want[CAP_SYS_PTRACE / 32].effective |= 1u << (CAP_SYS_PTRACE % 32);
  }
  const bool root = geteuid() == 0;
  uid_t uid = root ? target_uid : geteuid();
  gid_t gid = root ? target_gid : getegid();
  if (!root && keep_ptrace) {  // httpd not started as root: keep CAP_SYS_PTRACE only if it has it
    __user_cap_data_struct has[2]{};
    if (syscall(SYS_capget, &hdr, has) != 0 ||
        !(has[CAP_SYS_PTRACE / 32].permitted & (1u << (CAP_SYS_PTRACE % 32)))) {
      keep_ptrace = false;
      want[CAP_SYS_PTRACE / 32] = __user_cap_data_struct{};
    }
  }
  if (root) {
    if (uid == 0) return "User is root";
    // Nothing dropped here can come back through an exec (no_new_privs is set as well).
    for (int cap = 0; cap <= 63; ++cap) {
      if (keep_ptrace && cap == CAP_SYS_PTRACE) continue;
      if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
        return std::string("PR_CAPBSET_DROP failed: ") + strerror(errno);
    }
    if (keep_ptrace && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0)
      return std::string("PR_SET_KEEPCAPS failed: ") + strerror(errno);
    if (setgroups(1, &gid) != 0) return std::string("setgroups failed: ") + strerror(errno);
    if (setresgid(gid, gid, gid) != 0) return std::string("setresgid failed: ") + strerror(errno);
    if (setresuid(uid, uid, uid) != 0) return std::string("setresuid failed: ") + strerror(errno);
  }
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);  // EINVAL before Linux 4.3: none then
  if (syscall(SYS_capset, &hdr, want) != 0)
    return std::string("capset failed: ") + strerror(errno) +
           (keep_ptrace ? " (CAP_SYS_PTRACE not in the bounding set?)" : "");
  prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
  // Check, rather than trust the calls above.
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  if (getresuid(&ru, &eu, &su) != 0 || ru != uid || eu != uid || su != uid ||
      getresgid(&rg, &eg, &sg) != 0 || rg != gid || eg != gid || sg != gid)
    return "the uid/gid did not change to " + std::to_string(uid) + "/" + std::to_string(gid);
  __user_cap_data_struct now[2]{};
  if (syscall(SYS_capget, &hdr, now) != 0) return std::string("capget failed: ") + strerror(errno);
  for (int i = 0; i < 2; ++i)
    if (now[i].effective != want[i].effective || now[i].permitted != want[i].permitted ||
        now[i].inheritable != 0)
      return "capabilities other than the ones asked for remain";
  held = "uid " + std::to_string(uid) + ", gid " + std::to_string(gid) +
         (keep_ptrace ? ", capability sys_ptrace" : ", no capabilities");
  return "";
}

}  // namespace shmguard::sampler
