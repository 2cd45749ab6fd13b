// sampler/privileges.cpp: what the sampler opens as root, the descriptors it closes, the
// credentials and capabilities it ends with. Each check runs in a forked child (the test process
// keeps its own privileges); the credential checks need root and are skipped without it.
#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "sampler/privileges.hpp"
#include "test_util.hpp"

using namespace shmguard;
using shmguard_test::run_in_child;
using shmguard_test::TempDir;
using shmguard_test::write_file;

namespace {

std::vector<int> open_fds() {
  std::vector<int> out;
  if (DIR* d = opendir("/proc/self/fd")) {
    int self = dirfd(d);
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      int fd = std::atoi(e->d_name);
      if (fd != self) out.push_back(fd);
    }
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string list(const std::vector<int>& v) {
  std::string s;
  for (int fd : v) s += (s.empty() ? "" : ",") + std::to_string(fd);
  return s;
}

// The effective, permitted and inheritable sets, as "e/p/i" in hex (low 64 bits).
std::string caps_now() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct d[2]{};
  if (syscall(SYS_capget, &hdr, d) != 0) return "capget failed";
  auto word = [&](auto field) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%llx",
                  static_cast<unsigned long long>(d[0].*field) |
                      (static_cast<unsigned long long>(d[1].*field) << 32));
    return std::string(buf);
  };
  return word(&__user_cap_data_struct::effective) + "/" + word(&__user_cap_data_struct::permitted) +
         "/" + word(&__user_cap_data_struct::inheritable);
}

std::string ids_now() {
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  getresuid(&ru, &eu, &su);
  getresgid(&rg, &eg, &sg);
  gid_t groups[8];
  int n = getgroups(8, groups);
  return "uid " + std::to_string(ru) + "," + std::to_string(eu) + "," + std::to_string(su) +
         " gid " + std::to_string(rg) + "," + std::to_string(eg) + "," + std::to_string(sg) +
         " groups " + std::to_string(n) + (n == 1 ? ":" + std::to_string(groups[0]) : "");
}

}  // namespace

TEST(Privileges, CloseInheritedLeavesOnlyTheStandardOnesAndWhatItKeeps) {
  auto out = run_in_child([](int result_fd) -> std::string {
    int a = open("/dev/null", O_RDONLY), b = open("/dev/null", O_RDONLY);
    int c = open("/dev/null", O_RDONLY);
    if (a < 0 || b < 0 || c < 0) _exit(3);
    sampler::close_inherited({result_fd, b});
    std::vector<int> want{0, 1, 2, result_fd, b};
    std::sort(want.begin(), want.end());
    std::vector<int> now = open_fds();
    return now == want ? "ok" : "open " + list(now) + ", want " + list(want);
  });
  ASSERT_TRUE(out);
  EXPECT_EQ(*out, "ok");
}

TEST(Privileges, CloseInheritedPointsStdinAndStdoutAtDevNull) {
  auto out = run_in_child([](int result_fd) -> std::string {
    int fds[2];
    if (pipe(fds) != 0 || dup2(fds[0], 0) < 0 || dup2(fds[1], 1) < 0) _exit(3);
    sampler::close_inherited({result_fd});
    char in[64] = {}, outp[64] = {};
    ssize_t a = readlink("/proc/self/fd/0", in, sizeof in - 1);
    ssize_t b = readlink("/proc/self/fd/1", outp, sizeof outp - 1);
    if (a < 0 || b < 0) return "readlink failed";
    return std::string(in) + " " + outp;
  });
  ASSERT_TRUE(out);
  EXPECT_EQ(*out, "/dev/null /dev/null");
}

TEST(Privileges, OpenKeptOpensTheConfiguredFilesCloseOnExec) {
  TempDir dir;
  write_file(dir.path() + "/ubc", "Version: 2.5\n");
  write_file(dir.path() + "/error.log", "");
  ProbeConfig probe;
  probe.beancounters = dir.path() + "/ubc";
  sampler::Kept k = sampler::open_kept(probe, dir.path() + "/error.log");
  EXPECT_GE(k.beancounters, 0);
  EXPECT_EQ(k.bc_resources, -1);
  EXPECT_GE(k.error_log, 0);
  EXPECT_GE(k.error_log_watch, 0);
  for (int fd : {k.beancounters, k.error_log, k.error_log_watch}) {
    EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC) << fd;
    close(fd);
  }
  probe.beancounters_off = true;
  sampler::Kept none = sampler::open_kept(probe, "");
  EXPECT_EQ(none.beancounters, -1);
  EXPECT_EQ(none.error_log, -1);
  EXPECT_EQ(none.error_log_watch, -1);
}

TEST(Privileges, DropsToTheUserWithNoCapabilityAtAll) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  auto out = run_in_child([](int) -> std::string {
    std::string held;
    std::string failed = sampler::drop_privileges(65534, 65534, false, held);
    if (!failed.empty()) return "failed: " + failed;
    std::string r = held + " | " + ids_now() + " | " + caps_now();
    r += " | bnd sys_admin " + std::to_string(prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0));
    return r;
  });
  ASSERT_TRUE(out);
  EXPECT_EQ(*out,
            "uid 65534, gid 65534, no capabilities | uid 65534,65534,65534 gid 65534,65534,65534 "
            "groups 1:65534 | 0/0/0 | bnd sys_admin 0");
}

TEST(Privileges, KeepsCapSysPtraceAloneWhenAsked) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  auto out = run_in_child([](int) -> std::string {
    std::string held;
    std::string failed = sampler::drop_privileges(65534, 65534, true, held);
    if (!failed.empty()) return "failed: " + failed;
    return held + " | " + caps_now() + " | bnd ptrace " +
           std::to_string(prctl(PR_CAPBSET_READ, CAP_SYS_PTRACE, 0, 0, 0)) + " dac " +
           std::to_string(prctl(PR_CAPBSET_READ, CAP_DAC_OVERRIDE, 0, 0, 0));
  });
  ASSERT_TRUE(out);
  char ptrace[32];
  std::snprintf(ptrace, sizeof ptrace, "%llx", 1ULL << CAP_SYS_PTRACE);
  EXPECT_EQ(*out, std::string("uid 65534, gid 65534, capability sys_ptrace | ") + ptrace + "/" +
                      ptrace + "/0 | bnd ptrace 1 dac 0");
}

TEST(Privileges, RefusesToRunAsRoot) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  auto out = run_in_child([](int) -> std::string {
    std::string held;
    std::string failed = sampler::drop_privileges(0, 0, false, held);
    return failed + " | " + ids_now().substr(0, 9) + " | held '" + held + "'";
  });
  ASSERT_TRUE(out);
  EXPECT_EQ(*out, "User is root | uid 0,0,0 | held ''");
}
