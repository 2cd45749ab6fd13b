// Worker scanning: maps, stat, and PHP's allocation-failure line.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <unistd.h>

#include "shmguard/workers.hpp"
#include "test_util.hpp"

using namespace shmguard;

TEST(Maps, FindsSharedAnonymousSegments) {
  const char* maps =
      "55d0c0a00000-55d0c0a2e000 r--p 00000000 fe:01 1837453    /usr/bin/php-cgi8.2\n"
      "7f1c2c000000-7f1c30000000 rw-s 00000000 00:01 40960      /dev/zero (deleted)\n"
      "7f1c30000000-7f1c32000000 rw-s 00000000 00:0f 98307      /SYSV00000000 (deleted)\n"
      "7f1c40000000-7f1c40400000 rw-s 00000000 00:10 77         /anon_hugepage (deleted)\n"
      "7f1c50000000-7f1c50001000 rw-s 00000000 fe:01 12         /var/lib/data.bin\n"
      "7ffd1e5f1000-7ffd1e612000 rw-p 00000000 00:00 0          [stack]\n";
  auto r = parse_maps_shared(maps);
  ASSERT_TRUE(r) << r.error;
  ASSERT_EQ(r.value->size(), 3u);
  EXPECT_EQ((*r.value)[0].kind, "anon-shared");
  EXPECT_EQ((*r.value)[0].size, 64ULL << 20);
  EXPECT_EQ((*r.value)[0].inode, 40960u);
  EXPECT_EQ((*r.value)[0].dev_minor, 1u);
  EXPECT_EQ((*r.value)[1].kind, "sysv");
  EXPECT_EQ((*r.value)[1].size, 32ULL << 20);
  EXPECT_EQ((*r.value)[2].kind, "hugepage");
}

TEST(Maps, MalformedSaysLine) {
  auto r = parse_maps_shared("7f-7e rw-s 0 00:01 1 /dev/zero\n");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error.find("line 1"), std::string::npos);
  EXPECT_FALSE(parse_maps_shared("garbage\n"));
  EXPECT_FALSE(parse_maps_shared("0-1000 rw-s 0 00:01 99999999999999999999999 /dev/zero\n"));
}

TEST(Maps, RealProcessWithSharedMapping) {
  // This process maps a shared anonymous segment: it must show up with its size.
  const std::size_t len = 3 << 20;
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  auto w = read_worker("/proc", ::getpid());
  ::munmap(p, len);
  ASSERT_TRUE(w) << w.error;
  EXPECT_EQ(w.value->pid, ::getpid());
  bool found = false;
  for (const auto& s : w.value->segments)
    if (s.kind == "anon-shared" && s.size == len) found = true;
  EXPECT_TRUE(found);
}

TEST(Stat, CommWithParenthesesAndSpaces) {
  auto st = parse_proc_stat(
      "4242 (php (cgi) x) S 4200 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 1 1");
  ASSERT_TRUE(st) << st.error;
  EXPECT_EQ(st.value->pid, 4242);
  EXPECT_EQ(st.value->ppid, 4200);
  EXPECT_EQ(st.value->comm, "php (cgi) x");
  EXPECT_EQ(st.value->start_ticks, 987654u);
  EXPECT_FALSE(parse_proc_stat("4242 (x) S"));
  EXPECT_FALSE(parse_proc_stat(""));
}

TEST(Stat, Descendants) {
  std::vector<ProcStat> all{{1, 0, "init", 0, 0, {}},   {10, 1, "apache2", 0, 0, {}},
                            {11, 10, "pm", 0, 0, {}},   {12, 11, "php", 0, 0, {}},
                            {13, 11, "php", 0, 0, {}},  {14, 10, "apache2", 0, 0, {}},
                            {20, 1, "other", 0, 0, {}}, {21, 12, "sh", 0, 0, {}}};
  EXPECT_EQ(descendants(all, 11), (std::vector<int>{12, 13, 21}));
  EXPECT_EQ(descendants(all, 99), std::vector<int>{});
}

TEST(Status, RssShmemOfThisProcessGrowsWithTouchedSharedPages) {
  auto before = read_resident("/proc", ::getpid());
  ASSERT_TRUE(before) << before.error;
  const std::size_t len = 4 << 20;
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  std::memset(p, 1, len);  // touched pages count in RssShmem
  auto after = read_resident("/proc", ::getpid());
  ::munmap(p, len);
  ASSERT_TRUE(after) << after.error;
  EXPECT_GE(after.value->rss_shmem, before.value->rss_shmem + len);
  EXPECT_FALSE(read_resident("/proc", 0x7ffffff0));
}

