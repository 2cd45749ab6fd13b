// The advisor: findings only when they hold, with the right numbers.
#include <gtest/gtest.h>

#include "shmguard/advisor.hpp"
#include "shmguard/model.hpp"

using namespace shmguard;

namespace {

constexpr std::uint64_t MiB = 1ull << 20;

Segment seg(std::uint64_t inode, std::uint64_t size, const char* kind = "anon-shared") {
  Segment s;
  s.dev_major = 0;
  s.dev_minor = 1;
  s.inode = inode;
  s.size = size;
  s.kind = kind;
  return s;
}

WorkerRow cgi(int pid, std::vector<Segment> segs) {
  WorkerRow w;
  w.pid = pid;
  w.backend = "mod_fcgid";
  w.kind = "php-cgi";
  w.vhost_id = 1;
  w.command = "/usr/bin/php-cgi";
  w.segments = std::move(segs);
  return w;
}

WorkerRow fpm(int pid, std::vector<Segment> segs, bool master = false) {
  WorkerRow w;
  w.pid = pid;
  w.backend = "php-fpm";
  w.kind = master ? "php-fpm master" : "php-fpm pool www";
  w.segments = std::move(segs);
  return w;
}

Snapshot bounded(std::uint64_t headroom) {
  Snapshot s;
  s.limits.push_back(Limit{"beancounter:shmpages", 1024 * MiB, 1024 * MiB - headroom});
  s.headroom_bytes = headroom;
  s.binding = "beancounter:shmpages";
  return s;
}

const Finding* find(const std::vector<Finding>& fs, const std::string& id) {
  for (const auto& f : fs)
    if (f.id == id) return &f;
  return nullptr;
}

std::uint64_t number(const Finding& f, const std::string& k) {
  for (const auto& [key, v] : f.numbers)
    if (key == k) return v;
  ADD_FAILURE() << "no number " << k;
  return 0;
}

}  // namespace

TEST(Advisor, CompactBytes) {
  EXPECT_EQ(compact_bytes(64 * MiB), "64 MiB");
  EXPECT_EQ(compact_bytes(704 * MiB), "704 MiB");
  EXPECT_EQ(compact_bytes(1536 * MiB), "1.5 GiB");
  EXPECT_EQ(compact_bytes(1024 * MiB), "1 GiB");
  EXPECT_EQ(compact_bytes(512), "512 B");
}

TEST(Advisor, SegmentUsesByDeviceAndInode) {
  std::vector<WorkerRow> ws = {cgi(10, {seg(1, 64 * MiB)}), cgi(11, {seg(2, 64 * MiB)}),
                               fpm(20, {seg(3, 64 * MiB), seg(4, 4096)}, true),
                               fpm(21, {seg(3, 64 * MiB), seg(4, 4096)})};
  auto uses = segment_uses(ws);
  ASSERT_EQ(uses.size(), 4u);
  EXPECT_EQ(uses[0].pids, std::vector<int>({10}));
  EXPECT_FALSE(uses[0].shared());
  EXPECT_EQ(uses[2].pids, std::vector<int>({20, 21}));
  EXPECT_TRUE(uses[2].shared());
  // same inode on another device is another segment
  Segment other = seg(1, 64 * MiB);
  other.dev_minor = 5;
  ws.push_back(cgi(12, {other}));
  EXPECT_EQ(segment_uses(ws).size(), 5u);
}

