// Unit tests: the cgroup memory-controller parsers and reader, against fixture trees.
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

std::string sys(const std::string& s) {
  return tree(s) + "/sys";
}

// A writable copy of a fixture scenario.
std::string copy_tree(const TempDir& t, const std::string& scenario) {
  fs::copy(tree(scenario), t.path(), fs::copy_options::recursive);
  return t.path();
}

constexpr std::uint64_t MiB = 1024 * 1024;

}  // namespace

// ---------------------------------------------------------------- /proc/self/cgroup

TEST(ParseProcCgroup, V2Only) {
  auto r = parse_proc_cgroup("0::/system.slice/apache2.service\n");
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->v2_path, "/system.slice/apache2.service");
  EXPECT_FALSE(r.value->v1_memory_path);
}

TEST(ParseProcCgroup, V1CombinedControllerList) {
  auto r = parse_proc_cgroup("5:cpuset:/\n4:cpu,memory:/x/y\n1:name=systemd:/user.slice\n");
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->v1_memory_path, "/x/y");
  EXPECT_FALSE(r.value->v2_path);
}

TEST(ParseProcCgroup, HybridFixture) {
  auto text = read_file(proc("cgroup1-limited") + "/self/cgroup");
  ASSERT_TRUE(text) << text.error;
  auto r = parse_proc_cgroup(*text.value);
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->v1_memory_path, "/system.slice/apache2.service");
  EXPECT_EQ(r.value->v2_path, "/system.slice/apache2.service");
}

TEST(ParseProcCgroup, PathMayContainColons) {
  auto r = parse_proc_cgroup("0::/a:b/c\n");
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->v2_path, "/a:b/c");
}

TEST(ParseProcCgroup, BadInputGivesReasons) {
  auto empty = parse_proc_cgroup("");
  EXPECT_FALSE(empty);
  EXPECT_EQ(empty.error, "malformed at line 1: empty file");

  auto garbage = parse_proc_cgroup("0::/\nnot a cgroup line\n");
  EXPECT_FALSE(garbage);
  EXPECT_TRUE(starts_with(garbage.error, "malformed at line 2: expected ID:CONTROLLERS:PATH"))
      << garbage.error;

  auto truncated = parse_proc_cgroup("4:memory");
  EXPECT_FALSE(truncated);
  EXPECT_TRUE(starts_with(truncated.error, "malformed at line 1:")) << truncated.error;

  auto badid = parse_proc_cgroup("-4:memory:/x\n");
  EXPECT_FALSE(badid);
  EXPECT_TRUE(contains(badid.error, "hierarchy id is not a number")) << badid.error;

  auto relative = parse_proc_cgroup("4:memory:x/y\n");
  EXPECT_FALSE(relative);
  EXPECT_TRUE(contains(relative.error, "not absolute")) << relative.error;
}

// ---------------------------------------------------------------- mountinfo

TEST(ParseMountinfo, HybridHost) {
  auto text = read_file(proc("cgroup1-limited") + "/self/mountinfo");
  ASSERT_TRUE(text) << text.error;
  auto r = parse_mountinfo(*text.value);
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->v2_mount, "/sys/fs/cgroup/unified");
  EXPECT_EQ(r.value->v2_root, "/");
  EXPECT_EQ(r.value->v1_memory_mount, "/sys/fs/cgroup/memory");
  EXPECT_EQ(r.value->v1_memory_root, "/");
}

TEST(ParseMountinfo, DockerMountRoot) {
  auto text = read_file(proc("cgroup1-unlimited") + "/self/mountinfo");
  ASSERT_TRUE(text) << text.error;
  auto r = parse_mountinfo(*text.value);
  ASSERT_TRUE(r) << r.error;
  EXPECT_FALSE(r.value->v2_mount);
  EXPECT_EQ(r.value->v1_memory_mount, "/sys/fs/cgroup/memory");
  EXPECT_EQ(r.value->v1_memory_root,
            "/docker/7f3e1c0b5a9d4e2f8c6b1a0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c");
}

TEST(ParseMountinfo, OctalEscapes) {
  const char* text =
      "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
      "41 31 0:38 /my\\040group /sys/fs/cgroup/v2\\040here\\011x rw shared:9 - cgroup2 cgroup2 rw\n"
      "35 31 0:32 /a\\134b /mnt/mem\\040cg rw,relatime master:3 - cgroup cgroup rw,cpu,memory\n"
      "36 31 0:33 / /mnt/odd\\9x rw - tmpfs tmpfs rw\n";
  auto r = parse_mountinfo(text);
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->v2_mount, "/sys/fs/cgroup/v2 here\tx");
  EXPECT_EQ(r.value->v2_root, "/my group");
  EXPECT_EQ(r.value->v1_memory_mount, "/mnt/mem cg");
  EXPECT_EQ(r.value->v1_memory_root, "/a\\b");
}

TEST(ParseMountinfo, FirstMountWinsAndNameHierarchiesIgnored) {
  const char* text =
      "40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n"
      "41 31 0:38 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
      "42 31 0:38 / /mnt/again rw - cgroup cgroup rw,memory\n"
      "43 31 0:39 / /sys/fs/cgroup/memorydummy rw - cgroup cgroup rw,memoryx\n";
  auto r = parse_mountinfo(text);
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->v1_memory_mount, "/sys/fs/cgroup/memory");
  EXPECT_FALSE(r.value->v2_mount);
}

TEST(ParseMountinfo, NoCgroupMountsIsNotAnError) {
  auto r = parse_mountinfo("22 27 0:21 / /proc rw,relatime - proc proc rw\n");
  ASSERT_TRUE(r) << r.error;
  EXPECT_FALSE(r.value->v2_mount);
  EXPECT_FALSE(r.value->v1_memory_mount);
}

