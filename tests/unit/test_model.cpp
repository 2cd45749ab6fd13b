// Headroom model, failure-counter tracking, units and renderings.
#include <gtest/gtest.h>

#include "shmguard/json.hpp"
#include "shmguard/model.hpp"
#include "shmguard/render.hpp"
#include "shmguard/units.hpp"
#include "test_util.hpp"

using namespace shmguard;

namespace {

BeancounterRow row(const char* res, std::uint64_t held, std::uint64_t barrier,
                   std::uint64_t failcnt = 0) {
  BeancounterRow r;
  r.resource = res;
  r.held = held;
  r.maxheld = held;
  r.barrier = barrier;
  r.limit = barrier;
  r.failcnt = failcnt;
  r.unit = beancounter_unit(res);
  return r;
}

Snapshot with_beancounters(std::uint64_t shm_held, std::uint64_t shm_barrier,
                           std::uint64_t priv_held, std::uint64_t priv_barrier) {
  Snapshot s;
  s.page_size = 4096;
  Beancounters bc;
  bc.file = "/proc/user_beancounters";
  bc.version = "2.5";
  bc.block.id = "101";
  bc.block.rows.push_back(row("kmemsize", 16595303, 67108864));
  bc.block.rows.push_back(row("privvmpages", priv_held, priv_barrier, 161));
  bc.block.rows.push_back(row("shmpages", shm_held, shm_barrier, 10067));
  s.beancounters = bc;
  return s;
}

CgroupMemory cgroup(std::optional<std::uint64_t> limit, std::uint64_t usage) {
  CgroupMemory c;
  c.version = 2;
  c.dir = "/sys/fs/cgroup/web";
  c.limit = limit;
  c.usage = usage;
  c.levels.push_back(CgroupLevel{c.dir, limit, usage});
  return c;
}

}  // namespace

TEST(Headroom, FieldReportShmpagesBinds) {
  // The admin's numbers: shmpages held=247122 barrier=262144 pages.
  Snapshot s = with_beancounters(247122, 262144, 239894, 393216);
  compute_headroom(s);
  ASSERT_TRUE(s.headroom_bytes);
  EXPECT_EQ(*s.headroom_bytes, (262144ULL - 247122ULL) * 4096ULL);
  EXPECT_EQ(s.binding, "beancounter:shmpages");
  ASSERT_EQ(s.limits.size(), 2u);
}

TEST(Headroom, PrivvmpagesBindsWhenTighter) {
  Snapshot s = with_beancounters(653, 262144, 440000, 442368);
  compute_headroom(s);
  EXPECT_EQ(s.binding, "beancounter:privvmpages");
  EXPECT_EQ(*s.headroom_bytes, (442368ULL - 440000ULL) * 4096ULL);
}

TEST(Headroom, OverHeldClampsAtZero) {
  Snapshot s = with_beancounters(262200, 262144, 1, 442368);
  compute_headroom(s);
  EXPECT_EQ(*s.headroom_bytes, 0u);
  EXPECT_EQ(s.binding, "beancounter:shmpages");
}

TEST(Headroom, UnlimitedBeancountersDoNotBind) {
  Snapshot s = with_beancounters(653, 9223372036854775807ULL, 239894, 9223372036854775807ULL);
  compute_headroom(s);
  EXPECT_FALSE(s.headroom_bytes);
  EXPECT_EQ(s.binding, "");
  EXPECT_TRUE(s.limits.empty());
}

TEST(Headroom, CgroupBindsOverLooseBeancounter) {
  Snapshot s = with_beancounters(653, 262144, 239894, 393216);
  s.cgroup = cgroup(512ULL << 20, 500ULL << 20);
  compute_headroom(s);
  EXPECT_EQ(s.binding, "cgroup:memory");
  EXPECT_EQ(*s.headroom_bytes, 12ULL << 20);
}

TEST(Headroom, CgroupAncestorLimitBinds) {
  Snapshot s;
  CgroupMemory c = cgroup(std::nullopt, 100ULL << 20);
  c.levels.push_back(CgroupLevel{"/sys/fs/cgroup", 1ULL << 30, (1ULL << 30) - (5ULL << 20)});
  s.cgroup = c;
  compute_headroom(s);
  EXPECT_EQ(s.binding, "cgroup:memory");
  EXPECT_EQ(*s.headroom_bytes, 5ULL << 20);
}

