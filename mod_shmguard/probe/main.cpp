// shmguard-probe: every shared-memory limit that can refuse PHP's OPcache, and the headroom left.
// The same core as mod_shmguard; see README.md for usage.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "shmguard/model.hpp"
#include "shmguard/render.hpp"
#include "shmguard/units.hpp"

namespace {

using namespace shmguard;

const char kUsage[] =
    "usage: shmguard-probe [--procfs DIR] [--sysfs DIR] [--beancounters FILE|off]\n"
    "                      [--container ID] [--cgroup auto|off|DIR] [--devshm PATH|off]\n"
    "                      [--lenient] [--format text|json|prometheus]\n"
    "                      [--check [--warning X] [--critical Y] [--state FILE]]\n"
    "  X, Y: a headroom size (64M = alert when headroom < 64 MiB; K/M/G = KiB/MiB/GiB)\n"
    "        or a percent of the binding limit in use (90%). Defaults: --warning 75%\n"
    "        --critical 90%. --state FILE remembers failure counters between runs: a rise\n"
    "        since the last run is at least WARNING (like vzubc -r).\n"
    "  --lenient: read the beancounter file as a pasted copy (its Version line or\n"
    "        header lost, spaces collapsed) and say how it differs from the kernel's\n"
    "        exact format.\n";

enum Exit { kOk = 0, kWarning = 1, kCritical = 2, kUnknown = 3 };

struct Threshold {
  bool is_percent = false;
  double percent = 0;
  std::uint64_t bytes = 0;
  std::string text;
};

std::optional<Threshold> parse_threshold(const std::string& s) {
  Threshold t;
  t.text = s;
  if (auto p = parse_percent(s)) {
    t.is_percent = true;
    t.percent = *p;
    return t;
  }
  if (auto b = parse_size(s)) {
    t.bytes = *b;
    return t;
  }
  return std::nullopt;
}

struct Args {
  ProbeConfig cfg;
  std::string format = "text";
  bool check = false;
  Threshold warning{true, 75, 0, "75%"};
  Threshold critical{true, 90, 0, "90%"};
  std::string state;
};

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

Args parse_args(int argc, char** argv, bool& check_mode) {
  Args a;
  // --check changes the exit code for bad arguments, so look for it first.
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--check") == 0) check_mode = true;
  for (int i = 1; i < argc; ++i) {
    std::string opt = argv[i];
    std::string val;
    bool has_inline = false;
    if (auto eq = opt.find('='); opt.rfind("--", 0) == 0 && eq != std::string::npos) {
      val = opt.substr(eq + 1);
      opt = opt.substr(0, eq);
      has_inline = true;
    }
    auto need = [&]() -> std::string {
      if (has_inline) return val;
      if (i + 1 >= argc) throw UsageError(opt + " needs a value");
      return argv[++i];
    };
    if (opt == "--procfs") {
      a.cfg.procfs = need();
    } else if (opt == "--sysfs") {
      a.cfg.sysfs = need();
    } else if (opt == "--beancounters") {
      std::string v = need();
      if (v == "off")
        a.cfg.beancounters_off = true;
      else
        a.cfg.beancounters = v;
    } else if (opt == "--lenient") {
      if (has_inline) throw UsageError("--lenient takes no value");
      a.cfg.beancounters_lenient = true;
    } else if (opt == "--container") {
      a.cfg.container = need();
      if (a.cfg.container->empty()) throw UsageError("--container needs an id");
    } else if (opt == "--devshm") {
      std::string v = need();
      a.cfg.devshm = v == "off" ? "" : v;
    } else if (opt == "--cgroup") {
      std::string v = need();
      if (v == "auto") {
        a.cfg.cgroup.mode = CgroupOptions::Mode::Auto;
      } else if (v == "off") {
        a.cfg.cgroup.mode = CgroupOptions::Mode::Off;
      } else if (!v.empty() && v[0] == '/') {
        a.cfg.cgroup.mode = CgroupOptions::Mode::Dir;
        a.cfg.cgroup.dir = v;
      } else {
        throw UsageError("--cgroup takes auto, off or an absolute directory, not '" + v + "'");
      }
    } else if (opt == "--format") {
      a.format = need();
      if (a.format != "text" && a.format != "json" && a.format != "prometheus")
        throw UsageError("--format takes text, json or prometheus, not '" + a.format + "'");
    } else if (opt == "--page-size") {
      std::string v = need();
      auto p = parse_u64(v);
      if (!p || *p == 0 || (*p & (*p - 1)) != 0)
        throw UsageError("--page-size takes a power of two, not '" + v + "'");
      a.cfg.page_size = *p;
    } else if (opt == "--check") {
      a.check = true;
    } else if (opt == "--warning" || opt == "--critical") {
      std::string v = need();
      auto t = parse_threshold(v);
      if (!t) throw UsageError(opt + " takes a size (64M) or a percent (90%), not '" + v + "'");
      (opt == "--warning" ? a.warning : a.critical) = *t;
    } else if (opt == "--state") {
      a.state = need();
    } else if (opt == "--help" || opt == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else {
      throw UsageError("unknown argument '" + opt + "'");
    }
  }
  if (!a.check && (!a.state.empty())) throw UsageError("--state goes with --check");
  return a;
}

// The state file: one "name value" line per failure counter. Never through a symbolic link (the
// probe often runs as root from a monitoring agent, the file may sit in a directory others can
// write): read with O_NOFOLLOW; written to a new temporary file (mkstemp: O_CREAT|O_EXCL, mode
// 0600) in the same directory, then renamed over the state file.
const char* const kSymlinkState = "it is a symbolic link (not followed)";

// Fills `why` when the state file exists but must not be used.
std::map<std::string, std::uint64_t> load_state(const std::string& path, std::string& why) {
  std::map<std::string, std::uint64_t> m;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ELOOP) why = kSymlinkState;
    return m;  // missing: the first run
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    why = "it is not a regular file";
    return m;
  }
  std::string text;
  char buf[4096];
  ssize_t n;
  while (text.size() < (1u << 20) && (n = ::read(fd, buf, sizeof buf)) > 0)
    text.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  std::istringstream in(text);
  std::string name, value;
  while (in >> name >> value)
    if (auto v = parse_u64(value)) m[name] = *v;
  return m;
}