// What a memory cgroup charges a worker for (issue 17): its private anon grows as it is touched,
// not as it is mapped.
TEST(Status, RssAnonOfThisProcessGrowsWhenTouchedNotWhenMapped) {
  const std::size_t len = 8 << 20;
  auto before = read_resident("/proc", ::getpid());
  ASSERT_TRUE(before) << before.error;
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  auto mapped = read_resident("/proc", ::getpid());
  std::memset(p, 1, len);
  auto touched = read_resident("/proc", ::getpid());
  ::munmap(p, len);
  ASSERT_TRUE(mapped && touched);
  EXPECT_LT(mapped.value->rss_anon, before.value->rss_anon + len / 2);
  EXPECT_GE(touched.value->rss_anon, before.value->rss_anon + len);
}

// ---------------------------------------------------------------- worker identity (exec)

namespace {

// A /proc/PID/stat line with `n` fields (pid, comm, then 3..n), field i holding 1000 + i, except
// state (field 3: S), ppid (4: 1), starttime (22: 987654) and the image fields given.
std::string stat_line(int n) {
  std::string s = "4242 (php-cgi)";
  for (int i = 3; i <= n; ++i) {
    if (i == 3)
      s += " S";
    else if (i == 4)
      s += " 1";
    else if (i == 22)
      s += " 987654";
    else
      s += " " + std::to_string(1000 + i);
  }
  return s + "\n";
}

Worker worker_from(const ProcStat& st) {
  Worker w;
  w.pid = st.pid;
  w.comm = st.comm;
  w.start_ticks = st.start_ticks;
  w.image = st.image;
  return w;
}

// A child of this process that waits for a byte on `go` and then execs argv (stdin from `in` when
// it is >= 0). `execed` reads end-of-file once the exec happened (a close-on-exec pipe) or the
// child died.
struct Child {
  pid_t pid = -1;
  int go = -1, execed = -1;
  Child(const char* const argv[], int in = -1) {
    int g[2], e[2];
    if (::pipe(g) != 0 || ::pipe2(e, O_CLOEXEC) != 0) return;
    pid = ::fork();
    if (pid == 0) {
      ::close(g[1]);
      ::close(e[0]);
      char c;
      if (::read(g[0], &c, 1) != 1) ::_exit(127);
      ::close(g[0]);
      if (in >= 0) ::dup2(in, 0);
      ::execv(argv[0], const_cast<char* const*>(argv));
      ::_exit(127);
    }
    ::close(g[0]);
    ::close(e[1]);
    go = g[1];
    execed = e[0];
  }
  // Lets the child exec; true once it has (within 10 s).
  bool exec_now() {
    if (::write(go, "x", 1) != 1) return false;
    pollfd p{execed, POLLIN, 0};
    if (::poll(&p, 1, 10000) != 1) return false;
    char c;
    return ::read(execed, &c, 1) == 0 && kill(pid, 0) == 0;
  }
  ~Child() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    for (int fd : {go, execed})
      if (fd >= 0) ::close(fd);
  }
};

}  // namespace

TEST(Stat, ImageFieldsOfACurrentKernel) {
  auto st = parse_proc_stat(stat_line(52));
  ASSERT_TRUE(st) << st.error;
  EXPECT_EQ(st.value->comm, "php-cgi");
  EXPECT_EQ(st.value->ppid, 1);
  EXPECT_EQ(st.value->start_ticks, 987654u);
  EXPECT_EQ(st.value->vsize, 1023u);
  EXPECT_EQ(st.value->image.start_code, 1026u);
  EXPECT_EQ(st.value->image.end_code, 1027u);
  EXPECT_EQ(st.value->image.start_stack, 1028u);
  EXPECT_EQ(st.value->image.arg_start, 1048u);
  EXPECT_EQ(st.value->image.arg_end, 1049u);
  EXPECT_EQ(st.value->image.env_start, 1050u);
  EXPECT_EQ(st.value->image.env_end, 1051u);
}

