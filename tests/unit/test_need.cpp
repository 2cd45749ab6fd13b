// A new worker's need and its basis (need.hpp): mapped where the limit charges at mmap, touched
// under a memory cgroup (issue 17 item 2).
#include <gtest/gtest.h>

#include "shmguard/advisor.hpp"
#include "shmguard/need.hpp"

using namespace shmguard;

namespace {

constexpr std::uint64_t MiB = 1ull << 20;

// A snapshot with the given limits (name, headroom), the model computed as compute_headroom does.
Snapshot with_limits(std::vector<std::pair<std::string, std::uint64_t>> ls) {
  Snapshot s;
  for (const auto& [name, headroom] : ls)
    s.limits.push_back(Limit{name, 4096 * MiB, 4096 * MiB - headroom});
  choose_binding(s);
  return s;
}

}  // namespace

TEST(Need, BasisFollowsTheBindingLimit) {
  EXPECT_EQ(need_basis("cgroup:memory"), NeedBasis::Touched);
  for (const char* b : {"beancounter:shmpages", "beancounter:privvmpages", "overcommit", ""})
    EXPECT_EQ(need_basis(b), NeedBasis::Mapped) << b;
  EXPECT_STREQ(need_basis_key(NeedBasis::Touched), "touched");
  EXPECT_STREQ(need_basis_key(NeedBasis::Mapped), "mapped");
  EXPECT_EQ(need_basis_text(NeedBasis::Touched, "cgroup:memory")
                .rfind("touched (memory cgroup charges pages as touched", 0),
            0u);
  EXPECT_EQ(need_basis_text(NeedBasis::Mapped, "beancounter:shmpages")
                .rfind("mapped (shmpages charges at mmap", 0),
            0u);
  EXPECT_EQ(need_basis_text(NeedBasis::Mapped, "overcommit")
                .rfind("mapped (strict overcommit charges at mmap", 0),
            0u);
}

TEST(Need, MemoryCgroupNeedsTheTouchedMemory) {
  // OPcache 128 + APCu 32 MiB mapped, 20 MiB touched: the cgroup charges the 20.
  const Snapshot cg = with_limits({{"cgroup:memory", 400 * MiB}});
  EXPECT_EQ(class_need(cg, 160 * MiB, 20 * MiB), 20 * MiB);
  // Nothing touched measured yet: the mapped size (never less than what was measured).
  EXPECT_EQ(class_need(cg, 160 * MiB, 0), 160 * MiB);
}

TEST(Need, LimitsThatChargeAtMmapKeepTheMappedSize) {
  for (const char* b : {"beancounter:shmpages", "beancounter:privvmpages", "overcommit"})
    EXPECT_EQ(class_need(with_limits({{b, 400 * MiB}}), 160 * MiB, 20 * MiB), 160 * MiB) << b;
  EXPECT_EQ(class_need(Snapshot{}, 160 * MiB, 20 * MiB), 160 * MiB);  // no finite limit
}

TEST(Need, AMmapChargingLimitBesideTheCgroupStillHoldsTheMapping) {
  // The cgroup binds (100 MiB), shmpages has 300 MiB: a 160 MiB mapping fits shmpages; the need
  // against the published headroom is the touched 20 MiB.
  Snapshot s = with_limits({{"cgroup:memory", 100 * MiB}, {"beancounter:shmpages", 300 * MiB}});
  ASSERT_EQ(s.binding, "cgroup:memory");
  EXPECT_EQ(class_need(s, 160 * MiB, 20 * MiB), 20 * MiB);
  // shmpages only 50 MiB above the cgroup's headroom: the mapping needs 110 MiB more than that,
  // so a spawn must see 110 MiB of the cgroup's headroom (which leaves shmpages its 160).
  s = with_limits({{"cgroup:memory", 100 * MiB}, {"beancounter:shmpages", 150 * MiB}});
  EXPECT_EQ(class_need(s, 160 * MiB, 20 * MiB), 110 * MiB);
  // The same headroom: the mapping's full size.
  s = with_limits({{"cgroup:memory", 100 * MiB}, {"overcommit", 100 * MiB}});
  EXPECT_EQ(s.binding, "cgroup:memory");
  EXPECT_EQ(class_need(s, 160 * MiB, 20 * MiB), 160 * MiB);
}

TEST(Need, TouchedIsShmemPlusAnonSaturating) {
  EXPECT_EQ(touched_bytes(3 * MiB, 15 * MiB), 18 * MiB);
  EXPECT_EQ(touched_bytes(UINT64_MAX - 1, 5), UINT64_MAX);
}

