// The status model and its writers: the sampler part's encoding, vhost names, escaping, formats.
#include <gtest/gtest.h>

#include <cstring>

#include <map>
#include <set>
#include <sstream>

#include <random>

#include "core/fastwrite.hpp"
#include "shmguard/json.hpp"
#include "shmguard/refusal.hpp"
#include "shmguard/render.hpp"
#include "shmguard/chart.hpp"
#include "shmguard/status.hpp"
#include "shmguard/units.hpp"

using namespace shmguard;

namespace {

constexpr std::uint64_t MiB = 1ull << 20;

Snapshot snapshot() {
  Snapshot s;
  s.taken_at_ms = 1795000000123;
  s.page_size = 4096;
  Beancounters bc;
  bc.file = "/proc/user_beancounters";
  bc.version = "2.5";
  bc.block.id = "101";
  for (auto [res, held, barrier, fail] :
       {std::tuple<const char*, std::uint64_t, std::uint64_t, std::uint64_t>{"shmpages", 247122,
                                                                             262144, 10067},
        {"privvmpages", 239894, 393216, 161},
        {"dummy", 0, 0, 0},
        {"dummy", 0, 0, 0}}) {
    BeancounterRow r;
    r.resource = res;
    r.held = r.maxheld = held;
    r.barrier = r.limit = barrier;
    r.failcnt = fail;
    r.unit = beancounter_unit(res);
    bc.block.rows.push_back(r);
  }
  s.beancounters = bc;
  s.unavailable.push_back({"cgroup", "no memory controller <here>"});
  compute_headroom(s);
  s.counters = raw_counters(s);
  for (auto& c : s.counters)
    if (c.name == "beancounter:shmpages:failcnt") c.last_minute = c.since_start = 10;
  return s;
}

WorkerRow worker(int pid, std::uint64_t inode, std::string command, int vhost_id = 1) {
  WorkerRow w;
  w.pid = pid;
  w.backend = "mod_fcgid";
  w.kind = "php-cgi";
  w.state = "idle";
  w.vhost_id = vhost_id;
  w.klass = "/usr/local/bin/wrap";
  w.command = std::move(command);
  w.uptime_s = 3725;
  w.rss_shmem = 2 * MiB;
  Segment s;
  s.dev_minor = 1;
  s.inode = inode;
  s.size = 64 * MiB;
  s.kind = "anon-shared";
  w.segments.push_back(s);
  return w;
}

VhostStatus vhost(std::string label, int fcgid_id) {
  VhostStatus v;
  v.label = std::move(label);
  v.server_name = v.label;
  v.fcgid_vhost_id = fcgid_id;
  v.guard = true;
  v.action = "refuse";
  v.reserve.bytes = 32 * MiB;
  v.reserve.source = "ShmGuardReserve 32.0 MiB";
  return v;
}

// A view of `part` with two vhosts: mod_fcgid ids 1 ("a.example:80") and 2 ("<b>:81").
StatusModel view(std::optional<SamplerPart> part) {
  StatusModel m;
  m.now_ms = 1795000001000;
  m.sampler.pid = 42;
  m.sampler.interval_ms = 500;
  m.sampler.sampled_ms = 1795000000123;
  m.sampler.age_ms = 877;
  m.sampler.bound_ms = 2000;
  m.sampler.samples = 7;
  m.sampler.starts = 1;
  m.sampler.fresh = true;
  m.vhosts = {vhost("a.example:80", 1), vhost("<b>:81", 2)};
  HotValues hot;
  if (part && part->snap.headroom_bytes) {
    hot.headroom = static_cast<std::int64_t>(*part->snap.headroom_bytes);
    hot.binding = part->snap.binding;
  }
  m.part = std::move(part);
  m.headline = decide_headline(m.sampler, hot, m.vhosts, m.part ? &*m.part : nullptr);
  return m;
}

StatusModel view(const Snapshot& snap, const std::vector<WorkerRow>& ws,
                 const StatusOptions& opts = StatusOptions{}) {
  return view(make_sampler_part(snap, ws, opts));
}

std::size_t count(const std::string& hay, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1))
    ++n;
  return n;
}

// Every writer's output for a model, for comparing two models that must write the same.
std::string all_formats(const StatusModel& m) {
  return write_status_html(m, 5) + write_status_auto(m) + write_status_json(m) +
         write_status_prometheus(m) + write_mod_status_auto(m) + write_mod_status_html(m);
}

// A snapshot with every source present (for the encoding: every field must come back).
Snapshot full_snapshot() {
  Snapshot s = snapshot();
  s.beancounters->lenient = true;
  s.beancounters->format_notes = {"no 'Version:' line", "two <spaces>"};
  s.beancounters->blocks_in_file = 3;
  s.beancounters->version_known = false;
  CgroupMemory c;
  c.version = 2;
  c.dir = "/sys/fs/cgroup/web";
  c.limit = 512 * MiB;
  c.usage = 100 * MiB;
  c.shmem = 10 * MiB;
  c.anon = 3;
  c.events_oom_kill = 2;
  c.levels = {{"/sys/fs/cgroup/web", 512 * MiB, 100 * MiB}, {"/sys/fs/cgroup", std::nullopt, 7}};
  c.levels[0].inactive_file = 60 * MiB;  // the reclaimable cache's figures travel too
  c.levels[0].active_file = 20 * MiB;
  c.levels[0].dirty = 5;
  c.levels[0].writeback = 6;
  c.pressure = Psi{PsiLine{1234, 560, 78, 12345678}, PsiLine{506, 10099, 0, 1}};
  s.cgroup = c;
  Overcommit o;
  o.mode = 2;
  o.commit_limit = 2048 * MiB;
  o.committed_as = 1024 * MiB;
  o.mem_total = 4096 * MiB;
  s.overcommit = o;
  Sysv v;
  v.shmmax = 1ull << 40;
  v.shmall = 1ull << 30;
  v.segments = std::vector<SysvSegment>{{-1, 3, 4096, 10, 1, 33, 4096, std::nullopt},
                                        {0x1234, 4, 1 << 20, 11, 0, 0, std::nullopt, 0}};
  s.sysv = v;
  s.devshm = DevShm{"/dev/shm", 64 * MiB, 60 * MiB, 59 * MiB};
  s.unavailable.clear();
  compute_headroom(s);
  s.counters = raw_counters(s);
  for (auto& c2 : s.counters) c2.last_minute = c2.since_start = 3;
  return s;
}

}  // namespace

