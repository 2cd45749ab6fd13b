// Issue 9 (trust): reading through descriptors kept from before the privilege drop, the error-log
// tail on a shrinking file, bounded command lines and worker tables on the status page, and the
// check of mod_fcgid's table geometry and version.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "../../mod_shmguard/sampler/sampler.hpp"
#include "shmguard/fcgid.hpp"
#include "shmguard/model.hpp"
#include "shmguard/sources.hpp"
#include "shmguard/status.hpp"
#include "shmguard/workers.hpp"
#include "test_util.hpp"

using namespace shmguard;

using namespace shmguard_test;

namespace {

// Runs f in a child that has become `nobody` (uid/gid 65534, no capabilities); the child's exit
// status is f's result (0 = all checks passed).
int as_nobody(const std::function<int()>& f) {
  pid_t pid = ::fork();
  if (pid == 0) {
    gid_t g = 65534;
    if (::setgroups(1, &g) != 0 || ::setresgid(g, g, g) != 0 || ::setresuid(65534, 65534, 65534))
      ::_exit(100);
    ::_exit(f());
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 101;
}

}  // namespace

// ------------------------------------------------------------------------------ kept descriptors

TEST(KeptFile, RereadsFromOffsetZeroEveryTime) {
  TempDir d;
  const std::string f = d.path() + "/bc";
  write_file(f, "first\n");
  int fd = ::open(f.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  auto a = read_kept_file(fd, f);
  auto b = read_kept_file(fd, f);  // a read() that went on from the end would give ""
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a.value, "first\n");
  EXPECT_EQ(*b.value, "first\n");
  {  // rewritten in place (same inode): the new text
    std::ofstream out(f, std::ios::in | std::ios::out);
    out << "FIRST\n" << std::flush;
  }
  EXPECT_EQ(*read_kept_file(fd, f).value, "FIRST\n");
  ::close(fd);
}

TEST(KeptFile, PathReplacedOrGoneIsReadByPath) {
  TempDir d;
  const std::string f = d.path() + "/bc";
  write_file(f, "old\n");
  int fd = ::open(f.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  write_file(f + ".new", "new\n");
  ASSERT_EQ(std::rename((f + ".new").c_str(), f.c_str()), 0);  // what the test double does
  EXPECT_EQ(*read_kept_file(fd, f).value, "new\n");
  ASSERT_EQ(::unlink(f.c_str()), 0);
  auto gone = read_kept_file(fd, f);
  EXPECT_FALSE(gone);
  EXPECT_EQ(gone.error, "missing: " + f);
  EXPECT_EQ(read_kept_file(-1, d.path() + "/none").error, "missing: " + d.path() + "/none");
  ::close(fd);
}

TEST(KeptFile, RootOnlyFileStaysReadableAfterDroppingRoot) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to drop";
  TempDir d;
  const std::string f = d.path() + "/user_beancounters";
  write_file(f, read_text(fixtures() + "/beancounters/openvz6-container.txt"));
  ASSERT_EQ(::chmod(f.c_str(), 0400), 0);
  int fd = ::open(f.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  int rc = as_nobody([&] {
    if (read_file(f)) return 1;  // by path: permission denied now
    if (read_file(f).error != "permission denied: " + f) return 2;
    auto kept = read_kept_file(fd, f);  // through the descriptor: fine
    if (!kept || kept.value->find("shmpages") == std::string::npos) return 3;
    ProbeConfig cfg;
    cfg.beancounters = f;
    cfg.beancounters_fd = fd;
    cfg.cgroup.mode = CgroupOptions::Mode::Off;
    cfg.devshm = "";
    cfg.page_size = 4096;
    Snapshot s = probe(cfg);
    if (!s.beancounters) return 4;
    if (!s.headroom_bytes || *s.headroom_bytes != (262144ull - 247122) * 4096) return 5;
    cfg.beancounters_fd = -1;  // the same probe by path alone
    if (probe(cfg).beancounters) return 6;
    return 0;
  });
  EXPECT_EQ(rc, 0);
  ::close(fd);
}

// ------------------------------------------------------------------------------ the error log

TEST(LogTail, ShrunkLogIsFollowedFromItsNewEnd) {
  TempDir d;
  const std::string f = d.path() + "/error.log";
  const std::string a = "line a: Unable to allocate shared memory segment of 1 bytes: x\n";
  write_file(f, a + "line b\nline c\n");
  sampler::LogTail tail(f);
  std::vector<std::string> got;
  auto collect = [&](std::string_view l) { got.emplace_back(l); };
  tail.poll(collect);
  EXPECT_TRUE(got.empty());  // from the end
  std::ofstream(f, std::ios::app) << "line d\n" << std::flush;
  tail.poll(collect);
  ASSERT_EQ(got, std::vector<std::string>{"line d"});
  // Cut in place to an old line (copytruncate-like tools, an admin's `tail > log`).
  int fd = ::open(f.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, a.data(), a.size(), 0), static_cast<ssize_t>(a.size()));
  ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(a.size())), 0);
  ::close(fd);
  tail.poll(collect);
  EXPECT_EQ(got.size(), 1u) << "re-read an old line as new: " << got.back();
  std::ofstream(f, std::ios::app) << "line e\n" << std::flush;
  tail.poll(collect);
  EXPECT_EQ(got.back(), "line e");
  EXPECT_EQ(got.size(), 2u);
}