TEST(Advisor, FieldReportElevenPhpCgiWorkers) {
  std::vector<WorkerRow> ws;
  for (int i = 0; i < 11; ++i) ws.push_back(cgi(100 + i, {seg(1000 + i, 64 * MiB)}));
  auto fs = advise(bounded(20 * MiB), ws);
  const Finding* f = find(fs, "fcgid-private-opcache");
  ASSERT_NE(f, nullptr);
  EXPECT_NE(f->text.find("11 php-cgi workers hold 11 separate OPcache segments of 64 MiB (704 "
                         "MiB); under PHP-FPM they would share one: 640 MiB less"),
            std::string::npos)
      << f->text;
  EXPECT_EQ(number(*f, "saving_bytes"), 640 * MiB);
  EXPECT_EQ(number(*f, "total_bytes"), 704 * MiB);
  // What the pool would need (issue 21 item 4): one segment against today's headroom plus what
  // the workers free, and its children's private pages (privvmpages, not shmpages).
  EXPECT_NE(f->text.find("A pool of 11 children needs one segment of 64 MiB against today's "
                         "headroom of 20 MiB plus the 704 MiB these workers free (it fits), and "
                         "11 children's private pages, which a fork charges to privvmpages"),
            std::string::npos)
      << f->text;
  EXPECT_EQ(f->severity, "warning");
  // 20 MiB of headroom: not one more worker of 64 MiB
  const Finding* h = find(fs, "headroom-workers");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->severity, "critical");
  EXPECT_EQ(number(*h, "more_workers"), 0u);
  EXPECT_NE(h->text.find("Headroom 20 MiB (bound by beancounter:shmpages) is less than the 64 MiB"),
            std::string::npos)
      << h->text;
}

TEST(Advisor, MixedSizesAndSmallMappingsIgnored) {
  // 40 and 64 MiB caches; a 4 KiB shared mapping beside each is not a cache
  std::vector<WorkerRow> ws = {cgi(1, {seg(1, 40 * MiB), seg(11, 4096)}),
                               cgi(2, {seg(2, 64 * MiB), seg(12, 4096)}),
                               cgi(3, {seg(3, 64 * MiB)})};
  auto fs = advise(bounded(1024 * MiB), ws);
  const Finding* f = find(fs, "fcgid-private-opcache");
  ASSERT_NE(f, nullptr);
  EXPECT_NE(f->text.find("3 php-cgi workers hold 3 separate OPcache segments of 40 MiB to 64 MiB "
                         "(168 MiB); under PHP-FPM they would share one: 104 MiB less"),
            std::string::npos)
      << f->text;
}

TEST(Advisor, NoPhpFpmFindingWhenItDoesNotHold) {
  // one worker: nothing to share
  EXPECT_EQ(find(advise(bounded(MiB), {cgi(1, {seg(1, 64 * MiB)})}), "fcgid-private-opcache"),
            nullptr);
  // php-cgi with PHP_FCGI_CHILDREN: the children share their parent's segment
  std::vector<WorkerRow> kids = {cgi(1, {seg(7, 64 * MiB)}), cgi(2, {seg(7, 64 * MiB)}),
                                 cgi(3, {seg(7, 64 * MiB)})};
  auto fs = advise(bounded(512 * MiB), kids);
  EXPECT_EQ(find(fs, "fcgid-private-opcache"), nullptr);
  EXPECT_EQ(find(fs, "headroom-workers"), nullptr);  // no worker allocates its own
  // PHP-FPM: one shared segment, the finding that says so instead
  std::vector<WorkerRow> pool = {fpm(20, {seg(3, 64 * MiB), seg(4, 4096)}, true),
                                 fpm(21, {seg(3, 64 * MiB), seg(4, 4096)}),
                                 fpm(22, {seg(3, 64 * MiB), seg(4, 4096)})};
  fs = advise(bounded(512 * MiB), pool);
  EXPECT_EQ(find(fs, "fcgid-private-opcache"), nullptr);
  ASSERT_EQ(fs.size(), 1u);
  EXPECT_EQ(fs[0].id, "fpm-shared-opcache");
  EXPECT_EQ(fs[0].text,
            "3 php-fpm processes share one OPcache segment of 64 MiB: a new PHP-FPM worker needs "
            "no new shared memory. Measured: as php-cgi workers under mod_fcgid its 2 children "
            "would map 128 MiB; shared, 64 MiB: 64 MiB saved.");
  EXPECT_EQ(number(fs[0], "children"), 2u);
  EXPECT_EQ(number(fs[0], "saving_bytes"), 64 * MiB);
  // no workers, ample headroom: nothing at all
  EXPECT_TRUE(advise(bounded(512 * MiB), {}).empty());
}