TEST(Headroom, UnlimitedCgroupDoesNotBind) {
  Snapshot s;
  s.cgroup = cgroup(std::nullopt, 100);
  compute_headroom(s);
  EXPECT_FALSE(s.headroom_bytes);
}

TEST(Headroom, StrictOvercommitBindsOnlyInMode2) {
  Snapshot s;
  Overcommit m;
  m.mode = 0;
  m.commit_limit = 8ULL << 30;
  m.committed_as = (8ULL << 30) - (100ULL << 20);
  s.overcommit = m;
  compute_headroom(s);
  EXPECT_FALSE(s.headroom_bytes) << "heuristic overcommit does not refuse";
  s.overcommit->mode = 2;
  compute_headroom(s);
  EXPECT_EQ(s.binding, "overcommit");
  EXPECT_EQ(*s.headroom_bytes, 100ULL << 20);
}

TEST(Headroom, MixedPicksSmallest) {
  Snapshot s = with_beancounters(200000, 262144, 239894, 393216);  // ~242 MiB
  s.cgroup = cgroup(4ULL << 30, 3ULL << 30);                       // 1 GiB
  Overcommit m;
  m.mode = 2;
  m.commit_limit = 10ULL << 30;
  m.committed_as = (10ULL << 30) - (50ULL << 20);  // 50 MiB
  s.overcommit = m;
  compute_headroom(s);
  EXPECT_EQ(s.binding, "overcommit");
  EXPECT_EQ(*s.headroom_bytes, 50ULL << 20);
  EXPECT_EQ(s.limits.size(), 4u);
  ASSERT_NE(s.binding_limit(), nullptr);
  EXPECT_EQ(s.binding_limit()->limit_bytes, 10ULL << 30);
}

TEST(Headroom, SysvAndDevshmNeverBind) {
  Snapshot s;
  Sysv v;
  v.shmmax = 1;
  v.shmall = 1;
  s.sysv = v;
  s.devshm = DevShm{"/dev/shm", 64 << 20, 0, 0};
  compute_headroom(s);
  EXPECT_FALSE(s.headroom_bytes);
}

TEST(Tracker, SinceStartAndLastMinute) {
  FailcntTracker t(60000);
  Snapshot s = with_beancounters(1, 262144, 1, 393216);  // shmpages failcnt 10067
  t.observe(0, s);
  auto find = [](const Snapshot& x, const char* name) {
    for (const auto& c : x.counters)
      if (c.name == name) return c;
    ADD_FAILURE() << "no counter " << name;
    return Counter{};
  };
  EXPECT_EQ(find(s, "beancounter:shmpages:failcnt").since_start, 0u);
  s.beancounters->block.rows[2].failcnt = 10070;
  t.observe(30000, s);
  EXPECT_EQ(find(s, "beancounter:shmpages:failcnt").since_start, 3u);
  EXPECT_EQ(find(s, "beancounter:shmpages:failcnt").last_minute, 3u);
  s.beancounters->block.rows[2].failcnt = 10077;
  t.observe(61000, s);  // baseline: the newest sample at least a minute old (the 0 s one)
  EXPECT_EQ(find(s, "beancounter:shmpages:failcnt").since_start, 10u);
  EXPECT_EQ(find(s, "beancounter:shmpages:failcnt").last_minute, 10u);
  t.observe(95000, s);  // now the 30 s sample is the baseline: only the second rise counts
  EXPECT_EQ(find(s, "beancounter:shmpages:failcnt").last_minute, 7u);
  t.observe(200000, s);  // quiet for over a minute
  EXPECT_EQ(find(s, "beancounter:shmpages:failcnt").last_minute, 0u);
  EXPECT_EQ(find(s, "beancounter:shmpages:failcnt").since_start, 10u);
  EXPECT_EQ(find(s, "beancounter:privvmpages:failcnt").value, 161u);
}