TEST(ParseMountinfo, BadInputGivesReasons) {
  auto empty = parse_mountinfo("\n\n");
  EXPECT_FALSE(empty);
  EXPECT_EQ(empty.error, "malformed at line 1: empty file");

  auto truncated =
      parse_mountinfo("22 27 0:21 / /proc rw,relatime - proc proc rw\n23 27 0:22 / /sys");
  EXPECT_FALSE(truncated);
  EXPECT_TRUE(starts_with(truncated.error, "malformed at line 2:")) << truncated.error;

  auto nosep = parse_mountinfo("22 27 0:21 / /proc rw,relatime shared:1 proc proc rw\n");
  EXPECT_FALSE(nosep);
  EXPECT_TRUE(starts_with(nosep.error, "malformed at line 1:")) << nosep.error;

  auto garbage = parse_mountinfo("x y 0:21 / /proc rw - proc proc rw\n");
  EXPECT_FALSE(garbage);
  EXPECT_TRUE(contains(garbage.error, "bad mount fields")) << garbage.error;
}

// ---------------------------------------------------------------- flat keyed, limits

TEST(ParseFlatKeyed, EventsByName) {
  auto r = parse_flat_keyed("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n");
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->size(), 6u);
  EXPECT_EQ(r.value->at("max"), 12u);
  EXPECT_EQ(r.value->at("oom_kill"), 1u);
}

TEST(ParseFlatKeyed, MaxU64Accepted) {
  auto r = parse_flat_keyed("total_rss 18446744073709551615\n");
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->at("total_rss"), UINT64_MAX);
}

TEST(ParseFlatKeyed, BadInputGivesReasons) {
  EXPECT_EQ(parse_flat_keyed("").error, "malformed at line 1: empty file");

  auto negative = parse_flat_keyed("anon 5\nshmem -5\n");
  EXPECT_FALSE(negative);
  EXPECT_TRUE(starts_with(negative.error, "malformed at line 2:")) << negative.error;
  EXPECT_TRUE(contains(negative.error, "\"-5\"")) << negative.error;

  auto huge = parse_flat_keyed("max 18446744073709551616\n");
  EXPECT_FALSE(huge);
  EXPECT_TRUE(contains(huge.error, "not an unsigned 64-bit number")) << huge.error;

  auto truncated = parse_flat_keyed("anon 5\nfile");
  EXPECT_FALSE(truncated);
  EXPECT_TRUE(starts_with(truncated.error, "malformed at line 2: expected \"KEY VALUE\""))
      << truncated.error;

  auto extra = parse_flat_keyed("anon 5 6\n");
  EXPECT_FALSE(extra);
  EXPECT_TRUE(starts_with(extra.error, "malformed at line 1:")) << extra.error;
}

TEST(ParseCgroupLimit, ValuesAndUnlimited) {
  auto max = parse_cgroup_limit("max\n");
  ASSERT_TRUE(max) << max.error;
  EXPECT_FALSE(*max.value);

  auto bytes = parse_cgroup_limit("536870912\n");
  ASSERT_TRUE(bytes) << bytes.error;
  EXPECT_EQ(*bytes.value, 536870912u);

  auto v1unl = parse_cgroup_limit("9223372036854771712\n");
  ASSERT_TRUE(v1unl) << v1unl.error;
  EXPECT_FALSE(*v1unl.value);

  auto at62 = parse_cgroup_limit("4611686018427387904");  // 2^62
  ASSERT_TRUE(at62);
  EXPECT_FALSE(*at62.value);

  auto below62 = parse_cgroup_limit("4611686018427387903");
  ASSERT_TRUE(below62);
  EXPECT_EQ(*below62.value, 4611686018427387903u);

  auto zero = parse_cgroup_limit("0\n");
  ASSERT_TRUE(zero);
  EXPECT_EQ(*zero.value, 0u);
}

TEST(ParseCgroupLimit, BadInputGivesReasons) {
  EXPECT_EQ(parse_cgroup_limit("").error, "malformed at line 1: empty file");
  EXPECT_EQ(parse_cgroup_limit(" \n").error, "malformed at line 1: empty file");
  EXPECT_EQ(parse_cgroup_limit("-1\n").error,
            "malformed at line 1: expected \"max\" or a number of bytes, got \"-1\"");
  EXPECT_TRUE(starts_with(parse_cgroup_limit("18446744073709551616").error, "malformed at line 1"));
  EXPECT_TRUE(starts_with(parse_cgroup_limit("unlimited").error, "malformed at line 1"));
  EXPECT_TRUE(starts_with(parse_cgroup_limit("12 34").error, "malformed at line 1"));
  EXPECT_TRUE(starts_with(parse_cgroup_limit("1\n2\n").error, "malformed at line 2"));
}

// ---------------------------------------------------------------- memory.pressure (PSI)

// The kernel's own text: Documentation/accounting/psi.rst ("for memory and IO"), as printed by
// kernel/sched/psi.c psi_show ("%s avg10=%lu.%02lu avg60=%lu.%02lu avg300=%lu.%02lu total=%llu").
TEST(ParsePsi, KernelDocumentationText) {
  auto r = parse_psi(
      "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
      "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
  ASSERT_TRUE(r) << r.error;
  ASSERT_TRUE(r.value->some);
  ASSERT_TRUE(r.value->full);
  EXPECT_EQ(r.value->some->avg10, 0u);
  EXPECT_EQ(r.value->full->total_us, 0u);
}

// A loaded machine's figures in the same format (systemd's psi-util.h quotes this pair as the
// "upstream 4.20+ format").
TEST(ParsePsi, NonZeroFigures) {
  auto r = parse_psi(
      "some avg10=0.22 avg60=0.17 avg300=1.11 total=58761459\n"
      "full avg10=0.23 avg60=0.16 avg300=1.08 total=58464525\n");
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->some->avg10, 22u);
  EXPECT_EQ(r.value->some->avg60, 17u);
  EXPECT_EQ(r.value->some->avg300, 111u);
  EXPECT_EQ(r.value->some->total_us, 58761459u);
  EXPECT_EQ(r.value->full->avg10, 23u);
  EXPECT_EQ(r.value->full->avg300, 108u);
  EXPECT_EQ(r.value->full->total_us, 58464525u);
  EXPECT_EQ(psi_percent(r.value->some->avg300), "1.11");
  EXPECT_EQ(psi_percent(5), "0.05");
  EXPECT_EQ(psi_percent(10099), "100.99");
}

