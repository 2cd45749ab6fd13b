// Unit tests: /proc/meminfo parsing and the overcommit reader, against fixture trees.
#include <gtest/gtest.h>
#include <grp.h>
#include <sys/stat.h>
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

constexpr std::uint64_t KiB = 1024;

}  // namespace

// ---------------------------------------------------------------- parse_meminfo

TEST(ParseMeminfo, RealShape) {
  auto text = read_file(proc("cgroup2-limited") + "/meminfo");
  ASSERT_TRUE(text) << text.error;
  auto r = parse_meminfo(*text.value);
  ASSERT_TRUE(r) << r.error;
  const auto& m = *r.value;
  EXPECT_EQ(m.size(), 55u);
  EXPECT_EQ(m.at("MemTotal"), 8012836 * KiB);
  EXPECT_EQ(m.at("Shmem"), 74324 * KiB);
  EXPECT_EQ(m.at("Active(anon)"), 812344 * KiB);
  EXPECT_EQ(m.at("VmallocTotal"), 34359738367 * KiB);
  EXPECT_EQ(m.at("HugePages_Total"), 0u);  // no unit: a count, taken as is
  EXPECT_EQ(m.at("Hugepagesize"), 2048 * KiB);
}

TEST(ParseMeminfo, UnitlessValuesAsIs) {
  auto r = parse_meminfo("HugePages_Total:     512\nHugePages_Free:      17\n");
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->at("HugePages_Total"), 512u);
  EXPECT_EQ(r.value->at("HugePages_Free"), 17u);
}

TEST(ParseMeminfo, LargestValues) {
  auto r = parse_meminfo("A: 18014398509481983 kB\nB: 18446744073709551615\n");
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->at("A"), 18014398509481983u * 1024u);
  EXPECT_EQ(r.value->at("B"), UINT64_MAX);
}

TEST(ParseMeminfo, BadInputGivesReasons) {
  EXPECT_EQ(parse_meminfo("").error, "malformed at line 1: empty file");
  EXPECT_EQ(parse_meminfo("\n \n").error, "malformed at line 1: empty file");

  auto garbage = parse_meminfo("MemTotal: 1 kB\nMemFree:        lots kB\n");
  EXPECT_FALSE(garbage);
  EXPECT_EQ(garbage.error,
            "malformed at line 2: value of \"MemFree\" is not an unsigned number: \"lots\"");

  auto negative = parse_meminfo("Committed_AS:   -4096 kB\n");
  EXPECT_FALSE(negative);
  EXPECT_TRUE(starts_with(negative.error, "malformed at line 1:")) << negative.error;
  EXPECT_TRUE(contains(negative.error, "\"-4096\"")) << negative.error;

  auto past64 = parse_meminfo("MemTotal: 18446744073709551616\n");
  EXPECT_FALSE(past64);
  EXPECT_TRUE(starts_with(past64.error, "malformed at line 1:")) << past64.error;

  auto overflow = parse_meminfo("MemTotal: 1 kB\n\nMemFree: 18014398509481984 kB\n");  // 2^54 kB
  EXPECT_FALSE(overflow);
  EXPECT_TRUE(starts_with(overflow.error, "malformed at line 3:")) << overflow.error;
  EXPECT_TRUE(contains(overflow.error, "overflows")) << overflow.error;

  auto truncated = parse_meminfo("MemTotal:       24684096 kB\nMemFree:");
  EXPECT_FALSE(truncated);
  EXPECT_TRUE(starts_with(truncated.error, "malformed at line 2: expected \"Key: value [kB]\""))
      << truncated.error;

  auto nocolon = parse_meminfo("MemTotal 24684096 kB\n");
  EXPECT_FALSE(nocolon);
  EXPECT_TRUE(starts_with(nocolon.error, "malformed at line 1:")) << nocolon.error;

  auto unit = parse_meminfo("MemTotal: 24 MB\n");
  EXPECT_FALSE(unit);
  EXPECT_TRUE(starts_with(unit.error, "malformed at line 1:")) << unit.error;

  auto extra = parse_meminfo("MemTotal: 24 kB 7\n");
  EXPECT_FALSE(extra);

  auto nokey = parse_meminfo(": 24 kB\n");
  EXPECT_FALSE(nokey);

  auto binary = parse_meminfo(std::string("MemTotal:\0 1 kB\n", 16));
  EXPECT_FALSE(binary);
  EXPECT_TRUE(contains(binary.error, "\\x00")) << binary.error;
}

// ---------------------------------------------------------------- read_overcommit

TEST(ReadOvercommit, StrictModeNearTheLimit) {
  auto r = read_overcommit(proc("strict-overcommit"));
  ASSERT_TRUE(r) << r.error;
  const Overcommit& o = *r.value;
  EXPECT_EQ(o.mode, 2);
  EXPECT_EQ(o.commit_limit, 8200718 * KiB);
  EXPECT_EQ(o.committed_as, 8153112 * KiB);
  EXPECT_EQ(*o.commit_limit - *o.committed_as, 47606 * KiB);
  EXPECT_EQ(o.shmem, 270932 * KiB);
  EXPECT_EQ(o.mem_available, 712316 * KiB);
  EXPECT_EQ(o.mem_total, 8012836 * KiB);
}

