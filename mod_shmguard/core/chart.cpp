// mod_shmguard core: the status page's history charts (inline SVG) and their summary sentence.
#include "shmguard/chart.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <string_view>
#include <utility>
#include <vector>

#include "shmguard/refusal.hpp"
#include "shmguard/status.hpp"
#include "shmguard/units.hpp"

namespace shmguard {

namespace {

constexpr std::size_t kN = History::kBuckets;

// One chart's geometry (SVG user units; the SVG scales down to the page's width).
constexpr int kWidth = 380, kHeight = 150;
constexpr double kLeft = 66, kRight = 8, kTop = 24, kBottom = 20;
constexpr double kPlotW = kWidth - kLeft - kRight;
constexpr double kPlotH = kHeight - kTop - kBottom;

constexpr const char* kHeadroomColour = "#2e8b57";
constexpr const char* kUsedColour = "#7a9cc6";
constexpr const char* kLimitColour = "#b22222";
constexpr const char* kRefusedColour = "#d2691e";
constexpr const char* kTranslatedColour = "#8e44ad";

std::string esc(std::string_view s) {
  return html_escape(s);
}

// A coordinate with one decimal ("12.5"), without a temporary string.
class Num {
 public:
  explicit Num(double v) {
    long long tenths = std::llround(v * 10);
    char* p = b_;
    if (tenths < 0) {
      *p++ = '-';
      tenths = -tenths;
    }
    p = std::to_chars(p, b_ + sizeof b_ - 2, tenths / 10).ptr;
    *p++ = '.';
    *p++ = static_cast<char>('0' + tenths % 10);
    n_ = static_cast<std::size_t>(p - b_);
  }
  operator std::string_view() const { return {b_, n_}; }