TEST(Tracker, CounterResetRebases) {
  FailcntTracker t;
  Snapshot s = with_beancounters(1, 262144, 1, 393216);
  t.observe(0, s);
  s.beancounters->block.rows[2].failcnt = 5;  // container restarted
  t.observe(1000, s);
  for (const auto& c : s.counters) {
    if (c.name == "beancounter:shmpages:failcnt") {
      EXPECT_EQ(c.since_start, 0u);
    }
  }
}

TEST(Units, Sizes) {
  EXPECT_EQ(parse_size("64M"), 64ULL << 20);
  EXPECT_EQ(parse_size("1G"), 1ULL << 30);
  EXPECT_EQ(parse_size("512k"), 512ULL << 10);
  EXPECT_EQ(parse_size("64MiB"), 64ULL << 20);
  EXPECT_EQ(parse_size("1048576"), 1048576u);
  EXPECT_FALSE(parse_size(""));
  EXPECT_FALSE(parse_size("M"));
  EXPECT_FALSE(parse_size("-1M"));
  EXPECT_FALSE(parse_size("64X"));
  EXPECT_FALSE(parse_size("1.5G"));
  EXPECT_FALSE(parse_size("99999999999999999999"));
  EXPECT_FALSE(parse_size("17179869184G")) << "overflows 2^64";
}

TEST(Units, Durations) {
  EXPECT_EQ(parse_duration_ms("250ms"), 250u);
  EXPECT_EQ(parse_duration_ms("1s"), 1000u);
  EXPECT_EQ(parse_duration_ms("2"), 2000u);
  EXPECT_EQ(parse_duration_ms("1m"), 60000u);
  EXPECT_FALSE(parse_duration_ms("1h"));
  EXPECT_FALSE(parse_duration_ms("fast"));
  EXPECT_FALSE(parse_duration_ms("18446744073709551615s"));
}

TEST(Units, Percent) {
  EXPECT_DOUBLE_EQ(*parse_percent("90%"), 90.0);
  EXPECT_DOUBLE_EQ(*parse_percent("12.5%"), 12.5);
  EXPECT_FALSE(parse_percent("101%"));
  EXPECT_FALSE(parse_percent("90"));
  EXPECT_FALSE(parse_percent("%"));
  EXPECT_FALSE(parse_percent("-5%"));
}

TEST(Units, Human) {
  EXPECT_EQ(human_bytes(512), "512 B");
  EXPECT_EQ(human_bytes(64ULL << 20), "64.0 MiB");
  EXPECT_EQ(human_bytes(1ULL << 30), "1.0 GiB");
  EXPECT_EQ(human_bytes(12582912), "12.0 MiB");
}

