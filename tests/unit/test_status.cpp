// Status sections: encoding, holes for vhost names, escaping, formats.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>

#include "shmguard/refusal.hpp"
#include "shmguard/json.hpp"
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

void expect_same(const StatusSections& a, const StatusSections& b) {
  EXPECT_EQ(a.html_findings, b.html_findings);
  EXPECT_EQ(a.html_limits, b.html_limits);
  EXPECT_EQ(a.html_workers.text, b.html_workers.text);
  EXPECT_EQ(a.html_workers.holes, b.html_workers.holes);
  EXPECT_EQ(a.html_sources, b.html_sources);
  EXPECT_EQ(a.auto_text, b.auto_text);
  EXPECT_EQ(a.json_members.text, b.json_members.text);
  EXPECT_EQ(a.json_members.holes, b.json_members.holes);
  EXPECT_EQ(a.metrics, b.metrics);
  EXPECT_EQ(a.findings_critical, b.findings_critical);
  EXPECT_EQ(a.findings_warning, b.findings_warning);
  EXPECT_EQ(a.failures_last_minute, b.failures_last_minute);
}

}  // namespace

TEST(Status, EachFormatRendersOnlyItsSections) {
  const Snapshot snap = snapshot();
  const auto ws = many_workers(40);
  const StatusSections all = render_sampler_sections(snap, ws);
  for (unsigned mask = 0; mask <= kAllFormats; ++mask) {
    SCOPED_TRACE(mask);
    StatusSections s = render_sampler_sections(snap, ws, mask);
    bool html = mask & kHtml, aut = mask & kAuto, json = mask & kJson, metrics = mask & kMetrics;
    EXPECT_EQ(s.html_findings.empty(), !html);
    EXPECT_EQ(s.html_limits.empty(), !html);
    EXPECT_EQ(s.html_workers.text.empty(), !html);
    EXPECT_EQ(s.html_workers.holes.empty(), !html);
    EXPECT_EQ(s.html_sources.empty(), !html);
    EXPECT_EQ(s.auto_text.empty(), !aut);
    EXPECT_EQ(s.json_members.text.empty(), !json);
    EXPECT_EQ(s.json_members.holes.empty(), !json);
    EXPECT_EQ(s.metrics.empty(), !metrics);
    // what is rendered is the same whatever else is asked for; the small facts always
    if (html) {
      EXPECT_EQ(s.html_findings, all.html_findings);
      EXPECT_EQ(s.html_limits, all.html_limits);
      EXPECT_EQ(s.html_workers.text, all.html_workers.text);
      EXPECT_EQ(s.html_workers.holes, all.html_workers.holes);
      EXPECT_EQ(s.html_sources, all.html_sources);
    }
    if (aut) {
      EXPECT_EQ(s.auto_text, all.auto_text);
    }
    if (json) {
      EXPECT_EQ(s.json_members.text, all.json_members.text);
      EXPECT_EQ(s.json_members.holes, all.json_members.holes);
    }
    if (metrics) {
      EXPECT_EQ(s.metrics, all.metrics);
    }
    EXPECT_EQ(s.findings_critical, all.findings_critical);
    EXPECT_EQ(s.findings_warning, all.findings_warning);
    EXPECT_EQ(s.failures_last_minute, all.failures_last_minute);
  }
  EXPECT_GT(all.findings_critical, 0u);
  EXPECT_EQ(all.failures_last_minute, 10u);
}

TEST(Status, AllFormatsIsTheConcatenationOfSingleFormats) {
  const Snapshot snap = snapshot();
  for (int n : {0, 1, 2, 40, 1000}) {
    SCOPED_TRACE(n);
    const auto ws = many_workers(n);
    StatusSections all = render_sampler_sections(snap, ws, kAllFormats);
    StatusSections html = render_sampler_sections(snap, ws, kHtml);
    StatusSections aut = render_sampler_sections(snap, ws, kAuto);
    StatusSections json = render_sampler_sections(snap, ws, kJson);
    StatusSections metrics = render_sampler_sections(snap, ws, kMetrics);
    // the same bytes, section by section and as one string
    auto concat = [](const StatusSections& s) {
      return s.html_findings + s.html_limits + s.html_workers.text + s.html_sources + s.auto_text +
             s.json_members.text + s.metrics;
    };
    EXPECT_EQ(concat(all), concat(html) + concat(aut) + concat(json) + concat(metrics));
    StatusSections merged = html;
    merged.auto_text = aut.auto_text;
    merged.json_members = json.json_members;
    merged.metrics = metrics.metrics;
    expect_same(all, merged);
    EXPECT_EQ(encode_sections(all), encode_sections(merged));
    // the default is every format
    expect_same(render_sampler_sections(snap, ws), all);
    // every worker has its vhost hole in HTML (when known) and JSON (always)
    std::size_t known = 0;
    for (const auto& w : ws) known += w.vhost_id != 0;
    EXPECT_EQ(all.html_workers.holes.size(), known);
    EXPECT_EQ(all.json_members.holes.size(), ws.size());
  }
}

TEST(Status, WorkerRowsEscapedAndSized) {
  std::vector<WorkerRow> ws = many_workers(12);
  const std::uint64_t sizes[] = {0,          1023,  1024,           1280,  // 1.25 KiB: a tie, "1.2"
                                 1331,       1332,  1048575,        5 * MiB + 51,
                                 1ull << 53, ~0ull, 3 * 1024 * MiB, 1500 * 1024 * MiB};
  for (std::size_t i = 0; i < ws.size(); ++i) ws[i].rss_shmem = sizes[i];
  StatusSections s = render_sampler_sections(snapshot(), ws);
  for (std::uint64_t v : sizes)
    EXPECT_NE(s.html_workers.text.find("<td>" + html_escape(human_bytes(v)) + "<br><small>" +
                                       std::to_string(v) + " B</small></td>"),
              std::string::npos)
        << v << " " << human_bytes(v);
  EXPECT_NE(s.html_workers.text.find("1.2 KiB<br><small>1280 B"), std::string::npos);
  EXPECT_EQ(s.html_workers.text.find("\"<x>\""), std::string::npos);
  EXPECT_NE(s.html_workers.text.find(html_escape("php-cgi \"<x>\" & 'y' \x01\xff")),
            std::string::npos);
  EXPECT_NE(s.html_workers.text.find("<span class=\"err\">cannot read &lt;maps&gt;</span><br>"),
            std::string::npos);
  EXPECT_NE(s.html_workers.text.find("<td>unknown</td>"), std::string::npos);
  EXPECT_NE(s.html_workers.text.find("shared by 3 processes"), std::string::npos);  // php-fpm
  EXPECT_NE(s.json_members.text.find(
                "\"command\":" + json_string("php-cgi \"<x>\" & 'y' \x01\xff") + ","),
            std::string::npos);
  EXPECT_NE(s.json_members.text.find("\"error\":\"cannot read \\u003cmaps\\u003e\""),
            std::string::npos);
}