namespace {
// Workers that exercise every part of a row: sharing, php-fpm, errors, no segments, escapes, an
// unknown vhost and uptime.
std::vector<WorkerRow> many_workers(int n) {
  std::vector<WorkerRow> ws;
  for (int i = 0; i < n; ++i) {
    WorkerRow w =
        worker(1000 + i, 100 + i, i % 7 ? "php-cgi" : "php-cgi \"<x>\" & 'y' \x01\xff", i % 5);
    if (i % 3 == 0) {
      w.backend = "php-fpm";
      w.kind = "php-fpm pool www";
      w.segments[0].inode = 99;  // one segment shared by every php-fpm process
    }
    if (i % 4 == 0) {  // a second segment, shared by two workers
      w.segments.push_back(w.segments[0]);
      w.segments.back().inode = 5000 + i / 8;
    }
    if (i % 11 == 0) {
      w.segments.clear();
      w.error = "cannot read <maps>";
    }
    if (i % 13 == 0) w.uptime_s = -1;
    w.rss_shmem = static_cast<std::uint64_t>(i) * 1234567;
    ws.push_back(std::move(w));
  }
  return ws;
}

}  // namespace

TEST(Status, EncodeDecodeRoundTrip) {
  for (int n : {0, 1, 2, 40, 1000}) {
    SCOPED_TRACE(n);
    const SamplerPart p = make_sampler_part(full_snapshot(), many_workers(n));
    const std::string blob = encode_sampler_part(p);
    auto d = decode_sampler_part(blob);
    ASSERT_TRUE(d);
    // every field came back: the same bytes again, and every writer writes the same
    EXPECT_EQ(encode_sampler_part(*d), blob);
    EXPECT_EQ(d->workers.rows.size(), static_cast<std::size_t>(n));
    EXPECT_EQ(d->workers.totals.workers, static_cast<std::uint64_t>(n));
    EXPECT_EQ(all_formats(view(*d)), all_formats(view(p)));
    EXPECT_EQ(render_text(d->snap), render_text(p.snap));
    EXPECT_EQ(render_json(d->snap), render_json(p.snap));
    ASSERT_TRUE(d->snap.cgroup);
    EXPECT_EQ(d->snap.cgroup->levels[0].writeback, 6u);
    const Limit* cg = nullptr;
    for (const auto& l : d->snap.limits)
      if (l.name == "cgroup:memory") cg = &l;
    ASSERT_NE(cg, nullptr);
    EXPECT_EQ(cg->reclaimable_bytes, 80 * MiB - 11);
    EXPECT_EQ(cg->used_bytes, 100 * MiB - (80 * MiB - 11));
    EXPECT_EQ(render_prometheus(d->snap), render_prometheus(p.snap));
    EXPECT_EQ(d->failures_last_minute(), p.failures_last_minute());
    EXPECT_GT(d->failures_last_minute(), 0u);
  }
}

TEST(Status, DecodeRefusesAnythingButOneEncoding) {
  const std::string blob =
      encode_sampler_part(make_sampler_part(full_snapshot(), many_workers(12)));
  // truncated, extended or foreign: refused, never misread
  for (std::size_t n = 0; n < blob.size(); ++n)
    ASSERT_FALSE(decode_sampler_part(std::string_view(blob).substr(0, n))) << n;
  EXPECT_FALSE(decode_sampler_part(blob + "x"));
  EXPECT_FALSE(decode_sampler_part("SGB2" + blob.substr(4)));
  EXPECT_FALSE(decode_sampler_part(""));
  // lengths and counts larger than the input, a varint past 64 bits, a bool that is not 0/1
  EXPECT_FALSE(decode_sampler_part(std::string("SGP1") + "\xff\xff\xff\xff\xff\xff\xff\xff\x7f"));
  EXPECT_FALSE(decode_sampler_part(std::string("SGP1") + std::string(11, '\xff')));
  // an overlong varint (0 as two bytes) would decode to a value that encodes differently
  SamplerPart empty_part;
  std::string canonical = encode_sampler_part(empty_part);
  ASSERT_EQ(canonical[4], '\0');  // taken_at_ms 0
  ASSERT_TRUE(decode_sampler_part(canonical));
  EXPECT_FALSE(decode_sampler_part(canonical.substr(0, 4) + "\x80" + canonical.substr(4)));
  EXPECT_FALSE(decode_sampler_part(std::string("SGP1\x02\x80\x20\x02", 8)));
  // a row count claiming a million rows in a few bytes
  SamplerPart empty;
  std::string e = encode_sampler_part(empty);
  ASSERT_TRUE(decode_sampler_part(e));
  // any single byte changed: refused or decoded into something that encodes back to itself
  std::mt19937 rng(11);
  for (std::size_t i = 0; i < blob.size(); ++i) {
    std::string b = blob;
    b[i] = static_cast<char>(b[i] ^ static_cast<char>(1 + rng() % 255));
    auto d = decode_sampler_part(b);
    if (d) {
      EXPECT_EQ(encode_sampler_part(*d), b) << i;
      EXPECT_EQ(d->workers.first.size(), d->workers.rows.size() + 1);
    }
  }
}

