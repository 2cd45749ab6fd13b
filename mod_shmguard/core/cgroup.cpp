// mod_shmguard core: the cgroup memory controller (v1 and v2) of the current process.
//
// Parsers take file text and never throw; the reader finds the process's memory cgroup from
// <procfs>/self/cgroup and <procfs>/self/mountinfo (falling back to the usual places under
// <sysfs>/fs/cgroup) and reads its limit, usage, statistics and every ancestor's limit.
#include <sys/stat.h>

#include <cstdio>
#include <utility>

#include "text.hpp"
#include "shmguard/sources.hpp"

namespace shmguard {
using text::for_each_line;
using text::is_space;
using text::Lines;
using text::malformed;
using text::quote;
using text::split_ws;
using text::trim;

namespace {

// v1 reports "no limit" as PAGE_COUNTER_MAX rounded to pages (9223372036854771712 on x86-64);
// anything this large cannot be a real limit.
constexpr std::uint64_t kHugeLimit = std::uint64_t{1} << 62;

bool blank(std::string_view s) {
  return trim(s).empty();
}

bool list_contains(std::string_view list, std::string_view item) {
  while (true) {
    std::size_t comma = list.find(',');
    if (list.substr(0, comma) == item) return true;
    if (comma == std::string_view::npos) return false;
    list.remove_prefix(comma + 1);
  }
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_octal(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      bool octal = true;
      int v = 0;
      for (std::size_t k = 1; k <= 3; ++k) {
        char c = s[i + k];
        if (c < '0' || c > '7') {
          octal = false;
          break;
        }
        v = v * 8 + (c - '0');
      }
      if (octal && v <= 0xff) {
        out += static_cast<char>(v);
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

// ---------------------------------------------------------------- filesystem helpers

bool exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

bool is_dir(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// "/a/b/" -> "/a/b"; "/" stays "/"; "" stays "".
std::string strip_slashes(std::string s) {
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

// Joins a directory and a cgroup path ("/", "/a/b").
std::string join(const std::string& dir, std::string_view rel) {
  while (!rel.empty() && rel.front() == '/') rel.remove_prefix(1);
  while (!rel.empty() && rel.back() == '/') rel.remove_suffix(1);
  if (rel.empty()) return dir;
  if (!dir.empty() && dir.back() == '/') return dir + std::string(rel);
  return dir + "/" + std::string(rel);
}

// True when a cgroup path would leave its hierarchy ("/../x") or is not absolute.
bool unsafe_path(std::string_view p) {
  if (p.empty() || p.front() != '/') return true;
  std::string_view rest = p;
  while (!rest.empty()) {
    std::size_t slash = rest.find('/');
    std::string_view comp = rest.substr(0, slash);
    if (comp == ".." || comp == ".") return true;
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  return false;
}

// The process path relative to the mount's root (both as the kernel shows them), or nullopt.
std::optional<std::string> relative_to(const std::string& path, const std::string& root) {
  std::string p = strip_slashes(path), r = strip_slashes(root);
  if (unsafe_path(p)) return std::nullopt;
  if (r == "/" || r.empty()) return p;
  if (p == r) return std::string("/");
  if (p.size() > r.size() && p.compare(0, r.size(), r) == 0 && p[r.size()] == '/')
    return p.substr(r.size());
  return std::nullopt;
}

// The parent directory, or "" when there is none.
std::string parent_of(const std::string& dir) {
  std::string d = strip_slashes(dir);
  std::size_t slash = d.rfind('/');
  if (slash == std::string::npos || d == "/") return {};
  if (slash == 0) return "/";
  return d.substr(0, slash);
}

// ---------------------------------------------------------------- reading one cgroup

template <class T>
Result<T> fail_in(const std::string& why, const std::string& path) {
  return Result<T>::fail(why + " in " + path);
}

// A number file (memory.current, memory.usage_in_bytes, memory.failcnt).
Result<std::uint64_t> read_number(const std::string& path) {
  auto text = read_file(path, 4096);
  if (!text) return Result<std::uint64_t>::fail(text.error);
  std::string_view t = trim(*text.value);
  if (t.empty()) return fail_in<std::uint64_t>(malformed(1, "empty file"), path);
  auto v = parse_u64(t);
  if (!v) return fail_in<std::uint64_t>(malformed(1, "expected a number, got " + quote(t)), path);
  return Result<std::uint64_t>::ok(*v);
}

Result<std::optional<std::uint64_t>> read_limit(const std::string& path) {
  auto text = read_file(path, 4096);
  if (!text) return Result<std::optional<std::uint64_t>>::fail(text.error);
  auto v = parse_cgroup_limit(*text.value);
  if (!v) return fail_in<std::optional<std::uint64_t>>(v.error, path);
  return v;
}

std::optional<std::map<std::string, std::uint64_t>> read_keyed(const std::string& path) {
  auto text = read_file(path, 1 << 20);
  if (!text) return std::nullopt;
  auto m = parse_flat_keyed(*text.value);
  if (!m) return std::nullopt;
  return std::move(*m.value);
}

std::optional<std::uint64_t> lookup(const std::map<std::string, std::uint64_t>& m,
                                    const char* key) {
  auto it = m.find(key);
  if (it == m.end()) return std::nullopt;
  return it->second;
}

// v1's hierarchical key ("total_" + key) when the level has it, else its local key.
std::optional<std::uint64_t> lookup_v1(const std::map<std::string, std::uint64_t>& m,
                                       const std::string& key) {
  if (auto v = lookup(m, ("total_" + key).c_str())) return v;
  return lookup(m, key.c_str());
}

// The file LRU figures of one level's memory.stat (see CgroupLevel).
void take_lru(int version, const std::map<std::string, std::uint64_t>& stat, CgroupLevel& lv) {
  if (version == 2) {
    lv.inactive_file = lookup(stat, "inactive_file");
    lv.active_file = lookup(stat, "active_file");
    lv.dirty = lookup(stat, "file_dirty");
    lv.writeback = lookup(stat, "file_writeback");
  } else {
    lv.inactive_file = lookup_v1(stat, "inactive_file");
    lv.active_file = lookup_v1(stat, "active_file");
    lv.dirty = lookup_v1(stat, "dirty");
    lv.writeback = lookup_v1(stat, "writeback");
  }
}

struct Files {
  const char* limit;
  const char* usage;
};
constexpr Files kV2{"memory.max", "memory.current"};
constexpr Files kV1{"memory.limit_in_bytes", "memory.usage_in_bytes"};

// Reads the cgroup `dirs[0]`; dirs[1..] are its ancestors (nearest first).
Result<CgroupMemory> read_memcg(int version, const std::vector<std::string>& dirs) {
  const Files& f = version == 2 ? kV2 : kV1;
  CgroupMemory m;
  m.version = version;
  m.dir = dirs.front();

  auto usage = read_number(join(m.dir, f.usage));
  if (!usage) return Result<CgroupMemory>::fail(usage.error);
  m.usage = *usage.value;
  // The own limit is what the controller was recognised by; unreadable must not read as "none".
  auto limit = read_limit(join(m.dir, f.limit));
  if (!limit) return Result<CgroupMemory>::fail(limit.error);
  m.limit = *limit.value;

  CgroupLevel own{m.dir, m.limit, m.usage};
  if (auto stat = read_keyed(join(m.dir, "memory.stat"))) {
    take_lru(version, *stat, own);
    if (version == 2) {
      m.shmem = lookup(*stat, "shmem");
      m.file = lookup(*stat, "file");
      m.anon = lookup(*stat, "anon");
    } else {
      // v1: total_* include the descendants, like v2's memory.stat. cache ~ file, rss ~ anon.
      m.shmem = lookup(*stat, "total_shmem");
      if (!m.shmem) m.shmem = lookup(*stat, "shmem");
      m.file = lookup(*stat, "total_cache");
      if (!m.file) m.file = lookup(*stat, "cache");
      m.anon = lookup(*stat, "total_rss");
      if (!m.anon) m.anon = lookup(*stat, "rss");
    }
  }
  if (version == 2) {
    if (auto ev = read_keyed(join(m.dir, "memory.events"))) {
      m.events_max = lookup(*ev, "max");
      m.events_oom = lookup(*ev, "oom");
      m.events_oom_kill = lookup(*ev, "oom_kill");
    }
    // PSI of the own level only: an ancestor's counts its other children's stalls too. A missing
    // or unparsable file is no pressure figure, never a reason to refuse.
    if (auto t = read_file(join(m.dir, "memory.pressure"), 4096))
      if (auto psi = parse_psi(*t.value)) m.pressure = *psi.value;
  } else {
    if (auto fc = read_number(join(m.dir, "memory.failcnt"))) m.failcnt = *fc.value;
    // v1's OOM kills (kernel >= 4.13): memory.oom_control's "oom_kill N" line.
    if (auto oc = read_keyed(join(m.dir, "memory.oom_control")))
      m.events_oom_kill = lookup(*oc, "oom_kill");
  }

  m.levels.push_back(std::move(own));
  for (std::size_t i = 1; i < dirs.size(); ++i) {
    CgroupLevel lv;
    lv.dir = dirs[i];
    if (auto l = read_limit(join(lv.dir, f.limit))) lv.limit = *l.value;
    if (auto u = read_number(join(lv.dir, f.usage))) lv.usage = *u.value;
    if (lv.limit)  // an unlimited level binds nothing: its memory.stat is not needed
      if (auto stat = read_keyed(join(lv.dir, "memory.stat"))) take_lru(version, *stat, lv);
    m.levels.push_back(std::move(lv));
  }
  return Result<CgroupMemory>::ok(std::move(m));
}

// `dir` and its ancestors up to and including `top` (a prefix of dir).
std::vector<std::string> chain_to(const std::string& dir, const std::string& top) {
  std::vector<std::string> out;
  std::string d = strip_slashes(dir), t = strip_slashes(top);
  for (int guard = 0; guard < 4096 && !d.empty(); ++guard) {
    out.push_back(d);
    if (d == t || d.size() <= t.size()) break;
    d = parent_of(d);
  }
  return out;
}

// A place where a hierarchy is mounted, as this process sees it.
struct Mount {
  int version;
  std::string dir;   // on this machine (mapped into the sysfs root for fixture trees)
  std::string root;  // the mount's root inside the hierarchy (mountinfo field 4)
};

// Resolves the process's cgroup directory in one mount; nullopt if it is not there.
std::optional<std::vector<std::string>> resolve(const Mount& mt, const std::string& path,
                                                std::vector<std::string>& tried) {
  std::optional<std::string> rel = relative_to(path, mt.root);
  if (!rel && !unsafe_path(path)) rel = strip_slashes(path);  // root not shown as a prefix
  if (!rel) {
    tried.push_back(mt.dir + " (path " + path + " is outside mount root " + mt.root + ")");
    return std::nullopt;
  }
  std::string dir = join(mt.dir, *rel);
  const Files& f = mt.version == 2 ? kV2 : kV1;
  if (!is_dir(dir)) {
    tried.push_back(dir);
    return std::nullopt;
  }
  if (mt.version == 1) {
    if (!exists(join(dir, f.usage)) && !exists(join(dir, f.limit))) {
      tried.push_back(join(dir, f.usage));
      return std::nullopt;
    }
    return chain_to(dir, mt.dir);
  }
  // v2: the memory controller may be enabled only down to an ancestor (and the root cgroup has no
  // memory.max at all); the pages are charged to the nearest ancestor that has it.
  std::vector<std::string> chain = chain_to(dir, mt.dir);
  for (std::size_t i = 0; i < chain.size(); ++i) {
    if (exists(join(chain[i], f.limit)))
      return std::vector<std::string>(chain.begin() + static_cast<std::ptrdiff_t>(i), chain.end());
  }
  tried.push_back(join(dir, f.limit));
  return std::nullopt;
}

// Maps an absolute mount point into the sysfs root used for this read (fixture trees).
std::optional<std::string> map_mount(const std::string& mp, const std::string& sysfs) {
  if (sysfs == "/sys") return mp;
  if (mp == "/sys") return sysfs;
  if (mp.compare(0, 5, "/sys/") == 0) return join(sysfs, mp.substr(4));
  return std::nullopt;  // a host path outside the given roots: not ours to read
}

Result<CgroupMemory> read_dir_mode(const std::string& dir_in) {
  std::string dir = strip_slashes(dir_in);
  if (dir.empty()) return Result<CgroupMemory>::fail("missing: (empty cgroup directory)");
  if (!is_dir(dir)) return Result<CgroupMemory>::fail("missing: " + dir);
  int version;
  if (exists(join(dir, kV2.limit)))
    version = 2;
  else if (exists(join(dir, kV1.usage)) || exists(join(dir, kV1.limit)))
    version = 1;
  else
    return Result<CgroupMemory>::fail("missing: " + join(dir, kV2.limit) +
                                      " (no memory controller in " + dir + ")");
  const Files& f = version == 2 ? kV2 : kV1;
  std::vector<std::string> chain{dir};
  for (int guard = 0; guard < 4096; ++guard) {
    std::string p = parent_of(chain.back());
    if (p.empty() || p == "/" || !exists(join(p, f.limit))) break;
    chain.push_back(p);
  }
  return read_memcg(version, chain);
}

}  // namespace

// ---------------------------------------------------------------- parsers

Result<ProcCgroup> parse_proc_cgroup(std::string_view text) {
  if (blank(text)) return Result<ProcCgroup>::fail(malformed(1, "empty file"));
  ProcCgroup pc;
  std::string err;
  for_each_line(text, [&](std::size_t no, std::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (blank(line)) return true;
    std::size_t c1 = line.find(':');
    std::size_t c2 = c1 == std::string_view::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) {
      err = malformed(no, "expected ID:CONTROLLERS:PATH, got " + quote(line));
      return false;
    }
    std::string_view id = line.substr(0, c1);
    std::string_view ctrls = line.substr(c1 + 1, c2 - c1 - 1);
    std::string_view path = line.substr(c2 + 1);
    if (!parse_u64(id)) {
      err = malformed(no, "hierarchy id is not a number: " + quote(id));
      return false;
    }
    if (path.empty() || path.front() != '/') {
      err = malformed(no, "cgroup path is not absolute: " + quote(path));
      return false;
    }
    if (id == "0" && ctrls.empty()) {
      if (!pc.v2_path) pc.v2_path = std::string(path);
    } else if (list_contains(ctrls, "memory")) {
      if (!pc.v1_memory_path) pc.v1_memory_path = std::string(path);
    }
    return true;
  });
  if (!err.empty()) return Result<ProcCgroup>::fail(err);
  return Result<ProcCgroup>::ok(std::move(pc));
}

Result<CgroupMounts> parse_mountinfo(std::string_view text) {
  if (blank(text)) return Result<CgroupMounts>::fail(malformed(1, "empty file"));
  CgroupMounts m;
  std::string err;
  for_each_line(text, [&](std::size_t no, std::string_view line) {
    if (blank(line)) return true;
    std::vector<std::string_view> t = split_ws(line);
    std::size_t sep = 6;
    while (sep < t.size() && t[sep] != "-") ++sep;
    if (t.size() < 7 || sep + 1 >= t.size()) {
      err = malformed(no, "expected ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ... - FSTYPE, got " +
                              quote(line));
      return false;
    }
    if (!parse_u64(t[0]) || !parse_u64(t[1]) || t[2].find(':') == std::string_view::npos ||
        t[4].empty() || t[4].front() != '/') {
      err = malformed(no, "bad mount fields in " + quote(line));
      return false;
    }
    std::string_view fstype = t[sep + 1];
    std::string_view super = sep + 3 < t.size() ? t[sep + 3] : std::string_view{};
    if (fstype == "cgroup2") {
      if (!m.v2_mount) {
        m.v2_mount = unescape_octal(t[4]);
        m.v2_root = unescape_octal(t[3]);
      }
    } else if (fstype == "cgroup" && list_contains(super, "memory")) {
      if (!m.v1_memory_mount) {
        m.v1_memory_mount = unescape_octal(t[4]);
        m.v1_memory_root = unescape_octal(t[3]);
      }
    }
    return true;
  });
  if (!err.empty()) return Result<CgroupMounts>::fail(err);
  return Result<CgroupMounts>::ok(std::move(m));
}

Result<std::map<std::string, std::uint64_t>> parse_flat_keyed(std::string_view text) {
  using R = Result<std::map<std::string, std::uint64_t>>;
  if (blank(text)) return R::fail(malformed(1, "empty file"));
  std::map<std::string, std::uint64_t> out;
  std::string err;
  for_each_line(text, [&](std::size_t no, std::string_view line) {
    if (blank(line)) return true;
    std::vector<std::string_view> t = split_ws(line);
    if (t.size() != 2) {
      err = malformed(no, "expected \"KEY VALUE\", got " + quote(line));
      return false;
    }
    auto v = parse_u64(t[1]);
    if (!v) {
      err = malformed(
          no, "value of " + quote(t[0]) + " is not an unsigned 64-bit number: " + quote(t[1]));
      return false;
    }
    out.emplace(std::string(t[0]), *v);
    return true;
  });
  if (!err.empty()) return R::fail(err);
  return R::ok(std::move(out));
}

Result<std::optional<std::uint64_t>> parse_cgroup_limit(std::string_view text) {
  using R = Result<std::optional<std::uint64_t>>;
  std::string_view t = trim(text);
  if (t.empty()) return R::fail(malformed(1, "empty file"));
  std::size_t nl = t.find('\n');
  if (nl != std::string_view::npos) {
    std::size_t line = 1;
    for (char c : t.substr(0, nl + 1)) line += c == '\n';
    return R::fail(malformed(line, "unexpected extra line after " + quote(t.substr(0, nl))));
  }
  if (t == "max") return R::ok(std::nullopt);
  auto v = parse_u64(t);
  if (!v) return R::fail(malformed(1, "expected \"max\" or a number of bytes, got " + quote(t)));
  if (*v >= kHugeLimit) return R::ok(std::nullopt);
  return R::ok(*v);
}

namespace {
// A PSI average: "12.34" -> 1234. Exactly two decimals (the kernel's %lu.%02lu), at most 100.99.
std::optional<std::uint32_t> parse_psi_avg(std::string_view v) {
  const std::size_t dot = v.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot > 3 || v.size() != dot + 3)
    return std::nullopt;
  std::uint32_t n = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i == dot) continue;
    if (v[i] < '0' || v[i] > '9') return std::nullopt;
    n = n * 10 + static_cast<std::uint32_t>(v[i] - '0');
  }
  if (n > 10099) return std::nullopt;
  return n;
}
}  // namespace

Result<Psi> parse_psi(std::string_view text) {
  if (blank(text)) return Result<Psi>::fail(malformed(1, "empty file"));
  Psi out;
  std::string err;
  static constexpr const char* kKeys[] = {"avg10", "avg60", "avg300", "total"};
  for_each_line(text, [&](std::size_t no, std::string_view line) {
    if (blank(line)) return true;
    const std::vector<std::string_view> t = split_ws(line);
    std::optional<PsiLine>* slot = t[0] == "some"   ? &out.some
                                   : t[0] == "full" ? &out.full
                                                    : nullptr;
    if (!slot) {
      err = malformed(no, "expected a \"some\" or \"full\" line, got " + quote(line));
      return false;
    }
    if (*slot) {
      err = malformed(no, "a second " + quote(t[0]) + " line");
      return false;
    }
    PsiLine p;
    bool seen[4] = {false, false, false, false};
    for (std::size_t k = 1; k < t.size(); ++k) {
      const std::size_t eq = t[k].find('=');
      if (eq == std::string_view::npos || eq == 0) {
        err = malformed(no, "expected KEY=VALUE, got " + quote(t[k]));
        return false;
      }
      const std::string_view key = t[k].substr(0, eq), val = t[k].substr(eq + 1);
      std::size_t i = 0;
      while (i < 4 && key != kKeys[i]) ++i;
      if (i == 4) continue;  // a key this parser does not know
      if (seen[i]) {
        err = malformed(no, quote(key) + " given twice");
        return false;
      }
      seen[i] = true;
      if (i < 3) {
        auto a = parse_psi_avg(val);
        if (!a) {
          err = malformed(
              no, "value of " + quote(key) +
                      " is not a percentage with two decimals (0.00 to 100.99): " + quote(val));
          return false;
        }
        (i == 0 ? p.avg10 : i == 1 ? p.avg60 : p.avg300) = *a;
      } else {
        auto v = parse_u64(val);
        if (!v) {
          err = malformed(no, "value of \"total\" is not an unsigned 64-bit number: " + quote(val));
          return false;
        }
        p.total_us = *v;
      }
    }
    for (std::size_t i = 0; i < 4; ++i)
      if (!seen[i]) {
        err = malformed(no, std::string("no ") + kKeys[i] + "= in the " + quote(t[0]) + " line");
        return false;
      }
    *slot = p;
    return true;
  });
  if (!err.empty()) return Result<Psi>::fail(err);
  if (!out.some) return Result<Psi>::fail(malformed(1, "no \"some\" line"));
  return Result<Psi>::ok(out);
}

std::string psi_percent(std::uint32_t h) {
  std::string out = std::to_string(h / 100) + ".";
  out += static_cast<char>('0' + h % 100 / 10);
  out += static_cast<char>('0' + h % 10);
  return out;
}

std::optional<std::uint64_t> cgroup_reclaimable(const CgroupLevel& lv) {
  if (!lv.inactive_file && !lv.active_file) return std::nullopt;
  const std::uint64_t lru = text::sat_add(lv.inactive_file.value_or(0), lv.active_file.value_or(0));
  const std::uint64_t busy = text::sat_add(lv.dirty.value_or(0), lv.writeback.value_or(0));
  std::uint64_t clean = lru > busy ? lru - busy : 0;
  if (lv.usage && clean > *lv.usage) clean = *lv.usage;  // the figures are read one by one
  return clean;
}

// ---------------------------------------------------------------- reader

Result<CgroupMemory> read_cgroup(const std::string& procfs_in, const std::string& sysfs_in,
                                 const CgroupOptions& opt) {
  using R = Result<CgroupMemory>;
  if (opt.mode == CgroupOptions::Mode::Off) return R::fail("off");
  if (opt.mode == CgroupOptions::Mode::Dir) return read_dir_mode(opt.dir);

  const std::string procfs = strip_slashes(procfs_in), sysfs = strip_slashes(sysfs_in);

  const std::string cg_path = join(procfs, "self/cgroup");
  auto cg_text = read_file(cg_path);
  if (!cg_text) return R::fail(cg_text.error);
  auto pc = parse_proc_cgroup(*cg_text.value);
  if (!pc) return fail_in<CgroupMemory>(pc.error, cg_path);
  if (!pc.value->v2_path && !pc.value->v1_memory_path)
    return R::fail("missing: no memory cgroup (neither \"0::\" nor \"memory\") in " + cg_path);

  std::vector<Mount> mounts;
  auto add = [&](int version, const std::string& dir, const std::string& root) {
    for (const Mount& m : mounts)
      if (m.dir == dir) return;
    mounts.push_back(Mount{version, dir, root});
  };
  // Mounts as listed in mountinfo; any trouble there just means the usual places are tried.
  if (auto mi_text = read_file(join(procfs, "self/mountinfo"))) {
    if (auto mi = parse_mountinfo(*mi_text.value)) {
      const CgroupMounts& cm = *mi.value;
      if (cm.v2_mount && pc.value->v2_path)
        if (auto d = map_mount(*cm.v2_mount, sysfs)) add(2, *d, cm.v2_root.value_or("/"));
      if (cm.v1_memory_mount && pc.value->v1_memory_path)
        if (auto d = map_mount(*cm.v1_memory_mount, sysfs))
          add(1, *d, cm.v1_memory_root.value_or("/"));
    }
  }
  const std::string base = join(sysfs, "fs/cgroup");
  if (pc.value->v2_path) {
    if (exists(join(base, "cgroup.controllers"))) add(2, base, "/");
    if (exists(join(base, "unified/cgroup.controllers"))) add(2, join(base, "unified"), "/");
  }
  if (pc.value->v1_memory_path && is_dir(join(base, "memory"))) add(1, join(base, "memory"), "/");

  std::vector<std::string> tried;
  for (const Mount& mt : mounts) {
    const std::string& path = mt.version == 2 ? *pc.value->v2_path : *pc.value->v1_memory_path;
    if (auto chain = resolve(mt, path, tried)) return read_memcg(mt.version, *chain);
  }
  std::string why = "missing: no memory cgroup found for this process";
  if (tried.empty()) {
    why += " (no cgroup mount under " + base + ")";
  } else {
    why += " (tried";
    for (std::size_t i = 0; i < tried.size(); ++i) why += (i ? ", " : " ") + tried[i];
    why += ")";
  }
  return R::fail(why);
}

}  // namespace shmguard