TEST(Stat, OlderKernelsWithoutTheArgumentFields) {
  auto st = parse_proc_stat(stat_line(44));  // Linux < 3.5: no arg_start..env_end
  ASSERT_TRUE(st) << st.error;
  EXPECT_EQ(st.value->image.start_code, 1026u);
  EXPECT_EQ(st.value->image.arg_start, 0u);
  EXPECT_EQ(st.value->image.env_end, 0u);
  auto short_line = parse_proc_stat(stat_line(22));
  ASSERT_TRUE(short_line) << short_line.error;
  EXPECT_EQ(short_line.value->image, ExecImage{});
  EXPECT_FALSE(parse_proc_stat(stat_line(21)));
}

TEST(Identity, SameExecedOther) {
  auto st = parse_proc_stat(stat_line(52));
  ASSERT_TRUE(st);
  Worker w = worker_from(*st.value);
  EXPECT_EQ(compare_identity(w, *st.value), Identity::Same);
  ProcStat renamed = *st.value;
  renamed.comm = "sh";
  EXPECT_EQ(compare_identity(w, renamed), Identity::Execed);
  for (std::uint64_t ExecImage::*f :
       {&ExecImage::start_code, &ExecImage::end_code, &ExecImage::start_stack,
        &ExecImage::arg_start, &ExecImage::arg_end, &ExecImage::env_start, &ExecImage::env_end}) {
    ProcStat moved = *st.value;
    moved.image.*f += 4096;
    EXPECT_EQ(compare_identity(w, moved), Identity::Execed);
  }
  ProcStat reused = *st.value;
  reused.start_ticks += 1;
  EXPECT_EQ(compare_identity(w, reused), Identity::Other);
  ProcStat other_pid = *st.value;
  other_pid.pid += 1;
  EXPECT_EQ(compare_identity(w, other_pid), Identity::Other);
}

TEST(Identity, WhatToReadAgainAtACheck) {
  auto st = parse_proc_stat(stat_line(52));
  ASSERT_TRUE(st);
  const ProcStat& now = *st.value;
  Worker w = worker_from(now);
  w.segments.push_back(Segment{0, 1, 40960, 32u << 20, "anon-shared"});  // APCu's, say
  const std::uint64_t v = now.vsize;
  // The same image and size: nothing, however young.
  EXPECT_EQ(reread_at_check(w, v, 100, now), Reread::Nothing);
  // The size changed since the maps were read: again within the settling time, not after.
  EXPECT_EQ(reread_at_check(w, v - 4096, 100, now), Reread::Segments);
  EXPECT_EQ(reread_at_check(w, v - 4096, kSegmentsSettleMs - 1, now), Reread::Segments);
  EXPECT_EQ(reread_at_check(w, v - 4096, kSegmentsSettleMs, now), Reread::Nothing);
  // ... but always while no segment was seen, and always when the maps could not be read.
  Worker bare = worker_from(now);
  EXPECT_EQ(reread_at_check(bare, v - 4096, 10 * kSegmentsSettleMs, now), Reread::Segments);
  EXPECT_EQ(reread_at_check(bare, v, 10 * kSegmentsSettleMs, now), Reread::Nothing);
  EXPECT_EQ(reread_at_check(w, kMapsUnread, 10 * kSegmentsSettleMs, now), Reread::Segments);
  // An exec, or another process: everything, old or young, whatever the size.
  ProcStat execed = now;
  execed.comm = "sh";
  EXPECT_EQ(reread_at_check(w, v, 10 * kSegmentsSettleMs, execed), Reread::Everything);
  ProcStat reused = now;
  reused.start_ticks += 100;
  EXPECT_EQ(reread_at_check(w, v, 100, reused), Reread::Everything);
}

TEST(Identity, RealExecOfAnotherProgramIsSeen) {
  const char* argv[] = {"/bin/sleep", "30", nullptr};
  Child c(argv);
  ASSERT_GT(c.pid, 0);
  auto before = read_worker("/proc", c.pid, false);
  ASSERT_TRUE(before) << before.error;
  EXPECT_NE(before.value->image.start_code, 0u);  // root reads the addresses
  auto again = read_proc_stat("/proc", c.pid);
  ASSERT_TRUE(again) << again.error;
  EXPECT_EQ(compare_identity(*before.value, *again.value), Identity::Same);  // no exec yet
  EXPECT_GT(again.value->vsize, 0u);
  ASSERT_TRUE(c.exec_now());
  auto after = read_proc_stat("/proc", c.pid);
  ASSERT_TRUE(after) << after.error;
  EXPECT_EQ(after.value->comm, "sleep");
  EXPECT_EQ(after.value->start_ticks, before.value->start_ticks);  // exec keeps the start time
  EXPECT_EQ(compare_identity(*before.value, *after.value), Identity::Execed);
}