TEST(Status, HistoryTravelsInThePartAndIsChecked) {
  History h;
  for (int i = 0; i < 90; ++i) {
    HistorySample smp;
    smp.headroom = (100ull + i) << 20;
    smp.binding = "beancounter:shmpages";
    smp.used = 1ull << 30;
    smp.limit = 2ull << 30;
    smp.refused_total = static_cast<std::uint64_t>(i / 10);
    h.record(i * 30000, smp);
  }
  StatusHistory sh{h.bucket_ms(), h.window(89 * 30000)};
  const SamplerPart p = make_sampler_part(full_snapshot(), many_workers(3), StatusOptions{}, sh);
  const std::string blob = encode_sampler_part(p);
  auto d = decode_sampler_part(blob);
  ASSERT_TRUE(d);
  ASSERT_TRUE(d->history);
  EXPECT_EQ(encode_sampler_part(*d), blob);
  EXPECT_EQ(render_history_html(d->history->window, d->history->bucket_ms),
            render_history_html(h, 89 * 30000));
  for (std::size_t n = 0; n < blob.size(); ++n)
    ASSERT_FALSE(decode_sampler_part(std::string_view(blob).substr(0, n))) << n;
  // A binding name as long as the bucket's field (31 bytes fit, 32 do not) or with a NUL in it.
  SamplerPart q = p;
  std::string name31(31, 'b');
  std::memcpy(q.history->window[0].binding_last.data(), name31.data(), 31);
  std::string ok = encode_sampler_part(q);
  ASSERT_TRUE(decode_sampler_part(ok));
  const std::string len31 = std::string(1, '\x1f') + name31;
  const std::size_t at = ok.find(len31);
  ASSERT_NE(at, std::string::npos);
  std::string too_long = ok;
  too_long.replace(at, len31.size(), std::string(1, '\x20') + name31 + "b");
  EXPECT_FALSE(decode_sampler_part(too_long));
  std::string with_nul = ok;
  with_nul[at + 5] = '\0';
  EXPECT_FALSE(decode_sampler_part(with_nul));
  // Only what History::window() makes: a bucket of at most a day (the chart multiplies it),
  // consecutive buckets, no more bounded samples than samples (found in review: a bucket of
  // INT64_MAX/2 ms overflowed the chart's arithmetic).
  auto refused = [&](auto change) {
    SamplerPart r = p;
    change(*r.history);
    return !decode_sampler_part(encode_sampler_part(r));
  };
  EXPECT_TRUE(refused([](StatusHistory& x) { x.bucket_ms = INT64_MAX / 2; }));
  EXPECT_TRUE(refused([](StatusHistory& x) { x.bucket_ms = 0; }));
  EXPECT_FALSE(refused([](StatusHistory& x) { x.bucket_ms = 86400000; }));
  EXPECT_TRUE(refused([](StatusHistory& x) { x.window[7].index += 2; }));
  EXPECT_TRUE(refused([](StatusHistory& x) { x.window[59].index = INT64_MIN; }));
  EXPECT_TRUE(refused([](StatusHistory& x) { x.window[3].bounded = x.window[3].samples + 1; }));
  // The same for the worker totals: private segments within all of them.
  SamplerPart t = p;
  t.workers.totals.private_segments = t.workers.totals.segments + 1;
  EXPECT_FALSE(decode_sampler_part(encode_sampler_part(t)));
  t = p;
  t.workers.totals.private_bytes = t.workers.totals.segment_bytes + 1;
  EXPECT_FALSE(decode_sampler_part(encode_sampler_part(t)));
  // No more rows than make_sampler_part() lists (small rows would decode into large ones).
  SamplerPart big;
  big.workers.rows.resize(kMaxWorkerRows);
  EXPECT_TRUE(decode_sampler_part(encode_sampler_part(big)));
  big.workers.rows.resize(kMaxWorkerRows + 1);
  EXPECT_FALSE(decode_sampler_part(encode_sampler_part(big)));
  // The probe's part has none, and the page then has no chart.
  SamplerPart none = make_sampler_part(full_snapshot(), many_workers(1));
  auto dn = decode_sampler_part(encode_sampler_part(none));
  ASSERT_TRUE(dn);
  EXPECT_FALSE(dn->history);
}

TEST(Status, SamplerPartFitsItsBoundAndSaysWhatIsLeftOut) {
  const auto ws = many_workers(400);
  const std::size_t whole = encode_sampler_part(make_sampler_part(snapshot(), ws)).size();
  for (std::size_t bound : {whole, whole - 1, whole / 2, std::size_t{4096}, std::size_t{10}}) {
    SCOPED_TRACE(bound);
    StatusOptions o;
    o.max_bytes = bound;
    const SamplerPart p = make_sampler_part(snapshot(), ws, o);
    if (bound >= 4096) {
      EXPECT_LE(encode_sampler_part(p).size(), bound);
    }
    EXPECT_EQ(p.workers.rows.size() + p.workers.not_listed, ws.size());
    EXPECT_EQ(p.workers.totals.workers, ws.size());  // the totals count every one
    if (bound == whole) {
      EXPECT_EQ(p.workers.not_listed, 0u);
    } else {
      EXPECT_GT(p.workers.not_listed, 0u);
    }
  }
}

TEST(Status, WorkersTableEscapedWithVhostNames) {
  const StatusModel m = view(snapshot(), {worker(10, 1, "php-cgi <script>alert(1)</script>"),
                                          worker(11, 2, "php-cgi", 2)});
  const std::string html = write_status_html(m);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("php-cgi &lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find("<td>a.example:80<br><small>mod_fcgid vhost id 1</small>"),
            std::string::npos);
  EXPECT_NE(html.find("<td>&lt;b&gt;:81<br><small>mod_fcgid vhost id 2</small>"),
            std::string::npos);
  EXPECT_NE(html.find("0:1 inode 1, 64.0 MiB"), std::string::npos);
  EXPECT_NE(html.find("1h 2m"), std::string::npos);  // uptime 3725 s
  EXPECT_NE(html.find("2 workers; 2 distinct segments holding 128.0 MiB (2 private"),
            std::string::npos);
  // the unavailable reason and findings are escaped too
  EXPECT_NE(html.find("no memory controller &lt;here&gt;"), std::string::npos);
  EXPECT_NE(html.find("beancounter shmpages failcnt rose by 10 in the last minute"),
            std::string::npos);
  EXPECT_NE(html.find("2 php-cgi workers hold 2 separate OPcache segments"), std::string::npos);
  EXPECT_EQ(html.find("<b>"), std::string::npos);
  // a vhost id no vhost has
  const StatusModel u = view(snapshot(), {worker(10, 1, "php-cgi", 9)});
  EXPECT_NE(write_status_html(u).find("<small>unknown</small><br><small>mod_fcgid vhost id 9"),
            std::string::npos);
  // the page's sections in order
  std::size_t at = 0;
  for (const char* id : {"findings", "limits", "vhosts", "workers", "sources", "sampler"}) {
    std::size_t next = html.find(std::string("<h2 id=\"") + id + "\">");
    ASSERT_NE(next, std::string::npos) << id;
    EXPECT_GT(next, at) << id;
    at = next;
  }
  EXPECT_NE(write_status_html(view(std::nullopt)).find("No sample from the sampler"),
            std::string::npos);
}

// Balanced braces and brackets outside strings, closed exactly at the end: one JSON value.
void expect_one_object(const std::string& j) {
  int depth = 0;
  bool in_str = false;
  for (std::size_t i = 0; i < j.size(); ++i) {
    char c = j[i];
    if (in_str) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_str = false;
      continue;
    }
    if (c == '"') in_str = true;
    if (c == '{' || c == '[') ++depth;
    if (c == '}' || c == ']') --depth;
    ASSERT_GE(depth, 0);
    if (depth == 0) {
      EXPECT_EQ(i, j.size() - 1);
    }
  }
  EXPECT_EQ(depth, 0);
}

