// The status page's history charts: well-formed inline SVG, labels in human bytes, escaping, the
// summary sentence, no data, unbounded limits.
#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <vector>

#include "shmguard/chart.hpp"
#include "shmguard/history.hpp"
#include "history_samples.hpp"

using namespace shmguard;

using shmguard_test::bounded;

namespace {

constexpr std::int64_t kMin = 60000;
constexpr std::uint64_t MiB = 1ull << 20;
constexpr std::uint64_t GiB = 1ull << 30;

// A small XML well-formedness check: elements nest and close, attribute values are quoted,
// '<' never appears in text or values, '&' only starts one of the entities html_escape writes.
// Returns "" or what is wrong; fills `names` with every element name in order.
std::string xml_problem(const std::string& s, std::vector<std::string>* names = nullptr) {
  std::vector<std::string> stack;
  auto entity_ok = [&](std::size_t i) {
    for (const char* e : {"&amp;", "&lt;", "&gt;", "&quot;", "&#39;"})
      if (s.compare(i, std::char_traits<char>::length(e), e) == 0) return true;
    return false;
  };
  std::size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '&') {
      if (!entity_ok(i)) return "bare & at " + std::to_string(i);
      ++i;
      continue;
    }
    if (s[i] == '>') return "bare > at " + std::to_string(i);
    if (s[i] != '<') {
      ++i;
      continue;
    }
    ++i;
    bool closing = i < s.size() && s[i] == '/';
    if (closing) ++i;
    std::size_t start = i;
    while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '-')) ++i;
    std::string name = s.substr(start, i - start);
    if (name.empty()) return "bad tag at " + std::to_string(start);
    if (closing) {
      if (i >= s.size() || s[i] != '>') return "bad end tag " + name;
      ++i;
      if (stack.empty() || stack.back() != name)
        return "</" + name + "> closes " + (stack.empty() ? "nothing" : "<" + stack.back() + ">");
      stack.pop_back();
      continue;
    }
    if (names) names->push_back(name);
    for (;;) {  // attributes
      while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
      if (i >= s.size()) return "unterminated <" + name;
      if (s[i] == '>') {
        stack.push_back(name);
        ++i;
        break;
      }
      if (s.compare(i, 2, "/>") == 0) {
        i += 2;
        break;
      }
      std::size_t a = i;
      while (i < s.size() &&
             (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '-' || s[i] == ':'))
        ++i;
      if (i == a || i >= s.size() || s[i] != '=' || i + 1 >= s.size() || s[i + 1] != '"')
        return "bad attribute in <" + name + "> at " + std::to_string(a);
      i += 2;
      std::size_t end = s.find('"', i);
      if (end == std::string::npos) return "unterminated value in <" + name;
      for (std::size_t j = i; j < end; ++j) {
        if (s[j] == '<') return "< in a value of <" + name;
        if (s[j] == '&' && !entity_ok(j)) return "bare & in a value of <" + name;
      }
      i = end + 1;
    }
  }
  if (!stack.empty()) return "unclosed <" + stack.back() + ">";
  return "";
}

std::size_t count(const std::string& hay, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

}  // namespace

TEST(Chart, CheckerFindsProblems) {  // the checker the other tests rely on can fail
  EXPECT_EQ(xml_problem("<a><b/></a>"), "");
  EXPECT_NE(xml_problem("<a><b></a>"), "");
  EXPECT_NE(xml_problem("<a>x & y</a>"), "");
  EXPECT_NE(xml_problem("<a t=\"<\"></a>"), "");
  EXPECT_NE(xml_problem("<a t=x></a>"), "");
  EXPECT_NE(xml_problem("<a>"), "");
}

TEST(Chart, EmptyHistorySaysNoDataYet) {
  History h;
  const std::string o = render_history_html(h, 5 * kMin);
  EXPECT_EQ(xml_problem(o), "") << o;
  EXPECT_NE(o.find("<h2 id=\"history\">Last hour</h2>"), std::string::npos) << o;
  EXPECT_NE(o.find("<p>No data yet: the sampler has recorded no sample in the last hour.</p>"),
            std::string::npos)
      << o;
  EXPECT_EQ(count(o, "<svg "), 3u);
  EXPECT_EQ(count(o, ">no data yet</text>"), 3u);
  EXPECT_EQ(count(o, "<title>"), 0u);  // no bucket to point at (the charts' titles have ids)
  EXPECT_EQ(history_summary(h.window(0), h.bucket_ms()),
            "No data yet: the sampler has recorded no sample in the last hour.");
}