TEST(Advisor, HeadroomAllowsMoreWorkers) {
  std::vector<WorkerRow> ws = {cgi(1, {seg(1, 64 * MiB)}), cgi(2, {seg(2, 64 * MiB)})};
  auto fs = advise(bounded(200 * MiB), ws);
  const Finding* h = find(fs, "headroom-workers");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(number(*h, "more_workers"), 3u);
  EXPECT_EQ(h->severity, "info");
  EXPECT_NE(h->text.find("allows 3 more php-cgi workers of 64 MiB; with the 2 running, keep "
                         "FcgidMaxProcesses at or below 5"),
            std::string::npos)
      << h->text;
  EXPECT_EQ(find(advise(bounded(100 * MiB), ws), "headroom-workers")->severity, "warning");
}

TEST(Advisor, FailureCounters) {
  Snapshot s = bounded(MiB);
  s.counters.push_back(Counter{"beancounter:shmpages:failcnt", 10067, 10, 10});
  s.counters.push_back(Counter{"beancounter:privvmpages:failcnt", 161, 0, 0});
  s.counters.push_back(Counter{"cgroup:oom_kill", 3, 2, 0});
  auto fs = advise(s, {});
  ASSERT_EQ(fs.size(), 2u);
  EXPECT_EQ(fs[0].id, "failcnt-rose");
  EXPECT_EQ(fs[0].severity, "critical");
  EXPECT_EQ(fs[0].text.rfind("beancounter shmpages failcnt rose by 10 in the last minute (now "
                             "10067)",
                             0),
            0u)
      << fs[0].text;
  EXPECT_EQ(fs[1].id, "failcnt-rose-earlier");
  EXPECT_EQ(
      fs[1].text,
      "cgroup memory oom_kill events rose by 2 since the sampler started (now 3), none in the "
      "last minute.");
}

// v1's failcnt and v2's "max" rise on every reclaim of a full page cache: no finding of a failure.
TEST(Advisor, CgroupReclaimCountersAreNoFailure) {
  Snapshot s = bounded(500 * MiB);
  s.counters.push_back(Counter{"cgroup:failcnt", 22106, 22000, 472});
  s.counters.push_back(Counter{"cgroup:max", 900, 800, 300});
  for (const auto& f : advise(s, {})) {
    EXPECT_NE(f.id, "failcnt-rose") << f.text;
    EXPECT_NE(f.id, "failcnt-rose-earlier") << f.text;
  }
  s.counters.push_back(Counter{"cgroup:oom_kill", 1, 1, 1});
  auto fs = advise(s, {});
  const Finding* f = find(fs, "failcnt-rose");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->text,
            "cgroup memory oom_kill events rose by 1 in the last minute (now 1): the memory "
            "cgroup's OOM killer killed that many processes.");
}

TEST(Advisor, Unbounded) {
  Snapshot s;  // no finite limit
  auto fs = advise(s, {cgi(1, {seg(1, 64 * MiB)}), cgi(2, {seg(2, 64 * MiB)})});
  EXPECT_NE(find(fs, "no-finite-limit"), nullptr);
  EXPECT_EQ(find(fs, "headroom-workers"), nullptr);
  EXPECT_NE(find(fs, "fcgid-private-opcache"), nullptr);  // still true: it is about sharing
}

TEST(Advisor, SegmentSharingPerWorkerSegment) {
  // Workers out of pid order, a pid listed twice, a segment mapped twice by one worker, sizes that
  // differ between workers (the largest is kept), and the first sighting's kind.
  std::vector<WorkerRow> ws = {cgi(30, {seg(5, 8 * MiB), seg(1, 64 * MiB)}),
                               cgi(10, {seg(1, 32 * MiB, "sysv"), seg(2, MiB)}),
                               fpm(20, {seg(5, 16 * MiB), seg(5, 16 * MiB)}),
                               cgi(10, {seg(1, 64 * MiB)}), cgi(40, {})};
  SegmentSharing sh = segment_sharing(ws);
  ASSERT_EQ(sh.uses.size(), 3u);
  EXPECT_EQ(sh.uses[0].seg.inode, 5u);  // first-seen order
  EXPECT_EQ(sh.uses[1].seg.inode, 1u);
  EXPECT_EQ(sh.uses[2].seg.inode, 2u);
  EXPECT_EQ(sh.uses[0].seg.size, 16 * MiB);
  EXPECT_EQ(sh.uses[1].seg.kind, "anon-shared");
  EXPECT_EQ(sh.uses[0].pids, std::vector<int>({20, 30}));
  EXPECT_EQ(sh.uses[1].pids, std::vector<int>({10, 30}));
  EXPECT_EQ(sh.uses[2].pids, std::vector<int>({10}));
  ASSERT_EQ(sh.first, std::vector<std::uint32_t>({0, 2, 4, 6, 7, 7}));
  EXPECT_EQ(sh.users(0, 0), 2u);
  EXPECT_EQ(sh.users(0, 1), 2u);
  EXPECT_EQ(sh.users(1, 1), 1u);
  EXPECT_EQ(sh.use(2, 1).seg.inode, 5u);
  EXPECT_EQ(sh.use(3, 0).seg.inode, 1u);
  // segment_uses() is the same list
  auto uses = segment_uses(ws);
  ASSERT_EQ(uses.size(), sh.uses.size());
  for (std::size_t i = 0; i < uses.size(); ++i) {
    EXPECT_EQ(uses[i].seg, sh.uses[i].seg);
    EXPECT_EQ(uses[i].seg.size, sh.uses[i].seg.size);
    EXPECT_EQ(uses[i].pids, sh.uses[i].pids);
  }
  EXPECT_TRUE(segment_sharing({}).uses.empty());
}