TEST(LogTail, AdoptedDescriptorIsReadAndThePathNeverReopened) {
  TempDir d;
  const std::string f = d.path() + "/error.log";
  write_file(f, "before\n");
  int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  sampler::LogTail tail(f, fd, -1);
  std::vector<std::string> got;
  auto collect = [&](std::string_view l) { got.emplace_back(l); };
  std::ofstream(f, std::ios::app) << "after\n" << std::flush;
  // Another file at the path now: the tail keeps the file it was given.
  ASSERT_EQ(std::rename(f.c_str(), (f + ".1").c_str()), 0);
  write_file(f, "other file\n");
  tail.poll(collect);
  EXPECT_EQ(got, std::vector<std::string>{"after"});
}

TEST(LogTail, AdoptedDescriptorSaysWhenItsLogWasRotated) {
  TempDir d;
  const std::string f = d.path() + "/php-fpm.log";
  write_file(f, "before\n");
  int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  sampler::LogTail tail(f, fd, -1);
  std::vector<std::string> got;
  auto collect = [&](std::string_view l) { got.emplace_back(l); };
  EXPECT_FALSE(tail.replaced());
  ASSERT_EQ(std::rename(f.c_str(), (f + ".1").c_str()), 0);
  EXPECT_FALSE(tail.replaced());  // renamed, nothing at the path yet: the writer still writes it
  std::ofstream(f + ".1", std::ios::app) << "late\n" << std::flush;
  write_file(f, "");
  EXPECT_FALSE(tail.replaced());  // a new file, empty: not written by the writer yet
  write_file(f, "new\n");
  EXPECT_TRUE(tail.replaced());
  tail.poll(collect);  // what the old file got is still read
  EXPECT_EQ(got, std::vector<std::string>{"late"});
  // Cut in place (copytruncate): the same file, followed on (from its new end).
  write_file(f + ".2", "x\n");
  int fd2 = ::open((f + ".2").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd2, 0);
  sampler::LogTail cut(f + ".2", fd2, -1);
  ASSERT_EQ(::truncate((f + ".2").c_str(), 0), 0);
  EXPECT_FALSE(cut.replaced());
}

TEST(LogTail, ItsOwnOpenIsReopenedAfterARename) {
  TempDir d;
  const std::string f = d.path() + "/php-fpm.log";
  write_file(f, "before\n");
  sampler::LogTail tail(f);
  std::vector<std::string> got;
  auto collect = [&](std::string_view l) { got.emplace_back(l); };
  std::ofstream(f, std::ios::app) << "old\n" << std::flush;
  ASSERT_EQ(std::rename(f.c_str(), (f + ".1").c_str()), 0);
  write_file(f, "first of the new file\n");
  tail.poll(collect);  // the old file to its end, then the new one
  EXPECT_FALSE(tail.replaced());
  tail.poll(collect);
  EXPECT_EQ(got, (std::vector<std::string>{"old", "first of the new file"}));
  std::ofstream(f, std::ios::app) << "next\n" << std::flush;
  tail.poll(collect);
  EXPECT_EQ(got.back(), "next");
}

// ------------------------------------------------------------------------------ command lines