TEST(ParsePsi, EdgesTheKernelCanPrint) {
  // A "some" line alone (cpu.pressure's format before 5.13): no full figures.
  auto some = parse_psi("some avg10=1.53 avg60=1.87 avg300=1.73 total=1088168194\n");
  ASSERT_TRUE(some) << some.error;
  EXPECT_FALSE(some.value->full);
  // The top of LOAD_INT.LOAD_FRAC, the top of total, any order, no final newline, CRLF, a key a
  // future kernel may add.
  auto top = parse_psi(
      "full total=18446744073709551615 avg300=100.99 avg60=100.00 avg10=99.99 stall=7\r\n"
      "some avg10=100.99 avg60=0.01 avg300=0.10 total=1");
  ASSERT_TRUE(top) << top.error;
  EXPECT_EQ(top.value->full->avg10, 9999u);
  EXPECT_EQ(top.value->full->avg60, 10000u);
  EXPECT_EQ(top.value->full->avg300, 10099u);
  EXPECT_EQ(top.value->full->total_us, UINT64_MAX);
  EXPECT_EQ(top.value->some->avg10, 10099u);
  EXPECT_EQ(top.value->some->avg60, 1u);
}

TEST(ParsePsi, BadInputGivesReasons) {
  const std::string ok_tail = " avg60=0.00 avg300=0.00 total=0";
  EXPECT_EQ(parse_psi("").error, "malformed at line 1: empty file");
  EXPECT_EQ(parse_psi("\n\n").error, "malformed at line 1: empty file");
  struct Case {
    std::string text, starts;
  };
  for (const Case& c : std::vector<Case>{
           {"full avg10=0.00" + ok_tail + "\n", "malformed at line 1: no \"some\" line"},
           {"some avg10=0.00" + ok_tail + "\nsome avg10=0.00" + ok_tail,
            "malformed at line 2: a second \"some\" line"},
           {"partial avg10=0.00" + ok_tail, "malformed at line 1: expected a \"some\" or"},
           {"some avg60=0.00 avg300=0.00 total=0", "malformed at line 1: no avg10= in"},
           {"some avg10=0.00 avg60=0.00 avg300=0.00", "malformed at line 1: no total= in"},
           {"some avg10=0.00 avg10=0.00" + ok_tail, "malformed at line 1: \"avg10\" given twice"},
           {"some avg10" + ok_tail, "malformed at line 1: expected KEY=VALUE"},
           {"some =1" + ok_tail, "malformed at line 1: expected KEY=VALUE"},
           {"some avg10=1" + ok_tail,
            "malformed at line 1: value of \"avg10\" is not a percentage"},
           {"some avg10=1.5" + ok_tail, "malformed at line 1: value of \"avg10\""},
           {"some avg10=1.500" + ok_tail, "malformed at line 1: value of \"avg10\""},
           {"some avg10=.50" + ok_tail, "malformed at line 1: value of \"avg10\""},
           {"some avg10=-1.00" + ok_tail, "malformed at line 1: value of \"avg10\""},
           {"some avg10=+1.00" + ok_tail, "malformed at line 1: value of \"avg10\""},
           {"some avg10=101.00" + ok_tail, "malformed at line 1: value of \"avg10\""},
           {"some avg10=1000.00" + ok_tail, "malformed at line 1: value of \"avg10\""},
           {"some avg10=1,00" + ok_tail, "malformed at line 1: value of \"avg10\""},
           {"some avg10=a.bc" + ok_tail, "malformed at line 1: value of \"avg10\""},
           {"some avg10=0.00 avg60=0.00 avg300=0.00 total=18446744073709551616",
            "malformed at line 1: value of \"total\" is not an unsigned 64-bit number"},
           {"some avg10=0.00 avg60=0.00 avg300=0.00 total=-1",
            "malformed at line 1: value of \"total\""},
           {"some avg10=0.00 avg60=0.00 avg300=0.00 total=",
            "malformed at line 1: value of \"total\""},
           {std::string("some avg10=0.00\0x", 17) + ok_tail,
            "malformed at line 1: value of \"avg10\""},
       }) {
    auto r = parse_psi(c.text);
    EXPECT_FALSE(r) << c.text;
    EXPECT_TRUE(starts_with(r.error, c.starts)) << c.text << " -> " << r.error;
  }
  // Untrusted text is quoted, bounded and printable in the reason.
  auto r = parse_psi("\x01\x02" + std::string(100, 'x'));
  EXPECT_FALSE(r);
  EXPECT_TRUE(contains(r.error, "\\x01\\x02")) << r.error;
  EXPECT_LT(r.error.size(), 160u) << r.error;
}

// ---------------------------------------------------------------- read_cgroup on fixture trees