TEST(Status, JsonWithVhostNames) {
  const StatusModel m = view(snapshot(), {worker(10, 1, "a"), worker(11, 2, "b", 7)});
  std::string j = write_status_json(m);
  ASSERT_FALSE(j.empty());
  EXPECT_EQ(j.back(), '\n');
  j.pop_back();
  EXPECT_NE(j.find("\"vhost\":\"a.example:80\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"vhost\":null"), std::string::npos);
  EXPECT_NE(j.find("\"headroom_bytes\":61530112"), std::string::npos);  // (262144-247122)*4096
  EXPECT_NE(j.find("\"binding\":\"beancounter:shmpages\""), std::string::npos);
  EXPECT_NE(j.find("\"findings\":[{\"id\":"), std::string::npos);
  EXPECT_NE(j.find("\"mapped_by\":1,\"shared\":false"), std::string::npos);
  EXPECT_NE(j.find("{\"name\":\"\\u003cb\\u003e:81\",\"server_name\":"), std::string::npos);
  expect_one_object(j);
  // the probe's JSON is the same writer: its members are the page's, byte for byte
  std::string probe = render_json(m.part->snap);
  probe = probe.substr(1, probe.size() - 3);  // without "{" and "}\n"
  EXPECT_NE(j.find("," + probe + ",\"workers\":["), std::string::npos);
  // nothing published yet: the probe's keys from the hot values, still one object
  std::string none = write_status_json(view(std::nullopt));
  none.pop_back();
  expect_one_object(none);
  EXPECT_NE(none.find("\"headroom_bytes\":null,\"binding\":null,\"sources\":[]"),
            std::string::npos);
}

std::map<std::string, std::string> auto_lines(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  std::map<std::string, std::string> kv;
  while (std::getline(in, line)) {
    auto sep = line.find(": ");
    EXPECT_NE(sep, std::string::npos) << line;
    EXPECT_EQ(line.rfind("ShmGuard", 0), 0u) << line;
    if (sep == std::string::npos) continue;
    EXPECT_TRUE(kv.emplace(line.substr(0, sep), line.substr(sep + 2)).second) << line;
  }
  return kv;
}

TEST(Status, AutoLinesAreKeyValue) {
  std::vector<WorkerRow> ws{worker(10, 1, "a")};
  StatusModel m = view(snapshot(), ws);
  m.vhosts[0].counts.refused = 3;
  m.vhosts[0].counts.last_refusal_ms = 1795000000000;
  auto kv = auto_lines(write_status_auto(m));
  EXPECT_EQ(kv["ShmGuardHeadroomBytes"], "61530112");
  EXPECT_EQ(kv["ShmGuardBinding"], "beancounter:shmpages");
  EXPECT_EQ(kv["ShmGuardFailuresLastMinute[beancounter:shmpages:failcnt]"], "10");
  EXPECT_EQ(kv["ShmGuardWorkers"], "1");
  EXPECT_EQ(kv["ShmGuardUnavailable[cgroup]"], "no memory controller <here>");
  EXPECT_EQ(kv.count("ShmGuardFailures[beancounter:dummy:failcnt]"), 0u);  // never rose
  EXPECT_EQ(kv["ShmGuardState"], "warning");
  EXPECT_EQ(kv["ShmGuardSamplerPid"], "42");
  EXPECT_EQ(kv["ShmGuardSampleAgeMs"], "877");
  EXPECT_EQ(kv["ShmGuardVhostRefused[a.example:80]"], "3");
  EXPECT_EQ(kv["ShmGuardVhostLastRefusal[a.example:80]"], "2026-11-18T11:06:40Z");
  EXPECT_EQ(kv["ShmGuardVhostLastRefusal[<b>:81]"], "never");
  // nothing published: the hot values
  auto none = auto_lines(write_status_auto(view(std::nullopt)));
  EXPECT_EQ(none["ShmGuardHeadroomBytes"], "unbounded");
  EXPECT_EQ(none["ShmGuardBinding"], "none");
  EXPECT_EQ(none.count("ShmGuardWorkers"), 0u);
  // the mod_status section: the same line writer, its own keys in its order
  const std::string ms = write_mod_status_auto(m);
  EXPECT_EQ(ms.rfind("ShmGuardState: warning\nShmGuardHeadroomBytes: 61530112\n"
                     "ShmGuardBinding: beancounter:shmpages\nShmGuardFailingOpen: 0\n"
                     "ShmGuardSampleAgeMs: 877\nShmGuardGuarded: 0\nShmGuardRefused: 3\n",
                     0),
            0u)
      << ms;
  auto mkv = auto_lines(ms);
  EXPECT_EQ(mkv.size(), 10u);
  EXPECT_EQ(mkv["ShmGuardFindingsCritical"], std::to_string(m.part->findings_with("critical")));
}

TEST(Status, MetricsFamiliesOnceEach) {
  const StatusModel m = view(snapshot(), {worker(10, 1, "a"), worker(11, 1, "b")});
  const std::string metrics = write_status_prometheus(m);
  std::istringstream in(metrics);
  std::string line;
  std::set<std::string> types;
  std::string current;
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream l(line.substr(7));
      std::string name, type;
      l >> name >> type;
      EXPECT_TRUE(types.insert(name).second) << "repeated family " << name;
      EXPECT_EQ(type == "counter", name.size() > 6 && name.substr(name.size() - 6) == "_total")
          << name;
      current = name;
    } else if (!line.empty() && line[0] != '#') {
      EXPECT_EQ(line.rfind(current, 0), 0u) << line;
    }
  }
  EXPECT_NE(metrics.find("shmguard_fastcgi_segments{sharing=\"shared\"} 1\n"), std::string::npos);
  EXPECT_NE(metrics.find("shmguard_sample_timestamp_seconds 1795000000.123\n"), std::string::npos);
  EXPECT_NE(metrics.find("shmguard_sample_age_seconds 0.8\n"), std::string::npos);
  EXPECT_NE(metrics.find("shmguard_sampler_interval_seconds 0.500\n"), std::string::npos);
  EXPECT_NE(metrics.find("shmguard_vhost_requests_total{vhost=\"<b>:81\",verdict=\"passed\"} 0\n"),
            std::string::npos);
  EXPECT_EQ(count(metrics, "\nshmguard_headroom_bytes "), 1u);
  // the probe's metrics are the same writer: they open the page's
  EXPECT_EQ(metrics.rfind(render_prometheus(m.part->snap), 0), 0u);
  // nothing published: the handler's families only
  const std::string none = write_status_prometheus(view(std::nullopt));
  EXPECT_EQ(none.find("shmguard_headroom_bytes"), std::string::npos);
  EXPECT_NE(none.find("shmguard_state{state=\"ok\"} 1\n"), std::string::npos);
}

TEST(Status, HumanDuration) {
  EXPECT_EQ(human_duration(-1), "unknown");
  EXPECT_EQ(human_duration(40), "40s");
  EXPECT_EQ(human_duration(312), "5m 12s");
  EXPECT_EQ(human_duration(3600), "1h");
  EXPECT_EQ(human_duration(3 * 86400 + 4 * 3600 + 5), "3d 4h");
}

