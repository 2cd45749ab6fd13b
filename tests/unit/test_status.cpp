// Status sections: encoding, holes for vhost names, escaping, formats.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>

#include "shmguard/guard.hpp"
#include "shmguard/json.hpp"
#include "shmguard/status.hpp"

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

std::string names(std::int32_t id) {
  return id == 1 ? "a.example:80" : "<b>:81";
}

}  // namespace

TEST(Status, TemplateFill) {
  Template t;
  t += "x=";
  t.hole(1);
  t += ", y=";
  t.hole(2);
  t += ".";
  EXPECT_EQ(t.fill(names), "x=a.example:80, y=<b>:81.");
  Template empty;
  EXPECT_EQ(empty.fill(names), "");
}

TEST(Status, EncodeDecodeRoundTrip) {
  StatusSections s = render_sampler_sections(snapshot(), {worker(10, 1, "php-cgi")});
  std::string blob = encode_sections(s);
  auto d = decode_sections(blob);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->html_findings, s.html_findings);
  EXPECT_EQ(d->html_limits, s.html_limits);
  EXPECT_EQ(d->html_workers.text, s.html_workers.text);
  EXPECT_EQ(d->html_workers.holes, s.html_workers.holes);
  EXPECT_EQ(d->html_sources, s.html_sources);
  EXPECT_EQ(d->auto_text, s.auto_text);
  EXPECT_EQ(d->json_members.text, s.json_members.text);
  EXPECT_EQ(d->json_members.holes, s.json_members.holes);
  EXPECT_EQ(d->metrics, s.metrics);
  EXPECT_EQ(d->failures_last_minute, 10u);
  EXPECT_EQ(d->findings_critical, s.findings_critical);
  // anything truncated, extended or foreign is refused, never misread
  for (std::size_t n = 0; n < blob.size(); n += 7)
    EXPECT_FALSE(decode_sections(std::string_view(blob).substr(0, n))) << n;
  EXPECT_FALSE(decode_sections(blob + "x"));
  EXPECT_FALSE(decode_sections("SGB1" + blob.substr(4)));
}

TEST(Status, WorkersTableEscapedWithVhostNames) {
  StatusSections s = render_sampler_sections(
      snapshot(),
      {worker(10, 1, "php-cgi <script>alert(1)</script>"), worker(11, 2, "php-cgi", 2)});
  std::string html = s.html_workers.fill([](std::int32_t id) { return html_escape(names(id)); });
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("php-cgi &lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find("a.example:80"), std::string::npos);
  EXPECT_NE(html.find("&lt;b&gt;:81"), std::string::npos);
  EXPECT_NE(html.find("0:1 inode 1, 64.0 MiB"), std::string::npos);
  EXPECT_NE(html.find("1h 2m"), std::string::npos);  // uptime 3725 s
  EXPECT_NE(html.find("2 workers; 2 distinct segments holding 128.0 MiB (2 private"),
            std::string::npos);
  // the unavailable reason and findings are escaped too
  EXPECT_NE(s.html_sources.find("no memory controller &lt;here&gt;"), std::string::npos);
  EXPECT_NE(s.html_findings.find("beancounter shmpages failcnt rose by 10 in the last minute"),
            std::string::npos);
  EXPECT_NE(s.html_findings.find("2 php-cgi workers hold 2 separate OPcache segments"),
            std::string::npos);
}

TEST(Status, JsonMembersWithVhostHoles) {
  StatusSections s =
      render_sampler_sections(snapshot(), {worker(10, 1, "a"), worker(11, 2, "b", 7)});
  ASSERT_EQ(s.json_members.holes.size(), 2u);
  std::string j = "{" + s.json_members.fill([](std::int32_t id) {
    return id == 1 ? json_string("a.example:80") : std::string("null");
  }) + "}";
  EXPECT_NE(j.find("\"vhost\":\"a.example:80\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"vhost\":null"), std::string::npos);
  EXPECT_NE(j.find("\"headroom_bytes\":61530112"), std::string::npos);  // (262144-247122)*4096
  EXPECT_NE(j.find("\"binding\":\"beancounter:shmpages\""), std::string::npos);
  EXPECT_NE(j.find("\"findings\":[{\"id\":"), std::string::npos);
  EXPECT_NE(j.find("\"mapped_by\":1,\"shared\":false"), std::string::npos);
  // balanced: the members form one object
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

TEST(Status, AutoLinesAreKeyValue) {
  StatusSections s = render_sampler_sections(snapshot(), {worker(10, 1, "a")});
  std::istringstream in(s.auto_text);
  std::string line;
  std::map<std::string, std::string> kv;
  while (std::getline(in, line)) {
    auto sep = line.find(": ");
    ASSERT_NE(sep, std::string::npos) << line;
    ASSERT_EQ(line.rfind("ShmGuard", 0), 0u) << line;
    kv[line.substr(0, sep)] = line.substr(sep + 2);
  }
  EXPECT_EQ(kv["ShmGuardHeadroomBytes"], "61530112");
  EXPECT_EQ(kv["ShmGuardBinding"], "beancounter:shmpages");
  EXPECT_EQ(kv["ShmGuardFailuresLastMinute[beancounter:shmpages:failcnt]"], "10");
  EXPECT_EQ(kv["ShmGuardWorkers"], "1");
  EXPECT_EQ(kv["ShmGuardUnavailable[cgroup]"], "no memory controller <here>");
  EXPECT_EQ(kv.count("ShmGuardFailures[beancounter:dummy:failcnt]"), 0u);  // never rose
}

TEST(Status, MetricsFamiliesOnceEach) {
  StatusSections s = render_sampler_sections(snapshot(), {worker(10, 1, "a"), worker(11, 1, "b")});
  std::istringstream in(s.metrics);
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
  EXPECT_NE(s.metrics.find("shmguard_fastcgi_segments{sharing=\"shared\"} 1\n"), std::string::npos);
  EXPECT_NE(s.metrics.find("shmguard_sample_timestamp_seconds 1795000000.123\n"),
            std::string::npos);
}

TEST(Status, HumanDuration) {
  EXPECT_EQ(human_duration(-1), "unknown");
  EXPECT_EQ(human_duration(40), "40s");
  EXPECT_EQ(human_duration(312), "5m 12s");
  EXPECT_EQ(human_duration(3600), "1h");
  EXPECT_EQ(human_duration(3 * 86400 + 4 * 3600 + 5), "3d 4h");
}