TEST(ReadOvercommit, HeuristicAndAlwaysModes) {
  auto h = read_overcommit(proc("cgroup2-limited"));
  ASSERT_TRUE(h) << h.error;
  EXPECT_EQ(h.value->mode, 0);
  EXPECT_EQ(h.value->commit_limit, 4006416 * KiB);
  EXPECT_EQ(h.value->committed_as, 2912344 * KiB);

  auto a = read_overcommit(proc("cgroup1-unlimited") + "/");
  ASSERT_TRUE(a) << a.error;
  EXPECT_EQ(a.value->mode, 1);
  EXPECT_EQ(a.value->mem_total, 24684096 * KiB);
}

TEST(ReadOvercommit, OldKernelWithoutMemAvailable) {
  TempDir t;
  write_file(t.path() + "/sys/vm/overcommit_memory", "2\n");
  write_file(
      t.path() + "/meminfo",
      "MemTotal:        1015704 kB\nMemFree:          101444 kB\nShmem:              6724 kB\n"
      "CommitLimit:      507852 kB\nCommitted_AS:     499216 kB\n");
  auto r = read_overcommit(t.path());
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->mode, 2);
  EXPECT_FALSE(r.value->mem_available);  // unavailable, not zero
  EXPECT_EQ(r.value->commit_limit, 507852 * KiB);
  EXPECT_EQ(r.value->shmem, 6724 * KiB);
}

TEST(ReadOvercommit, BrokenTreeGivesReasons) {
  auto r = read_overcommit(proc("broken"));
  EXPECT_FALSE(r);
  EXPECT_EQ(r.error, "malformed at line 1: expected 0, 1 or 2, got \"seven\" in " + proc("broken") +
                         "/sys/vm/overcommit_memory");

  TempDir t;
  write_file(t.path() + "/sys/vm/overcommit_memory", "0\n");
  fs::copy_file(proc("broken") + "/meminfo", t.path() + "/meminfo");
  auto m = read_overcommit(t.path());
  EXPECT_FALSE(m);
  EXPECT_EQ(m.error,
            "malformed at line 2: value of \"MemFree\" is not an unsigned number: \"lots\" in " +
                t.path() + "/meminfo");

  write_file(t.path() + "/sys/vm/overcommit_memory", "3\n");
  EXPECT_TRUE(
      starts_with(read_overcommit(t.path()).error, "malformed at line 1: expected 0, 1 or 2"));
  write_file(t.path() + "/sys/vm/overcommit_memory", "");
  EXPECT_TRUE(
      starts_with(read_overcommit(t.path()).error, "malformed at line 1: expected 0, 1 or 2"));
  write_file(t.path() + "/sys/vm/overcommit_memory", "-1\n");
  EXPECT_TRUE(
      starts_with(read_overcommit(t.path()).error, "malformed at line 1: expected 0, 1 or 2"));
  write_file(t.path() + "/sys/vm/overcommit_memory", "18446744073709551617\n");
  EXPECT_TRUE(
      starts_with(read_overcommit(t.path()).error, "malformed at line 1: expected 0, 1 or 2"));
}

TEST(ReadOvercommit, MissingFiles) {
  auto r = read_overcommit("/nonexistent-shmguard/proc");
  EXPECT_FALSE(r);
  EXPECT_EQ(r.error, "missing: /nonexistent-shmguard/proc/sys/vm/overcommit_memory");

  TempDir t;
  write_file(t.path() + "/sys/vm/overcommit_memory", "0\n");
  auto m = read_overcommit(t.path());
  EXPECT_FALSE(m);
  EXPECT_EQ(m.error, "missing: " + t.path() + "/meminfo");
}

TEST(ReadOvercommit, UnreadableMeminfo) {
  TempDir t;
  write_file(t.path() + "/sys/vm/overcommit_memory", "2\n");
  ::chmod((t.path() + "/sys").c_str(), 0755);
  ::chmod((t.path() + "/sys/vm").c_str(), 0755);
  fs::copy_file(proc("strict-overcommit") + "/meminfo", t.path() + "/meminfo");
  ASSERT_EQ(::chmod((t.path() + "/meminfo").c_str(), 0), 0);
  auto out = run_unprivileged([&] {
    auto r = read_overcommit(t.path());
    return r ? std::string("ok") : r.error;
  });
  if (!out) GTEST_SKIP() << "running as root and cannot drop to uid 65534 to test file modes";
  EXPECT_EQ(*out, "permission denied: " + t.path() + "/meminfo");
}

TEST(ReadOvercommit, ThisMachine) {
  auto r = read_overcommit("/proc");
  ASSERT_TRUE(r) << r.error;
  EXPECT_GE(r.value->mode, 0);
  EXPECT_LE(r.value->mode, 2);
  ASSERT_TRUE(r.value->mem_total);
  EXPECT_GT(*r.value->mem_total, 0u);
  EXPECT_EQ(*r.value->mem_total % 1024, 0u);
}