TEST(Identity, RealExecKeepingTheNameIsSeen) {
  // sh execs sh: the same name (comm) before and after; the image tells.
  int in[2];
  ASSERT_EQ(::pipe(in), 0);
  const char* argv[] = {"/bin/sh", "-c", "read x; exec /bin/sh -c 'read y'", nullptr};
  Child c(argv, in[0]);
  ::close(in[0]);
  ASSERT_GT(c.pid, 0);
  ASSERT_TRUE(c.exec_now());
  auto first = read_worker("/proc", c.pid, false);
  ASSERT_TRUE(first) << first.error;
  EXPECT_EQ(first.value->comm, "sh");
  ASSERT_EQ(::write(in[1], "x\n", 2), 2);  // the first sh reads its line and execs the second
  bool second = false;
  for (int i = 0; i < 1000 && !second; ++i) {
    auto w = read_worker("/proc", c.pid, false);
    second = w && w.value->cmdline == "/bin/sh -c read y";
    if (!second) ::usleep(10000);
  }
  ::close(in[1]);
  ASSERT_TRUE(second) << "the second sh never ran";
  auto now = read_proc_stat("/proc", c.pid);
  ASSERT_TRUE(now) << now.error;
  EXPECT_EQ(now.value->comm, first.value->comm);
  EXPECT_NE(now.value->image, first.value->image);
  EXPECT_EQ(compare_identity(*first.value, *now.value), Identity::Execed);
}

TEST(ExecSchedule, BootClockAndStartTimes) {
  EXPECT_EQ(ticks_to_ms(static_cast<std::uint64_t>(::sysconf(_SC_CLK_TCK)) * 3), 3000);
  EXPECT_EQ(ticks_to_ms(UINT64_MAX), INT64_MAX);
  auto self = read_proc_stat("/proc", ::getpid());
  ASSERT_TRUE(self) << self.error;
  std::int64_t now = boot_ms_now(), start = ticks_to_ms(self.value->start_ticks);
  ASSERT_GT(now, 0);
  EXPECT_LE(start, now + 10);                  // started before now (10 ms: one clock tick)
  EXPECT_LT(now - start, 24LL * 3600 * 1000);  // this test binary is younger than a day
}

TEST(ExecSchedule, TwiceTheAgeAtLeastTheGap) {
  EXPECT_EQ(next_exec_check_ms(1000, 1100, 250), 1350);  // young: the gap
  EXPECT_EQ(next_exec_check_ms(1000, 5000, 250), 9000);  // twice the age
  EXPECT_EQ(next_exec_check_ms(5000, 1000, 250), 1250);  // start in the future: the gap
  EXPECT_EQ(next_exec_check_ms(0, INT64_MAX - 5, 250), INT64_MAX);
  EXPECT_EQ(next_exec_check_ms(1000, 1000, 0), 1001);  // never now again
}

TEST(ExecSchedule, AnExecIsSeenByTwiceItsAgeAndLooksAreFew) {
  const std::int64_t gap = 250, start = 1'000'000;
  for (std::int64_t interval : {200, 500}) {
    for (std::int64_t exec_age : {50, 100, 700, 3000, 45'000, 600'000}) {
      // The first read, at the first sample after the process appeared, saw the starter.
      std::int64_t now = start + 80, check = next_exec_check_ms(start, now, gap), seen = -1;
      for (now += interval; now < start + 4 * exec_age + 4 * interval; now += interval) {
        if (check > now) continue;
        if (now - start >= exec_age) {
          seen = now - start;
          break;
        }
        check = next_exec_check_ms(start, now, gap);
      }
      ASSERT_GE(seen, exec_age) << "interval " << interval << " exec at " << exec_age;
      EXPECT_LE(seen, std::max(2 * exec_age, exec_age + gap) + interval)
          << "interval " << interval << " exec at " << exec_age;
    }
  }
  // An hour's life at 500 ms per sample: 7200 samples, a handful of looks.
  int looks = 0;
  for (std::int64_t now = start + 80, check = next_exec_check_ms(start, now, gap);
       now < start + 3'600'000; now += 500) {
    if (check > now) continue;
    ++looks;
    check = next_exec_check_ms(start, now, gap);
  }
  EXPECT_GE(looks, 10);
  EXPECT_LE(looks, 15);  // log2(3600 s / 250 ms) = 13.8
}

