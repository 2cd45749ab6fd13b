// mod_shmguard core: processes, their shared segments, and PHP's allocation-failure line.
#include "text.hpp"
#include "shmguard/workers.hpp"

#include <dirent.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include <algorithm>
#include <memory>

namespace shmguard {
using text::trim;

namespace {

// The next blank-separated field of s (a line's end counts as a blank: /proc/PID/stat's last
// field).
std::string_view next_field(std::string_view& s) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\n'; };
  std::size_t i = 0;
  while (i < s.size() && blank(s[i])) ++i;
  std::size_t j = i;
  while (j < s.size() && !blank(s[j])) ++j;
  std::string_view f = s.substr(i, j - i);
  s.remove_prefix(j);
  return f;
}

std::optional<std::uint64_t> parse_hex(std::string_view s) {
  if (s.empty() || s.size() > 16) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else
      return std::nullopt;
    v = (v << 4) | static_cast<std::uint64_t>(d);
  }
  return v;
}

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};

}  // namespace

std::string MapsBounds::note() const {
  std::string n;
  if (cut)
    n = "more than " + std::to_string(kMapsMaxLines) + " mappings or " +
        std::to_string(kMapsMaxBytes >> 20) + " MiB of maps: only those were read";
  if (segments_left_out)
    n += (n.empty() ? "" : "; ") + std::to_string(segments_left_out) +
         " smaller shared segments not kept (at most " + std::to_string(kMaxSegments) + ")";
  return n;
}

Result<std::vector<Segment>> parse_maps_shared(std::string_view text, MapsBounds* bounds) {
  struct Seen {
    Segment seg;
    std::size_t at;  // first-seen position
  };
  std::vector<Seen> all;
  std::size_t lineno = 0;
  bool cut = false;
  while (!text.empty()) {
    if (lineno == kMapsMaxLines) {
      cut = !trim(text).empty();
      break;
    }
    std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++lineno;
    if (trim(line).empty()) continue;
    auto bad = [&](const char* what) {
      return Result<std::vector<Segment>>::fail("malformed at line " + std::to_string(lineno) +
                                                ": " + what);
    };
    std::string_view rest = line;
    std::string_view range = next_field(rest), perms = next_field(rest);
    std::string_view offset = next_field(rest), dev = next_field(rest), inode = next_field(rest);
    std::string_view path = trim(rest);
    std::size_t dash = range.find('-');
    if (dash == std::string_view::npos) return bad("address range");
    auto lo = parse_hex(range.substr(0, dash)), hi = parse_hex(range.substr(dash + 1));
    if (!lo || !hi || *hi < *lo) return bad("address range");
    if (perms.size() != 4 || !parse_hex(offset)) return bad("perms/offset");
    std::size_t colon = dev.find(':');
    if (colon == std::string_view::npos) return bad("device");
    auto maj = parse_hex(dev.substr(0, colon)), min = parse_hex(dev.substr(colon + 1));
    auto ino = parse_u64(inode);
    if (!maj || !min || !ino) return bad("device/inode");
    if (perms[3] != 's') continue;
    std::string kind;
    if (path.rfind("/dev/zero", 0) == 0)
      kind = "anon-shared";
    else if (path.rfind("/SYSV", 0) == 0)
      kind = "sysv";
    else if (path.rfind("/anon_hugepage", 0) == 0)
      kind = "hugepage";
    else if (path.rfind("/memfd:", 0) == 0)
      kind = "memfd";
    else
      continue;  // shared file mappings (libraries, data files) are not shared memory segments
    all.push_back(Seen{Segment{static_cast<std::uint32_t>(*maj), static_cast<std::uint32_t>(*min),
                               *ino, *hi - *lo, std::move(kind)},
                       all.size()});
  }
  // One per (dev, inode): sorted by identity then position, the first of a run stays, with the
  // run's largest size.
  auto key_less = [](const Seen& a, const Seen& b) {
    if (a.seg.dev_major != b.seg.dev_major) return a.seg.dev_major < b.seg.dev_major;
    if (a.seg.dev_minor != b.seg.dev_minor) return a.seg.dev_minor < b.seg.dev_minor;
    if (a.seg.inode != b.seg.inode) return a.seg.inode < b.seg.inode;
    return a.at < b.at;
  };
  std::sort(all.begin(), all.end(), key_less);
  std::size_t kept = 0;
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (kept > 0 && all[kept - 1].seg == all[i].seg) {
      all[kept - 1].seg.size = std::max(all[kept - 1].seg.size, all[i].seg.size);
      continue;
    }
    if (kept != i) all[kept] = std::move(all[i]);
    ++kept;
  }
  all.resize(kept);
  std::size_t left_out = 0;
  if (all.size() > kMaxSegments) {  // the largest kMaxSegments (ties: first seen)
    auto larger = [](const Seen& a, const Seen& b) {
      return a.seg.size != b.seg.size ? a.seg.size > b.seg.size : a.at < b.at;
    };
    std::nth_element(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(kMaxSegments),
                     all.end(), larger);
    left_out = all.size() - kMaxSegments;
    all.resize(kMaxSegments);
  }
  std::sort(all.begin(), all.end(), [](const Seen& a, const Seen& b) { return a.at < b.at; });
  std::vector<Segment> out;
  out.reserve(all.size());
  for (auto& s : all) out.push_back(std::move(s.seg));
  if (bounds) {
    bounds->cut = bounds->cut || cut;
    bounds->segments_left_out = left_out;
  }
  return Result<std::vector<Segment>>::ok(std::move(out));
}