TEST(ReadCgroup, V2LimitedWithBindingParent) {
  const std::string s = "cgroup2-limited";
  auto r = read_cgroup(proc(s), sys(s), {});
  ASSERT_TRUE(r) << r.error;
  const CgroupMemory& m = *r.value;
  EXPECT_EQ(m.version, 2);
  EXPECT_EQ(m.dir, sys(s) + "/fs/cgroup/system.slice/apache2.service");
  EXPECT_EQ(m.limit, 512 * MiB);
  EXPECT_EQ(m.usage, 144 * MiB);
  EXPECT_EQ(m.shmem, 64 * MiB);
  EXPECT_EQ(m.file, 100 * MiB);
  EXPECT_EQ(m.anon, 40 * MiB);
  EXPECT_EQ(m.events_max, 12u);
  EXPECT_EQ(m.events_oom, 1u);
  EXPECT_EQ(m.events_oom_kill, 1u);
  EXPECT_FALSE(m.failcnt);
  ASSERT_EQ(m.levels.size(), 3u);
  EXPECT_EQ(m.levels[0].dir, m.dir);
  EXPECT_EQ(m.levels[0].limit, 512 * MiB);
  EXPECT_EQ(m.levels[1].dir, sys(s) + "/fs/cgroup/system.slice");
  EXPECT_EQ(m.levels[1].limit, 256 * MiB);  // the parent's limit is the one that binds
  EXPECT_EQ(m.levels[1].usage, 192 * MiB);
  EXPECT_EQ(m.levels[2].dir, sys(s) + "/fs/cgroup");
  EXPECT_FALSE(m.levels[2].limit);  // the root cgroup has no memory.max
  EXPECT_FALSE(m.levels[2].usage);
}

TEST(ReadCgroup, TrailingSlashesInRoots) {
  const std::string s = "cgroup2-limited";
  auto r = read_cgroup(proc(s) + "/", sys(s) + "//", {});
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->dir, sys(s) + "/fs/cgroup/system.slice/apache2.service");
}

TEST(ReadCgroup, V2Unlimited) {
  const std::string s = "cgroup2-unlimited";
  auto r = read_cgroup(proc(s), sys(s), {});
  ASSERT_TRUE(r) << r.error;
  const CgroupMemory& m = *r.value;
  EXPECT_EQ(m.version, 2);
  EXPECT_EQ(m.dir, sys(s) + "/fs/cgroup/user.slice/user-1000.slice/session-3.scope");
  EXPECT_FALSE(m.limit);
  EXPECT_EQ(m.usage, 48 * MiB);
  EXPECT_EQ(m.shmem, 2 * MiB);
  EXPECT_EQ(m.events_max, 0u);
  ASSERT_EQ(m.levels.size(), 4u);
  for (const auto& lv : m.levels) EXPECT_FALSE(lv.limit) << lv.dir;
  EXPECT_EQ(m.levels[1].usage, 60 * MiB);
  EXPECT_EQ(m.levels[2].dir, sys(s) + "/fs/cgroup/user.slice");
}

TEST(ReadCgroup, V1LimitedOnHybridHost) {
  const std::string s = "cgroup1-limited";
  auto r = read_cgroup(proc(s), sys(s), {});
  ASSERT_TRUE(r) << r.error;
  const CgroupMemory& m = *r.value;
  EXPECT_EQ(m.version, 1);  // the unified hierarchy has no memory controller
  EXPECT_EQ(m.dir, sys(s) + "/fs/cgroup/memory/system.slice/apache2.service");
  EXPECT_EQ(m.limit, 1024 * MiB);
  EXPECT_EQ(m.usage, 1060110336u);
  EXPECT_EQ(m.failcnt, 17u);
  EXPECT_EQ(m.shmem, 128 * MiB);  // total_shmem, not shmem (32 MiB)
  EXPECT_EQ(m.file, 260 * MiB);   // total_cache
  EXPECT_EQ(m.anon, 780140544u);  // total_rss
  EXPECT_FALSE(m.events_max);
  EXPECT_FALSE(m.events_oom_kill);
  ASSERT_EQ(m.levels.size(), 3u);
  EXPECT_EQ(m.levels[1].dir, sys(s) + "/fs/cgroup/memory/system.slice");
  EXPECT_FALSE(m.levels[1].limit);
  EXPECT_EQ(m.levels[1].usage, 1302110208u);
  EXPECT_EQ(m.levels[2].dir, sys(s) + "/fs/cgroup/memory");
  EXPECT_FALSE(m.levels[2].limit);
  EXPECT_EQ(m.levels[2].usage, 4019847168u);
}

TEST(ReadCgroup, V1UnlimitedInDockerMapsMountRoot) {
  const std::string s = "cgroup1-unlimited";
  auto r = read_cgroup(proc(s), sys(s), {});
  ASSERT_TRUE(r) << r.error;
  const CgroupMemory& m = *r.value;
  EXPECT_EQ(m.version, 1);
  EXPECT_EQ(m.dir, sys(s) + "/fs/cgroup/memory");
  EXPECT_FALSE(m.limit);
  EXPECT_EQ(m.usage, 70 * MiB);
  EXPECT_EQ(m.shmem, 4 * MiB);
  EXPECT_EQ(m.failcnt, 0u);
  ASSERT_EQ(m.levels.size(), 1u);
  EXPECT_FALSE(m.levels[0].limit);
}

TEST(ReadCgroup, StrictOvercommitTreeHasNoCgroupLimit) {
  const std::string s = "strict-overcommit";
  auto r = read_cgroup(proc(s), sys(s), {});
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->version, 2);
  EXPECT_FALSE(r.value->limit);
  EXPECT_EQ(r.value->usage, 2048 * MiB);
  EXPECT_EQ(r.value->shmem, 256 * MiB);
}

TEST(ReadCgroup, ModeOff) {
  CgroupOptions o;
  o.mode = CgroupOptions::Mode::Off;
  auto r = read_cgroup(proc("cgroup2-limited"), sys("cgroup2-limited"), o);
  EXPECT_FALSE(r);
  EXPECT_EQ(r.error, "off");
}

TEST(ReadCgroup, ModeDirV2) {
  CgroupOptions o;
  o.mode = CgroupOptions::Mode::Dir;
  o.dir = sys("cgroup2-limited") + "/fs/cgroup/system.slice/apache2.service";
  auto r = read_cgroup("/nonexistent-proc", "/nonexistent-sys", o);
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->version, 2);
  EXPECT_EQ(r.value->dir, o.dir);
  EXPECT_EQ(r.value->limit, 512 * MiB);
  EXPECT_EQ(r.value->usage, 144 * MiB);
  ASSERT_EQ(r.value->levels.size(), 2u);  // stops below the root, which has no memory.max
  EXPECT_EQ(r.value->levels[1].limit, 256 * MiB);
}

