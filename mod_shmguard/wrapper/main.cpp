// shmguard-php-wrapper: mod_fcgid's FcgidWrapper in front of php-cgi for ShmGuardAction degrade.
// At spawn time it reads the headroom mod_shmguard's sampler publishes (ShmGuardStateFile) and,
// when a full worker (OPcache + APCu) does not fit, starts php-cgi lean: smaller segments,
// OPcache in file-cache-only mode, or without them (core plan_lean()). Then it execs php-cgi; the
// FastCGI socket on fd 0 is left alone. It fails open: no state file, a stale or malformed one,
// any error -> php-cgi starts as configured. Its one line goes to stderr (the error log).
//
//   shmguard-php-wrapper --state FILE [--opcache SIZE] [--apcu SIZE] [--lean SIZE]
//                        [--file-cache DIR] [--max-age MS] -- PROGRAM [ARGS...]
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "shmguard/lean.hpp"
#include "shmguard/model.hpp"
#include "shmguard/sources.hpp"
#include "shmguard/units.hpp"

using namespace shmguard;

namespace {

int usage(const char* msg) {
  std::fprintf(stderr,
               "shmguard-php-wrapper: %s\n"
               "usage: shmguard-php-wrapper --state FILE [--opcache SIZE] [--apcu SIZE] "
               "[--lean SIZE] [--file-cache DIR] [--max-age MS] -- PROGRAM [ARGS...]\n",
               msg);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  LeanOptions o;
  std::string state_file;
  std::int64_t max_age_ms = 5000;
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (i + 1 >= argc) return usage(("missing value for " + a).c_str());
    std::string v = argv[++i];
    auto size = [&](std::uint64_t& out) {
      auto n = parse_size(v);
      if (!n) return false;
      out = *n;
      return true;
    };
    if (a == "--state") {
      state_file = v;
    } else if (a == "--opcache") {
      if (!size(o.opcache)) return usage(("bad size for --opcache: " + v).c_str());
    } else if (a == "--apcu") {
      if (!size(o.apcu)) return usage(("bad size for --apcu: " + v).c_str());
    } else if (a == "--lean") {
      if (!size(o.lean_max)) return usage(("bad size for --lean: " + v).c_str());
    } else if (a == "--file-cache") {
      o.file_cache = v;
    } else if (a == "--max-age") {
      auto n = parse_duration_ms(v);
      if (!n) return usage(("bad duration for --max-age: " + v).c_str());
      max_age_ms = static_cast<std::int64_t>(*n);
    } else {
      return usage(("unknown option " + a).c_str());
    }
  }
  if (i >= argc) return usage("no PROGRAM after --");
  if (state_file.empty()) return usage("--state FILE is required");
  if (!o.file_cache.empty()) {  // compiled scripts another tenant could plant: not used
    const std::string problem = file_cache_problem(o.file_cache, geteuid());
    if (!problem.empty()) {
      std::fprintf(stderr,
                   "shmguard-php-wrapper[%d]: SG0403 --file-cache %s not used: it %s; a lean "
                   "worker runs without OPcache instead\n",
                   static_cast<int>(getpid()), o.file_cache.c_str(), problem.c_str());
      o.file_cache.clear();
    }
  }

  std::optional<HeadroomState> state;
  std::string why;
  auto text = read_file(state_file, 4096);
  if (!text) {
    why = text.error;
  } else {
    state = parse_headroom_state(*text.value, &why);
    if (state) {
      std::int64_t age = now_ms() - state->sampled_ms;
      if (age < -1000 || age > max_age_ms) {
        why = "state file is " + std::to_string(age) + " ms old";
        state.reset();
      }
    }
  }
  LeanPlan plan = plan_lean(state, o);
  std::vector<char*> args(argv + i, argv + argc);
  for (auto& a : plan.php_args) args.push_back(a.data());
  args.push_back(nullptr);
  if (plan.lean) {
    LeanSettings got = lean_settings([&] {
      std::string c;
      for (auto& a : plan.php_args) c += a + " ";
      return c;
    }());
    std::fprintf(stderr,
                 "shmguard-php-wrapper[%d]: SG0401 starting a lean worker (%s instead of OPcache "
                 "%s + APCu %s): %s\n",
                 static_cast<int>(getpid()), got.describe().c_str(), human_bytes(o.opcache).c_str(),
                 human_bytes(o.apcu).c_str(), plan.why.c_str());
  } else if (!state && !why.empty()) {
    std::fprintf(stderr, "shmguard-php-wrapper[%d]: SG0402 %s: starting a full worker\n",
                 static_cast<int>(getpid()), why.c_str());
  }
  std::fflush(stderr);
  execv(args[0], args.data());
  std::fprintf(stderr, "shmguard-php-wrapper: cannot run %s: %s\n", args[0], std::strerror(errno));
  return 127;
}