Result<ProcStat> parse_proc_stat(std::string_view text) {
  std::size_t open = text.find('(');
  std::size_t close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open)
    return Result<ProcStat>::fail("malformed stat");
  ProcStat st;
  auto pid = parse_u64(trim(text.substr(0, open)));
  if (!pid || *pid > 0x7fffffff) return Result<ProcStat>::fail("malformed stat: pid");
  st.pid = static_cast<int>(*pid);
  st.comm = std::string(text.substr(open + 1, close - open - 1));
  std::string_view rest = text.substr(close + 1);
  // After ')': state(3) ppid(4) ... starttime(22), required; then optional: vsize(23) and, for
  // the image, startcode(26) endcode(27) startstack(28) ... arg_start(48) arg_end(49) env_start(50)
  // env_end(51).
  std::uint64_t* const image[] = {&st.image.start_code, &st.image.end_code, &st.image.start_stack,
                                  &st.image.arg_start,  &st.image.arg_end,  &st.image.env_start,
                                  &st.image.env_end};
  for (int field = 3; field <= 51; ++field) {
    std::string_view f = next_field(rest);
    if (f.empty()) {
      if (field <= 22) return Result<ProcStat>::fail("malformed stat: too few fields");
      break;
    }
    if (field == 3) {
      st.state = f.front();
    } else if (field == 4) {
      auto v = parse_u64(f);
      if (!v || *v > 0x7fffffff) return Result<ProcStat>::fail("malformed stat: ppid");
      st.ppid = static_cast<int>(*v);
    } else if (field == 22) {
      auto v = parse_u64(f);
      if (!v) return Result<ProcStat>::fail("malformed stat: starttime");
      st.start_ticks = *v;
    } else if (field == 23) {
      if (auto v = parse_u64(f)) st.vsize = *v;
    } else if ((field >= 26 && field <= 28) || field >= 48) {
      // A field that is not a number (never seen) leaves 0: the name still tells an exec.
      if (auto v = parse_u64(f)) *image[field <= 28 ? field - 26 : field - 48 + 3] = *v;
    }
  }
  return Result<ProcStat>::ok(std::move(st));
}

Result<ProcStat> read_proc_stat(const std::string& procfs, int pid) {
  auto t = read_file(procfs + "/" + std::to_string(pid) + "/stat");
  if (!t) return Result<ProcStat>::fail(t.error);
  return parse_proc_stat(*t.value);
}

bool pid_alive(int pid) {
  return ::kill(pid, 0) == 0 || errno != ESRCH;
}

bool pid_exited(const std::string& procfs, int pid) {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  auto st = read_proc_stat(procfs, pid);
  return !st || st.value->state == 'Z' || st.value->state == 'X';
}

Identity compare_identity(const Worker& before, const ProcStat& now) {
  if (before.pid != now.pid || before.start_ticks != now.start_ticks) return Identity::Other;
  if (before.comm != now.comm || before.image != now.image) return Identity::Execed;
  return Identity::Same;
}