TEST(Need, EffectiveReserveIsFixedMeasuredOrTheDefault) {
  Reserve r = effective_reserve(false, 64 * MiB, 20 * MiB, 128 * MiB);
  EXPECT_EQ(r.bytes, 64 * MiB);
  EXPECT_TRUE(r.measured);
  r = effective_reserve(true, 64 * MiB, 20 * MiB, 128 * MiB);
  EXPECT_EQ(r.bytes, 20 * MiB);
  EXPECT_TRUE(r.measured);
  r = effective_reserve(true, 64 * MiB, 0, 128 * MiB);
  EXPECT_EQ(r.bytes, 128 * MiB);
  EXPECT_FALSE(r.measured);
}

TEST(Need, AdvisorCountsWorkersOnTheTouchedNeedUnderAMemoryCgroup) {
  Segment opcache{0, 1, 1, 128 * MiB, "anon-shared"}, apcu{0, 1, 2, 32 * MiB, "anon-shared"};
  WorkerRow w;
  w.pid = 7;
  w.backend = "mod_fcgid";
  w.kind = "php-cgi";
  w.segments = {opcache, apcu};
  w.rss_shmem = 4 * MiB;
  w.rss_anon = 16 * MiB;
  const Finding* h = nullptr;
  auto fs = advise(with_limits({{"cgroup:memory", 200 * MiB}}), {w});
  for (const auto& f : fs)
    if (f.id == "headroom-workers") h = &f;
  ASSERT_NE(h, nullptr);
  EXPECT_NE(h->text.find("allows 10 more php-cgi workers of 20 MiB"), std::string::npos) << h->text;
  EXPECT_NE(h->text.find("A worker's need here is touched (memory cgroup"), std::string::npos)
      << h->text;
  // The same worker under shmpages: 1 more of 160 MiB, on the mapped basis.
  fs = advise(with_limits({{"beancounter:shmpages", 200 * MiB}}), {w});
  h = nullptr;
  for (const auto& f : fs)
    if (f.id == "headroom-workers") h = &f;
  ASSERT_NE(h, nullptr);
  EXPECT_NE(h->text.find("allows 1 more php-cgi worker of 160 MiB"), std::string::npos) << h->text;
  EXPECT_NE(h->text.find("A worker's need here is mapped (shmpages charges at mmap"),
            std::string::npos)
      << h->text;
}

namespace {
// A snapshot with a memory cgroup whose own level has `own` as limit and its parent `parent`
// (nullopt: unlimited), oom_kill read as 3, the model computed from it.
Snapshot cgroup_snapshot(std::optional<std::uint64_t> own, std::optional<std::uint64_t> parent,
                         bool oom_kill_read = true) {
  Snapshot s;
  CgroupMemory c;
  c.version = 2;
  c.dir = "/sys/fs/cgroup/web";
  c.limit = own;
  c.usage = 100 * MiB;
  if (oom_kill_read) c.events_oom_kill = 3;
  c.levels.push_back(CgroupLevel{"/sys/fs/cgroup/web", own, 100 * MiB});
  c.levels.push_back(CgroupLevel{"/sys/fs/cgroup", parent, 900 * MiB});
  s.cgroup = c;
  compute_headroom(s);
  return s;
}
}  // namespace

// OOM kills are counted (a 500 waits for the sampler's look) only where a memory cgroup limit is
// finite: in an unlimited cgroup the oom_kill counter is read but no kill can come from it, and
// every 500 would wait 300 ms for nothing (the fix of oom-counted-finite).
TEST(Need, OomKillsCountedOnlyUnderAFiniteMemoryCgroupLimit) {
  EXPECT_FALSE(oom_kills_counted(cgroup_snapshot(std::nullopt, std::nullopt)));
  EXPECT_TRUE(oom_kills_counted(cgroup_snapshot(768 * MiB, std::nullopt)));
  EXPECT_TRUE(oom_kills_counted(cgroup_snapshot(std::nullopt, 2048 * MiB)));  // an ancestor's
  EXPECT_FALSE(oom_kills_counted(cgroup_snapshot(768 * MiB, std::nullopt, false)));
  EXPECT_FALSE(oom_kills_counted(Snapshot{}));
  // A beancounter limit beside an unlimited cgroup: finite limits, none of them the cgroup's.
  Snapshot bc = cgroup_snapshot(std::nullopt, std::nullopt);
  bc.limits.push_back(Limit{"beancounter:shmpages", 1024 * MiB, 10 * MiB});
  choose_binding(bc);
  ASSERT_TRUE(bc.headroom_bytes);
  EXPECT_FALSE(oom_kills_counted(bc));
}