TEST(Advisor, ThousandsOfWorkersSameFindings) {
  // 3000 php-cgi workers with their own 64 MiB segment each, 600 php-fpm processes sharing one:
  // the same findings through either entry point, with the right counts.
  std::vector<WorkerRow> ws;
  for (int i = 0; i < 3000; ++i) ws.push_back(cgi(100000 - i, {seg(10 + i, 64 * MiB)}));
  for (int i = 0; i < 600; ++i) ws.push_back(fpm(200000 + (i * 7919) % 600, {seg(5, 64 * MiB)}));
  auto a = advise(bounded(1024 * MiB), ws);
  auto b = advise(bounded(1024 * MiB), ws, segment_sharing(ws));
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].id, b[i].id);
    EXPECT_EQ(a[i].text, b[i].text);
    EXPECT_EQ(a[i].numbers, b[i].numbers);
  }
  const Finding* f = find(a, "fcgid-private-opcache");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(number(*f, "workers"), 3000u);
  const Finding* p = find(a, "fpm-shared-opcache");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(number(*p, "processes"), 600u);
}

TEST(Advisor, MoreWorkersCountsOpcacheAndApcu) {
  // Each php-cgi maps its own OPcache (64 MiB) and APCu (32 MiB): a new one needs 96 MiB.
  std::vector<WorkerRow> ws = {cgi(1, {seg(1, 64 * MiB), seg(2, 32 * MiB)}),
                               cgi(2, {seg(3, 64 * MiB), seg(4, 32 * MiB)})};
  auto fs = advise(bounded(200 * MiB), ws);
  const Finding* h = find(fs, "headroom-workers");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(number(*h, "worker_segment_bytes"), 96 * MiB);
  EXPECT_EQ(number(*h, "more_workers"), 2u) << h->text;  // not 3 (200 / 64)
}