Reread reread_at_check(const Worker& before, std::uint64_t maps_vsize, std::int64_t ms_since_read,
                       const ProcStat& now) {
  if (compare_identity(before, now) != Identity::Same) return Reread::Everything;
  if (maps_vsize == kMapsUnread) return Reread::Segments;
  bool settling = before.segments.empty() || ms_since_read < kSegmentsSettleMs;
  return settling && now.vsize != maps_vsize ? Reread::Segments : Reread::Nothing;
}

std::int64_t ticks_to_ms(std::uint64_t ticks) {
  long hz = ::sysconf(_SC_CLK_TCK);
  if (hz <= 0) hz = 100;
  auto h = static_cast<std::uint64_t>(hz);
  if (ticks / h > static_cast<std::uint64_t>(INT64_MAX / 1000 - 1)) return INT64_MAX;
  return static_cast<std::int64_t>(ticks / h * 1000 + ticks % h * 1000 / h);
}

std::int64_t boot_ms_now() {
  timespec ts{};
  if (::clock_gettime(CLOCK_BOOTTIME, &ts) != 0) return -1;
  return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

std::int64_t next_exec_check_ms(std::int64_t start_ms, std::int64_t now_ms,
                                std::int64_t min_gap_ms) {
  std::int64_t age = now_ms > start_ms ? now_ms - start_ms : 0;
  std::int64_t step = std::max(age, std::max<std::int64_t>(min_gap_ms, 1));
  return now_ms > INT64_MAX - step ? INT64_MAX : now_ms + step;
}

std::vector<std::size_t> pick_exec_checks(const std::vector<ExecCheckDue>& all, std::int64_t now_ms,
                                          std::size_t max) {
  std::vector<std::size_t> due;
  for (std::size_t i = 0; i < all.size(); ++i)
    if (all[i].check_ms <= now_ms) due.push_back(i);
  // The age at which each look was due; a start time in the future (a clock oddity) counts as 0.
  auto age = [&](std::size_t i) {
    const ExecCheckDue& d = all[i];
    return d.check_ms > d.start_ms ? d.check_ms - d.start_ms : 0;
  };
  auto younger = [&](std::size_t a, std::size_t b) {
    return age(a) != age(b) ? age(a) < age(b) : a < b;
  };
  if (due.size() > max) {
    std::nth_element(due.begin(), due.begin() + static_cast<std::ptrdiff_t>(max), due.end(),
                     younger);
    due.resize(max);
  }
  std::sort(due.begin(), due.end(), younger);
  return due;
}

// Uid, RssShmem and RssAnon from /proc/PID/status.
static void parse_status(std::string_view t, Worker& w) {
  while (!t.empty()) {
    std::size_t nl = t.find('\n');
    std::string_view line = t.substr(0, nl);
    t = nl == std::string_view::npos ? std::string_view{} : t.substr(nl + 1);
    if (line.rfind("Uid:", 0) == 0) {
      std::string_view r = line.substr(4);
      if (auto v = parse_u64(next_field(r)); v && *v <= 0xffffffffu)
        w.uid = static_cast<unsigned>(*v);
    } else if (line.rfind("RssShmem:", 0) == 0) {
      std::string_view r = line.substr(9);
      if (auto v = parse_u64(next_field(r)); v && *v < (UINT64_MAX >> 10)) w.rss_shmem = *v << 10;
    } else if (line.rfind("RssAnon:", 0) == 0) {
      std::string_view r = line.substr(8);
      if (auto v = parse_u64(next_field(r)); v && *v < (UINT64_MAX >> 10)) w.rss_anon = *v << 10;
    }
  }
}

Result<Resident> read_resident(const std::string& procfs, int pid) {
  auto status = read_file(procfs + "/" + std::to_string(pid) + "/status");
  if (!status) return Result<Resident>::fail(status.error);
  Worker w;
  parse_status(*status.value, w);
  return Result<Resident>::ok(Resident{w.rss_shmem, w.rss_anon});
}

std::optional<std::uint64_t> parse_private_writable(std::string_view t) {
  std::optional<std::uint64_t> data, stack;
  while (!t.empty()) {
    std::size_t nl = t.find('\n');
    std::string_view line = t.substr(0, nl);
    t = nl == std::string_view::npos ? std::string_view{} : t.substr(nl + 1);
    for (auto [name, to] : {std::pair{std::string_view("VmData:"), &data},
                            std::pair{std::string_view("VmStk:"), &stack}}) {
      if (line.rfind(name, 0) != 0) continue;
      std::string_view r = line.substr(name.size());
      if (auto v = parse_u64(next_field(r)); v && *v < (UINT64_MAX >> 11)) *to = *v << 10;
    }
  }
  if (!data || !stack) return std::nullopt;
  return *data + *stack;
}

Result<std::uint64_t> read_private_writable(const std::string& procfs, int pid) {
  auto status = read_file(procfs + "/" + std::to_string(pid) + "/status");
  if (!status) return Result<std::uint64_t>::fail(status.error);
  auto v = parse_private_writable(*status.value);
  if (!v) return Result<std::uint64_t>::fail("no VmData/VmStk in its status");
  return Result<std::uint64_t>::ok(*v);
}

Result<std::vector<Segment>> read_segments(const std::string& procfs, int pid, MapsBounds* bounds) {
  auto maps = read_file_prefix(procfs + "/" + std::to_string(pid) + "/maps", kMapsMaxBytes + 1);
  if (!maps) return Result<std::vector<Segment>>::fail(maps.error);
  std::string_view text = *maps.value;
  MapsBounds b;
  if (text.size() > kMapsMaxBytes) {  // the whole lines within the bound
    std::size_t nl = text.rfind('\n', kMapsMaxBytes - 1);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(0, nl + 1);
    b.cut = true;
  }
  auto segs = parse_maps_shared(text, &b);
  if (bounds) *bounds = b;
  return segs;
}

Result<Worker> read_worker(const std::string& procfs, int pid, bool with_maps) {
  const std::string base = procfs + "/" + std::to_string(pid);
  auto stat_text = read_file(base + "/stat");
  if (!stat_text) return Result<Worker>::fail(stat_text.error);
  auto st = parse_proc_stat(*stat_text.value);
  if (!st) return Result<Worker>::fail(st.error);
  Worker w;
  w.pid = st.value->pid;
  w.ppid = st.value->ppid;
  w.comm = st.value->comm;
  w.start_ticks = st.value->start_ticks;
  w.vsize = st.value->vsize;
  w.image = st.value->image;
  if (auto status = read_file(base + "/status")) parse_status(*status.value, w);
  if (auto cmd = read_file_prefix(base + "/cmdline", kCmdlineMax)) {
    std::string c = std::move(*cmd.value);
    while (!c.empty() && c.back() == '\0') c.pop_back();
    std::replace(c.begin(), c.end(), '\0', ' ');
    w.cmdline = std::move(c);
  }
  if (with_maps) {
    MapsBounds b;
    auto segs = read_segments(procfs, pid, &b);
    if (segs) {
      w.segments = std::move(*segs.value);
      w.maps_note = b.note();
    } else {
      w.error = segs.error;
    }
  }
  return Result<Worker>::ok(std::move(w));
}

std::int64_t boot_ticks_now(const std::string& procfs) {
  auto t = read_file(procfs + "/uptime");
  if (!t) return -1;
  double up = 0;
  if (std::sscanf(t.value->c_str(), "%lf", &up) != 1) return -1;
  long hz = ::sysconf(_SC_CLK_TCK);
  return static_cast<std::int64_t>(up * static_cast<double>(hz > 0 ? hz : 100));
}

std::vector<int> list_pids(const std::string& procfs) {
  std::vector<int> out;
  std::unique_ptr<DIR, DirCloser> d(::opendir(procfs.c_str()));
  if (!d) return out;
  while (dirent* e = ::readdir(d.get())) {
    auto v = parse_u64(e->d_name);
    if (v && *v > 0 && *v <= 0x7fffffff) out.push_back(static_cast<int>(*v));
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<ProcStat> read_all_stats(const std::string& procfs) {
  std::vector<ProcStat> out;
  for (int pid : list_pids(procfs)) {
    auto st = read_proc_stat(procfs, pid);
    if (st) out.push_back(std::move(*st.value));
  }
  return out;
}

std::vector<int> descendants(const std::vector<ProcStat>& all, int root) {
  std::vector<int> out;
  std::vector<int> frontier{root};
  while (!frontier.empty()) {
    int p = frontier.back();
    frontier.pop_back();
    for (const auto& st : all) {
      if (st.ppid == p && st.pid != root &&
          std::find(out.begin(), out.end(), st.pid) == out.end()) {
        out.push_back(st.pid);
        frontier.push_back(st.pid);
      }
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace shmguard
