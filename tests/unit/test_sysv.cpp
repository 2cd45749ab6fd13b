// Unit tests: SysV shared memory (/proc/sysvipc/shm, kernel.shm*) and /dev/shm, against fixtures.
#include <gtest/gtest.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>

#include "shmguard/sources.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using namespace shmguard;

using namespace shmguard_test;

namespace {

const char* kNewHeader =
    "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid"
    "      atime      dtime      ctime                   rss                  swap\n";

}  // namespace

// ---------------------------------------------------------------- parse_sysvipc_shm

TEST(ParseSysvShm, NewColumnSet) {
  auto text = read_file(proc("cgroup2-limited") + "/sysvipc/shm");
  ASSERT_TRUE(text) << text.error;
  auto r = parse_sysvipc_shm(*text.value);
  ASSERT_TRUE(r) << r.error;
  const auto& v = *r.value;
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0].key, 5432001);
  EXPECT_EQ(v[0].shmid, 0u);
  EXPECT_EQ(v[0].size, 4194304u);
  EXPECT_EQ(v[0].cpid, 12552u);
  EXPECT_EQ(v[0].nattch, 1u);
  EXPECT_EQ(v[0].uid, 33u);
  EXPECT_EQ(v[0].rss, 4096u);
  EXPECT_EQ(v[0].swap, 0u);
  EXPECT_EQ(v[1].key, 0);  // IPC_PRIVATE
  EXPECT_EQ(v[1].shmid, 32769u);
  EXPECT_EQ(v[1].size, 67108864u);
  EXPECT_EQ(v[1].nattch, 4u);
  EXPECT_EQ(v[1].rss, 67108864u);
  EXPECT_EQ(v[2].key, -1412567295);  // keys with the top bit set print negative
  EXPECT_EQ(v[2].uid, 0u);
  EXPECT_EQ(v[2].nattch, 0u);
}

TEST(ParseSysvShm, OldColumnSet) {
  auto text = read_file(proc("cgroup1-limited") + "/sysvipc/shm");
  ASSERT_TRUE(text) << text.error;
  auto r = parse_sysvipc_shm(*text.value);
  ASSERT_TRUE(r) << r.error;
  ASSERT_EQ(r.value->size(), 2u);
  const SysvSegment& s = (*r.value)[0];
  EXPECT_EQ(s.key, 0);
  EXPECT_EQ(s.size, 33554432u);
  EXPECT_EQ(s.cpid, 1204u);
  EXPECT_EQ(s.nattch, 6u);
  EXPECT_EQ(s.uid, 33u);
  EXPECT_FALSE(s.rss);
  EXPECT_FALSE(s.swap);
  EXPECT_EQ((*r.value)[1].key, 1);
  EXPECT_EQ((*r.value)[1].size, 524288u);
}

TEST(ParseSysvShm, ColumnsFoundByHeaderName) {
  auto r = parse_sysvipc_shm(
      "size uid key nattch shmid cpid extra\n"
      "4096 1000 -7 2 42 77 whatever\n");
  ASSERT_TRUE(r) << r.error;
  ASSERT_EQ(r.value->size(), 1u);
  const SysvSegment& s = (*r.value)[0];
  EXPECT_EQ(s.size, 4096u);
  EXPECT_EQ(s.uid, 1000u);
  EXPECT_EQ(s.key, -7);
  EXPECT_EQ(s.nattch, 2u);
  EXPECT_EQ(s.shmid, 42u);
  EXPECT_EQ(s.cpid, 77u);
  EXPECT_FALSE(s.rss);
}

TEST(ParseSysvShm, HeaderOnlyMeansNoSegments) {
  auto r = parse_sysvipc_shm(kNewHeader);
  ASSERT_TRUE(r) << r.error;
  EXPECT_TRUE(r.value->empty());
}

TEST(ParseSysvShm, KeyExtremes) {
  std::string row =
      "-2147483648 1 600 1 1 1 1 1 1 1 1 0 0 0 0 0\n"
      "2147483647 2 600 2 1 1 1 1 1 1 1 0 0 0 0 0\n";
  auto r = parse_sysvipc_shm(kNewHeader + row);
  ASSERT_TRUE(r) << r.error;
  ASSERT_EQ(r.value->size(), 2u);
  EXPECT_EQ((*r.value)[0].key, -2147483648LL);
  EXPECT_EQ((*r.value)[1].key, 2147483647);
}