TEST(Json, EscapesForHtmlAndControl) {
  EXPECT_EQ(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
  EXPECT_EQ(json_string("<script>"), "\"\\u003cscript\\u003e\"");
  EXPECT_EQ(json_string(std::string("\x01", 1)), "\"\\u0001\"");
  EXPECT_EQ(json_string("\xff"), "\"\\ufffd\"");
  EXPECT_EQ(json_string("\xc3\xa9"), "\"\xc3\xa9\"");
}

TEST(Json, WriterCommas) {
  JsonWriter w;
  w.begin_object().field("a", 1).key("b").begin_array().value(1).value("x").null().end_array();
  w.field("c", std::optional<std::uint64_t>{}).end_object();
  EXPECT_EQ(w.str(), "{\"a\":1,\"b\":[1,\"x\",null],\"c\":null}");
}

TEST(Render, JsonHasStableKeys) {
  Snapshot s = with_beancounters(247122, 262144, 239894, 393216);
  s.unavailable.push_back({"cgroup", "permission denied: /sys/fs/cgroup/x/memory.current"});
  compute_headroom(s);
  std::string j = render_json(s);
  EXPECT_NE(j.find("\"headroom_bytes\":61530112"), std::string::npos) << j;
  EXPECT_NE(j.find("\"binding\":\"beancounter:shmpages\""), std::string::npos);
  EXPECT_NE(j.find("\"source\":\"beancounter\""), std::string::npos);
  EXPECT_NE(j.find("\"resource\":\"shmpages\",\"held\":247122"), std::string::npos);
  EXPECT_NE(j.find("\"unit\":\"pages\""), std::string::npos);
  EXPECT_NE(j.find("\"barrier_bytes\":1073741824"), std::string::npos);
  EXPECT_NE(j.find("\"unavailable\":[{\"source\":\"cgroup\",\"reason\":\"permission denied"),
            std::string::npos);
}

TEST(Render, JsonNullHeadroomWhenUnbounded) {
  Snapshot s;
  compute_headroom(s);
  std::string j = render_json(s);
  EXPECT_NE(j.find("\"headroom_bytes\":null,\"binding\":null"), std::string::npos) << j;
}

TEST(Render, TextHeadlineNamesBinding) {
  Snapshot s = with_beancounters(247122, 262144, 239894, 393216);
  compute_headroom(s);
  std::string t = render_text(s);
  EXPECT_EQ(t.rfind("headroom 58.7 MiB (61530112 bytes) for new shared memory, bound by "
                    "beancounter:shmpages",
                    0),
            0u)
      << t;
  EXPECT_NE(t.find("247122/262144 pages held/barrier, failcnt 10067"), std::string::npos);
}

TEST(Render, PrometheusFamiliesAndInf) {
  Snapshot s = with_beancounters(247122, 262144, 239894, 9223372036854775807ULL);
  compute_headroom(s);
  std::string p = render_prometheus(s);
  EXPECT_NE(p.find("# TYPE shmguard_headroom_bytes gauge\nshmguard_headroom_bytes 61530112\n"),
            std::string::npos)
      << p;
  EXPECT_NE(p.find("shmguard_beancounter_barrier{container=\"101\",resource=\"privvmpages\","
                   "unit=\"pages\"} +Inf"),
            std::string::npos);
  EXPECT_NE(p.find("# TYPE shmguard_beancounter_failcnt_total counter"), std::string::npos);
  EXPECT_NE(p.find("shmguard_beancounter_failcnt_total{container=\"101\",resource=\"shmpages\"} "
                   "10067"),
            std::string::npos);
  EXPECT_EQ(prom_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

// ---------------------------------------------------------------- last good readings

namespace {
// A sample at `at_ms`: the field report's beancounters, or a failed read of them.
Snapshot bc_sample(std::int64_t at_ms, bool readable, std::uint64_t shm_held = 247122) {
  Snapshot s = readable ? with_beancounters(shm_held, 262144, 239894, 393216) : Snapshot{};
  s.page_size = 4096;
  s.taken_at_ms = at_ms;
  if (!readable)
    s.unavailable.push_back(
        {"beancounter", "malformed at line 1: empty (/proc/user_beancounters)"});
  compute_headroom(s);
  return s;
}
using Kind = LastGoodReadings::Event::Kind;
}  // namespace

TEST(LastGood, OneFailedReadKeepsTheLastGoodReadingWithinTheBound) {
  LastGoodReadings held;
  Snapshot a = bc_sample(10000, true);
  EXPECT_TRUE(held.apply(a, 1500).empty());
  ASSERT_TRUE(a.headroom_bytes);
  const std::uint64_t good = *a.headroom_bytes;

  Snapshot b = bc_sample(10500, false);
  ASSERT_FALSE(b.headroom_bytes);  // what the probe alone says: no finite limit
  auto ev = held.apply(b, 1500);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, Kind::Held);
  EXPECT_EQ(ev[0].source, "beancounter");
  EXPECT_EQ(ev[0].age_ms, 500);
  ASSERT_TRUE(b.headroom_bytes) << "a failed read must not mean 'no limit'";
  EXPECT_EQ(*b.headroom_bytes, good);
  EXPECT_EQ(b.binding, "beancounter:shmpages");
  ASSERT_EQ(b.unavailable.size(), 1u);  // still listed: the read failed
  EXPECT_NE(b.unavailable[0].reason.find("last good reading, 500 ms old"), std::string::npos)
      << b.unavailable[0].reason;

  // Still failing, still inside the bound: held, and no second event.
  Snapshot c = bc_sample(11500, false);
  EXPECT_TRUE(held.apply(c, 1500).empty());
  ASSERT_TRUE(c.headroom_bytes);
  EXPECT_EQ(*c.headroom_bytes, good);
}

TEST(LastGood, PastTheBoundTheReadingIsDroppedOnceAndTheSourceStaysUnavailable) {
  LastGoodReadings held;
  Snapshot a = bc_sample(10000, true);
  held.apply(a, 1500);
  Snapshot b = bc_sample(10500, false);
  held.apply(b, 1500);
  Snapshot c = bc_sample(11600, false);
  auto ev = held.apply(c, 1500);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, Kind::Expired);
  EXPECT_EQ(ev[0].age_ms, 1600);
  EXPECT_FALSE(c.headroom_bytes);
  EXPECT_FALSE(c.beancounters);
  ASSERT_EQ(c.unavailable.size(), 1u);
  EXPECT_NE(c.unavailable[0].reason.find("too old"), std::string::npos);
  Snapshot d = bc_sample(12000, false);
  EXPECT_TRUE(held.apply(d, 1500).empty());  // given up once, not every sample
  EXPECT_FALSE(d.headroom_bytes);
  EXPECT_NE(d.unavailable[0].reason.find("too old"), std::string::npos);

  // Readable again: one Back event, the new reading used (and kept from now on).
  Snapshot e = bc_sample(13000, true, 200000);
  ev = held.apply(e, 1500);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, Kind::Back);
  EXPECT_EQ(ev[0].age_ms, 2500);
  ASSERT_TRUE(e.headroom_bytes);
  EXPECT_EQ(*e.headroom_bytes, (262144u - 200000u) * 4096u);
  Snapshot f = bc_sample(13500, false);
  held.apply(f, 1500);
  ASSERT_TRUE(f.headroom_bytes);
  EXPECT_EQ(*f.headroom_bytes, (262144u - 200000u) * 4096u);
}