 private:
  char b_[32];
  std::size_t n_ = 0;
};

std::string num(double v) {
  return std::string(std::string_view(Num(v)));
}

// Appends the parts (strings, string literals, Num) to o.
template <class... Parts>
void cat(std::string& o, const Parts&... parts) {
  (o.append(std::string_view(parts)), ...);
}

double bucket_x(std::size_t k) {
  return kLeft + kPlotW * static_cast<double>(k) / static_cast<double>(kN);
}
constexpr double kBucketW = kPlotW / static_cast<double>(kN);

double y_of(double v, double top) {
  if (top <= 0) return kTop + kPlotH;
  return kTop + kPlotH * (1.0 - std::min(v, top) / top);
}

// The axis top for a byte value: the smallest 2^k or 3 * 2^(k-1) at or above it (so that half of
// it is a round number too), at least 1 KiB.
std::uint64_t nice_bytes(std::uint64_t max) {
  std::uint64_t p = 1024;
  for (;;) {
    if (p >= max) return p;
    if (p / 2 * 3 >= max) return p / 2 * 3;
    if (p > UINT64_MAX / 2) return UINT64_MAX;
    p *= 2;
  }
}

// The axis top for a count: 1, 2, 5, 10, 20, 50, ...
std::uint64_t nice_count(std::uint64_t max) {
  std::uint64_t p = 1;
  for (;;) {
    for (std::uint64_t m : {1u, 2u, 5u})
      if (p * m >= max) return p * m;
    if (p > UINT64_MAX / 100) return UINT64_MAX;
    p *= 10;
  }
}

std::string bytes_label(std::uint64_t v) {
  return v == 0 ? std::string("0") : human_bytes(v);
}

// "minute" for one-minute buckets, else the length ("30s").
std::string bucket_words(std::int64_t bucket_ms) {
  if (bucket_ms == 60000) return "minute";
  return human_duration(std::max<std::int64_t>(bucket_ms / 1000, 1));
}

// How long ago bucket k (0 oldest, kN - 1 the current one) was: "now", "5m ago".
std::string age_words(std::size_t k, std::int64_t bucket_ms) {
  if (k + 1 >= kN) return "now";
  const auto ago_ms = static_cast<std::int64_t>(kN - 1 - k) * bucket_ms;
  return human_duration(std::max<std::int64_t>(ago_ms / 1000, 1)) + " ago";
}

std::int64_t window_s(std::int64_t bucket_ms) {
  return static_cast<std::int64_t>(kN) * bucket_ms / 1000;
}

// "hour" for the usual window, else its length ("30m"): "Last hour", "in the last 30m".
std::string window_words(std::int64_t bucket_ms) {
  return window_s(bucket_ms) == 3600 ? std::string("hour") : human_duration(window_s(bucket_ms));
}

std::string plural(std::uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// What the window holds, for the headings and the sentence.
struct Facts {
  bool any = false;      // a sample in the window
  bool bounded = false;  // a sample with a finite limit
  std::size_t latest = 0, lowest = 0, with_data = 0;
  std::uint64_t refused = 0, translated = 0, max_rise = 0;
  std::uint64_t max_headroom = 0, max_limit = 0;
};

Facts facts_of(const History::Window& w) {
  Facts f;
  for (std::size_t k = 0; k < kN; ++k) {
    const HistoryBucket& b = w[k];
    if (b.samples == 0) continue;
    f.any = true;
    f.latest = k;
    ++f.with_data;
    f.refused += b.refused;
    f.translated += b.translated;
    f.max_rise = std::max({f.max_rise, b.refused, b.translated});
    if (b.bounded == 0) continue;
    if (!f.bounded || b.headroom_min <= w[f.lowest].headroom_min) f.lowest = k;
    f.bounded = true;
    f.max_headroom = std::max({f.max_headroom, b.headroom_min, b.headroom_last});
    f.max_limit = std::max({f.max_limit, b.limit_at_min, b.used_at_min});
  }
  return f;
}

std::string bucket_title(const HistoryBucket& b, std::size_t k, std::int64_t bucket_ms) {
  std::string t = age_words(k, bucket_ms) + ": ";
  if (b.bounded) {
    t += "headroom lowest " + human_bytes(b.headroom_min) + ", last " +
         human_bytes(b.headroom_last) + "; " + std::string(b.binding_min_name()) + " " +
         human_bytes(b.used_at_min) + " of " + human_bytes(b.limit_at_min) + " used";
  } else {
    t += "headroom unbounded (no finite limit known)";
  }
  return t + "; " + std::to_string(b.refused) + " refused, " + std::to_string(b.translated) +
         " translated 500s";
}

class Chart {
 public:
  Chart(std::string& o, const char* id, const std::string& title, const std::string& desc) : o_(o) {
    o_ += "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"" +
          std::to_string(kWidth) + "\" height=\"" + std::to_string(kHeight) + "\" viewBox=\"0 0 " +
          std::to_string(kWidth) + " " + std::to_string(kHeight) +
          "\" style=\"max-width:100%;height:auto\" font-family=\"sans-serif\" font-size=\"12\" "
          "fill=\"#222\" aria-labelledby=\"" +
          id + "-t " + id + "-d\">\n<title id=\"" + id + "-t\">" + esc(title) +
          "</title>\n<desc id=\"" + id + "-d\">" + esc(desc) + "</desc>\n";
  }
  ~Chart() { o_ += "</svg>\n"; }
  Chart(const Chart&) = delete;
  Chart& operator=(const Chart&) = delete;

  // The heading: bold words, then plain ones, at the top left.
  void heading(std::string_view bold, std::string_view rest) {
    o_ += "<text x=\"2\" y=\"13\"><tspan font-weight=\"bold\">" + esc(bold) + "</tspan>" +
          esc(rest) + "</text>\n";
  }
  // A key at the top right: a coloured square (or, with line_last, a line for the last item)
  // and each item's words after it. The words' widths are guessed (6.8 units a character at font
  // size 12, a little more than most sans fonts need): only the gaps between items depend on it.
  void key(const std::vector<std::pair<std::string, std::string>>& items, bool line_last = false) {
    auto width = [](const std::string& words) { return 6.8 * static_cast<double>(words.size()); };
    double x = kWidth - kRight;
    for (const auto& item : items) x -= 12 + width(item.second);
    x -= 10 * static_cast<double>(items.size() - 1);
    for (std::size_t i = 0; i < items.size(); ++i) {
      const auto& [colour, words] = items[i];
      if (line_last && i + 1 == items.size())
        o_ += "<line x1=\"" + num(x) + "\" y1=\"9\" x2=\"" + num(x + 9) + "\" y2=\"9\" stroke=\"" +
              colour + "\" stroke-width=\"2\"/>\n";
      else
        o_ += "<rect x=\"" + num(x) + "\" y=\"4\" width=\"9\" height=\"9\" fill=\"" + colour +
              "\"/>\n";
      o_ += "<text x=\"" + num(x + 12) + "\" y=\"13\">" + esc(words) + "</text>\n";
      x += 12 + width(words) + 10;
    }
  }
  // Horizontal grid lines with labels at 0, top / 2 and top (top / 2 only if `mid`).
  void y_axis(const std::string& top_label, const std::string& mid_label, bool mid) {
    grid(kTop, top_label);
    if (mid) grid(kTop + kPlotH / 2, mid_label);
    grid(kTop + kPlotH, "0");
  }
  void x_axis(std::int64_t bucket_ms) {
    const double y = kHeight - 6;
    o_ += "<text x=\"" + num(kLeft) + "\" y=\"" + num(y) + "\">" +
          esc(human_duration(window_s(bucket_ms)) + " ago") + "</text>\n<text x=\"" +
          num(bucket_x(kN / 2)) + "\" y=\"" + num(y) + "\" text-anchor=\"middle\">" +
          esc(human_duration(static_cast<std::int64_t>(kN / 2) * bucket_ms / 1000) + " ago") +
          "</text>\n<text x=\"" + num(kWidth - kRight) + "\" y=\"" + num(y) +
          "\" text-anchor=\"end\">now</text>\n";
  }
  void bar(double x, double w, double y, const char* colour) {
    const double h = kTop + kPlotH - y;
    cat(o_, "<rect x=\"", Num(x), "\" y=\"", Num(y), "\" width=\"", Num(w), "\" height=\"", Num(h),
        "\" fill=\"", colour, "\"/>\n");
  }
  void note(std::string_view words) {
    o_ += "<text x=\"" + num(kLeft + kPlotW / 2) + "\" y=\"" + num(kTop + kPlotH / 2 + 4) +
          "\" text-anchor=\"middle\" fill=\"#666\">" + esc(words) + "</text>\n";
  }
  // Transparent columns over the buckets with data: a pointer shows the bucket's numbers
  // (titles: bucket_title, escaped; empty for a bucket without data).
  void hover(const std::array<std::string, kN>& titles) {
    const Num top(kTop), w(kBucketW), h(kPlotH);
    for (std::size_t k = 0; k < kN; ++k) {
      if (titles[k].empty()) continue;
      cat(o_, "<rect x=\"", Num(bucket_x(k)), "\" y=\"", top, "\" width=\"", w, "\" height=\"", h,
          "\" fill=\"#fff\" fill-opacity=\"0\"><title>", titles[k], "</title></rect>\n");
    }
  }
  std::string& out() { return o_; }

 private:
  void grid(double y, const std::string& label) {
    o_ += "<line x1=\"" + num(kLeft) + "\" y1=\"" + num(y) + "\" x2=\"" + num(kWidth - kRight) +
          "\" y2=\"" + num(y) + "\" stroke=\"#ccc\" stroke-width=\"1\"/>\n<text x=\"" +
          num(kLeft - 4) + "\" y=\"" + num(y + 4) + "\" text-anchor=\"end\">" + esc(label) +
          "</text>\n";
  }
  std::string& o_;
};

using Titles = std::array<std::string, kN>;

void headroom_chart(std::string& o, const History::Window& w, std::int64_t bucket_ms,
                    const Facts& f, const Titles& titles, const std::string& summary) {
  Chart c(o, "shmguard-history-headroom",
          "Shared-memory headroom, lowest per " + bucket_words(bucket_ms) + ", last " +
              window_words(bucket_ms),
          summary);
  c.heading("Headroom", ", lowest per " + bucket_words(bucket_ms));
  const HistoryBucket& last = w[f.latest];
  if (f.any)
    c.key({{kHeadroomColour,
            last.bounded ? (f.latest + 1 == kN ? "now " : "last ") + human_bytes(last.headroom_last)
                         : std::string("unbounded")}});
  const std::uint64_t top = nice_bytes(f.max_headroom);
  c.y_axis(bytes_label(top), bytes_label(top / 2), f.bounded);
  c.x_axis(bucket_ms);
  for (std::size_t k = 0; k < kN; ++k) {
    const HistoryBucket& b = w[k];
    if (b.bounded == 0) continue;
    // No headroom, or too little to see at this scale (a bar under 2 units, 2 % of the axis),
    // shows as a red mark on the axis: exhaustion must not look like a minute without data.
    const double y = y_of(static_cast<double>(b.headroom_min), static_cast<double>(top));
    if (y > kTop + kPlotH - 2)
      c.bar(bucket_x(k), kBucketW - 0.6, kTop + kPlotH - 2, kLimitColour);
    else
      c.bar(bucket_x(k), kBucketW - 0.6, y, kHeadroomColour);
  }
  if (!f.any)
    c.note("no data yet");
  else if (!f.bounded)
    c.note("unbounded: no finite limit known");
  c.hover(titles);
}

void limit_chart(std::string& o, const History::Window& w, std::int64_t bucket_ms, const Facts& f,
                 const Titles& titles) {
  const HistoryBucket& last = w[f.latest];
  std::string name = f.bounded ? std::string(w[f.lowest].binding_min_name()) : "";
  if (last.bounded) name = std::string(last.binding_last_name());
  bool changed = false;
  for (const auto& b : w)
    if (b.bounded && b.binding_min_name() != name) changed = true;
  const std::string label = name.empty() ? "Binding limit" : name;
  std::string desc = "Used and limit of the binding limit per " + bucket_words(bucket_ms) +
                     " at its lowest headroom";
  if (last.bounded)
    desc += "; " + label + " " + human_bytes(last.used_last) + " of " +
            human_bytes(last.limit_last) + " used " + (f.latest + 1 == kN ? "now" : "last");
  if (changed) desc += "; the binding limit changed within the window";
  Chart c(o, "shmguard-history-limit", label + ": used and limit, last " + window_words(bucket_ms),
          desc);
  c.heading(label, "");  // the key says which is used and which the limit
  c.key({{kUsedColour, "used"}, {kLimitColour, "limit"}}, true);
  const std::uint64_t top = nice_bytes(f.max_limit);
  c.y_axis(bytes_label(top), bytes_label(top / 2), f.bounded);
  c.x_axis(bucket_ms);
  std::string path;
  bool joined = false;
  double prev_y = 0;
  for (std::size_t k = 0; k < kN; ++k) {
    const HistoryBucket& b = w[k];
    if (b.bounded == 0) {
      joined = false;
      continue;
    }
    const double top_d = static_cast<double>(top);
    if (b.used_at_min > 0)
      c.bar(bucket_x(k), kBucketW - 0.6,
            std::min(y_of(static_cast<double>(b.used_at_min), top_d), kTop + kPlotH - 1),
            kUsedColour);
    const double y = y_of(static_cast<double>(b.limit_at_min), top_d);
    if (joined && y != prev_y)
      cat(path, "V", Num(y));
    else if (!joined)
      cat(path, "M", Num(bucket_x(k)), " ", Num(y));
    cat(path, "H", Num(bucket_x(k + 1)));
    joined = true;
    prev_y = y;
  }
  if (!path.empty())
    c.out() += "<path d=\"" + path + "\" fill=\"none\" stroke=\"" + kLimitColour +
               "\" stroke-width=\"2\"/>\n";
  if (!f.any)
    c.note("no data yet");
  else if (!f.bounded)
    c.note("unbounded: no finite limit known");
  c.hover(titles);
}

void refusals_chart(std::string& o, const History::Window& w, std::int64_t bucket_ms,
                    const Facts& f, const Titles& titles) {
  const std::string per = bucket_words(bucket_ms);
  Chart c(o, "shmguard-history-refusals",
          "Requests refused and 500s translated to 503, per " + per + ", last " +
              window_words(bucket_ms),
          plural(f.refused, "request", "requests") + " refused and " +
              plural(f.translated, "backend 500", "backend 500s") +
              " translated to 503 in the last " + window_words(bucket_ms) + "; at most " +
              std::to_string(f.max_rise) + " in one " + per);
  c.heading("Refusals", ", per " + per);
  c.key({{kRefusedColour, "refused " + std::to_string(f.refused)},
         {kTranslatedColour, "translated " + std::to_string(f.translated)}});
  const std::uint64_t top = nice_count(f.max_rise);
  c.y_axis(std::to_string(top), std::to_string(top / 2), top % 2 == 0);
  c.x_axis(bucket_ms);
  const double half = kBucketW / 2 - 0.3;
  for (std::size_t k = 0; k < kN; ++k) {
    const HistoryBucket& b = w[k];
    const double top_d = static_cast<double>(top);
    if (b.refused)
      c.bar(bucket_x(k), half, y_of(static_cast<double>(b.refused), top_d), kRefusedColour);
    if (b.translated)
      c.bar(bucket_x(k) + half + 0.3, half, y_of(static_cast<double>(b.translated), top_d),
            kTranslatedColour);
  }
  if (!f.any) c.note("no data yet");
  c.hover(titles);
}

}  // namespace

std::string history_summary(const History::Window& w, std::int64_t bucket_ms) {
  const Facts f = facts_of(w);
  const std::string window = window_words(bucket_ms);
  if (!f.any) return "No data yet: the sampler has recorded no sample in the last " + window + ".";
  const HistoryBucket& last = w[f.latest];
  const bool current = f.latest + 1 == kN;
  std::string s = "Last " + window + " (data for " +
                  human_duration(static_cast<std::int64_t>(f.with_data) * bucket_ms / 1000) +
                  "): headroom " + (current ? "now " : age_words(f.latest, bucket_ms) + " ");
  if (last.bounded)
    s += human_bytes(last.headroom_last);
  else
    s += "unbounded (no finite limit known)";
  if (f.bounded) {
    s += ", lowest " + human_bytes(w[f.lowest].headroom_min) + " (" +
         age_words(f.lowest, bucket_ms) + ")";
  }
  if (last.bounded)
    s += "; " + std::string(last.binding_last_name()) + " " + human_bytes(last.used_last) + " of " +
         human_bytes(last.limit_last) + " used";
  s += "; " + plural(f.refused, "request", "requests") + " refused, " +
       plural(f.translated, "backend 500", "backend 500s") + " translated to 503.";
  return s;
}

std::string render_history_html(const History::Window& w, std::int64_t bucket_ms) {
  const Facts f = facts_of(w);
  const std::string summary = history_summary(w, bucket_ms);
  std::string o = "<h2 id=\"history\">Last " + esc(window_words(bucket_ms)) + "</h2>\n<p>" +
                  esc(summary) + "</p>\n<div>\n";
  o.reserve(64 * 1024);  // a full hour is about 55 KB
  Titles titles;
  for (std::size_t k = 0; k < kN; ++k)
    if (w[k].samples) titles[k] = esc(bucket_title(w[k], k, bucket_ms));
  headroom_chart(o, w, bucket_ms, f, titles, summary);
  limit_chart(o, w, bucket_ms, f, titles);
  refusals_chart(o, w, bucket_ms, f, titles);
  o += "</div>\n";
  return o;
}

std::string render_history_html(const History& h, std::int64_t now_ms) {
  return render_history_html(h.window(now_ms), h.bucket_ms());
}

}  // namespace shmguard