TEST(Status, EveryWorkerListedWithItsVhost) {
  const Snapshot snap = snapshot();
  for (int n : {0, 1, 2, 40, 1000}) {
    SCOPED_TRACE(n);
    const auto ws = many_workers(n);
    const StatusModel m = view(snap, ws);
    std::size_t known = 0, named = 0;
    for (const auto& w : ws) {
      known += w.vhost_id != 0;
      named += w.vhost_id == 1 || w.vhost_id == 2;
    }
    const std::string page = write_status_html(m);
    const std::string html = page.substr(page.find("<h2 id=\"workers\">"));
    EXPECT_EQ(count(html, "<br><small>mod_fcgid vhost id "), known);
    EXPECT_EQ(count(html, "<small>not known</small>"), ws.size() - known);
    const std::string json = write_status_json(m);
    EXPECT_EQ(count(json, ",\"vhost\":"), ws.size());
    EXPECT_EQ(count(json, ",\"vhost\":null"), ws.size() - named);
    EXPECT_EQ(count(json, "\"uptime_s\":"), ws.size());
    EXPECT_EQ(m.part->workers.first.size(), ws.size() + 1);
  }
}

TEST(Status, WorkerRowsEscapedAndSized) {
  std::vector<WorkerRow> ws = many_workers(12);
  const std::uint64_t sizes[] = {0,          1023,  1024,           1280,  // 1.25 KiB: a tie, "1.2"
                                 1331,       1332,  1048575,        5 * MiB + 51,
                                 1ull << 53, ~0ull, 3 * 1024 * MiB, 1500 * 1024 * MiB};
  for (std::size_t i = 0; i < ws.size(); ++i) ws[i].rss_shmem = sizes[i];
  const StatusModel m = view(snapshot(), ws);
  const std::string html = write_status_html(m);
  for (std::uint64_t v : sizes)
    EXPECT_NE(html.find("<td>" + html_escape(human_bytes(v)) + "<br><small>" + std::to_string(v) +
                        " B</small></td>"),
              std::string::npos)
        << v << " " << human_bytes(v);
  EXPECT_NE(html.find("1.2 KiB<br><small>1280 B"), std::string::npos);
  EXPECT_EQ(html.find("\"<x>\""), std::string::npos);
  EXPECT_NE(html.find(html_escape("php-cgi \"<x>\" & 'y' \x01\xff")), std::string::npos);
  EXPECT_NE(html.find("<span class=\"err\">cannot read &lt;maps&gt;</span><br>"),
            std::string::npos);
  EXPECT_NE(html.find("<td>unknown</td>"), std::string::npos);
  EXPECT_NE(html.find("shared by 3 processes"), std::string::npos);  // php-fpm
  const std::string json = write_status_json(m);
  EXPECT_NE(json.find("\"command\":" + json_string("php-cgi \"<x>\" & 'y' \x01\xff") + ","),
            std::string::npos);
  EXPECT_NE(json.find("\"error\":\"cannot read \\u003cmaps\\u003e\""), std::string::npos);
}

// The status writers' fast size formatter (core/fastwrite.hpp) and human_bytes() must agree: both
// are on the page.
TEST(Status, FastBytesAgreeWithHumanBytes) {
  std::vector<std::uint64_t> vs;
  for (unsigned shift = 0; shift < 64; ++shift)
    for (std::uint64_t d : {0ull, 1ull, 2ull}) {
      vs.push_back((1ull << shift) + d);
      vs.push_back((1ull << shift) - d);
    }
  // ties of the one decimal (x.x5 exactly) and their neighbours, at every unit
  for (unsigned u = 1; u <= 5; ++u)
    for (std::uint64_t k = 1; k < 20000; k += 7) {
      const std::uint64_t tie = ((2 * k + 1) << (10 * u)) / 20;
      for (std::uint64_t v : {tie - 1, tie, tie + 1}) vs.push_back(v);
    }
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200000; ++i) vs.push_back(rng() >> (rng() % 64));
  for (std::uint64_t v : vs) {
    char b[32];
    const std::string fast(b, static_cast<std::size_t>(fast::write_human_bytes(b, v) - b));
    ASSERT_EQ(fast, human_bytes(v)) << v;
  }
}

TEST(Status, HeadlineFpmOnlyVhostIsNotRefusing) {
  // Issue 21: a vhost whose guarded requests all went to PHP-FPM, the headroom below its
  // (default) reserve: FPM is never refused, so the page says warning, not refusing.
  SamplerHealth h;
  h.fresh = true;
  h.sampled_ms = 1;
  HotValues hot;
  hot.headroom = 4 * static_cast<std::int64_t>(MiB) + static_cast<std::int64_t>(MiB / 2);
  hot.binding = "beancounter:shmpages";
  std::vector<VhostStatus> vs{vhost("fpm:80", 1)};
  vs[0].counts.guarded = vs[0].counts.passed = vs[0].counts.fpm = vs[0].counts.fpm_low = 5;
  EXPECT_EQ(decide_headline(h, hot, vs, nullptr).state, GuardState::Ok);  // not below WarnBelow
  hot.warn = true;
  Headline hl = decide_headline(h, hot, vs, nullptr);
  EXPECT_EQ(hl.state, GuardState::Warning);
  EXPECT_NE(hl.detail.find("PHP-FPM requests of fpm:80 were served with the headroom low"),
            std::string::npos)
      << hl.detail;
  vs[0].counts.guarded = 6;  // one request went to mod_fcgid: its reserve applies again
  EXPECT_EQ(decide_headline(h, hot, vs, nullptr).state, GuardState::Refusing);
  // Every format shows the FPM counters.
  StatusModel m = view(std::nullopt);
  m.vhosts[0].counts.fpm = 7;
  m.vhosts[0].counts.fpm_low = 3;
  EXPECT_NE(write_status_json(m).find("\"fpm\":7,\"fpm_low_headroom\":3"), std::string::npos);
  EXPECT_NE(write_status_auto(m).find("ShmGuardVhostFpmLowHeadroom[a.example:80]: 3"),
            std::string::npos)
      << write_status_auto(m);
  EXPECT_NE(write_status_prometheus(m).find(
                "shmguard_vhost_fpm_low_headroom_total{vhost=\"a.example:80\"} 3"),
            std::string::npos);
  EXPECT_NE(write_status_html(m, 0).find("<td>7 (3)</td>"), std::string::npos);
}