TEST(ParseSysvShm, BadInputGivesReasons) {
  EXPECT_EQ(parse_sysvipc_shm("").error, "malformed at line 1: empty file");

  auto truncated = parse_sysvipc_shm(
      std::string(kNewHeader) + "   5432001          0   600               4194304 12552 12552\n");
  EXPECT_FALSE(truncated);
  EXPECT_TRUE(starts_with(truncated.error, "malformed at line 2: expected 16 columns, got 6"))
      << truncated.error;

  auto garbage = parse_sysvipc_shm("garbage in\nthe file\n");
  EXPECT_FALSE(garbage);
  EXPECT_TRUE(starts_with(garbage.error, "malformed at line 1: header has no \"key\" column"))
      << garbage.error;

  auto nosize = parse_sysvipc_shm("key shmid perms cpid lpid nattch uid\n");
  EXPECT_FALSE(nosize);
  EXPECT_TRUE(contains(nosize.error, "\"size\"")) << nosize.error;

  auto negsize =
      parse_sysvipc_shm(std::string(kNewHeader) + "0 1 600 -4096 1 1 1 1 1 1 1 0 0 0 0 0\n");
  EXPECT_FALSE(negsize);
  EXPECT_EQ(negsize.error, "malformed at line 2: size is not an unsigned number: \"-4096\"");

  auto bigsize = parse_sysvipc_shm(std::string(kNewHeader) +
                                   "0 1 600 18446744073709551616 1 1 1 1 1 1 1 0 0 0 0 0\n");
  EXPECT_FALSE(bigsize);
  EXPECT_TRUE(contains(bigsize.error, "size is not an unsigned number")) << bigsize.error;

  auto bigkey = parse_sysvipc_shm(std::string(kNewHeader) +
                                  "9223372036854775808 1 600 1 1 1 1 1 1 1 1 0 0 0 0 0\n");
  EXPECT_FALSE(bigkey);
  EXPECT_TRUE(contains(bigkey.error, "key is not a number")) << bigkey.error;

  auto badrss = parse_sysvipc_shm(std::string(kNewHeader) + "0 1 600 1 1 1 1 1 1 1 1 0 0 0 x 0\n");
  EXPECT_FALSE(badrss);
  EXPECT_EQ(badrss.error, "malformed at line 2: rss is not an unsigned number: \"x\"");
}

// ---------------------------------------------------------------- read_sysv

TEST(ReadSysv, NewKernel) {
  auto r = read_sysv(proc("cgroup2-limited"));
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->shmmax, 18446744073692774399u);
  EXPECT_EQ(r.value->shmall, 18446744073692774399u);
  EXPECT_EQ(r.value->shmmni, 4096u);
  ASSERT_TRUE(r.value->segments);
  EXPECT_EQ(r.value->segments->size(), 3u);
  EXPECT_EQ(r.value->segments_bytes(), 4194304u + 67108864u + 1048576u);
}

TEST(ReadSysv, OldKernelSmallLimits) {
  auto r = read_sysv(proc("cgroup1-limited"));
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->shmmax, 33554432u);
  EXPECT_EQ(r.value->shmall, 2097152u);
  EXPECT_EQ(r.value->shmmni, 4096u);
  EXPECT_EQ(r.value->segments_bytes(), 33554432u + 524288u);
}

TEST(ReadSysv, NoSegments) {
  auto r = read_sysv(proc("cgroup2-unlimited"));
  ASSERT_TRUE(r) << r.error;
  ASSERT_TRUE(r.value->segments);
  EXPECT_TRUE(r.value->segments->empty());
  EXPECT_EQ(r.value->segments_bytes(), 0u);
}

TEST(ReadSysv, BrokenTreeListsEveryReason) {
  const std::string p = proc("broken");
  auto r = read_sysv(p);
  EXPECT_FALSE(r);
  EXPECT_TRUE(contains(r.error, "expected a number, got \"-1\" in " + p + "/sys/kernel/shmmax"))
      << r.error;
  EXPECT_TRUE(contains(r.error, "got \"18446744073709551616\" in " + p + "/sys/kernel/shmall"))
      << r.error;
  EXPECT_TRUE(contains(
      r.error, "malformed at line 1: expected a number, got \"\" in " + p + "/sys/kernel/shmmni"))
      << r.error;
  EXPECT_TRUE(contains(r.error, "malformed at line 2: expected 16 columns, got 6")) << r.error;
  EXPECT_TRUE(contains(r.error, p + "/sysvipc/shm")) << r.error;
}