TEST(ReadCgroup, ModeDirV1) {
  CgroupOptions o;
  o.mode = CgroupOptions::Mode::Dir;
  o.dir = sys("cgroup1-limited") + "/fs/cgroup/memory/system.slice/apache2.service/";
  auto r = read_cgroup("/proc", "/sys", o);
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->version, 1);
  EXPECT_EQ(r.value->dir,
            sys("cgroup1-limited") + "/fs/cgroup/memory/system.slice/apache2.service");
  EXPECT_EQ(r.value->limit, 1024 * MiB);
  EXPECT_EQ(r.value->failcnt, 17u);
  ASSERT_EQ(r.value->levels.size(), 3u);
  EXPECT_EQ(r.value->levels[2].usage, 4019847168u);
}

TEST(ReadCgroup, ModeDirErrors) {
  CgroupOptions o;
  o.mode = CgroupOptions::Mode::Dir;
  o.dir = tree("cgroup2-limited") + "/no/such/dir";
  auto missing = read_cgroup("/proc", "/sys", o);
  EXPECT_FALSE(missing);
  EXPECT_EQ(missing.error, "missing: " + o.dir);

  o.dir = sys("cgroup2-limited") + "/fs/cgroup";  // the v2 root: no memory.max
  auto root = read_cgroup("/proc", "/sys", o);
  EXPECT_FALSE(root);
  EXPECT_TRUE(starts_with(root.error, "missing: " + o.dir + "/memory.max")) << root.error;

  o.dir = "";
  EXPECT_FALSE(read_cgroup("/proc", "/sys", o));
}

TEST(ReadCgroup, BrokenTreeGivesReasons) {
  const std::string s = "broken";
  auto autom = read_cgroup(proc(s), sys(s), {});
  EXPECT_FALSE(autom);
  EXPECT_TRUE(starts_with(autom.error, "malformed at line 1:")) << autom.error;
  EXPECT_TRUE(contains(autom.error, proc(s) + "/self/cgroup")) << autom.error;

  CgroupOptions o;
  o.mode = CgroupOptions::Mode::Dir;
  o.dir = sys(s) + "/fs/cgroup/system.slice";
  auto v2 = read_cgroup(proc(s), sys(s), o);
  EXPECT_FALSE(v2);
  EXPECT_EQ(v2.error, "malformed at line 1: expected a number, got \"12abc\" in " + o.dir +
                          "/memory.current");

  o.dir = sys(s) + "/fs/cgroup/memory";
  auto v1 = read_cgroup(proc(s), sys(s), o);
  EXPECT_FALSE(v1);
  EXPECT_EQ(v1.error, "malformed at line 1: empty file in " + o.dir + "/memory.usage_in_bytes");
}

TEST(ReadCgroup, MissingDirectories) {
  auto r = read_cgroup("/nonexistent-shmguard/proc", "/nonexistent-shmguard/sys", {});
  EXPECT_FALSE(r);
  EXPECT_EQ(r.error, "missing: /nonexistent-shmguard/proc/self/cgroup");

  // /proc/self/cgroup readable, but no cgroup filesystem anywhere.
  TempDir t;
  write_file(t.path() + "/proc/self/cgroup", "0::/a\n");
  auto none = read_cgroup(t.path() + "/proc", t.path() + "/sys", {});
  EXPECT_FALSE(none);
  EXPECT_TRUE(starts_with(none.error, "missing: no memory cgroup found")) << none.error;
}

TEST(ReadCgroup, NoMemoryLineInProcCgroup) {
  TempDir t;
  write_file(t.path() + "/proc/self/cgroup", "1:name=systemd:/\n2:cpu:/\n");
  auto r = read_cgroup(t.path() + "/proc", t.path() + "/sys", {});
  EXPECT_FALSE(r);
  EXPECT_TRUE(starts_with(r.error, "missing: no memory cgroup")) << r.error;
}

TEST(ReadCgroup, FallsBackToSysfsWithoutMountinfo) {
  TempDir t;
  const std::string root = copy_tree(t, "cgroup2-limited");
  fs::remove(root + "/proc/self/mountinfo");
  auto r = read_cgroup(root + "/proc", root + "/sys", {});
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->dir, root + "/sys/fs/cgroup/system.slice/apache2.service");
  EXPECT_EQ(r.value->limit, 512 * MiB);

  write_file(root + "/proc/self/mountinfo", "garbage\n");  // unhelpful mountinfo: same fallback
  auto g = read_cgroup(root + "/proc", root + "/sys", {});
  ASSERT_TRUE(g) << g.error;
  EXPECT_EQ(g.value->limit, 512 * MiB);
}

TEST(ReadCgroup, FallsBackToUnifiedAndV1Memory) {
  TempDir t;
  const std::string p = t.path() + "/proc", s = t.path() + "/sys";
  write_file(p + "/self/cgroup", "4:memory:/m\n0::/a\n");
  write_file(s + "/fs/cgroup/unified/cgroup.controllers", "memory\n");
  write_file(s + "/fs/cgroup/unified/a/memory.max", "1048576\n");
  write_file(s + "/fs/cgroup/unified/a/memory.current", "4096\n");
  write_file(s + "/fs/cgroup/memory/m/memory.limit_in_bytes", "2097152\n");
  write_file(s + "/fs/cgroup/memory/m/memory.usage_in_bytes", "8192\n");
  auto r = read_cgroup(p, s, {});
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->version, 2);
  EXPECT_EQ(r.value->dir, s + "/fs/cgroup/unified/a");
  EXPECT_EQ(r.value->limit, 1 * MiB);
  EXPECT_EQ(r.value->usage, 4096u);
  EXPECT_FALSE(r.value->shmem);  // no memory.stat: left empty, not zero
  EXPECT_FALSE(r.value->events_max);

  fs::remove(s + "/fs/cgroup/unified/a/memory.max");
  auto v1 = read_cgroup(p, s, {});
  ASSERT_TRUE(v1) << v1.error;
  EXPECT_EQ(v1.value->version, 1);
  EXPECT_EQ(v1.value->dir, s + "/fs/cgroup/memory/m");
  EXPECT_EQ(v1.value->limit, 2 * MiB);
  EXPECT_EQ(v1.value->usage, 8192u);
  EXPECT_FALSE(v1.value->failcnt);
}