TEST(Status, Headline) {
  SamplerHealth h;
  h.fresh = true;
  h.sampled_ms = 1;
  HotValues hot;
  hot.headroom = 16 * static_cast<std::int64_t>(MiB);
  hot.binding = "beancounter:shmpages";
  std::vector<VhostStatus> vs{vhost("a:80", 1)};
  EXPECT_EQ(decide_headline(h, hot, vs, nullptr).state, GuardState::Refusing);
  EXPECT_NE(decide_headline(h, hot, vs, nullptr).detail.find("of a:80: requests"),
            std::string::npos);
  vs[0].dry_run = true;
  EXPECT_EQ(decide_headline(h, hot, vs, nullptr).state, GuardState::Warning);
  vs[0].guard = false;
  EXPECT_EQ(decide_headline(h, hot, vs, nullptr).state, GuardState::Ok);
  hot.warn = true;
  EXPECT_EQ(decide_headline(h, hot, vs, nullptr).detail, "Headroom is below ShmGuardWarnBelow.");
  hot.warn = false;
  SamplerPart p = make_sampler_part(snapshot(), {});
  Headline rose = decide_headline(h, hot, vs, &p);
  EXPECT_EQ(rose.state, GuardState::Warning);
  EXPECT_NE(rose.detail.find("Failure counters rose by 10 in the last minute"), std::string::npos);
  h.fresh = false;
  h.age_ms = 9000;
  h.bound_ms = 2000;
  EXPECT_EQ(decide_headline(h, hot, vs, &p).state, GuardState::FailingOpen);
  EXPECT_EQ(decide_headline(h, hot, vs, &p).detail,
            "The last sample is 9000 ms old (limit 2000 ms): the guard serves every request "
            "unguarded.");
  hot.headroom = -1;
  h.fresh = true;
  EXPECT_EQ(decide_headline(h, hot, {}, nullptr).detail,
            "No finite shared-memory limit is known: nothing to guard.");
}

TEST(Status, ReclaimsPerVhostInEveryFormat) {
  StatusModel m = view(snapshot(), {worker(10, 1, "a")});
  m.vhosts[0].counts.reclaims_given = 3;
  m.vhosts[1].counts.reclaims_taken = 2;
  const std::string metrics = write_status_prometheus(m);
  EXPECT_NE(metrics.find("# TYPE shmguard_vhost_reclaims_total counter\n"), std::string::npos);
  EXPECT_NE(
      metrics.find("shmguard_vhost_reclaims_total{vhost=\"a.example:80\",direction=\"given\"} 3\n"),
      std::string::npos);
  EXPECT_NE(metrics.find("shmguard_vhost_reclaims_total{vhost=\"<b>:81\",direction=\"taken\"} 2\n"),
            std::string::npos);
  auto kv = auto_lines(write_status_auto(m));
  EXPECT_EQ(kv["ShmGuardVhostReclaimsGiven[a.example:80]"], "3");
  EXPECT_EQ(kv["ShmGuardVhostReclaimsTaken[<b>:81]"], "2");
  const std::string j = write_status_json(m);
  EXPECT_NE(j.find("\"reclaims_given\":3,\"reclaims_taken\":0"), std::string::npos) << j;
  EXPECT_NE(j.find("\"reclaims_given\":0,\"reclaims_taken\":2"), std::string::npos) << j;
  const std::string html = write_status_html(m);
  EXPECT_NE(html.find("idle workers reclaimed (given / taken)"), std::string::npos);
  EXPECT_NE(html.find("<td>3 / 0</td>"), std::string::npos);
  EXPECT_NE(html.find("FcgidErrorScanInterval"), std::string::npos) << "how fast, once it happened";
  m.vhosts[0].counts.reclaims_given = m.vhosts[1].counts.reclaims_taken = 0;
  EXPECT_EQ(write_status_html(m).find("FcgidErrorScanInterval"), std::string::npos);
}

TEST(Status, FairShareAndWhyRequestsWaitPerVhostInEveryFormat) {
  StatusModel m = view(snapshot(), {worker(10, 1, "a")});
  m.vhosts[0].fair_share = 2;
  m.vhosts[0].budget_workers = 3;
  m.vhosts[0].waiting_now[static_cast<int>(WaitFor::Worker)] = 4;
  m.vhosts[1].fair_share = 1;
  m.vhosts[1].budget_workers = 3;
  m.vhosts[1].waiting_now[static_cast<int>(WaitFor::Share)] = 1;
  m.vhosts[1].waiting_now[static_cast<int>(WaitFor::Reclaim)] = 2;
  const std::string metrics = write_status_prometheus(m);
  EXPECT_NE(metrics.find("shmguard_vhost_fair_share_workers{vhost=\"a.example:80\"} 2\n"),
            std::string::npos)
      << metrics;
  EXPECT_NE(
      metrics.find("shmguard_vhost_waiting_requests{vhost=\"a.example:80\",reason=\"worker\"} 4\n"),
      std::string::npos);
  EXPECT_NE(metrics.find("shmguard_vhost_waiting_requests{vhost=\"<b>:81\",reason=\"share\"} 1\n"),
            std::string::npos);
  EXPECT_NE(
      metrics.find("shmguard_vhost_waiting_requests{vhost=\"<b>:81\",reason=\"measure\"} 0\n"),
      std::string::npos);
  auto kv = auto_lines(write_status_auto(m));
  EXPECT_EQ(kv["ShmGuardVhostFairShare[a.example:80]"], "2");
  EXPECT_EQ(kv["ShmGuardVhostWaitingForWorker[a.example:80]"], "4");
  EXPECT_EQ(kv["ShmGuardVhostWaitingForShare[<b>:81]"], "1");
  EXPECT_EQ(kv["ShmGuardVhostWaitingForReclaim[<b>:81]"], "2");
  const std::string j = write_status_json(m);
  EXPECT_NE(j.find("\"fair_share\":2,\"budget_workers\":3,\"waiting_now\":{\"worker\":4,"
                   "\"reclaim\":0,\"measure\":0,\"share\":0}"),
            std::string::npos)
      << j;
  const std::string html = write_status_html(m);
  EXPECT_NE(html.find("<td>2 of 3 workers</td>"), std::string::npos);
  EXPECT_NE(html.find("4 waiting for a worker of this class"), std::string::npos);
  EXPECT_NE(html.find("2 waiting for room freed by a reclaim<br>1 waiting for its fair share"),
            std::string::npos);
  // Not known (no finite limit): said, not made up.
  m.vhosts[0].fair_share = -1;
  EXPECT_NE(write_status_json(m).find("\"fair_share\":null"), std::string::npos);
  EXPECT_EQ(auto_lines(write_status_auto(m)).count("ShmGuardVhostFairShare[a.example:80]"), 0u);
  EXPECT_EQ(
      write_status_prometheus(m).find("shmguard_vhost_fair_share_workers{vhost=\"a.example:80\"}"),
      std::string::npos);
}