TEST(ReadSysv, PartialIsNotAnError) {
  TempDir t;
  write_file(t.path() + "/sys/kernel/shmmni", "32768\n");
  auto r = read_sysv(t.path());
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->shmmni, 32768u);
  EXPECT_FALSE(r.value->shmmax);
  EXPECT_FALSE(r.value->shmall);
  EXPECT_FALSE(r.value->segments);  // unreadable, not "no segments"
  EXPECT_EQ(r.value->segments_bytes(), 0u);
}

TEST(ReadSysv, MissingDirectory) {
  auto r = read_sysv("/nonexistent-shmguard/proc");
  EXPECT_FALSE(r);
  EXPECT_EQ(r.error,
            "missing: /nonexistent-shmguard/proc/sys/kernel/shmmax; "
            "missing: /nonexistent-shmguard/proc/sys/kernel/shmall; "
            "missing: /nonexistent-shmguard/proc/sys/kernel/shmmni; "
            "missing: /nonexistent-shmguard/proc/sysvipc/shm");
}

TEST(ReadSysv, UnreadableFiles) {
  TempDir t;
  fs::copy(proc("cgroup2-limited"), t.path(), fs::copy_options::recursive);
  for (auto& e : fs::recursive_directory_iterator(t.path()))
    ::chmod(e.path().c_str(), e.is_directory() ? 0755 : 0);
  auto out = run_unprivileged([&] {
    auto r = read_sysv(t.path());
    return r ? std::string("ok") : r.error;
  });
  if (!out) GTEST_SKIP() << "running as root and cannot drop to uid 65534 to test file modes";
  EXPECT_EQ(*out, "permission denied: " + t.path() + "/sys/kernel/shmmax; permission denied: " +
                      t.path() + "/sys/kernel/shmall; permission denied: " + t.path() +
                      "/sys/kernel/shmmni; permission denied: " + t.path() + "/sysvipc/shm");
}

TEST(ReadSysv, SegmentsBytesSaturates) {
  Sysv s;
  s.segments = std::vector<SysvSegment>(3);
  (*s.segments)[0].size = UINT64_MAX - 5;
  (*s.segments)[1].size = 10;
  EXPECT_EQ(s.segments_bytes(), UINT64_MAX);
}

TEST(ReadSysv, ThisMachine) {
  auto r = read_sysv("/proc");
  ASSERT_TRUE(r) << r.error;
  EXPECT_TRUE(r.value->shmmni);
  EXPECT_TRUE(r.value->segments);
}

// ---------------------------------------------------------------- /dev/shm

TEST(ReadDevShm, MatchesStatvfs) {
  TempDir t;
  struct statvfs st;
  ASSERT_EQ(::statvfs(t.path().c_str(), &st), 0);
  auto r = read_devshm(t.path());
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->path, t.path());
  EXPECT_EQ(r.value->total, static_cast<std::uint64_t>(st.f_blocks) * st.f_frsize);
  EXPECT_LE(r.value->avail, r.value->total);
  EXPECT_LE(r.value->free, r.value->total);
  EXPECT_GT(r.value->total, 0u);
}

TEST(ReadDevShm, Errors) {
  auto missing = read_devshm("/nonexistent-shmguard/shm");
  EXPECT_FALSE(missing);
  EXPECT_EQ(missing.error, "missing: /nonexistent-shmguard/shm");

  TempDir t;
  write_file(t.path() + "/file", "x");
  auto notdir = read_devshm(t.path() + "/file/shm");
  EXPECT_FALSE(notdir);
  EXPECT_EQ(notdir.error, "missing: " + t.path() + "/file/shm");

  ::mkdir((t.path() + "/locked").c_str(), 0700);
  ::mkdir((t.path() + "/locked/shm").c_str(), 0700);
  ::chmod((t.path() + "/locked").c_str(), 0);
  auto out = run_unprivileged([&] {
    auto r = read_devshm(t.path() + "/locked/shm");
    return r ? std::string("ok") : r.error;
  });
  ::chmod((t.path() + "/locked").c_str(), 0700);
  if (!out) GTEST_SKIP() << "running as root and cannot drop to uid 65534 to test file modes";
  EXPECT_EQ(*out, "permission denied: " + t.path() + "/locked/shm");
}