TEST(ReadCgroup, V2LeafWithoutMemoryControllerUsesNearestAncestor) {
  TempDir t;
  const std::string p = t.path() + "/proc", s = t.path() + "/sys";
  write_file(p + "/self/cgroup", "0::/a/b/c\n");
  write_file(p + "/self/mountinfo",
             "33 22 0:28 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n");
  write_file(s + "/fs/cgroup/cgroup.controllers", "memory\n");
  write_file(s + "/fs/cgroup/a/memory.max", "8388608\n");
  write_file(s + "/fs/cgroup/a/memory.current", "65536\n");
  write_file(s + "/fs/cgroup/a/b/c/cgroup.procs", "1\n");
  auto r = read_cgroup(p, s, {});
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->dir, s + "/fs/cgroup/a");
  EXPECT_EQ(r.value->limit, 8 * MiB);
  ASSERT_EQ(r.value->levels.size(), 2u);
  EXPECT_EQ(r.value->levels[1].dir, s + "/fs/cgroup");
}

TEST(ReadCgroup, V2RootCgroupAloneIsNotAController) {
  TempDir t;
  const std::string p = t.path() + "/proc", s = t.path() + "/sys";
  write_file(p + "/self/cgroup", "0::/\n");
  write_file(s + "/fs/cgroup/cgroup.controllers", "cpu io memory pids\n");
  write_file(s + "/fs/cgroup/memory.stat", "anon 1\n");
  auto r = read_cgroup(p, s, {});
  EXPECT_FALSE(r);
  EXPECT_TRUE(contains(r.error, s + "/fs/cgroup/memory.max")) << r.error;
}

TEST(ReadCgroup, NamespacedMountRootAndEscapedMountPoint) {
  TempDir t;
  const std::string p = t.path() + "/proc", s = t.path() + "/sys";
  write_file(p + "/self/cgroup", "0::/ns/app\n");
  write_file(p + "/self/mountinfo",
             "33 22 0:28 /ns /sys/fs/my\\040cgroup rw - cgroup2 cgroup2 rw\n");
  write_file(s + "/fs/my cgroup/app/memory.max", "max\n");
  write_file(s + "/fs/my cgroup/app/memory.current", "123\n");
  write_file(s + "/fs/my cgroup/memory.max", "1000000\n");
  write_file(s + "/fs/my cgroup/memory.current", "456\n");
  auto r = read_cgroup(p, s, {});
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->dir, s + "/fs/my cgroup/app");
  EXPECT_FALSE(r.value->limit);
  EXPECT_EQ(r.value->usage, 123u);
  ASSERT_EQ(r.value->levels.size(), 2u);
  EXPECT_EQ(r.value->levels[1].limit, 1000000u);
}

TEST(ReadCgroup, PathEscapingTheHierarchyIsRefused) {
  TempDir t;
  const std::string p = t.path() + "/proc", s = t.path() + "/sys";
  write_file(p + "/self/cgroup", "0::/../../etc\n");
  write_file(s + "/fs/cgroup/cgroup.controllers", "memory\n");
  auto r = read_cgroup(p, s, {});
  EXPECT_FALSE(r);
  EXPECT_TRUE(contains(r.error, "outside")) << r.error;
}

TEST(ReadCgroup, MountOutsideSysIsNotReadInFixtureTrees) {
  TempDir t;
  const std::string p = t.path() + "/proc", s = t.path() + "/sys";
  write_file(p + "/self/cgroup", "0::/\n");
  write_file(p + "/self/mountinfo", "33 22 0:28 / /proc rw - cgroup2 cgroup2 rw\n");
  auto r = read_cgroup(p, s, {});
  EXPECT_FALSE(r);
  EXPECT_TRUE(starts_with(r.error, "missing: no memory cgroup found")) << r.error;
}

TEST(ReadCgroup, GarbageOwnLimitIsAnErrorNotUnlimited) {
  TempDir t;
  const std::string root = copy_tree(t, "cgroup2-limited");
  const std::string dir = root + "/sys/fs/cgroup/system.slice/apache2.service";
  write_file(dir + "/memory.max", "lots\n");
  auto r = read_cgroup(root + "/proc", root + "/sys", {});
  EXPECT_FALSE(r);
  EXPECT_EQ(r.error,
            "malformed at line 1: expected \"max\" or a number of bytes, got \"lots\" in " + dir +
                "/memory.max");
}

TEST(ReadCgroup, GarbageOptionalFilesLeaveOptionalsEmpty) {
  TempDir t;
  const std::string root = copy_tree(t, "cgroup2-limited");
  const std::string dir = root + "/sys/fs/cgroup/system.slice/apache2.service";
  write_file(dir + "/memory.stat", "shmem -5\n");
  fs::remove(dir + "/memory.events");
  write_file(root + "/sys/fs/cgroup/system.slice/memory.max", "nonsense\n");
  auto r = read_cgroup(root + "/proc", root + "/sys", {});
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->limit, 512 * MiB);
  EXPECT_FALSE(r.value->shmem);
  EXPECT_FALSE(r.value->file);
  EXPECT_FALSE(r.value->events_oom_kill);
  ASSERT_EQ(r.value->levels.size(), 3u);
  EXPECT_FALSE(r.value->levels[1].limit);  // unreadable ancestor limit
  EXPECT_EQ(r.value->levels[1].usage, 192 * MiB);
}