bool save_state(const std::string& path, const std::vector<Counter>& counters) {
  std::string text;
  for (const auto& c : counters) text += c.name + ' ' + std::to_string(c.value) + '\n';
  return replace_file(path, text, 0600, true);
}

// Does the threshold fire? Size: headroom below it. Percent: binding limit in use at or above it.
bool fires(const Threshold& t, const Snapshot& s) {
  if (!s.headroom_bytes) return false;
  if (!t.is_percent) return *s.headroom_bytes < t.bytes;
  const Limit* l = s.binding_limit();
  if (!l || l->limit_bytes == 0) return false;
  double used = 100.0 * static_cast<double>(l->used_bytes) / static_cast<double>(l->limit_bytes);
  return used >= t.percent;
}

int run_check(const Args& a, const Snapshot& s) {
  int code = kOk;
  std::vector<std::string> why;
  std::string summary;
  const Limit* l = s.binding_limit();
  double used_pct = 0;
  if (l && l->limit_bytes)
    used_pct = 100.0 * static_cast<double>(l->used_bytes) / static_cast<double>(l->limit_bytes);

  if (s.headroom_bytes && l) {
    char pct[32];
    std::snprintf(pct, sizeof pct, "%.1f%%", used_pct);
    summary = "headroom " + human_bytes(*s.headroom_bytes) + ", bound by " + s.binding + " (" +
              pct + " in use)";
    if (fires(a.critical, s)) {
      code = kCritical;
      why.push_back("critical threshold " + a.critical.text);
    } else if (fires(a.warning, s)) {
      code = kWarning;
      why.push_back("warning threshold " + a.warning.text);
    }
  } else {
    bool unreadable = false;
    for (const auto& u : s.unavailable)
      if (u.reason.rfind("missing", 0) != 0) unreadable = true;
    summary = "no finite shared-memory limit found";
    if (unreadable) {
      code = kUnknown;
      summary = "headroom unknown: a source could not be read";
    }
  }
  for (const auto& u : s.unavailable)
    if (u.reason.rfind("missing", 0) != 0) why.push_back(u.source + " unavailable: " + u.reason);
  if (s.beancounters && s.beancounters->lenient && !s.beancounters->format_notes.empty())
    why.push_back("the beancounter file is not in the kernel's exact format (read with --lenient)");

  if (!a.state.empty()) {
    std::string refused;
    auto old = load_state(a.state, refused);
    for (const auto& c : s.counters) {
      auto it = old.find(c.name);
      if (it != old.end() && c.value > it->second) {
        why.push_back(c.name + " +" + std::to_string(c.value - it->second) + " since last run");
        if (code == kOk) code = kWarning;
      }
    }
    if (!refused.empty() || !save_state(a.state, s.counters)) {
      why.push_back("cannot write state file " + a.state + (refused.empty() ? "" : ": " + refused));
      if (code == kOk) code = kUnknown;
    }
  }

  // '|' starts the perfdata for monitoring software: never let input text contain one.
  auto clean = [](std::string t) {
    for (char& ch : t)
      if (ch == '|' || ch == '\n' || ch == '\r') ch = '/';
    return t;
  };
  static const char* names[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};
  std::cout << "SHMGUARD " << names[code] << " - " << clean(summary);
  for (const auto& w : why) std::cout << "; " << clean(w);
  std::cout << " |";
  if (s.headroom_bytes) {
    std::cout << " headroom=" << *s.headroom_bytes << "B;";
    if (!a.warning.is_percent) std::cout << a.warning.bytes << ":";
    std::cout << ";";
    if (!a.critical.is_percent) std::cout << a.critical.bytes << ":";
    std::cout << ";0;";
    char buf[64];
    std::snprintf(buf, sizeof buf, " used=%.2f%%;", used_pct);
    std::cout << buf;
    if (a.warning.is_percent) std::cout << a.warning.percent;
    std::cout << ";";
    if (a.critical.is_percent) std::cout << a.critical.percent;
    std::cout << ";0;100";
  }
  for (const auto& c : s.counters)
    if (c.name.find("shmpages") != std::string::npos ||
        c.name.find("privvmpages") != std::string::npos || c.name.rfind("cgroup:", 0) == 0)
      std::cout << " '" << c.name << "'=" << c.value << "c";
  std::cout << "\n";
  return code;
}

