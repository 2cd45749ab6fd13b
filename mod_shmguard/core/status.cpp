// mod_shmguard core: status sections (rendered by the sampler, concatenated by the handler).
#include "text.hpp"
#include "shmguard/status.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "shmguard/refusal.hpp"
#include "shmguard/json.hpp"
#include "shmguard/render.hpp"
#include "shmguard/units.hpp"

namespace shmguard {
using text::sat_mul;

std::string Template::fill(const std::function<std::string(std::int32_t)>& name) const {
  std::string out;
  out.reserve(text.size() + holes.size() * 16);
  std::size_t pos = 0;
  for (const auto& [off, id] : holes) {
    std::size_t at = std::min<std::size_t>(std::max<std::size_t>(off, pos), text.size());
    out.append(text, pos, at - pos);
    out += name(id);
    pos = at;
  }
  out.append(text, pos, std::string::npos);
  return out;
}

std::string human_duration(std::int64_t s) {
  if (s < 0) return "unknown";
  auto two = [](std::int64_t a, const char* ua, std::int64_t b, const char* ub) {
    std::string out = std::to_string(a) + ua;
    if (b) out += " " + std::to_string(b) + ub;
    return out;
  };
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return two(s / 60, "m", s % 60, "s");
  if (s < 86400) return two(s / 3600, "h", s / 60 % 60, "m");
  return two(s / 86400, "d", s / 3600 % 24, "h");
}

// ------------------------------------------------------------------------------ encoding
namespace {
constexpr std::string_view kMagic = "SGB2";

void put_u32(std::string& out, std::uint32_t v) {
  char b[4];
  std::memcpy(b, &v, 4);
  out.append(b, 4);
}
bool get_u32(std::string_view& in, std::uint32_t& v) {
  if (in.size() < 4) return false;
  std::memcpy(&v, in.data(), 4);
  in.remove_prefix(4);
  return true;
}
void put_str(std::string& out, const std::string& s) {
  put_u32(out, static_cast<std::uint32_t>(s.size()));
  out += s;
}
bool get_str(std::string_view& in, std::string& s) {
  std::uint32_t n;
  if (!get_u32(in, n) || n > in.size()) return false;
  s.assign(in.data(), n);
  in.remove_prefix(n);
  return true;
}
void put_tpl(std::string& out, const Template& t) {
  put_str(out, t.text);
  put_u32(out, static_cast<std::uint32_t>(t.holes.size()));
  for (const auto& [off, id] : t.holes) {
    put_u32(out, off);
    put_u32(out, static_cast<std::uint32_t>(id));
  }
}
bool get_tpl(std::string_view& in, Template& t) {
  std::uint32_t n;
  if (!get_str(in, t.text) || !get_u32(in, n) || n > in.size() / 8) return false;
  std::uint32_t prev = 0;
  for (std::uint32_t i = 0; i < n; ++i) {
    std::uint32_t off, id;
    if (!get_u32(in, off) || !get_u32(in, id)) return false;
    if (off < prev || off > t.text.size()) return false;  // holes in order, inside the text
    prev = off;
    t.holes.emplace_back(off, static_cast<std::int32_t>(id));
  }
  return true;
}
}  // namespace

std::string encode_sections(const StatusSections& s) {
  std::string out(kMagic);
  put_str(out, s.html_findings);
  put_str(out, s.html_limits);
  put_tpl(out, s.html_workers);
  put_str(out, s.html_sources);
  put_str(out, s.auto_text);
  put_tpl(out, s.json_members);
  put_str(out, s.metrics);
  put_u32(out, s.findings_critical);
  put_u32(out, s.findings_warning);
  put_u32(out, static_cast<std::uint32_t>(s.failures_last_minute & 0xffffffffu));
  put_u32(out, static_cast<std::uint32_t>(s.failures_last_minute >> 32));
  return out;
}

std::optional<StatusSections> decode_sections(std::string_view in) {
  if (in.substr(0, kMagic.size()) != kMagic) return std::nullopt;
  in.remove_prefix(kMagic.size());
  StatusSections s;
  std::uint32_t lo = 0, hi = 0;
  if (!get_str(in, s.html_findings) || !get_str(in, s.html_limits) ||
      !get_tpl(in, s.html_workers) || !get_str(in, s.html_sources) || !get_str(in, s.auto_text) ||
      !get_tpl(in, s.json_members) || !get_str(in, s.metrics) ||
      !get_u32(in, s.findings_critical) || !get_u32(in, s.findings_warning) || !get_u32(in, lo) ||
      !get_u32(in, hi) || !in.empty())
    return std::nullopt;
  s.failures_last_minute = (static_cast<std::uint64_t>(hi) << 32) | lo;
  return s;
}

// ------------------------------------------------------------------------------ rendering
// The per-worker parts (HTML table rows, JSON objects) are appended straight into the output
// string, without temporaries: with 1000 workers they are most of the work.
namespace {

void put(std::string& o, std::string_view s) {
  o.append(s.data(), s.size());
}
void put_u(std::string& o, std::uint64_t v) {
  char b[24];
  auto r = std::to_chars(b, b + sizeof b, v);
  o.append(b, static_cast<std::size_t>(r.ptr - b));
}
void put_i(std::string& o, std::int64_t v) {
  char b[24];
  auto r = std::to_chars(b, b + sizeof b, v);
  o.append(b, static_cast<std::size_t>(r.ptr - b));
}

// human_bytes(v) written at p (at most 32 bytes); returns the end. The same digits as its "%.1f":
// the scaled value is exact in a double below 2^53, and printf rounds it to nearest, ties to even.
char* write_human_bytes(char* p, std::uint64_t v) {
  static constexpr std::string_view units[] = {" KiB", " MiB", " GiB", " TiB", " PiB"};
  if (v < 1024) {
    p = std::to_chars(p, p + 20, v).ptr;
    std::memcpy(p, " B", 2);
    return p + 2;
  }
  if (v >= (std::uint64_t{1} << 53)) {
    std::string h = human_bytes(v);
    std::memcpy(p, h.data(), std::min<std::size_t>(h.size(), 32));
    return p + std::min<std::size_t>(h.size(), 32);
  }
  unsigned u = 0;  // v / 1024^(u+1) < 1024
  while (u < 4 && v >= (std::uint64_t{1} << (10 * (u + 2)))) ++u;
  const unsigned shift = 10 * (u + 1);
  const std::uint64_t tenths = v * 10;  // < 2^57
  std::uint64_t q = tenths >> shift;
  const std::uint64_t r = tenths & ((std::uint64_t{1} << shift) - 1);
  const std::uint64_t half = std::uint64_t{1} << (shift - 1);
  if (r > half || (r == half && (q & 1))) ++q;
  p = std::to_chars(p, p + 20, q / 10).ptr;
  *p++ = '.';
  *p++ = static_cast<char>('0' + q % 10);
  std::memcpy(p, units[u].data(), 4);
  return p + 4;
}
void put_human_bytes(std::string& o, std::uint64_t v) {
  char b[32];
  o.append(b, static_cast<std::size_t>(write_human_bytes(b, v) - b));
}

// human_duration(s) written at p (at most 48 bytes); returns the end.
char* write_duration(char* p, std::int64_t s) {
  if (s < 0) {
    std::memcpy(p, "unknown", 7);
    return p + 7;
  }
  auto two = [&](std::int64_t a, char ua, std::int64_t b, char ub) {
    p = std::to_chars(p, p + 20, a).ptr;
    *p++ = ua;
    if (b) {
      *p++ = ' ';
      p = std::to_chars(p, p + 20, b).ptr;
      *p++ = ub;
    }
    return p;
  };
  if (s < 60) {
    p = std::to_chars(p, p + 20, s).ptr;
    *p++ = 's';
    return p;
  }
  if (s < 3600) return two(s / 60, 'm', s % 60, 's');
  if (s < 86400) return two(s / 3600, 'h', s / 60 % 60, 'm');
  return two(s / 86400, 'd', s / 3600 % 24, 'h');
}

// Writes into a string through a pointer, for the per-worker loops: room(n) makes n bytes
// writable (the string grows ahead of the text), finish() trims it to what was written.
class Writer {
 public:
  explicit Writer(std::string& s) : s_(s), p_(s.data() + s.size()) {}
  std::size_t size() const { return static_cast<std::size_t>(p_ - s_.data()); }
  void room(std::size_t n) {
    std::size_t used = size();
    if (s_.size() - used < n) {
      s_.resize(std::max(used + n, s_.size() + s_.size() / 2));
      p_ = s_.data() + used;
    }
  }
  void finish() { s_.resize(size()); }
  template <std::size_t N>
  void lit(const char (&a)[N]) {
    std::memcpy(p_, a, N - 1);
    p_ += N - 1;
  }
  void ch(char c) { *p_++ = c; }
  void u(std::uint64_t v) { p_ = std::to_chars(p_, p_ + 20, v).ptr; }
  void i(std::int64_t v) { p_ = std::to_chars(p_, p_ + 20, v).ptr; }
  void bytes(std::uint64_t v) { p_ = write_human_bytes(p_, v); }
  void duration(std::int64_t v) { p_ = write_duration(p_, v); }
  // html_escape(v): at most 6 bytes per byte of v.
  void esc(std::string_view v) {
    for (char c : v) {
      switch (c) {
        case '&':
          lit("&amp;");
          break;
        case '<':
          lit("&lt;");
          break;
        case '>':
          lit("&gt;");
          break;
        case '"':
          lit("&quot;");
          break;
        case '\'':
          lit("&#39;");
          break;
        default:
          *p_++ = c;
      }
    }
  }
  // json_string(v): at most 6 bytes per byte of v, plus 2.
  void json(std::string_view v) {
    for (char c : v) {
      auto b = static_cast<unsigned char>(c);
      if (b < 0x20 || b >= 0x7F || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&') {
        std::string j = json_string(v);
        std::memcpy(p_, j.data(), j.size());
        p_ += j.size();
        return;
      }
    }
    *p_++ = '"';
    std::memcpy(p_, v.data(), v.size());
    p_ += v.size();
    *p_++ = '"';
  }