TEST(Chart, WellFormedSvgWithHumanByteAxesAndValues) {
  History h;
  // 20 minutes: shmpages of 1 GiB, headroom 832 MiB falling to 64 MiB at minute 15, back later.
  for (std::int64_t m = 0; m < 20; ++m) {
    const std::uint64_t hr = m == 15 ? 64 * MiB : 832 * MiB;
    h.record(m * kMin + 100, bounded(hr, GiB, m >= 15 ? 3 : 0, m >= 16 ? 1 : 0));
    h.record(m * kMin + 30100, bounded(832 * MiB, GiB, m >= 15 ? 3 : 0, m >= 16 ? 1 : 0));
  }
  const std::string o = render_history_html(h, 19 * kMin + 30100);
  std::vector<std::string> names;
  ASSERT_EQ(xml_problem(o, &names), "") << o;
  EXPECT_EQ(count(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\""), 3u);
  for (const auto& n : names)  // nothing that runs or loads
    EXPECT_TRUE(n != "script" && n != "foreignObject" && n != "image" && n != "a" && n != "style")
        << n;
  EXPECT_EQ(o.find("href"), std::string::npos);
  EXPECT_EQ(o.find("on"
                   "load"),
            std::string::npos);
  // Axes: 832 MiB of headroom at most -> top 1.0 GiB (the next 2^k or 3*2^(k-1)), half 512 MiB.
  EXPECT_NE(o.find(">1.0 GiB</text>"), std::string::npos);
  EXPECT_NE(o.find(">512.0 MiB</text>"), std::string::npos);
  EXPECT_NE(o.find(">1h ago</text>"), std::string::npos);
  EXPECT_NE(o.find(">30m ago</text>"), std::string::npos);
  EXPECT_NE(o.find(">now</text>"), std::string::npos);
  EXPECT_NE(o.find("now 832.0 MiB"), std::string::npos);
  EXPECT_NE(o.find("<tspan font-weight=\"bold\">beancounter:shmpages</tspan>"), std::string::npos);
  EXPECT_NE(o.find("refused 3"), std::string::npos);
  EXPECT_NE(o.find("translated 1"), std::string::npos);
  // One headroom bar and one used bar per minute with data; one refused and one translated bar;
  // and each colour's square in its chart's key.
  EXPECT_EQ(count(o, "fill=\"#2e8b57\"/>"), 20u + 1);
  EXPECT_EQ(count(o, "fill=\"#7a9cc6\"/>"), 20u + 1);
  EXPECT_EQ(count(o, "fill=\"#d2691e\"/>"), 1u + 1);
  EXPECT_EQ(count(o, "fill=\"#8e44ad\"/>"), 1u + 1);
  // A pointer's title on each of the 20 minutes in each chart, with that minute's numbers.
  EXPECT_EQ(count(o, "<title>"), 60u);
  EXPECT_NE(o.find("<title>4m ago: headroom lowest 64.0 MiB, last 832.0 MiB; beancounter:shmpages "
                   "960.0 MiB of 1.0 GiB used; 3 refused, 0 translated 500s</title>"),
            std::string::npos)
      << o;
  // The limit as one step line over the 20 contiguous minutes.
  EXPECT_EQ(count(o, "<path d=\"M"), 1u);
  EXPECT_EQ(count(o, "stroke=\"#b22222\" stroke-width=\"2\"/>"), 2u);  // the path and the key
  // The sentence.
  EXPECT_NE(o.find("<p>Last hour (data for 20m): headroom now 832.0 MiB, lowest 64.0 MiB (4m ago); "
                   "beancounter:shmpages 192.0 MiB of 1.0 GiB used; 3 requests refused, 1 backend "
                   "500 translated to 503.</p>"),
            std::string::npos)
      << o;
}

