// Lean workers: the state file, the plan shmguard-php-wrapper follows, and reading it back from a
// worker's command line.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "shmguard/lean.hpp"

using namespace shmguard;

namespace {
constexpr std::uint64_t MiB = 1ULL << 20;
HeadroomState state(std::uint64_t headroom, std::uint64_t reserved = 0) {
  HeadroomState s;
  s.sampled_ms = 1700000000000;
  s.bounded = true;
  s.headroom = headroom;
  s.reserved = reserved;
  s.binding = "beancounter:shmpages";
  return s;
}
LeanOptions opts() {
  LeanOptions o;
  o.opcache = 256 * MiB;
  o.apcu = 32 * MiB;
  o.lean_max = 48 * MiB;
  return o;
}
}  // namespace

TEST(LeanState, RoundTrip) {
  std::string err;
  auto back = parse_headroom_state(format_headroom_state(state(5 * MiB, MiB)), &err);
  ASSERT_TRUE(back) << err;
  EXPECT_EQ(back->headroom, 5 * MiB);
  EXPECT_EQ(back->reserved, MiB);
  EXPECT_TRUE(back->bounded);
  EXPECT_EQ(back->binding, "beancounter:shmpages");
  EXPECT_EQ(back->sampled_ms, 1700000000000);
}

TEST(LeanState, TheFileCountsAClaimOnceTheSampleAfterNextIsPublished) {
  // Reserved with sample 7 published: sample 8's file counts it, whole once sample 9 is out.
  EXPECT_FALSE(state_counts_claim(7, 7));
  EXPECT_FALSE(state_counts_claim(7, 8)) << "sample 8's file may still be being written";
  EXPECT_TRUE(state_counts_claim(7, 9));
  EXPECT_TRUE(state_counts_claim(7, 12));
  EXPECT_FALSE(state_counts_claim(0, 1));
}

TEST(LeanState, PartialOrForeignFilesAreRefused) {
  std::string text = format_headroom_state(state(5 * MiB));
  std::string err;
  EXPECT_FALSE(parse_headroom_state(text.substr(0, text.size() - 5), &err));
  EXPECT_NE(err.find("incomplete"), std::string::npos) << err;
  EXPECT_FALSE(parse_headroom_state("hello\nend\n", &err));
  EXPECT_FALSE(parse_headroom_state("shmguard-state 1\nheadroom x\nend", &err));
  EXPECT_FALSE(parse_headroom_state("shmguard-state 1\nend", &err)) << "values missing";
  EXPECT_FALSE(parse_headroom_state(std::string(5000, 'x'), &err));
}

// Found by fuzz_lean: a sampled_ms past INT64_MAX was read as a negative time (and written back
// as a number the reader refuses); a binding with control bytes went on into log lines.
TEST(LeanState, OutOfRangeTimeAndOddBindingAreRefused) {
  std::string err;
  EXPECT_FALSE(
      parse_headroom_state("shmguard-state 1\nsampled_ms 17645999999999999999\nbounded 1\n"
                           "headroom 1\nreserved 0\nbinding -\nend\n",
                           &err));
  EXPECT_NE(err.find("bad number in line 2"), std::string::npos) << err;
  EXPECT_FALSE(
      parse_headroom_state("shmguard-state 1\nsampled_ms 1\nbounded 1\nheadroom 1\n"
                           "reserved 0\nbinding a\x06"
                           "b\nend\n",
                           &err));
  EXPECT_NE(err.find("bad binding in line 6"), std::string::npos) << err;
  auto ok = parse_headroom_state(
      "shmguard-state 1\nsampled_ms 1\nbounded 1\nheadroom 1\n"
      "reserved 0\nbinding beancounter:shmpages\nend\n",
      &err);
  ASSERT_TRUE(ok) << err;
  EXPECT_EQ(ok->binding, "beancounter:shmpages");
}

TEST(LeanPlan, FullWhenItFitsOrWhenUnknown) {
  EXPECT_FALSE(plan_lean(state(300 * MiB), opts()).lean);
  EXPECT_FALSE(plan_lean(std::nullopt, opts()).lean) << "fails open";
  HeadroomState unbounded = state(0);
  unbounded.bounded = false;
  EXPECT_FALSE(plan_lean(unbounded, opts()).lean);
}