TEST(ReadCgroup, UnreadableUsageFile) {
  TempDir t;
  const std::string root = copy_tree(t, "cgroup2-limited");
  for (auto& e : fs::recursive_directory_iterator(root))
    if (e.is_directory()) ::chmod(e.path().c_str(), 0755);
  const std::string cur = root + "/sys/fs/cgroup/system.slice/apache2.service/memory.current";
  ASSERT_EQ(::chmod(cur.c_str(), 0), 0);
  auto out = run_unprivileged([&] {
    auto r = read_cgroup(root + "/proc", root + "/sys", {});
    return r ? std::string("ok") : r.error;
  });
  if (!out) GTEST_SKIP() << "running as root and cannot drop to uid 65534 to test file modes";
  EXPECT_EQ(*out, "permission denied: " + cur);
}

TEST(ReadCgroup, UsageFileIsADirectory) {
  TempDir t;
  const std::string root = copy_tree(t, "cgroup2-limited");
  const std::string cur = root + "/sys/fs/cgroup/system.slice/apache2.service/memory.current";
  fs::remove(cur);
  fs::create_directory(cur);
  auto r = read_cgroup(root + "/proc", root + "/sys", {});
  EXPECT_FALSE(r);
  EXPECT_TRUE(starts_with(r.error, "unreadable: " + cur + ": ")) << r.error;
}

// The real machine: whatever it has, the reader answers without crashing, with a value or reason.
TEST(ReadCgroup, ThisMachineAnswers) {
  auto r = read_cgroup("/proc", "/sys", {});
  if (r) {
    EXPECT_TRUE(r.value->version == 1 || r.value->version == 2);
    EXPECT_FALSE(r.value->levels.empty());
    EXPECT_EQ(r.value->levels[0].dir, r.value->dir);
  } else {
    EXPECT_FALSE(r.error.empty());
  }
}

// ---------------------------------------------------------------- reclaimable cache (issue 17)

TEST(CgroupReclaimable, CleanFileCache) {
  CgroupLevel l{"/g", 768 * MiB, 700 * MiB};
  EXPECT_FALSE(cgroup_reclaimable(l)) << "no LRU figure read: nothing counts as reclaimable";
  l.inactive_file = 500 * MiB;
  EXPECT_EQ(cgroup_reclaimable(l), 500 * MiB) << "missing active/dirty/writeback count as 0";
  l.active_file = 80 * MiB;
  l.dirty = 4 * MiB;
  l.writeback = 1 * MiB;
  EXPECT_EQ(cgroup_reclaimable(l), 575 * MiB);
  l.dirty = 600 * MiB;  // more dirty than the lists hold (figures read one by one)
  EXPECT_EQ(cgroup_reclaimable(l), 0u);
  l.dirty = 0;
  l.writeback = 0;
  l.usage = 100 * MiB;  // never more than the usage
  EXPECT_EQ(cgroup_reclaimable(l), 100 * MiB);
  l.inactive_file = UINT64_MAX;  // hostile figures saturate instead of wrapping
  l.active_file = UINT64_MAX;
  EXPECT_EQ(cgroup_reclaimable(l), 100 * MiB);
}

// Real v1 files (captured, see the tree's README): every level's own memory.stat is read, with
// its hierarchical total_* keys; OOM kills come from memory.oom_control.
TEST(ReadCgroup, V1CacheFullReadsEveryLevelsOwnStat) {
  const std::string s = "cgroup1-cache-full";
  auto r = read_cgroup(proc(s), sys(s), {});
  ASSERT_TRUE(r) << r.error;
  const CgroupMemory& m = *r.value;
  EXPECT_EQ(m.version, 1);
  EXPECT_EQ(m.dir, sys(s) + "/fs/cgroup/memory/hosting/web1");
  EXPECT_EQ(m.limit, 768 * MiB);
  EXPECT_EQ(m.usage, 641941504u);
  EXPECT_EQ(m.failcnt, 77u);
  EXPECT_EQ(m.events_oom_kill, 1u);  // memory.oom_control "oom_kill 1"
  EXPECT_EQ(m.shmem, 128 * MiB);
  ASSERT_EQ(m.levels.size(), 3u);
  const CgroupLevel& web1 = m.levels[0];
  EXPECT_EQ(web1.inactive_file, 473968640u);
  EXPECT_EQ(web1.active_file, 28672u);
  EXPECT_EQ(web1.dirty, 8 * MiB);
  EXPECT_EQ(web1.writeback, 0u);
  EXPECT_EQ(cgroup_reclaimable(web1), 473968640u + 28672u - 8 * MiB);
  const CgroupLevel& hosting = m.levels[1];
  EXPECT_EQ(hosting.dir, sys(s) + "/fs/cgroup/memory/hosting");
  EXPECT_EQ(hosting.limit, 1024 * MiB);
  EXPECT_EQ(hosting.usage, 1071894528u);
  // hosting's local inactive_file/active_file are 0 (no process of its own): total_* counts both
  // children's cache, the sibling's active 100 MiB included.
  EXPECT_EQ(hosting.inactive_file, 473968640u);
  EXPECT_EQ(hosting.active_file, 104919040u);
  EXPECT_EQ(hosting.dirty, 8396800u);
  EXPECT_EQ(hosting.writeback, 0u);
  EXPECT_EQ(cgroup_reclaimable(hosting), 473968640u + 104919040u - 8396800u);
  // The mount's top level has no limit: its memory.stat is not needed.
  EXPECT_FALSE(m.levels[2].limit);
  EXPECT_FALSE(m.levels[2].inactive_file);
}

