// mod_shmguard core: lean workers (see lean.hpp).
#include "shmguard/lean.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "shmguard/sources.hpp"
#include "shmguard/units.hpp"
#include "text.hpp"

namespace shmguard {

namespace {
constexpr std::string_view kMagic = "shmguard-state 1";
constexpr std::uint64_t kMiB = 1ULL << 20;

std::string mib_arg(const char* key, std::uint64_t bytes) {
  return std::string(key) + "=" + std::to_string(bytes / kMiB);
}
}  // namespace

std::string format_headroom_state(const HeadroomState& s) {
  std::string out(kMagic);
  out += "\nsampled_ms " + std::to_string(s.sampled_ms);
  out += "\nbounded " + std::string(s.bounded ? "1" : "0");
  out += "\nheadroom " + std::to_string(s.headroom);
  out += "\nreserved " + std::to_string(s.reserved);
  out += "\nbinding " + (s.binding.empty() ? std::string("-") : s.binding);
  out += "\nend\n";
  return out;
}

std::optional<HeadroomState> parse_headroom_state(std::string_view text, std::string* error) {
  auto fail = [&](const std::string& why) -> std::optional<HeadroomState> {
    if (error) *error = why;
    return std::nullopt;
  };
  if (text.size() > 4096) return fail("larger than 4 KiB");
  std::vector<std::string_view> lines;
  text::Lines reader(text);
  for (std::string_view line; reader.next(line);) lines.push_back(line);
  if (lines.empty() || lines[0] != kMagic) return fail("not a mod_shmguard state file");
  if (lines.back() != "end") return fail("incomplete (no end line)");
  HeadroomState s;
  int seen = 0;
  for (std::size_t i = 1; i + 1 < lines.size(); ++i) {
    std::string_view l = lines[i];
    std::size_t sp = l.find(' ');
    if (sp == std::string_view::npos) return fail("malformed line " + std::to_string(i + 1));
    std::string_view key = l.substr(0, sp), val = l.substr(sp + 1);
    if (key == "binding") {
      // A limit's name ("beancounter:shmpages", "cgroup:/a/b"): no control bytes (it goes
      // into log lines).
      for (char ch : val)
        if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f)
          return fail("bad binding in line " + std::to_string(i + 1));
      s.binding = val == "-" ? std::string() : std::string(val);
      continue;
    }
    auto v = parse_u64(val);
    if (!v || (key == "sampled_ms" && *v > static_cast<std::uint64_t>(INT64_MAX)))
      return fail("bad number in line " + std::to_string(i + 1));
    if (key == "sampled_ms")
      s.sampled_ms = static_cast<std::int64_t>(*v), seen |= 1;
    else if (key == "bounded")
      s.bounded = *v != 0, seen |= 2;
    else if (key == "headroom")
      s.headroom = *v, seen |= 4;
    else if (key == "reserved")
      s.reserved = *v, seen |= 8;
  }
  if (seen != 15) return fail("a value is missing");
  return s;
}

bool state_counts_claim(std::uint64_t samples_at_claim, std::uint64_t samples_now) {
  return samples_now >= samples_at_claim + 2;
}