TEST(Status, FpmPoolsTravelAndShowInEveryFormat) {
  SamplerPart p = make_sampler_part(snapshot(), {worker(10, 1, "a")});
  FpmPool www;
  www.configured = www.ok = true;
  www.name = "www";
  www.socket = "/run/php/php8.2-fpm.sock";
  www.status_path = "/fpm-status";
  www.read_ms = 1795000000000;
  www.status.pool = "www";
  www.status.process_manager = "dynamic";
  www.status.idle = 1;
  www.status.active = 2;
  www.status.total = 3;
  www.status.listen_queue = 4;
  www.status.max_children_reached = 5;
  www.status.slow_requests = 6;
  FpmPool odd;  // seen as processes only; any local user can choose such a name
  odd.name = "<x]\n\"y";
  p.fpm_pools = {www, odd};
  const std::string blob = encode_sampler_part(p);
  auto d = decode_sampler_part(blob);
  ASSERT_TRUE(d);
  EXPECT_EQ(encode_sampler_part(*d), blob);
  ASSERT_EQ(d->fpm_pools.size(), 2u);
  EXPECT_EQ(d->fpm_pools[0].status.max_children_reached, 5u);
  EXPECT_EQ(d->fpm_pools[1].name, odd.name);
  for (std::size_t n = 0; n < blob.size(); ++n)
    ASSERT_FALSE(decode_sampler_part(std::string_view(blob).substr(0, n))) << n;
  const StatusModel m = view(*d);
  EXPECT_EQ(all_formats(m), all_formats(view(p)));
  const std::string json = write_status_json(m);
  EXPECT_NE(json.find("\"fpm_pools\":[{\"name\":\"www\",\"configured\":true,\"socket\":\"/run/php/"
                      "php8.2-fpm.sock\",\"status_path\":\"/fpm-status\",\"ok\":true"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"listen_queue\":4,"), std::string::npos);
  EXPECT_NE(json.find("add \\\"pm.status_path = /fpm-status\\\""), std::string::npos);
  const std::string autos = write_status_auto(m);
  EXPECT_NE(autos.find("ShmGuardFpmPoolMaxChildrenReached[www]: 5\n"), std::string::npos);
  EXPECT_NE(autos.find("ShmGuardFpmPoolUp[_x___y]: 0\n"), std::string::npos) << autos;
  const std::string prom = write_status_prometheus(m);
  EXPECT_NE(prom.find("shmguard_fpm_pool_processes{pool=\"www\",state=\"active\"} 2\n"),
            std::string::npos);
  EXPECT_NE(prom.find("shmguard_fpm_pool_up{pool=\"<x]\\n\\\"y\"} 0\n"), std::string::npos) << prom;
  const std::string html = write_status_html(m, 0);
  EXPECT_NE(html.find("<h2 id=\"fpm\">PHP-FPM pools</h2>"), std::string::npos);
  EXPECT_NE(html.find("&lt;x]"), std::string::npos);
  EXPECT_EQ(html.find("<x]"), std::string::npos);
  // Bounds: too many pools, a name longer than FPM's.
  SamplerPart many = p;
  many.fpm_pools.assign(kMaxFpmPools + 1, www);
  EXPECT_FALSE(decode_sampler_part(encode_sampler_part(many)));
  many.fpm_pools.assign(kMaxFpmPools, www);
  EXPECT_TRUE(decode_sampler_part(encode_sampler_part(many)));
  SamplerPart longname = p;
  longname.fpm_pools[1].name.assign(kFpmNameMax + 1, 'n');
  EXPECT_FALSE(decode_sampler_part(encode_sampler_part(longname)));
}

// The memory cgroup's PSI (v2 memory.pressure) travels in the sampler part and shows in every
// format from the one model; a cgroup without it (v1) shows none of it.
TEST(Status, MemoryPressureInEveryFormat) {
  const StatusModel m = view(full_snapshot(), {});
  const std::string page = write_status_html(m, 5);
  EXPECT_NE(page.find("<th scope=\"row\">memory pressure (PSI)</th><td>some avg10 12.34 %, avg60 "
                      "5.60 %, avg300 0.78 %, stalled 12.345678 s in all; full avg10 5.06 %, avg60 "
                      "100.99 %, avg300 0.00 %, stalled 0.000001 s in all"),
            std::string::npos)
      << page;
  EXPECT_NE(write_status_json(m).find(
                "\"pressure\":{\"some\":{\"avg10\":12.34,\"avg60\":5.6,\"avg300\":0.78,"
                "\"total_us\":12345678},\"full\":{\"avg10\":5.06,\"avg60\":100.99,\"avg300\":0,"
                "\"total_us\":1}}"),
            std::string::npos)
      << write_status_json(m);
  std::string pressure_lines;  // (full_snapshot's findings repeat ids: only these lines)
  std::istringstream auto_in(write_status_auto(m));
  for (std::string line; std::getline(auto_in, line);)
    if (line.rfind("ShmGuardMemoryPressure", 0) == 0) pressure_lines += line + "\n";
  auto kv = auto_lines(pressure_lines);
  EXPECT_EQ(kv.size(), 8u) << pressure_lines;
  EXPECT_EQ(kv["ShmGuardMemoryPressure[some_avg10]"], "12.34");
  EXPECT_EQ(kv["ShmGuardMemoryPressure[some_avg300]"], "0.78");
  EXPECT_EQ(kv["ShmGuardMemoryPressure[full_avg10]"], "5.06");
  EXPECT_EQ(kv["ShmGuardMemoryPressure[full_avg60]"], "100.99");
  EXPECT_EQ(kv["ShmGuardMemoryPressureStalledUs[some]"], "12345678");
  EXPECT_EQ(kv["ShmGuardMemoryPressureStalledUs[full]"], "1");
  const std::string metrics = write_status_prometheus(m);
  for (const char* sample :
       {"shmguard_cgroup_memory_pressure_percent{dir=\"/sys/fs/cgroup/web\",kind=\"some\","
        "window=\"avg10\"} 12.34\n",
        "shmguard_cgroup_memory_pressure_percent{dir=\"/sys/fs/cgroup/web\",kind=\"full\","
        "window=\"avg60\"} 100.99\n",
        "shmguard_cgroup_memory_pressure_percent{dir=\"/sys/fs/cgroup/web\",kind=\"full\","
        "window=\"avg300\"} 0.00\n",
        "shmguard_cgroup_memory_pressure_stalled_seconds_total{dir=\"/sys/fs/cgroup/web\","
        "kind=\"some\"} 12.345678\n",
        "shmguard_cgroup_memory_pressure_stalled_seconds_total{dir=\"/sys/fs/cgroup/web\","
        "kind=\"full\"} 0.000001\n"})
    EXPECT_NE(metrics.find(sample), std::string::npos) << sample << metrics;
  EXPECT_NE(render_text(m.part->snap).find("  memory pressure some avg10 12.34 %"),
            std::string::npos)
      << render_text(m.part->snap);

  // A "some" line alone: no full samples. No pressure at all: nothing, and null in ?json.
  Snapshot some_only = full_snapshot();
  some_only.cgroup->pressure->full.reset();
  const std::string some_metrics = write_status_prometheus(view(some_only, {}));
  EXPECT_EQ(some_metrics.find("kind=\"full\""), std::string::npos);
  EXPECT_NE(some_metrics.find("kind=\"some\",window=\"avg60\"} 5.60\n"), std::string::npos);
  Snapshot none = full_snapshot();
  none.cgroup->pressure.reset();
  const StatusModel n = view(none, {});
  EXPECT_EQ((write_status_html(n, 5) + write_status_auto(n) + write_status_prometheus(n) +
             render_text(n.part->snap))
                .find("ressure"),
            std::string::npos);
  EXPECT_NE(write_status_json(n).find("\"pressure\":null"), std::string::npos);
  EXPECT_EQ(write_status_json(n).find("\"pressure\":{"), std::string::npos);
}