TEST(ExecSchedule, PickYoungestDueFirstAtMostMax) {
  std::vector<ExecCheckDue> all = {
      {0, 4000},       // 0: due, age 4000 at its look
      {9000, 9300},    // 1: due, age 300
      {9500, 20000},   // 2: not due
      {8000, 9000},    // 3: due, age 1000
      {9700, 9950},    // 4: due, age 250
      {9600, 9850},    // 5: due, age 250 (tie with 4: index order)
      {12000, 10000},  // 6: due, start after its look (clock oddity): age 0
  };
  EXPECT_EQ(pick_exec_checks(all, 10000, 100), (std::vector<std::size_t>{6, 4, 5, 1, 3, 0}));
  EXPECT_EQ(pick_exec_checks(all, 10000, 3), (std::vector<std::size_t>{6, 4, 5}));
  EXPECT_EQ(pick_exec_checks(all, 10000, 0), std::vector<std::size_t>{});
  EXPECT_EQ(pick_exec_checks(all, 100, 10), std::vector<std::size_t>{});
  EXPECT_EQ(pick_exec_checks({}, 10000, 10), std::vector<std::size_t>{});
  // 1000 old processes due at once do not hold back a young one.
  std::vector<ExecCheckDue> backlog(1000, ExecCheckDue{0, 5000});
  backlog.push_back({9800, 10000});
  auto picked = pick_exec_checks(backlog, 10000, 8);
  ASSERT_EQ(picked.size(), 8u);
  EXPECT_EQ(picked[0], 1000u);
}

TEST(Stat, StateIsTheFieldAfterTheName) {
  auto st = parse_proc_stat("42 (a) b) Z 1 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0\n");
  ASSERT_TRUE(st) << st.error;
  EXPECT_EQ(st.value->state, 'Z');
  EXPECT_EQ(st.value->comm, "a) b");
}

// A zombie still answers kill(pid, 0): pid_alive counts it, pid_exited does not (its stat says Z).
TEST(Stat, AZombieIsAliveToKillButExited) {
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    char c;
    close(go[1]);
    if (read(go[0], &c, 1) < 0) _exit(1);
    _exit(0);
  }
  close(go[0]);
  EXPECT_TRUE(pid_alive(child));
  EXPECT_FALSE(pid_exited("/proc", child));
  close(go[1]);  // the child exits; not reaped yet: a zombie
  EXPECT_TRUE(shmguard_test::eventually([&] {
    auto st = read_proc_stat("/proc", child);
    return st && st.value->state == 'Z';
  }));
  EXPECT_TRUE(pid_alive(child));
  EXPECT_TRUE(pid_exited("/proc", child));
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_FALSE(pid_alive(child));
  EXPECT_TRUE(pid_exited("/proc", child));
  EXPECT_FALSE(pid_exited("/proc", 0));
}

TEST(Workers, PrivateWritableIsVmDataPlusVmStk) {
  // From a php-fpm8.2 child's /proc/PID/status on this machine (lines trimmed).
  const char* status =
      "Name:\tphp-fpm8.2\nVmPeak:\t  301960 kB\nVmSize:\t  301900 kB\nRssShmem:\t    1280 kB\n"
      "VmData:\t   14936 kB\nVmStk:\t     132 kB\nVmExe:\t    4424 kB\n";
  auto v = parse_private_writable(status);
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, (14936u + 132u) * 1024u);
  EXPECT_FALSE(parse_private_writable("VmData:\t 10 kB\n"));  // no VmStk (a kernel thread)
  EXPECT_FALSE(parse_private_writable(""));
  EXPECT_FALSE(parse_private_writable("VmData:\t99999999999999999999 kB\nVmStk:\t1 kB\n"));
}

// ---------------------------------------------------------------- bounds (issue 20 item 3)