LeanPlan plan_lean(const std::optional<HeadroomState>& state, const LeanOptions& o) {
  LeanPlan p;
  const std::uint64_t full = o.opcache + o.apcu;
  if (!state) {
    p.why = "no fresh headroom (fails open: full worker)";
    return p;
  }
  if (!state->bounded) {
    p.why = "headroom unbounded";
    return p;
  }
  // The spawn being started is one of those the module reserved headroom for (a full worker's
  // need, or lean_max under degrade): a full worker when the headroom holds one, else at most
  // lean_max.
  // The room left after the spawns the module admitted before this sample (this one's own
  // reservation may be among them: then a full worker that would fit is started lean, never
  // the other way round).
  const std::uint64_t room =
      state->headroom > state->reserved ? state->headroom - state->reserved : 0;
  if (room >= full) {
    p.why = "headroom holds a full worker";
    return p;
  }
  const std::uint64_t avail = std::min(state->headroom, o.lean_max);
  p.lean = true;
  p.why = "headroom " + human_bytes(state->headroom) + " < a full worker's " + human_bytes(full);
  std::uint64_t left = avail;
  if (o.apcu > 0) {
    std::uint64_t a = std::min(o.apcu, (avail / 4) / kMiB * kMiB);
    if (a >= o.apcu_min && avail - a >= o.opcache_min) {
      p.apcu = a;
      left -= a;
    }
  }
  std::uint64_t oc = std::min(o.opcache, left / kMiB * kMiB);
  if (oc >= o.opcache_min) {
    p.opcache = oc;
    p.php_args = {"-d", "opcache.enable=1", "-d", mib_arg("opcache.memory_consumption", oc)};
  } else if (!o.file_cache.empty()) {
    p.opcache_file_only = true;
    p.php_args = {"-d", "opcache.enable=1",
                  "-d", "opcache.file_cache_only=1",
                  "-d", "opcache.file_cache=" + o.file_cache};
  } else {
    p.opcache_off = true;
    p.php_args = {"-d", "opcache.enable=0"};
  }
  if (o.apcu > 0) {
    if (p.apcu) {
      p.php_args.insert(p.php_args.end(), {"-d", "apc.enabled=1", "-d",
                                           "apc.shm_size=" + std::to_string(p.apcu / kMiB) + "M"});
    } else {
      p.php_args.insert(p.php_args.end(), {"-d", "apc.enabled=0"});
    }
  }
  p.php_args.insert(p.php_args.end(), {"-d", "shmguard.lean=1"});
  return p;
}

namespace {
// The value of "-d KEY=VALUE" or "-dKEY=VALUE" in a NUL- or space-separated command line.
std::optional<std::string> ini_value(const std::vector<std::string_view>& args,
                                     std::string_view key) {
  std::optional<std::string> out;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view a = args[i];
    if (a == "-d" && i + 1 < args.size())
      a = args[++i];
    else if (a.substr(0, 2) == "-d")
      a = a.substr(2);
    else
      continue;
    if (a.size() > key.size() && a.substr(0, key.size()) == key && a[key.size()] == '=')
      out = std::string(a.substr(key.size() + 1));  // the last one wins, as in PHP
  }
  return out;
}
}  // namespace

LeanSettings lean_settings(std::string_view cmdline) {
  LeanSettings s;
  if (cmdline.size() > 8192) cmdline = cmdline.substr(0, 8192);
  std::vector<std::string_view> args;
  while (!cmdline.empty()) {
    std::size_t sep = cmdline.find_first_of(std::string_view("\0 ", 2));
    if (sep != 0) args.push_back(cmdline.substr(0, sep));
    if (sep == std::string_view::npos) break;
    cmdline = cmdline.substr(sep + 1);
  }
  auto lean = ini_value(args, "shmguard.lean");
  s.lean = lean && *lean == "1";
  if (auto v = ini_value(args, "opcache.memory_consumption"))
    if (auto n = parse_u64(*v); n && *n < (1ULL << 20)) s.opcache = *n * kMiB;
  if (auto v = ini_value(args, "apc.shm_size"))
    if (auto n = parse_size(*v)) s.apcu = *n;
  if (auto v = ini_value(args, "opcache.file_cache_only")) s.opcache_file_only = *v == "1";
  if (auto v = ini_value(args, "opcache.enable")) s.opcache_off = *v == "0";
  if (auto v = ini_value(args, "apc.enabled")) s.apcu_off = *v == "0";
  return s;
}

std::string LeanSettings::describe() const {
  std::string out;
  if (opcache_off)
    out = "OPcache off";
  else if (opcache_file_only)
    out = "OPcache file cache only";
  else if (opcache)
    out = "OPcache " + human_bytes(*opcache);
  if (apcu_off || apcu) {
    if (!out.empty()) out += ", ";
    out += apcu_off ? "APCu off" : "APCu " + human_bytes(*apcu);
  }
  return out;
}

std::string file_cache_problem(const std::string& dir, unsigned uid) {
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return std::string("cannot be read: ") + std::strerror(errno);
  if (S_ISLNK(st.st_mode)) return "is a symbolic link";
  if (!S_ISDIR(st.st_mode)) return "is not a directory";
  if (st.st_uid != uid)
    return "belongs to uid " + std::to_string(st.st_uid) + ", not this worker's " +
           std::to_string(uid) + " (one directory per tenant)";
  if (st.st_mode & (S_IWGRP | S_IWOTH))
    return std::string("is writable by ") + ((st.st_mode & S_IWOTH) ? "everyone" : "its group") +
           " (another tenant could plant compiled scripts)";
  return "";
}

}  // namespace shmguard