TEST(ReadCgroup, V1LevelWithoutTotalKeysUsesItsLocalKeys) {
  TempDir t;
  const std::string root = copy_tree(t, "cgroup1-cache-full");
  const std::string stat = root + "/sys/fs/cgroup/memory/hosting/web1/memory.stat";
  std::string local;
  for (const std::string& line :
       {std::string("inactive_file 300000000"), std::string("active_file 0"),
        std::string("dirty 4096"), std::string("writeback 8192"),
        std::string("total_cache 1")})  // total_cache: not an LRU key
    local += line + "\n";
  write_file(stat, local);
  auto r = read_cgroup(root + "/proc", root + "/sys", {});
  ASSERT_TRUE(r) << r.error;
  const CgroupLevel& web1 = r.value->levels[0];
  EXPECT_EQ(web1.inactive_file, 300000000u);
  EXPECT_EQ(web1.active_file, 0u);
  EXPECT_EQ(web1.dirty, 4096u);
  EXPECT_EQ(web1.writeback, 8192u);
}

TEST(ReadCgroup, V1WithoutOomKillLineOrOomControl) {
  TempDir t;
  const std::string root = copy_tree(t, "cgroup1-cache-full");
  const std::string dir = root + "/sys/fs/cgroup/memory/hosting/web1";
  write_file(dir + "/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n");  // kernel < 4.13
  auto r = read_cgroup(root + "/proc", root + "/sys", {});
  ASSERT_TRUE(r) << r.error;
  EXPECT_FALSE(r.value->events_oom_kill);
  EXPECT_EQ(r.value->failcnt, 77u);  // still shown, never read as an OOM count
  fs::remove(dir + "/memory.oom_control");
  r = read_cgroup(root + "/proc", root + "/sys", {});
  ASSERT_TRUE(r) << r.error;
  EXPECT_FALSE(r.value->events_oom_kill);
}

TEST(ReadCgroup, UnreadableStatLeavesTheLevelWithoutReclaimable) {
  TempDir t;
  const std::string root = copy_tree(t, "cgroup1-cache-full");
  write_file(root + "/sys/fs/cgroup/memory/hosting/memory.stat", "total_inactive_file x\n");
  auto r = read_cgroup(root + "/proc", root + "/sys", {});
  ASSERT_TRUE(r) << r.error;
  EXPECT_TRUE(cgroup_reclaimable(r.value->levels[0]));
  EXPECT_FALSE(cgroup_reclaimable(r.value->levels[1]));
  EXPECT_EQ(r.value->levels[1].usage, 1071894528u);  // the level itself is still read
}

TEST(ReadCgroup, V2CacheFullLruKeys) {
  const std::string s = "cgroup2-cache-full";
  auto r = read_cgroup(proc(s), sys(s), {});
  ASSERT_TRUE(r) << r.error;
  const CgroupMemory& m = *r.value;
  EXPECT_EQ(m.version, 2);
  EXPECT_EQ(m.events_max, 472u);
  EXPECT_EQ(m.events_oom_kill, 0u);
  ASSERT_EQ(m.levels.size(), 3u);
  EXPECT_EQ(m.levels[0].inactive_file, 508 * MiB);
  EXPECT_EQ(m.levels[0].active_file, 80 * MiB);
  EXPECT_EQ(m.levels[0].dirty, 4 * MiB);      // file_dirty
  EXPECT_EQ(m.levels[0].writeback, 1 * MiB);  // file_writeback
  EXPECT_EQ(cgroup_reclaimable(m.levels[0]), 583 * MiB);
  EXPECT_EQ(m.levels[1].inactive_file, 540 * MiB);
  EXPECT_EQ(cgroup_reclaimable(m.levels[1]), 615 * MiB);
  // shmem (OPcache) is inside v2's "file" but not on the file LRU: never reclaimable.
  EXPECT_EQ(*m.file - *m.shmem, *m.levels[0].inactive_file + *m.levels[0].active_file);
}

// v2's memory.pressure of the process's own level is read beside memory.events (the root's, all
// zeros, is not the one shown); v1 has none.
TEST(ReadCgroup, V2PressureOfTheOwnLevel) {
  const std::string s = "cgroup2-cache-full";
  auto r = read_cgroup(proc(s), sys(s), {});
  ASSERT_TRUE(r) << r.error;
  ASSERT_TRUE(r.value->pressure);
  ASSERT_TRUE(r.value->pressure->some);
  ASSERT_TRUE(r.value->pressure->full);
  EXPECT_EQ(r.value->pressure->some->avg10, 205u);
  EXPECT_EQ(r.value->pressure->some->total_us, 3466205u);
  EXPECT_EQ(r.value->pressure->full->avg10, 81u);
  EXPECT_EQ(r.value->pressure->full->avg300, 15u);

  auto v1 = read_cgroup(proc("cgroup1-cache-full"), sys("cgroup1-cache-full"), {});
  ASSERT_TRUE(v1) << v1.error;
  EXPECT_FALSE(v1.value->pressure);
}

// A missing or unparsable memory.pressure is no figure: the limit, usage and events still read.
TEST(ReadCgroup, BadOrMissingPressureLeavesItEmpty) {
  TempDir t;
  const std::string root = copy_tree(t, "cgroup2-cache-full");
  const std::string dir = root + "/sys/fs/cgroup/system.slice/apache2.service";
  write_file(dir + "/memory.pressure", "some avg10=0.00 avg60=0.00\n");
  auto r = read_cgroup(root + "/proc", root + "/sys", {});
  ASSERT_TRUE(r) << r.error;
  EXPECT_FALSE(r.value->pressure);
  EXPECT_EQ(r.value->limit, 768 * MiB);
  EXPECT_EQ(r.value->events_max, 472u);
  fs::remove(dir + "/memory.pressure");
  r = read_cgroup(root + "/proc", root + "/sys", {});
  ASSERT_TRUE(r) << r.error;
  EXPECT_FALSE(r.value->pressure);
  EXPECT_EQ(r.value->limit, 768 * MiB);
}