TEST(LeanPlan, ReservedSpawnsCountAgainstTheRoom) {
  EXPECT_TRUE(plan_lean(state(300 * MiB, 100 * MiB), opts()).lean);
}

TEST(LeanPlan, SmallerSegmentsWithinLeanMax) {
  LeanPlan p = plan_lean(state(100 * MiB), opts());
  ASSERT_TRUE(p.lean);
  EXPECT_EQ(p.apcu, 12 * MiB);
  EXPECT_EQ(p.opcache, 36 * MiB);
  EXPECT_LE(p.apcu + p.opcache, 48 * MiB);
  LeanSettings back = lean_settings([&] {
    std::string c = "/usr/bin/php-cgi";
    for (auto& a : p.php_args) c += " " + a;
    return c;
  }());
  EXPECT_TRUE(back.lean);
  EXPECT_EQ(back.opcache, 36 * MiB);
  EXPECT_EQ(back.apcu, 12 * MiB);
  EXPECT_EQ(back.describe(), "OPcache 36.0 MiB, APCu 12.0 MiB");
}

TEST(LeanPlan, FileCacheOnlyOrOffBelowTheMinimum) {
  LeanOptions o = opts();
  o.file_cache = "/var/cache/php-opcache";
  LeanPlan p = plan_lean(state(5 * MiB), o);
  ASSERT_TRUE(p.lean);
  EXPECT_TRUE(p.opcache_file_only);
  EXPECT_EQ(p.apcu, 0u);
  LeanSettings back =
      lean_settings("php-cgi -d opcache.file_cache_only=1 -d apc.enabled=0 -d shmguard.lean=1");
  EXPECT_EQ(back.describe(), "OPcache file cache only, APCu off");
  o.file_cache.clear();
  p = plan_lean(state(5 * MiB), o);
  EXPECT_TRUE(p.opcache_off);
}

TEST(LeanSettings, OnlyTheMarkerMakesAWorkerLean) {
  EXPECT_FALSE(lean_settings("/usr/bin/php-cgi -d opcache.memory_consumption=64").lean);
  EXPECT_TRUE(lean_settings("php-cgi -dshmguard.lean=1").lean);
  EXPECT_FALSE(lean_settings(std::string(20000, ' ') + "-d shmguard.lean=1").lean)
      << "bounded read";
}

TEST(LeanFileCache, OnlyTheWorkersOwnDirectoryWritableByNobodyElse) {
  // issue 20 (low): a shared --file-cache DIR let one tenant plant compiled scripts for another.
  char base[] = "/tmp/shmguard-fc-XXXXXX";
  ASSERT_NE(::mkdtemp(base), nullptr);
  const std::string dir = std::string(base) + "/cache";
  const unsigned me = ::geteuid();
  EXPECT_NE(file_cache_problem(dir, me), "");  // missing
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  EXPECT_EQ(file_cache_problem(dir, me), "");
  EXPECT_NE(file_cache_problem(dir, me + 1).find("belongs to uid"), std::string::npos);
  ::chmod(dir.c_str(), 0777);
  EXPECT_NE(file_cache_problem(dir, me).find("writable by everyone"), std::string::npos);
  ::chmod(dir.c_str(), 01777);  // sticky /tmp-style: others still plant new files
  EXPECT_NE(file_cache_problem(dir, me).find("writable by everyone"), std::string::npos);
  ::chmod(dir.c_str(), 0770);
  EXPECT_NE(file_cache_problem(dir, me).find("its group"), std::string::npos);
  ::chmod(dir.c_str(), 0755);
  EXPECT_EQ(file_cache_problem(dir, me), "");
  const std::string link = std::string(base) + "/link";
  ASSERT_EQ(::symlink(dir.c_str(), link.c_str()), 0);
  EXPECT_NE(file_cache_problem(link, me).find("symbolic link"), std::string::npos);
  const std::string file = std::string(base) + "/file";
  ::close(::open(file.c_str(), O_CREAT | O_WRONLY, 0600));
  EXPECT_NE(file_cache_problem(file, me).find("not a directory"), std::string::npos);
  ::unlink(file.c_str());
  ::unlink(link.c_str());
  ::rmdir(dir.c_str());
  ::rmdir(base);
}