TEST(LastGood, NeverReadMeansUnavailableAndAClockSteppedBackIsNotTrusted) {
  LastGoodReadings held;
  Snapshot a = bc_sample(10000, false);
  auto ev = held.apply(a, 1500);
  EXPECT_TRUE(ev.empty());  // nothing to hold: unavailable from the start, as before
  EXPECT_FALSE(a.headroom_bytes);

  LastGoodReadings h2;
  Snapshot b = bc_sample(10000, true);
  h2.apply(b, 1500);
  Snapshot c = bc_sample(9000, false);  // the wall clock went back a second
  ev = h2.apply(c, 1500);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, Kind::Expired);
  EXPECT_FALSE(c.headroom_bytes);
}

TEST(LastGood, EachSourceIsHeldOnItsOwn) {
  LastGoodReadings held;
  Snapshot a = bc_sample(10000, true);
  CgroupMemory cg;
  cg.version = 2;
  cg.limit = 1u << 30;
  cg.usage = 1u << 29;
  cg.levels.push_back({"/sys/fs/cgroup/x", cg.limit, cg.usage});
  a.cgroup = cg;
  compute_headroom(a);
  held.apply(a, 1500);
  // The cgroup fails, the beancounters read well (and changed): only the cgroup is held.
  Snapshot b = bc_sample(10500, true, 100000);
  b.unavailable.push_back({"cgroup", "missing: /sys/fs/cgroup/x/memory.max"});
  auto ev = held.apply(b, 1500);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].source, "cgroup");
  ASSERT_TRUE(b.cgroup);
  EXPECT_EQ(b.limits.size(), 3u);  // shmpages, privvmpages, the held cgroup
  EXPECT_EQ(b.beancounters->block.find("shmpages")->held, 100000u);
}

// ---------------------------------------------------------------- memory cgroups (issue 17)

namespace {
Snapshot cgroup_tree(const std::string& tree) {
  const std::string t = shmguard_test::fixtures() + "/trees/" + tree;
  Snapshot s;
  auto cg = read_cgroup(t + "/proc", t + "/sys", {});
  EXPECT_TRUE(cg) << cg.error;
  if (cg) s.cgroup = *cg.value;
  compute_headroom(s);
  return s;
}
}  // namespace