// ---------------------------------------------------------------- bounds (issue 20 item 3)

TEST(Status, ProcessesSharingThousandsOfSegmentsStillShowLimitsCountersAndWorkers) {
  // The case as the sampler once listed it: two "php-fpm" processes sharing 30 000 1-MiB
  // memfds beside a real php-cgi worker, under the shared segment's 2 MiB bound. Before: 30 001
  // findings, an encoding past the bound, cut at the segment's size: nothing decoded.
  std::vector<Segment> segs;
  for (std::uint64_t i = 0; i < 30000; ++i) {
    Segment s;
    s.dev_minor = 1;
    s.inode = 100000 + i;
    s.size = MiB;
    s.kind = "memfd";
    segs.push_back(s);
  }
  std::vector<WorkerRow> ws = {worker(10, 1, "php-cgi")};
  for (int pid : {20, 21}) {
    WorkerRow w = worker(pid, 2, "php-fpm: pool x");
    w.backend = "php-fpm";
    w.kind = "php-fpm pool x";
    w.segments = segs;
    ws.push_back(std::move(w));
  }
  StatusOptions o;
  o.max_bytes = 2u << 20;
  const SamplerPart p = make_sampler_part(full_snapshot(), ws, o);
  const std::string blob = encode_sampler_part(p);
  EXPECT_LE(blob.size(), o.max_bytes);
  EXPECT_LE(p.findings.size(), kMaxFindings);
  auto d = decode_sampler_part(blob);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->snap.limits.size(), full_snapshot().limits.size());
  EXPECT_EQ(d->snap.counters.size(), full_snapshot().counters.size());
  ASSERT_FALSE(d->workers.rows.empty());
  EXPECT_EQ(d->workers.rows[0].pid, 10);  // the php-cgi worker is listed
  EXPECT_EQ(d->workers.totals.workers, 3u);
}

TEST(Status, AnOversizePartLeavesOutHistoryThenFindingsAndSaysSo) {
  History h(60000);
  for (int i = 0; i < 90; ++i) h.record(i * 30000, HistorySample{});
  SamplerPart p = make_sampler_part(full_snapshot(), many_workers(5), StatusOptions{},
                                    StatusHistory{h.bucket_ms(), h.window(89 * 30000)});
  const std::size_t small = encode_sampler_part(p).size();
  for (int i = 0; i < 20000; ++i)
    p.findings.push_back(Finding{"x", "info", std::string(100, 'f'), {{"n", 1}}});
  p.fpm_pools.resize(3);
  const std::size_t bound = small + 4096;  // room for the part without history and findings
  ASSERT_GT(encode_sampler_part(p).size(), bound);
  SamplerPart q = p;
  ASSERT_TRUE(fit_sampler_part(q, bound));
  const std::string blob = encode_sampler_part(q);
  EXPECT_LE(blob.size(), bound);
  auto d = decode_sampler_part(blob);
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->history);
  ASSERT_EQ(d->findings.size(), 1u);
  EXPECT_EQ(d->findings[0].id, "status-part-cut");
  EXPECT_NE(d->findings[0].text.find("the last hour's history"), std::string::npos);
  EXPECT_NE(d->findings[0].text.find(std::to_string(p.findings.size()) + " findings"),
            std::string::npos)
      << d->findings[0].text;
  EXPECT_EQ(d->workers.rows.size(), 5u);  // the rows were kept: they mattered more
  EXPECT_EQ(d->fpm_pools.size(), 3u);
  EXPECT_EQ(d->snap.limits.size(), p.snap.limits.size());
  // A bound that holds only the snapshot: rows go too (counted), still decodes.
  SamplerPart r = p;
  SamplerPart bare;
  bare.snap = p.snap;
  const std::size_t tiny = encode_sampler_part(bare).size() + 600;
  ASSERT_TRUE(fit_sampler_part(r, tiny));
  auto dr = decode_sampler_part(encode_sampler_part(r));
  ASSERT_TRUE(dr);
  EXPECT_EQ(dr->workers.rows.size() + dr->workers.not_listed, 5u);
  EXPECT_LT(dr->workers.rows.size(), 5u);
  EXPECT_TRUE(dr->fpm_pools.empty());
  // Below even the snapshot: false (nothing to publish), never a cut encoding.
  SamplerPart s2 = p;
  EXPECT_FALSE(fit_sampler_part(s2, 100));
  // Within the bound: untouched.
  SamplerPart same = make_sampler_part(full_snapshot(), many_workers(5));
  const std::string before = encode_sampler_part(same);
  ASSERT_TRUE(fit_sampler_part(same, before.size()));
  EXPECT_EQ(encode_sampler_part(same), before);
}

TEST(Status, FullClassTableIsAWarningInEveryFormat) {
  // issue 20 (low): the 257th class failed open unlogged and unseen.
  SamplerHealth h;
  h.fresh = true;
  h.sampled_ms = 1;
  HotValues hot;
  hot.headroom = 1024 * static_cast<std::int64_t>(MiB);
  std::vector<VhostStatus> vs{vhost("a:80", 1)};
  EXPECT_EQ(decide_headline(h, hot, vs, nullptr).state, GuardState::Ok);
  h.class_table_full = 3;
  Headline hl = decide_headline(h, hot, vs, nullptr);
  EXPECT_EQ(hl.state, GuardState::Warning);
  EXPECT_NE(hl.detail.find("class table is full: 3 requests"), std::string::npos) << hl.detail;
  hot.headroom = 1;  // refusing: said there too
  hl = decide_headline(h, hot, vs, nullptr);
  EXPECT_EQ(hl.state, GuardState::Refusing);
  EXPECT_NE(hl.detail.find("class table is full: 3 requests"), std::string::npos) << hl.detail;
  StatusModel m = view(std::nullopt);
  m.sampler.class_table_full = 3;
  EXPECT_NE(write_status_json(m).find("\"class_table_full_requests\":3"), std::string::npos);
  EXPECT_NE(write_status_auto(m).find("ShmGuardClassTableFullRequests: 3"), std::string::npos);
  EXPECT_NE(write_status_prometheus(m).find("shmguard_class_table_full_requests_total 3"),
            std::string::npos);
}