 private:
  std::string& s_;
  char* p_;
};

// "64.0 MiB<br><small>67108864 B</small>"
void put_bytes_cell(std::string& o, std::uint64_t v) {
  put_human_bytes(o, v);
  o += "<br><small>";
  put_u(o, v);
  o += " B</small>";
}

std::string esc(std::string_view s) {
  return html_escape(s);
}
std::string num(std::uint64_t v) {
  return std::to_string(v);
}

std::string bytes_cell(std::uint64_t v) {
  std::string o;
  put_bytes_cell(o, v);
  return o;
}

const Counter* counter_named(const Snapshot& s, const std::string& name) {
  for (const auto& c : s.counters)
    if (c.name == name) return &c;
  return nullptr;
}

std::string rise_words(const Counter* c) {
  if (!c) return "";
  return "+" + num(c->since_start) + " since start, +" + num(c->last_minute) + " last minute";
}
std::string render_findings_html(const std::vector<Finding>& findings) {
  std::string h = "<h2 id=\"findings\">Findings</h2>\n";
  if (findings.empty())
    return h + "<p class=\"quiet\">Nothing on the data below calls for action.</p>\n";
  h += "<ul class=\"findings\">\n";
  for (const auto& f : findings)
    h += "<li class=\"" + esc(f.severity) + "\"><span class=\"sev\">" + esc(f.severity) +
         "</span> " + esc(f.text) + "</li>\n";
  return h + "</ul>\n";
}

std::string render_limits_html(const Snapshot& s) {
  std::string h = "<h2 id=\"limits\">Limits</h2>\n";
  if (s.limits.empty())
    return h + "<p>No finite limit on new shared memory was found among the sources read.</p>\n";
  h += "<p>A new shared anonymous mapping (what OPcache allocates) is refused by whichever of "
       "these has the least headroom.</p>\n"
       "<table>\n<thead><tr><th>limit</th><th>used</th><th>limit</th><th>headroom</th>"
       "<th>failures</th></tr></thead>\n<tbody>\n";
  for (const auto& l : s.limits) {
    bool binding = l.name == s.binding;
    const Counter* c = nullptr;
    if (l.name.rfind("beancounter:", 0) == 0) c = counter_named(s, l.name + ":failcnt");
    if (l.name == "cgroup:memory") c = counter_named(s, "cgroup:oom_kill");
    h += std::string("<tr") + (binding ? " class=\"binding\"" : "") + "><th scope=\"row\">" +
         esc(l.name) + (binding ? " <span class=\"tag\">binding</span>" : "") + "</th><td>" +
         bytes_cell(l.used_bytes) + "</td><td>" + bytes_cell(l.limit_bytes) + "</td><td>" +
         bytes_cell(l.headroom_bytes()) + "</td><td>" +
         (c ? num(c->value) + "<br><small>" + esc(rise_words(c)) + "</small>" : "") +
         "</td></tr>\n";
  }
  return h + "</tbody>\n</table>\n";
}

// How many worker rows a table may list and how its commands are shown.
struct RowLimit {
  bool full_commands = true;
  std::size_t max_rows = kMaxWorkerRows;
  std::size_t max_bytes = 0;  // bytes of rows per table, 0: no bound
  // Room for one more row, after `listed` rows took `used` bytes?
  bool more(std::size_t listed, std::size_t used) const {
    return listed < max_rows && (max_bytes == 0 || used < max_bytes);
  }
};

// At most kCmdlineMax bytes of a command, not cut inside a UTF-8 sequence.
std::string_view clip_command(std::string_view c) {
  if (c.size() <= kCmdlineMax) return c;
  std::size_t n = kCmdlineMax;
  while (n > 0 && (static_cast<unsigned char>(c[n]) & 0xC0) == 0x80) --n;  // c[n]: a continuation
  return c.substr(0, n);
}

std::string_view shown_command(const WorkerRow& w, const RowLimit& lim) {
  return clip_command(lim.full_commands ? std::string_view(w.command) : program_name(w.command));
}

void render_workers_html(Template& t, const std::vector<WorkerRow>& workers,
                         const SegmentSharing& sharing, const RowLimit& lim) {
  const std::vector<SegmentUse>& uses = sharing.uses;
  std::string& o = t.text;
  o += "<h2 id=\"workers\">FastCGI workers</h2>\n";
  if (workers.empty()) {
    o += "<p class=\"quiet\">No FastCGI worker is running (mod_fcgid's process table is empty "
         "and no php-fpm process was found).</p>\n";
    return;
  }
  o += "<table class=\"workers\">\n<thead><tr><th>pid</th><th>backend</th><th>vhost</th>"
       "<th>class</th><th>state</th><th>command</th><th>uptime</th><th>shared resident</th>"
       "<th>shared segments (device inode, size, sharing)</th></tr></thead>\n<tbody>\n";
  const std::size_t rows = std::min(workers.size(), lim.max_rows);
  t.holes.reserve(t.holes.size() + rows);
  Writer out(o);
  out.room(rows * 560);  // a typical row; room() below guarantees each one
  const std::size_t start = out.size();
  std::size_t listed = 0;
  for (std::size_t i = 0; i < workers.size() && lim.more(listed, out.size() - start); ++i) {
    const WorkerRow& w = workers[i];
    const std::string_view command = shown_command(w, lim);
    ++listed;
    // Bound: the markup, 6 bytes per byte of escaped text, 20 per number.
    std::size_t segs_text = 0;
    for (const auto& s : w.segments) segs_text += s.kind.size();
    out.room(640 +
             6 * (w.backend.size() + w.kind.size() + w.klass.size() + w.state.size() +
                  command.size() + w.error.size() + w.lean.size() + segs_text) +
             w.segments.size() * 224);
    out.lit("<tr><td>");
    out.i(w.pid);
    out.lit("</td><td>");
    out.esc(w.backend);
    out.lit("<br><small>");
    out.esc(w.kind);
    out.lit("</small></td><td>");
    if (w.vhost_id != 0) {
      t.holes.emplace_back(static_cast<std::uint32_t>(out.size()), w.vhost_id);
      out.lit("<br><small>mod_fcgid vhost id ");
      out.i(w.vhost_id);
      out.lit("</small>");
    } else {
      out.lit("<small>not known</small>");
    }
    out.lit("</td><td class=\"cmd\">");
    out.esc(w.klass);
    out.lit("</td><td>");
    out.esc(w.state);
    if (!w.lean.empty()) {
      out.lit("<br><small class=\"err\">lean: ");
      out.esc(w.lean);
      out.lit("</small>");
    }
    out.lit("</td><td class=\"cmd\">");
    out.esc(command);
    out.lit("</td><td>");
    out.duration(w.uptime_s);
    out.lit("</td><td>");
    out.bytes(w.rss_shmem);
    out.lit("<br><small>");
    out.u(w.rss_shmem);
    out.lit(" B</small></td><td>");
    if (!w.error.empty()) {
      out.lit("<span class=\"err\">");
      out.esc(w.error);
      out.lit("</span><br>");
    }
    if (w.segments.empty() && w.error.empty()) out.lit("<small>none</small>");
    for (std::size_t k = 0; k < w.segments.size(); ++k) {
      const Segment& s = w.segments[k];
      std::size_t n = sharing.users(i, k);
      out.esc(s.kind);
      out.ch(' ');
      out.u(s.dev_major);
      out.ch(':');
      out.u(s.dev_minor);
      out.lit(" inode ");
      out.u(s.inode);
      out.lit(", ");
      out.bytes(s.size);
      out.lit(", ");
      if (n > 1) {
        out.lit("<span class=\"shared\">shared by ");
        out.u(n);
        out.lit(" processes</span>");
      } else {
        out.lit("<span class=\"private\">private</span>");
      }
      out.lit("<br>");
    }
    out.lit("</td></tr>\n");
  }
  out.finish();
  if (listed < workers.size()) {
    o += "<tr><td colspan=\"9\" class=\"quiet\">";
    put_u(o, workers.size() - listed);
    o += workers.size() - listed == 1 ? " more worker" : " more workers";
    o += " not listed (the page lists at most ";
    put_u(o, listed);
    o += "; the totals below count every one)</td></tr>\n";
  }
  o += "</tbody>\n";
  std::uint64_t bytes = 0, priv = 0, priv_bytes = 0, rss = 0;
  for (const auto& u : uses) {
    bytes += u.seg.size;
    if (!u.shared()) {
      ++priv;
      priv_bytes += u.seg.size;
    }
  }
  for (const auto& w : workers) rss += w.rss_shmem;
  o += "<tfoot><tr><th scope=\"row\">total</th><td colspan=\"6\">";
  put_u(o, workers.size());
  o += workers.size() == 1 ? " worker; " : " workers; ";
  put_u(o, uses.size());
  o += uses.size() == 1 ? " distinct segment" : " distinct segments";
  o += " holding ";
  put_human_bytes(o, bytes);
  o += " (";
  put_u(o, priv);
  o += " private: ";
  put_human_bytes(o, priv_bytes);
  o += "; ";
  put_u(o, uses.size() - priv);
  o += " shared: ";
  put_human_bytes(o, bytes - priv_bytes);
  o += ")</td><td>";
  put_bytes_cell(o, rss);
  o += "</td><td></td></tr></tfoot>\n</table>\n";
}

std::string opt_bytes_cell(const std::optional<std::uint64_t>& v) {
  return v ? bytes_cell(*v) : std::string("<small>unknown</small>");
}

std::string render_sources_html(const Snapshot& s) {
  std::string h = "<h2 id=\"sources\">Sources</h2>\n";
  if (s.beancounters) {
    const auto& bc = *s.beancounters;
    h += "<h3>Beancounters</h3>\n<p>" + esc(bc.file) + ", container " + esc(bc.block.id);
    if (!bc.version.empty()) h += ", version " + esc(bc.version);
    if (!bc.version_known) h += " (not 2.5: parsed because the columns match)";
    if (bc.blocks_in_file > 1) h += ", " + num(bc.blocks_in_file) + " containers in the file";
    h += "</p>\n<table>\n<thead><tr><th>resource</th><th>held</th><th>maxheld</th><th>barrier</th>"
         "<th>limit</th><th>failcnt</th></tr></thead>\n<tbody>\n";
    for (const auto& r : bc.block.rows) {
      auto cell = [&](std::uint64_t v, bool unlimited) {
        if (unlimited) return std::string("unlimited<br><small>") + num(v) + "</small>";
        std::string raw = num(v);
        if (r.unit == BcUnit::Pages)
          return esc(human_bytes(sat_mul(v, s.page_size))) + "<br><small>" + raw + " pages</small>";
        if (r.unit == BcUnit::Bytes) return bytes_cell(v);
        return raw;
      };
      const Counter* c = counter_named(s, "beancounter:" + r.resource + ":failcnt");
      bool watched = r.resource == "shmpages" || r.resource == "privvmpages";
      h += std::string("<tr") + (watched ? " class=\"watched\"" : "") + "><th scope=\"row\">" +
           esc(r.resource) + "</th><td>" + cell(r.held, false) + "</td><td>" +
           cell(r.maxheld, false) + "</td><td>" + cell(r.barrier, r.barrier_unlimited()) +
           "</td><td>" + cell(r.limit, r.limit_unlimited()) + "</td><td" +
           (r.failcnt ? " class=\"bad\"" : "") + ">" + num(r.failcnt) +
           (c && r.resource != "dummy" ? "<br><small>" + esc(rise_words(c)) + "</small>" : "") +
           "</td></tr>\n";
    }
    h += "</tbody>\n</table>\n";
  }
  if (s.cgroup) {
    const auto& c = *s.cgroup;
    h += "<h3>Memory cgroup (v" + std::to_string(c.version) + ")</h3>\n<table>\n<tbody>\n";
    h += "<tr><th scope=\"row\">directory</th><td class=\"cmd\">" + esc(c.dir) + "</td></tr>\n";
    h += "<tr><th scope=\"row\">limit</th><td>" +
         (c.limit ? bytes_cell(*c.limit) : std::string("unlimited")) + "</td></tr>\n";
    h += "<tr><th scope=\"row\">usage</th><td>" + opt_bytes_cell(c.usage) + "</td></tr>\n";
    h += "<tr><th scope=\"row\">shmem</th><td>" + opt_bytes_cell(c.shmem) + "</td></tr>\n";
    for (const char* ev : {"max", "oom", "oom_kill", "failcnt"}) {
      const Counter* k = counter_named(s, std::string("cgroup:") + ev);
      if (!k) continue;
      h += std::string("<tr><th scope=\"row\">") + ev + "</th><td>" + num(k->value) +
           "<br><small>" + esc(rise_words(k)) + "</small></td></tr>\n";
    }
    for (std::size_t i = 1; i < c.levels.size(); ++i)
      if (c.levels[i].limit)
        h += "<tr><th scope=\"row\">ancestor " + esc(c.levels[i].dir) + "</th><td>limit " +
             esc(human_bytes(*c.levels[i].limit)) + "</td></tr>\n";
    h += "</tbody>\n</table>\n";
  }
  if (s.overcommit) {
    const auto& m = *s.overcommit;
    h += "<h3>Overcommit</h3>\n<table>\n<tbody>\n<tr><th scope=\"row\">vm.overcommit_memory</th>"
         "<td>" +
         std::to_string(m.mode) +
         (m.mode == 2 ? " (strict: every shared mapping is charged at mmap)"
                      : " (does not refuse mappings)") +
         "</td></tr>\n";
    h += "<tr><th scope=\"row\">CommitLimit</th><td>" + opt_bytes_cell(m.commit_limit) +
         "</td></tr>\n<tr><th scope=\"row\">Committed_AS</th><td>" +
         opt_bytes_cell(m.committed_as) + "</td></tr>\n<tr><th scope=\"row\">Shmem</th><td>" +
         opt_bytes_cell(m.shmem) + "</td></tr>\n<tr><th scope=\"row\">MemAvailable</th><td>" +
         opt_bytes_cell(m.mem_available) + "</td></tr>\n</tbody>\n</table>\n";
  }
  if (s.sysv) {
    const auto& v = *s.sysv;
    h += "<h3>SysV shared memory</h3>\n<p>Binds SysV segments only.</p>\n<table>\n<tbody>\n";
    h += "<tr><th scope=\"row\">shmmax</th><td>" + opt_bytes_cell(v.shmmax) + "</td></tr>\n";
    h += "<tr><th scope=\"row\">shmall</th><td>" +
         (v.shmall ? esc(human_bytes(sat_mul(*v.shmall, s.page_size))) + "<br><small>" +
                         num(*v.shmall) + " pages</small>"
                   : std::string("<small>unknown</small>")) +
         "</td></tr>\n";
    if (v.segments)
      h += "<tr><th scope=\"row\">segments</th><td>" + num(v.segments->size()) + ", " +
           esc(human_bytes(v.segments_bytes())) + "</td></tr>\n";
    h += "</tbody>\n</table>\n";
  }
  if (s.devshm)
    h += "<h3>/dev/shm</h3>\n<p>" + esc(s.devshm->path) +
         " (tmpfs; does not limit anonymous "
         "shared mappings): " +
         esc(human_bytes(s.devshm->total)) + " size, " + esc(human_bytes(s.devshm->avail)) +
         " available.</p>\n";
  if (!s.unavailable.empty()) {
    h += "<h3>Unavailable</h3>\n<ul class=\"unavailable\">\n";
    for (const auto& u : s.unavailable)
      h += "<li><strong>" + esc(u.source) + "</strong>: " + esc(u.reason) + "</li>\n";
    h += "</ul>\n";
  }
  return h;
}

// Appends each worker's JSON object, comma-separated; the "vhost" value is a hole (see Template).
// Byte for byte what JsonWriter writes for the same fields.
// Returns how many were written (see RowLimit).
std::size_t write_workers_json(Template& t, const std::vector<WorkerRow>& workers,
                               const SegmentSharing& sharing, const RowLimit& lim) {
  const std::size_t rows = std::min(workers.size(), lim.max_rows);
  t.holes.reserve(t.holes.size() + rows);
  Writer out(t.text);
  out.room(rows * 520);  // a typical object; room() below guarantees each one
  const std::size_t start = out.size();
  std::size_t listed = 0;
  for (std::size_t i = 0; i < workers.size() && lim.more(listed, out.size() - start); ++i) {
    const WorkerRow& wr = workers[i];
    const std::string_view command = shown_command(wr, lim);
    ++listed;
    // Bound: the keys, 6 bytes per byte of string values plus quotes, 20 per number.
    std::size_t segs_text = 0;
    for (const auto& s : wr.segments) segs_text += s.kind.size();
    out.room(512 +
             6 * (wr.backend.size() + wr.kind.size() + wr.state.size() + wr.klass.size() +
                  command.size() + wr.error.size() + wr.lean.size() + segs_text) +
             wr.segments.size() * 224);
    if (i) out.ch(',');
    out.lit("{\"pid\":");
    out.i(wr.pid);
    out.lit(",\"backend\":");
    out.json(wr.backend);
    out.lit(",\"kind\":");
    out.json(wr.kind);
    out.lit(",\"state\":");
    out.json(wr.state);
    out.lit(",\"fcgid_vhost_id\":");
    out.i(wr.vhost_id);
    out.lit(",\"vhost\":");
    t.holes.emplace_back(static_cast<std::uint32_t>(out.size()), wr.vhost_id);
    out.lit(",\"class\":");
    out.json(wr.klass);
    out.lit(",\"command\":");
    out.json(command);
    out.lit(",\"uptime_s\":");
    out.i(wr.uptime_s);
    out.lit(",\"rss_shmem_bytes\":");
    out.u(wr.rss_shmem);
    if (wr.lean.empty()) {
      out.lit(",\"degraded\":false");
    } else {
      out.lit(",\"degraded\":true,\"lean\":");
      out.json(wr.lean);
    }
    if (!wr.error.empty()) {
      out.lit(",\"error\":");
      out.json(wr.error);
    }
    out.lit(",\"segments\":[");
    for (std::size_t k = 0; k < wr.segments.size(); ++k) {
      const Segment& seg = wr.segments[k];
      std::size_t n = sharing.users(i, k);
      if (k) out.ch(',');
      out.lit("{\"dev\":\"");
      out.u(seg.dev_major);
      out.ch(':');
      out.u(seg.dev_minor);
      out.lit("\",\"inode\":");
      out.u(seg.inode);
      out.lit(",\"size_bytes\":");
      out.u(seg.size);
      out.lit(",\"kind\":");
      out.json(seg.kind);
      out.lit(",\"mapped_by\":");
      out.u(n);
      if (n > 1)
        out.lit(",\"shared\":true}");
      else
        out.lit(",\"shared\":false}");
    }
    out.lit("]}");
  }
  out.finish();
  return listed;
}

void auto_line(std::string& o, std::string_view key, std::string_view value) {
  put(o, key);
  o += ": ";
  std::size_t at = o.size();
  put(o, value);
  std::replace(o.begin() + static_cast<std::ptrdiff_t>(at), o.end(), '\n', ' ');
  o.push_back('\n');
}
void auto_line(std::string& o, std::string_view key, std::uint64_t value) {
  put(o, key);
  o += ": ";
  put_u(o, value);
  o.push_back('\n');
}
void auto_line(std::string& o, std::string_view key_head, std::string_view name,
               std::uint64_t value) {
  put(o, key_head);
  put(o, name);
  o += "]: ";
  put_u(o, value);
  o.push_back('\n');
}

// Sums over the workers and their segments that several sections show.
struct Totals {
  std::uint64_t seg_bytes = 0, priv = 0, priv_bytes = 0, rss = 0, fcgid = 0, fpm = 0;
  std::uint64_t rss_fcgid = 0, rss_fpm = 0;
  std::uint64_t lean = 0;  // workers started lean (degrade)
};

void render_auto(std::string& a, const Snapshot& snap, const std::vector<WorkerRow>& workers,
                 const std::vector<SegmentUse>& uses, const std::vector<Finding>& findings,
                 const Totals& tot) {
  if (snap.headroom_bytes)
    auto_line(a, "ShmGuardHeadroomBytes", *snap.headroom_bytes);
  else
    auto_line(a, "ShmGuardHeadroomBytes", std::string_view("unbounded"));
  auto_line(a, "ShmGuardBinding",
            snap.binding.empty() ? std::string_view("none") : std::string_view(snap.binding));
  for (const auto& l : snap.limits) {
    auto_line(a, "ShmGuardLimitBytes[", l.name, l.limit_bytes);
    auto_line(a, "ShmGuardUsedBytes[", l.name, l.used_bytes);
  }
  for (const auto& c : snap.counters) {
    // The counters that matter for shared memory, and any other that ever rose.
    bool relevant = c.name.rfind("cgroup:", 0) == 0 ||
                    c.name.find(":shmpages:") != std::string::npos ||
                    c.name.find(":privvmpages:") != std::string::npos || c.value > 0;
    if (!relevant) continue;
    auto_line(a, "ShmGuardFailures[", c.name, c.value);
    auto_line(a, "ShmGuardFailuresLastMinute[", c.name, c.last_minute);
  }
  for (const auto& u : snap.unavailable)
    auto_line(a, "ShmGuardUnavailable[" + u.source + "]", u.reason);
  auto_line(a, "ShmGuardWorkers", workers.size());
  auto_line(a, "ShmGuardWorkerSegments", uses.size());
  auto_line(a, "ShmGuardWorkerSegmentBytes", tot.seg_bytes);
  auto_line(a, "ShmGuardWorkersDegraded", tot.lean);
  auto_line(a, "ShmGuardWorkerPrivateSegments", tot.priv);
  auto_line(a, "ShmGuardWorkerSharedResidentBytes", tot.rss);
  auto_line(a, "ShmGuardFindings", findings.size());
  for (const auto& f : findings) auto_line(a, "ShmGuardFinding[" + f.id + "]", f.text);
}

void render_json(Template& t, const Snapshot& snap, const std::vector<WorkerRow>& workers,
                 const SegmentSharing& sharing, const std::vector<Finding>& findings,
                 const Totals& tot, const RowLimit& lim) {
  // The members without the braces: the snapshot's, "workers" (written directly, with each
  // worker's "vhost" value a hole), then totals and findings.
  std::string head;
  {
    JsonWriter w;
    w.begin_object();
    write_json_members(w, snap);
    head = w.take();
  }
  t.text.append(head, 1, std::string::npos);
  t.text += head.size() > 1 ? ",\"workers\":[" : "\"workers\":[";
  std::size_t listed = write_workers_json(t, workers, sharing, lim);
  t.text += "],";
  if (listed < workers.size()) {
    t.text += "\"workers_not_listed\":";
    put_u(t.text, workers.size() - listed);
    t.text += ",";
  }
  JsonWriter w;
  w.begin_object();
  w.key("worker_totals")
      .begin_object()
      .field("workers", static_cast<std::uint64_t>(workers.size()))
      .field("segments", static_cast<std::uint64_t>(sharing.uses.size()))
      .field("segment_bytes", tot.seg_bytes)
      .field("private_segments", tot.priv)
      .field("private_segment_bytes", tot.priv_bytes)
      .field("shared_segments", static_cast<std::uint64_t>(sharing.uses.size()) - tot.priv)
      .field("shared_segment_bytes", tot.seg_bytes - tot.priv_bytes)
      .field("rss_shmem_bytes", tot.rss)
      .field("degraded_workers", tot.lean)
      .end_object();
  w.key("findings").begin_array();
  for (const auto& f : findings) {
    w.begin_object().field("id", f.id).field("severity", f.severity).field("text", f.text);
    w.key("numbers").begin_object();
    for (const auto& [k, v] : f.numbers) w.field(k, v);
    w.end_object().end_object();
  }
  w.end_array();
  const std::string& tail = w.str();
  t.text.append(tail, 1, std::string::npos);  // without its '{'; the outer '}' never written
}

void render_metrics(std::string& m, const Snapshot& snap, const std::vector<SegmentUse>& uses,
                    const std::vector<Finding>& findings, const Totals& tot) {
  m = render_prometheus(snap);
  m.reserve(m.size() + 2048);
  m += "# HELP shmguard_sample_timestamp_seconds When the sampler took this snapshot.\n"
       "# TYPE shmguard_sample_timestamp_seconds gauge\n"
       "shmguard_sample_timestamp_seconds ";
  put_i(m, snap.taken_at_ms / 1000);
  m.push_back('.');
  std::string ms = std::to_string(snap.taken_at_ms % 1000);
  m.append(3 - std::min<std::size_t>(3, ms.size()), '0');
  m += ms;
  m += "\n# HELP shmguard_fastcgi_workers FastCGI worker processes seen by the sampler.\n"
       "# TYPE shmguard_fastcgi_workers gauge\n"
       "shmguard_fastcgi_workers{backend=\"mod_fcgid\"} ";
  put_u(m, tot.fcgid);
  m += "\nshmguard_fastcgi_workers{backend=\"php-fpm\"} ";
  put_u(m, tot.fpm);
  m += "\n# HELP shmguard_workers_degraded Workers started lean (ShmGuardAction degrade).\n"
       "# TYPE shmguard_workers_degraded gauge\nshmguard_workers_degraded{backend=\"mod_fcgid\"} ";
  put_u(m, tot.lean);
  m += "\n# HELP shmguard_fastcgi_shared_resident_bytes Resident shared memory (RssShmem) of the "
       "workers.\n# TYPE shmguard_fastcgi_shared_resident_bytes gauge\n"
       "shmguard_fastcgi_shared_resident_bytes{backend=\"mod_fcgid\"} ";
  put_u(m, tot.rss_fcgid);
  m += "\nshmguard_fastcgi_shared_resident_bytes{backend=\"php-fpm\"} ";
  put_u(m, tot.rss_fpm);
  m += "\n# HELP shmguard_fastcgi_segments Distinct shared segments the workers map, by whether "
       "one worker or several map each.\n# TYPE shmguard_fastcgi_segments gauge\n"
       "shmguard_fastcgi_segments{sharing=\"private\"} ";
  put_u(m, tot.priv);
  m += "\nshmguard_fastcgi_segments{sharing=\"shared\"} ";
  put_u(m, uses.size() - tot.priv);
  m += "\n# HELP shmguard_fastcgi_segment_bytes Size of those segments.\n"
       "# TYPE shmguard_fastcgi_segment_bytes gauge\n"
       "shmguard_fastcgi_segment_bytes{sharing=\"private\"} ";
  put_u(m, tot.priv_bytes);
  m += "\nshmguard_fastcgi_segment_bytes{sharing=\"shared\"} ";
  put_u(m, tot.seg_bytes - tot.priv_bytes);
  m += "\n# HELP shmguard_findings Advisor findings on the current data, by severity.\n"
       "# TYPE shmguard_findings gauge\n";
  for (const char* sev : {"critical", "warning", "info"}) {
    std::uint64_t n = 0;
    for (const auto& f : findings) n += f.severity == sev;
    m += "shmguard_findings{severity=\"";
    m += sev;
    m += "\"} ";
    put_u(m, n);
    m.push_back('\n');
  }
}

// The size encode_sections() gives s (without building it).
std::size_t encoded_size(const StatusSections& s) {
  auto tpl = [](const Template& t) { return 8 + t.text.size() + 8 * t.holes.size(); };
  return 4 + (4 + s.html_findings.size()) + (4 + s.html_limits.size()) + tpl(s.html_workers) +
         (4 + s.html_sources.size()) + (4 + s.auto_text.size()) + tpl(s.json_members) +
         (4 + s.metrics.size()) + 16;
}

}  // namespace

std::string_view program_name(std::string_view command) {
  std::size_t end = command.find(' ');
  std::string_view first = command.substr(0, end);
  std::size_t slash = first.rfind('/');
  if (slash != std::string_view::npos) first.remove_prefix(slash + 1);
  while (!first.empty() && first.back() == ':') first.remove_suffix(1);
  return first;
}

StatusSections render_sampler_sections(const Snapshot& snap, const std::vector<WorkerRow>& workers,
                                       unsigned formats) {
  return render_sampler_sections(snap, workers, formats, StatusOptions{});
}

StatusSections render_sampler_sections(const Snapshot& snap, const std::vector<WorkerRow>& workers,
                                       unsigned formats, const StatusOptions& opts) {
  StatusSections out;
  // The sharing analysis and the findings feed every format and the handler's small facts.
  const SegmentSharing sharing = segment_sharing(workers);
  const std::vector<SegmentUse>& uses = sharing.uses;
  const std::vector<Finding> findings = advise(snap, workers, sharing);
  for (const auto& f : findings) {
    if (f.severity == "critical") ++out.findings_critical;
    if (f.severity == "warning") ++out.findings_warning;
  }
  for (const auto& c : snap.counters) out.failures_last_minute += c.last_minute;

  Totals tot;
  for (const auto& u : uses) {
    tot.seg_bytes += u.seg.size;
    if (!u.shared()) {
      ++tot.priv;
      tot.priv_bytes += u.seg.size;
    }
  }
  for (const auto& w : workers) {
    tot.rss += w.rss_shmem;
    if (w.backend == "php-fpm") {
      ++tot.fpm;
      tot.rss_fpm += w.rss_shmem;
    } else {
      ++tot.fcgid;
      tot.rss_fcgid += w.rss_shmem;
    }
    if (!w.lean.empty()) ++tot.lean;
  }

  // Everything but the worker tables first: what is left of max_bytes is shared by the tables.
  if (formats & kHtml) {
    out.html_findings = render_findings_html(findings);
    out.html_limits = render_limits_html(snap);
    out.html_sources = render_sources_html(snap);
  }
  if (formats & kAuto) render_auto(out.auto_text, snap, workers, uses, findings, tot);
  if (formats & kMetrics) render_metrics(out.metrics, snap, uses, findings, tot);
  RowLimit lim;
  lim.full_commands = opts.full_commands;
  lim.max_rows = opts.max_rows;
  const unsigned tables = ((formats & kHtml) ? 1u : 0u) + ((formats & kJson) ? 1u : 0u);
  if (opts.max_bytes && tables) {
    // Slack for each table's head and foot, the JSON members around the workers, the holes.
    const std::size_t fixed =
        encoded_size(out) + 64 * 1024 + 16 * std::min(workers.size(), lim.max_rows);
    lim.max_bytes =
        opts.max_bytes > fixed ? std::max<std::size_t>(1, (opts.max_bytes - fixed) / tables) : 1;
  }
  auto tables_render = [&](const RowLimit& l) {
    out.html_workers = Template{};
    out.json_members = Template{};
    if (formats & kHtml) render_workers_html(out.html_workers, workers, sharing, l);
    if (formats & kJson) render_json(out.json_members, snap, workers, sharing, findings, tot, l);
  };
  tables_render(lim);
  if (opts.max_bytes && encoded_size(out) > opts.max_bytes) {  // the slack was not enough
    lim.max_rows = 0;
    tables_render(lim);
  }
  return out;
}

}  // namespace shmguard