// Real v1 files: web1 (768 MiB) with its page cache full, under hosting (1 GiB) whose other child
// holds 300 MiB anon. limit - usage said 1.8 MiB ("refusing"); what the kernel can still charge is
// limit - (usage - clean file cache), and here the parent, with its own cache, binds.
TEST(Headroom, CgroupV1CacheFullCountsCleanCachePerLevel) {
  Snapshot s = cgroup_tree("cgroup1-cache-full");
  ASSERT_EQ(s.limits.size(), 1u);
  const Limit& l = s.limits[0];
  EXPECT_EQ(s.binding, "cgroup:memory");
  const std::uint64_t usage = 1071894528, reclaimable = 473968640ULL + 104919040 - 8396800;
  EXPECT_EQ(l.limit_bytes, 1ULL << 30);
  EXPECT_EQ(l.reclaimable_bytes, reclaimable);
  EXPECT_EQ(l.used_bytes, usage - reclaimable);
  EXPECT_EQ(*s.headroom_bytes, (1ULL << 30) - (usage - reclaimable));  // 545.8 MiB
  EXPECT_GT(*s.headroom_bytes, 500ULL << 20);
  // web1's own figure, 768 MiB - (641941504 - 465608704) = 599.8 MiB, is looser. Had the parent
  // been judged with web1's cache, it would read 445.8 MiB.
  const CgroupLevel& web1 = s.cgroup->levels[0];
  EXPECT_EQ((768ULL << 20) - (*web1.usage - *cgroup_reclaimable(web1)), 628973568u);
  EXPECT_LT(*s.headroom_bytes, 628973568u);
}

// The same state on v2 (real key set, values from the v1 capture's shape): the own level binds.
TEST(Headroom, CgroupV2CacheFullOwnLevelBinds) {
  Snapshot s = cgroup_tree("cgroup2-cache-full");
  ASSERT_EQ(s.limits.size(), 1u);
  EXPECT_EQ(s.limits[0].limit_bytes, 768ULL << 20);
  EXPECT_EQ(s.limits[0].reclaimable_bytes, 583ULL << 20);   // 508 + 80 - 4 - 1
  EXPECT_EQ(s.limits[0].used_bytes, (764ULL - 583) << 20);  // anon, shmem, kernel
  EXPECT_EQ(*s.headroom_bytes, (768ULL - 181) << 20);       // parent: 1024 - 385 = 639 MiB
}

TEST(Headroom, CgroupLevelWithoutStatCountsNothingReclaimable) {
  Snapshot s;
  CgroupMemory c = cgroup(768ULL << 20, 700ULL << 20);
  c.levels[0].inactive_file = 600ULL << 20;
  c.levels.push_back(CgroupLevel{"/sys/fs/cgroup", 1ULL << 30, 1000ULL << 20});  // no stat read
  s.cgroup = c;
  compute_headroom(s);
  // own: 768 - (700 - 600) = 668 MiB; parent: 1024 - 1000 = 24 MiB (nothing known reclaimable).
  EXPECT_EQ(*s.headroom_bytes, 24ULL << 20);
  EXPECT_FALSE(s.limits[0].reclaimable_bytes);
}

TEST(Counters, OnlyRefusalsAndOomKillsAreFailures) {
  EXPECT_TRUE(counter_is_failure("beancounter:shmpages:failcnt"));
  EXPECT_TRUE(counter_is_failure("beancounter:numproc:failcnt"));
  EXPECT_TRUE(counter_is_failure("cgroup:oom_kill"));
  EXPECT_TRUE(counter_is_failure("cgroup:oom"));
  EXPECT_FALSE(counter_is_failure("cgroup:failcnt"));  // v1: every reclaim at the limit
  EXPECT_FALSE(counter_is_failure("cgroup:max"));      // v2: likewise
  // v1's OOM kills (memory.oom_control) are the cgroup:oom_kill counter too.
  Snapshot s = cgroup_tree("cgroup1-cache-full");
  std::vector<Counter> c = raw_counters(s);
  auto has = [&](const char* n, std::uint64_t v) {
    for (const auto& k : c)
      if (k.name == n) return k.value == v;
    return false;
  };
  EXPECT_TRUE(has("cgroup:failcnt", 77));
  EXPECT_TRUE(has("cgroup:oom_kill", 1));
}