TEST(Workers, CommandLineReadIsBoundedTo1KiB) {
  const std::string longarg(10000, 'x');
  pid_t pid = ::fork();
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", "sleep 30; exit 0", longarg.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ASSERT_GT(pid, 0);
  std::string cmd;
  for (int i = 0; i < 200; ++i) {  // until the exec happened
    auto w = read_worker("/proc", pid, false);
    if (w && w.value->cmdline.rfind("sh -c sleep 30; exit 0", 0) == 0) {
      cmd = w.value->cmdline;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  ASSERT_FALSE(cmd.empty());
  EXPECT_EQ(cmd.size(), kCmdlineMax);
  EXPECT_EQ(cmd, ("sh -c sleep 30; exit 0 " + longarg).substr(0, kCmdlineMax));
}

TEST(StatusPage, ProgramNames) {
  EXPECT_EQ(program_name("/usr/bin/php-cgi -d opcache.enable=1 -d secret=hunter2"), "php-cgi");
  EXPECT_EQ(program_name("php-fpm: pool www"), "php-fpm");
  EXPECT_EQ(program_name("php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)"), "php-fpm");
  EXPECT_EQ(program_name("/opt/wrap"), "wrap");
  EXPECT_EQ(program_name(""), "");
}

namespace {
Snapshot small_snapshot() {
  Snapshot s;
  s.taken_at_ms = 1700000000000;
  compute_headroom(s);
  return s;
}
WorkerRow row(int pid, const std::string& command) {
  WorkerRow w;
  w.pid = pid;
  w.backend = "php-fpm";
  w.kind = "php-fpm pool www";
  w.klass = "www";
  w.command = command;
  w.segments.push_back(Segment{0, 1, static_cast<std::uint64_t>(pid), 64 << 20, "anon-shared"});
  return w;
}
}  // namespace

// The page a child writes from what the sampler published (its blob, decoded).
StatusModel published(const std::vector<WorkerRow>& ws, const StatusOptions& opts) {
  StatusModel m;
  m.part = decode_sampler_part(encode_sampler_part(make_sampler_part(small_snapshot(), ws, opts)));
  return m;
}

TEST(StatusPage, CommandsAreProgramNamesUnlessFull) {
  std::vector<WorkerRow> ws{row(10, "/usr/bin/php-cgi -d mysql.default_password=hunter2")};
  StatusOptions name;
  name.full_commands = false;
  // not in what the sampler publishes at all, so in no format
  EXPECT_EQ(encode_sampler_part(make_sampler_part(small_snapshot(), ws, name)).find("hunter2"),
            std::string::npos);
  StatusModel m = published(ws, name);
  ASSERT_TRUE(m.part);
  EXPECT_EQ(write_status_html(m).find("hunter2"), std::string::npos);
  EXPECT_EQ(write_status_json(m).find("hunter2"), std::string::npos);
  EXPECT_NE(write_status_json(m).find("\"command\":\"php-cgi\""), std::string::npos);
  StatusOptions full;
  full.full_commands = true;
  m = published(ws, full);
  EXPECT_NE(write_status_html(m).find("hunter2"), std::string::npos);
  // A command longer than kCmdlineMax is cut there, even when it did not come from /proc.
  ws[0].command = "php-cgi " + std::string(5000, 'y');
  m = published(ws, full);
  const std::string j = write_status_json(m);
  EXPECT_NE(j.find(std::string(kCmdlineMax - 8, 'y')), std::string::npos);
  EXPECT_EQ(j.find(std::string(kCmdlineMax - 7, 'y')), std::string::npos);
}

TEST(StatusPage, HostileWorkerTableStillFitsTheBlob) {
  // 5000 processes named php-fpm with 1 KiB command lines that escape to 6 bytes a byte.
  const std::size_t blob = 2u << 20;
  std::vector<WorkerRow> ws;
  for (int i = 0; i < 5000; ++i)
    ws.push_back(row(1000 + i, "php-fpm: " + std::string(kCmdlineMax - 9, '\x01')));
  // Unbounded: larger than the shared segment's blob, which would then hold a cut copy that
  // does not decode: a blank page.
  StatusOptions unbounded;
  unbounded.max_rows = SIZE_MAX;
  EXPECT_GT(encode_sampler_part(make_sampler_part(small_snapshot(), ws, unbounded)).size(), blob);
  StatusOptions opts;
  opts.full_commands = true;
  opts.max_bytes = blob;
  const std::string enc = encode_sampler_part(make_sampler_part(small_snapshot(), ws, opts));
  EXPECT_LE(enc.size(), blob);
  StatusModel m;
  m.part = decode_sampler_part(enc);
  ASSERT_TRUE(m.part);
  const std::string html = write_status_html(m);
  EXPECT_NE(html.find("more workers not listed"), std::string::npos);
  EXPECT_NE(write_status_json(m).find("\"workers_not_listed\":"), std::string::npos);
  EXPECT_NE(html.find("5000 workers;"), std::string::npos);  // totals: all
  // Row cap alone: 5000 small rows, at most kMaxWorkerRows listed.
  std::vector<WorkerRow> many;
  for (int i = 0; i < 5000; ++i) many.push_back(row(1000 + i, "php-fpm: pool www"));
  StatusOptions capped;
  capped.max_bytes = blob;
  m = published(many, capped);
  EXPECT_NE(
      write_status_json(m).find("\"workers_not_listed\":" + std::to_string(5000 - kMaxWorkerRows)),
      std::string::npos);
  // An ordinary table is listed whole.
  std::vector<WorkerRow> few(many.begin(), many.begin() + 1000);
  m = published(few, capped);
  EXPECT_EQ(write_status_json(m).find("workers_not_listed"), std::string::npos);
  EXPECT_EQ(write_status_html(m).find("not listed"), std::string::npos);
}

// ------------------------------------------------------------------------------ mod_fcgid layout

namespace {
// A table as mod_fcgid 2.3.9's proctable_post_config leaves it: every node on the free list.
struct FakeTable {
  std::vector<unsigned char> mem = std::vector<unsigned char>(fcgid::kSlots * fcgid::kNodeSize, 0);
  FakeTable() {
    for (int i = fcgid::kFreeHead; i < fcgid::kSlots - 1; ++i) set_next(i, i + 1);
  }
  unsigned char* node(int i) { return mem.data() + static_cast<std::size_t>(i) * fcgid::kNodeSize; }
  void set_next(int i, int next) {
    std::memcpy(node(i) + fcgid::off::next_index, &next, sizeof next);
  }
  fcgid::TableGeometry geometry() {
    fcgid::TableGeometry g;
    g.table = mem.data();
    g.table_size = fcgid::kSlots;
    g.idle = node(0);
    g.busy = node(1);
    g.error = node(2);
    g.free = node(3);
    return g;
  }
};
}  // namespace

TEST(FcgidLayout, FreshTableOf239Passes) {
  FakeTable t;
  EXPECT_EQ(fcgid::check_table(t.geometry()), "");
  // Workers on the idle and busy lists, the rest free: still one chain each.
  t.set_next(3, 6);  // free: 3 -> 6 -> ...
  t.set_next(0, 4);  // idle: 4
  t.set_next(4, 0);
  t.set_next(1, 5);  // busy: 5
  t.set_next(5, 0);
  EXPECT_EQ(fcgid::check_table(t.geometry()), "");
}

TEST(FcgidLayout, OtherGeometryIsRefused) {
  FakeTable t;
  auto g = t.geometry();
  g.table_size = 2052;  // FCGID_MAX_APPLICATION raised to 2048
  EXPECT_NE(fcgid::check_table(g).find("2052 nodes"), std::string::npos);
  g = t.geometry();
  g.busy = t.mem.data() + 1160;  // another node size
  EXPECT_NE(fcgid::check_table(g).find("busy list head at byte 1160"), std::string::npos);
  g = t.geometry();
  g.table = nullptr;
  EXPECT_NE(fcgid::check_table(g), "");
  g = t.geometry();
  g.error = nullptr;
  EXPECT_NE(fcgid::check_table(g), "");
}

TEST(FcgidLayout, BrokenLinksAreRefused) {
  {
    FakeTable t;
    t.set_next(500, 5000);  // out of range
    EXPECT_NE(fcgid::check_table(t.geometry()).find("links to node 5000"), std::string::npos);
  }
  {
    FakeTable t;
    t.set_next(500, 10);  // a cycle
    EXPECT_NE(fcgid::check_table(t.geometry()).find("twice"), std::string::npos);
  }
  {
    FakeTable t;
    t.set_next(0, 7);  // node 7 on the idle list and on the free list
    t.set_next(7, 0);
    EXPECT_NE(fcgid::check_table(t.geometry()), "");
  }
  {
    FakeTable t;
    t.set_next(1000, 0);  // the free list ends early: 27 nodes on no list
    EXPECT_NE(fcgid::check_table(t.geometry()).find("nodes on the lists"), std::string::npos);
  }
  {
    FakeTable t;  // garbage (another structure where the table was expected)
    std::memset(t.mem.data(), 0xff, t.mem.size());
    EXPECT_NE(fcgid::check_table(t.geometry()), "");
  }
}

TEST(FcgidLayout, Version) {
  EXPECT_EQ(fcgid::version_in("Apache/2.4.62 (Debian) mod_fcgid/2.3.9 OpenSSL/3.0.15"), "2.3.9");
  EXPECT_EQ(fcgid::version_in("Apache/2.4.62 (Debian) mod_fcgid/2.3.10"), "2.3.10");
  EXPECT_EQ(fcgid::version_in("Apache/2.4.62 (Debian)"), "");
  EXPECT_EQ(fcgid::version_in("Apache/2.4.62 mod_fcgid/2.3.9 mod_fcgid/2.4.0"), "");
  EXPECT_EQ(fcgid::version_in("Apache/2.4.62 xmod_fcgid/2.3.9"), "");
  EXPECT_TRUE(fcgid::version_supported("2.3.9"));
  EXPECT_FALSE(fcgid::version_supported("2.3.8"));
  EXPECT_FALSE(fcgid::version_supported("2.3.10"));
  EXPECT_FALSE(fcgid::version_supported(""));
}