// PSI (v2 memory.pressure): full avg10 at or above kPsiThrashingFullAvg10 is the "memory-pressure"
// warning, and only a warning: the model's headroom and binding are the same with or without it
// (pressure is never a refusal rule).
TEST(Advisor, MemoryPressureIsAWarningNeverARefusal) {
  auto snap = [](std::optional<Psi> psi) {
    Snapshot s;
    CgroupMemory c;
    c.version = 2;
    c.dir = "/sys/fs/cgroup/web";
    c.limit = 768 * MiB;
    c.usage = 100 * MiB;
    c.levels.push_back(CgroupLevel{c.dir, c.limit, c.usage});
    c.pressure = psi;
    s.cgroup = c;
    compute_headroom(s);
    return s;
  };
  const Snapshot calm = snap(std::nullopt);
  const Snapshot thrashing = snap(Psi{PsiLine{4512, 3000, 900, 77}, PsiLine{2345, 1500, 400, 9}});
  ASSERT_TRUE(calm.headroom_bytes);
  EXPECT_EQ(thrashing.headroom_bytes, calm.headroom_bytes);
  EXPECT_EQ(thrashing.binding, calm.binding);

  auto fs = advise(thrashing, {});
  const Finding* f = find(fs, "memory-pressure");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->severity, "warning");
  EXPECT_EQ(f->text.rfind("The memory cgroup /sys/fs/cgroup/web is thrashing: all its tasks were "
                          "stalled on memory 23.45 % of the last 10 s (PSI full avg10; some "
                          "45.12 %, full avg60 15.00 %).",
                          0),
            0u)
      << f->text;
  EXPECT_NE(f->text.find("mod_shmguard does not refuse on pressure"), std::string::npos);
  EXPECT_EQ(number(*f, "full_avg10_hundredths"), 2345u);
  EXPECT_EQ(number(*f, "some_avg10_hundredths"), 4512u);
  for (const auto& x : fs) EXPECT_NE(x.severity, "critical") << x.text;

  // At the threshold: warned; just below, or "some" high without "full", or no pressure: not.
  EXPECT_NE(find(advise(snap(Psi{PsiLine{}, PsiLine{kPsiThrashingFullAvg10, 0, 0, 0}}), {}),
                 "memory-pressure"),
            nullptr);
  EXPECT_EQ(find(advise(snap(Psi{PsiLine{}, PsiLine{kPsiThrashingFullAvg10 - 1, 0, 0, 0}}), {}),
                 "memory-pressure"),
            nullptr);
  EXPECT_EQ(
      find(advise(snap(Psi{PsiLine{10000, 10000, 10000, 1}, std::nullopt}), {}), "memory-pressure"),
      nullptr);
  EXPECT_EQ(find(advise(calm, {}), "memory-pressure"), nullptr);
}

// ---------------------------------------------------------------- bounds (issue 20 item 3)

namespace {
std::uint64_t num(const Finding& f, const std::string& key) {
  for (const auto& [k, v] : f.numbers)
    if (k == key) return v;
  ADD_FAILURE() << f.id << " has no number " << key;
  return 0;
}
}  // namespace

TEST(Advisor, FpmSharingFindingsAreBoundedAndTheRestSummed) {
  // The case: two processes named php-fpm sharing 30 000 1-MiB memfds gave 30 001
  // findings. Now the 4 largest, and one for the rest.
  std::vector<Segment> segs;
  for (std::uint64_t i = 0; i < 30000; ++i) segs.push_back(seg(1000 + i, MiB, "memfd"));
  segs.push_back(seg(7, 64 * MiB));
  const std::vector<WorkerRow> ws = {fpm(10, segs), fpm(11, segs)};
  const auto fs = advise(Snapshot{}, ws);
  EXPECT_LE(fs.size(), kMaxFindings);
  std::size_t each = 0;
  const Finding* more = nullptr;
  for (const auto& f : fs) {
    if (f.id == "fpm-shared-opcache") ++each;
    if (f.id == "fpm-shared-more") more = &f;
  }
  EXPECT_EQ(each, kMaxFpmShareFindings);
  ASSERT_NE(more, nullptr);
  EXPECT_EQ(fs[0].id, "fpm-shared-opcache");
  EXPECT_NE(fs[0].text.find("64 MiB"), std::string::npos) << fs[0].text;  // the largest first
  EXPECT_EQ(num(*more, "segments"), 30001u - kMaxFpmShareFindings);
  EXPECT_EQ(num(*more, "total_bytes"), (30001u - kMaxFpmShareFindings) * MiB);
  EXPECT_EQ(num(*more, "processes_max"), 2u);
}

TEST(Advisor, AtMostMaxFindingsTheMostSevereKept) {
  Snapshot snap;
  for (int i = 0; i < 50; ++i) {
    Counter c;
    c.name = "beancounter:r" + std::to_string(i) + ":failcnt";
    c.value = 5;
    c.since_start = 5;               // warnings ("rose earlier")
    if (i == 49) c.last_minute = 1;  // the one critical comes last
    snap.counters.push_back(c);
  }
  const auto fs = advise(snap, {});
  ASSERT_EQ(fs.size(), kMaxFindings);
  EXPECT_EQ(fs[0].severity, "critical");
  EXPECT_EQ(fs.back().id, "findings-left-out");
  EXPECT_EQ(num(fs.back(), "findings"), 51u - (kMaxFindings - 1));  // + no-finite-limit
}