// A beancounter file the strict reading refuses but the lenient one reads is most likely a pasted
// copy: say so in its reason.
void hint_lenient(const ProbeConfig& cfg, Snapshot& s) {
  if (cfg.beancounters_lenient || cfg.beancounters_off) return;
  const std::string path =
      cfg.beancounters.empty() ? cfg.procfs + "/user_beancounters" : cfg.beancounters;
  const std::string tail = " (" + path + ")";
  for (auto& u : s.unavailable) {
    if (u.source != "beancounter" || u.reason.rfind("malformed", 0) != 0 ||
        u.reason.size() < tail.size() ||
        u.reason.compare(u.reason.size() - tail.size(), tail.size(), tail) != 0)
      continue;
    auto text = read_file(path);
    if (text && parse_user_beancounters_lenient(*text.value))
      u.reason += "; not the kernel's exact format, but --lenient reads it (a pasted copy?)";
  }
}

int real_main(int argc, char** argv) {
  bool check_mode = false;
  Args a;
  try {
    a = parse_args(argc, argv, check_mode);
  } catch (const UsageError& e) {
    std::cerr << "shmguard-probe: " << e.what() << "\n" << kUsage;
    return check_mode ? kUnknown : 2;
  }
  Snapshot s = probe(a.cfg);
  hint_lenient(a.cfg, s);
  FailcntTracker tracker;
  tracker.observe(s.taken_at_ms, s);
  if (a.check) return run_check(a, s);
  if (a.format == "json")
    std::cout << render_json(s);
  else if (a.format == "prometheus")
    std::cout << render_prometheus(s);
  else
    std::cout << render_text(s);
  std::cout.flush();
  return std::cout ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return real_main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "shmguard-probe: internal error: " << e.what() << "\n";
  } catch (...) {
    std::cerr << "shmguard-probe: internal error\n";
  }
  return 3;
}