namespace {
// n shared memfd mappings of `size` bytes, inodes from `first_inode`, each `repeat` times.
std::string memfd_maps(std::size_t n, std::uint64_t first_inode, std::uint64_t size,
                       int repeat = 1) {
  std::string out;
  std::uint64_t at = 0x7f0000000000;
  char line[160];
  for (int r = 0; r < repeat; ++r)
    for (std::size_t i = 0; i < n; ++i) {
      std::snprintf(line, sizeof line, "%llx-%llx rw-s 00000000 00:01 %llu /memfd:x (deleted)\n",
                    static_cast<unsigned long long>(at), static_cast<unsigned long long>(at + size),
                    static_cast<unsigned long long>(first_inode + i));
      out += line;
      at += size;
    }
  return out;
}
}  // namespace

TEST(Maps, ManyMappingsReadWithinTheBoundsLargestSegmentsKept) {
  // 20 000 distinct 1-MiB memfds, then one 64 MiB OPcache-sized segment far past the line bound
  // (not read), and within the bound one 32 MiB segment: the largest kMaxSegments kept.
  std::string maps = memfd_maps(100, 1000, 1 << 20);
  maps += "7e0000000000-7e0002000000 rw-s 00000000 00:01 77 /dev/zero (deleted)\n";
  maps += memfd_maps(20000, 5000, 1 << 20);
  maps += "7d0000000000-7d0004000000 rw-s 00000000 00:01 88 /dev/zero (deleted)\n";
  MapsBounds b;
  auto r = parse_maps_shared(maps, &b);
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->size(), kMaxSegments);
  EXPECT_TRUE(b.cut);
  EXPECT_EQ(b.segments_left_out, kMapsMaxLines - kMaxSegments);  // every line read is distinct
  // The 32 MiB one is kept (the largest), the 64 MiB one past the bound was never read.
  bool big = false;
  for (const auto& s : *r.value) {
    big = big || s.inode == 77;
    EXPECT_NE(s.inode, 88u);
  }
  EXPECT_TRUE(big);
  EXPECT_NE(b.note().find("8192 mappings"), std::string::npos) << b.note();
  EXPECT_NE(b.note().find("not kept"), std::string::npos) << b.note();
  // Within the bounds nothing is said.
  MapsBounds small;
  ASSERT_TRUE(parse_maps_shared(memfd_maps(10, 1, 4096), &small));
  EXPECT_FALSE(small.cut);
  EXPECT_EQ(small.note(), "");
}

TEST(Maps, DuplicatesMergedByDeviceAndInodeInFirstSeenOrder) {
  // The same 3 segments mapped 1000 times each (two sizes): 3 segments, first-seen order, the
  // largest mapping's size.
  std::string maps = memfd_maps(3, 10, 4096, 1000);
  maps += "7c0000000000-7c0000100000 rw-s 00000000 00:01 11 /memfd:x (deleted)\n";
  MapsBounds b;
  auto r = parse_maps_shared(maps, &b);
  ASSERT_TRUE(r) << r.error;
  ASSERT_EQ(r.value->size(), 3u);
  EXPECT_EQ((*r.value)[0].inode, 10u);
  EXPECT_EQ((*r.value)[1].inode, 11u);
  EXPECT_EQ((*r.value)[2].inode, 12u);
  EXPECT_EQ((*r.value)[1].size, 1u << 20);
  EXPECT_EQ((*r.value)[0].size, 4096u);
  EXPECT_EQ(b.note(), "");
  // Another device, same inode: another segment.
  auto two = parse_maps_shared(
      "1000-2000 rw-s 0 00:01 5 /dev/zero (deleted)\n2000-3000 rw-s 0 00:02 5 /dev/zero\n");
  ASSERT_TRUE(two);
  EXPECT_EQ(two.value->size(), 2u);
}

TEST(Maps, RealProcessWithTenThousandMappingsIsReadWithinTheBounds) {
  // This process maps 10 000 distinct 4 KiB memfds (what any local user's process can do).
  std::vector<void*> maps;
  for (int i = 0; i < 10000; ++i) {
    int fd = ::memfd_create("bounds", MFD_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, 4096), 0);
    void* p = ::mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    ASSERT_NE(p, MAP_FAILED);
    maps.push_back(p);
  }
  auto w = read_worker("/proc", ::getpid());
  for (void* p : maps) ::munmap(p, 4096);
  ASSERT_TRUE(w) << w.error;
  EXPECT_LE(w.value->segments.size(), kMaxSegments);
  EXPECT_TRUE(w.value->error.empty()) << w.value->error;
  EXPECT_NE(w.value->maps_note.find("mappings"), std::string::npos) << w.value->maps_note;
}