TEST(Chart, GapsBreakTheLimitLineAndStalledSamplerIsSaid) {
  History h;
  for (std::int64_t m = 0; m < 5; ++m) h.record(m * kMin, bounded(100 * MiB));
  for (std::int64_t m = 10; m < 12; ++m) h.record(m * kMin, bounded(100 * MiB));
  const std::string o = render_history_html(h, 20 * kMin);
  ASSERT_EQ(xml_problem(o), "");
  EXPECT_EQ(count(o, "<path d=\"M"), 1u);
  const std::size_t d = o.find("<path d=\"");
  const std::string path = o.substr(d, o.find('"', d + 9) - d);
  EXPECT_EQ(count(path, "M"), 2u) << path;  // two runs of minutes
  EXPECT_NE(o.find("headroom 9m ago 100.0 MiB"), std::string::npos) << o;
  EXPECT_NE(o.find("last 100.0 MiB"), std::string::npos);  // the key says "last", not "now"
  EXPECT_EQ(o.find("now 100.0 MiB"), std::string::npos);
  EXPECT_NE(o.find("(data for 7m)"), std::string::npos);
}

TEST(Chart, EverythingIsEscaped) {
  History h;
  h.record(0, bounded(MiB, GiB, 0, 0, "<script>&\"x'"));
  const std::string o = render_history_html(h, 0);
  EXPECT_EQ(xml_problem(o), "") << o;
  EXPECT_EQ(o.find("<script"), std::string::npos);
  EXPECT_NE(o.find("&lt;script&gt;&amp;&quot;x&#39;"), std::string::npos);
}

TEST(Chart, UnboundedThroughoutSaysSo) {
  History h;
  HistorySample s;
  for (std::int64_t m = 0; m < 3; ++m) h.record(m * kMin, s);
  const std::string o = render_history_html(h, 2 * kMin);
  EXPECT_EQ(xml_problem(o), "");
  EXPECT_EQ(count(o, ">unbounded: no finite limit known</text>"), 2u);
  EXPECT_NE(o.find("headroom now unbounded (no finite limit known); 0 requests refused, 0 backend "
                   "500s translated to 503."),
            std::string::npos)
      << o;
  EXPECT_EQ(count(o, "fill=\"#2e8b57\"/>"), 1u);  // the key's square only: no bar
  EXPECT_EQ(o.find("<path"), std::string::npos);
}

TEST(Chart, NoHeadroomShowsAsARedMark) {
  History h;
  h.record(0, bounded(0));
  const std::string o = render_history_html(h, 0);
  EXPECT_EQ(xml_problem(o), "");
  EXPECT_EQ(count(o, "fill=\"#2e8b57\"/>"), 1u);  // the key's square only: no green bar
  EXPECT_NE(o.find("height=\"2.0\" fill=\"#b22222\"/>"), std::string::npos) << o;
  EXPECT_NE(o.find("headroom now 0 B, lowest 0 B (now)"), std::string::npos) << o;
}

TEST(Chart, TooLittleHeadroomToSeeIsARedMarkToo) {
  History h;
  h.record(0, bounded(GiB - MiB));
  h.record(kMin, bounded(4 * MiB));  // under 2 % of the 1 GiB axis
  h.record(2 * kMin, bounded(64 * MiB));
  const std::string o = render_history_html(h, 2 * kMin);
  EXPECT_EQ(xml_problem(o), "");
  EXPECT_EQ(count(o, "height=\"2.0\" fill=\"#b22222\"/>"), 1u) << o;
  EXPECT_EQ(count(o, "fill=\"#2e8b57\"/>"), 2u + 1);  // two green bars and the key's square
}

TEST(Chart, CountAxisAndBindingChange) {
  History h;
  h.record(0, bounded(10 * MiB, GiB, 0, 0, "beancounter:privvmpages"));
  h.record(kMin, bounded(20 * MiB, GiB, 7, 0));  // 7 refusals in a minute: axis top 10, half 5
  const std::string o = render_history_html(h, kMin);
  EXPECT_EQ(xml_problem(o), "");
  EXPECT_NE(o.find(">10</text>"), std::string::npos);
  EXPECT_NE(o.find(">5</text>"), std::string::npos);
  EXPECT_NE(o.find("beancounter:shmpages</tspan></text>"), std::string::npos) << o;
  EXPECT_NE(o.find("the binding limit changed within the window</desc>"), std::string::npos) << o;
}

TEST(Chart, ThirtySecondBuckets) {
  History h(30000);
  h.record(0, bounded(MiB));
  const std::string o = render_history_html(h, 0);
  EXPECT_EQ(xml_problem(o), "");
  EXPECT_NE(o.find("<h2 id=\"history\">Last 30m</h2>"), std::string::npos);
  EXPECT_NE(o.find("lowest per 30s"), std::string::npos);
  EXPECT_NE(o.find(">15m ago</text>"), std::string::npos);
}
