// P4/P5 with the real sampler code: mod_shmguard/sampler/sampler.cpp's run() in a forked process,
// with N live worker processes listed in a synthetic mod_fcgid 2.3.9 process table, at the default
// interval, against a beancounter file (1 container, or a hardware node's 1 + N blocks). Built by
// bench/run.sh:
//   g++ -O2 -std=c++17 -Iinclude bench/sampler_bench.cpp mod_shmguard/sampler/sampler.cpp
//       build/libshmguard_core.a -lpthread -o build/bench/sampler_bench
//
//   sampler_bench [--workers=1000] [--containers=1] [--seconds=10] [--watch-seconds=10]
//                 [--renders=5] [--first-views=3] [--quiet-minute] [--dir=build/bench]
//                 [--json=FILE]
//
// What runs is exactly what the module's sampler process runs (sampler_glue.cpp minus the privilege
// drop and the httpd logger): sampler::run(cfg, seg, log, stop) with cfg.probe reading the
// beancounter file (container 101; cgroup, overcommit, SysV and /dev/shm of this machine),
// cfg.fcgid_table, an (empty, watched) error log, the wake pipe and parent_pid. The segment is a
// MAP_SHARED anonymous mapping like the module's, so this process reads the sampler's counters and
// asks for status pages exactly as a child's status handler does (status.cpp fresh_part():
// status_wanted set, a ticket from status_requests, a byte into the wake pipe, then status_gen
// polled in 0.2 ms nanosleep steps).
//
// CPU: the stop callback, which run() calls at the top of every loop iteration (after each sample,
// each poll time-out and each wake-up), appends {samples, status_gen, CLOCK_PROCESS_CPUTIME_ID,
// CLOCK_MONOTONIC} to a shared page. Between two consecutive records the sampler did exactly one
// thing: a scheduled sample, or a poll that ended (time-out or wake-up, and what the wake-up ran).
// So:
//  - a scheduled sample's CPU is the delta between the records where `samples` moved;
//  - a status page's CPU is the delta across the iteration in which status_gen reached its ticket,
//    provided `samples` did not move in it (the request reached the sampler as on_wake(), not
//    inside a scheduled sample, which would render it too); if it did, the view is retried.
//
// Phases (one sampler process unless said otherwise):
//  1. the first sample (maps of every worker), then `seconds` of scheduled samples, no page asked
//     for (unwatched: probe + light table walk, no per-worker /proc read);
//  2. the first status view: the sampler has never rendered (= the first view after a quiet
//     minute), so it refreshes every process (read_worker without maps for all, discovery through
//     read_all_stats) and renders;
//  3. `renders` watched views per format (within the minute: rendered from the caches), each
//     100 ms after a scheduled sample;
//  4. `watch-seconds` of scheduled samples while the page counts as watched (each refreshes the
//     RSS of up to 100 least-recently-read processes; every 10 s a discovery);
//  5. with --quiet-minute: wait until 61 s after the last view, `min(seconds, 5)` s of scheduled
//     samples (unwatched again), then one genuine first view after a quiet minute;
//  6. `first-views` - 1 more first views per format (HTML: phase 2 was one), each from a fresh
//     sampler process (its first sample, one scheduled sample, then the view).
// The total from wait4()'s rusage of the main process is printed as a cross-check. Every process
// made here is SIGKILLed and reaped at the end (and on SIGINT/SIGTERM), and dies with this one
// (PR_SET_PDEATHSIG).
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "shm/segment.hpp"
#include "../mod_shmguard/sampler/sampler.hpp"
#include "fixtures.hpp"
#include "shmguard/status.hpp"

using namespace shmguard;

namespace {

std::int64_t clock_ns(clockid_t c) {
  timespec ts;
  clock_gettime(c, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}
std::int64_t mono_ns() {
  return clock_ns(CLOCK_MONOTONIC);
}
void sleep_ms(double ms) {
  if (ms > 0) usleep(static_cast<useconds_t>(ms * 1000));
}

// One line per iteration of the sampler's loop: written by the sampler process, read by this one.
struct Record {
  std::uint64_t samples;     // seg->samples
  std::uint64_t status_gen;  // seg->status_gen
  std::int64_t cpu_ns;       // the sampler process's CPU time (user+sys) at that moment
  std::int64_t mono_ns;
};
constexpr std::size_t kMaxRecords = 1 << 17;
struct Shared {
  std::atomic<int> stop;
  std::atomic<std::uint64_t> nrec;
  std::atomic<std::uint64_t> log_lines;
  Record rec[kMaxRecords];
};

template <class T>
T* shared_alloc() {
  void* p = mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    std::perror("mmap");
    std::exit(1);
  }
  return static_cast<T*>(p);
}

std::vector<pid_t> g_workers;
pid_t g_sampler = 0;
int g_wake = -1;  // write end of the current sampler's wake pipe

void cleanup() {
  if (g_sampler > 0) {
    kill(g_sampler, SIGKILL);
    waitpid(g_sampler, nullptr, 0);
    g_sampler = 0;
  }
  benchfx::reap_workers(g_workers);
}

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "sampler_bench: %s\n", what);
  cleanup();
  std::exit(1);
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}
double vmin(const std::vector<double>& v) {
  return v.empty() ? 0 : *std::min_element(v.begin(), v.end());
}
double vmax(const std::vector<double>& v) {
  return v.empty() ? 0 : *std::max_element(v.begin(), v.end());
}

struct Bench {
  shm::Segment* seg;
  Shared* sh;
  sampler::Config cfg;
  std::int64_t interval_ms;

  std::uint64_t nrec() const { return sh->nrec.load(std::memory_order_acquire); }
  Record last() const {
    std::uint64_t n = nrec();
    return n ? sh->rec[n - 1] : Record{0, 0, 0, 0};
  }
  // Index of the first record with samples >= k (waits for it), or -1 after the time-out.
  long first_with_samples(std::uint64_t k, std::int64_t timeout_ms = 30000) const {
    const std::int64_t deadline = mono_ns() + timeout_ms * 1000000;
    std::uint64_t from = 0;
    do {
      std::uint64_t n = nrec();
      for (; from < n; ++from)
        if (sh->rec[from].samples >= k) return static_cast<long>(from);
      usleep(500);
    } while (mono_ns() < deadline);
    return -1;
  }

  // A fresh sampler process on a freshly initialised segment (as after a server start).
  void start() {
    shm::init(seg, 1, interval_ms);
    sh->stop.store(0);
    sh->nrec.store(0);
    int wake[2];
    if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) fail("pipe2");
    cfg.wake_fd = wake[0];
    const pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) fail("fork");
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(0);
      prctl(PR_SET_NAME, "shmguard-smplr");
      signal(SIGINT, SIG_DFL);
      signal(SIGTERM, SIG_DFL);
      close(wake[1]);
      g_workers.clear();  // not ours to reap
      seg->sampler_pid.store(static_cast<std::int32_t>(getpid()));
      auto record = [&] {
        std::uint64_t i = sh->nrec.load(std::memory_order_relaxed);
        if (i >= kMaxRecords) return;
        sh->rec[i] = Record{seg->samples.load(std::memory_order_relaxed),
                            seg->status_gen.load(std::memory_order_relaxed),
                            clock_ns(CLOCK_PROCESS_CPUTIME_ID), mono_ns()};
        sh->nrec.store(i + 1, std::memory_order_release);
      };
      record();  // baseline: samples 0, before the Sampler exists
      sampler::Logger log = [&](sampler::Level, const std::string& msg) {
        sh->log_lines.fetch_add(1);
        std::fprintf(stderr, "sampler: %s\n", msg.c_str());
      };
      sampler::run(cfg, seg, log, [&] {
        record();
        return sh->stop.load(std::memory_order_acquire) != 0;
      });
      _exit(0);
    }
    close(wake[0]);
    g_sampler = pid;
    g_wake = wake[1];
  }

  // Stops the sampler through the shared flag; its CPU from wait4(), its exit status.
  std::pair<double, int> stop() {
    sh->stop.store(1, std::memory_order_release);
    if (write(g_wake, "s", 1) != 1) std::perror("write");
    int status = 0;
    rusage ru{};
    pid_t w = wait4(g_sampler, &status, 0, &ru);
    if (w == g_sampler) g_sampler = 0;
    close(g_wake);
    g_wake = -1;
    const double cpu_ms = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
                          static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
    return {cpu_ms, WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status)};
  }

  struct Steady {
    std::uint64_t samples = 0;
    double wall_s = 0, cpu_ms = 0, per_sample_ms = 0, core_pct = 0, core_pct_wall = 0;
    std::vector<double> each;  // CPU of each sample
  };
  // Scheduled samples for about `seconds`, from the end of the next sample on (no page asked for).
  Steady steady(double seconds) {
    Steady st;
    const std::uint64_t s0 = last().samples + 1;
    long a = first_with_samples(s0);
    if (a < 0) fail("no sample within 30 s");
    sleep_ms(seconds * 1e3);
    const std::uint64_t s1 = last().samples;
    long b = first_with_samples(s1);
    if (b < 0 || s1 <= s0) return st;
    const Record ra = sh->rec[a], rb = sh->rec[b];
    st.samples = s1 - s0;
    st.wall_s = static_cast<double>(rb.mono_ns - ra.mono_ns) / 1e9;
    st.cpu_ms = static_cast<double>(rb.cpu_ns - ra.cpu_ns) / 1e6;
    st.per_sample_ms = st.cpu_ms / static_cast<double>(st.samples);
    st.core_pct = 100.0 * st.per_sample_ms / static_cast<double>(interval_ms);
    st.core_pct_wall = st.wall_s > 0 ? 100.0 * st.cpu_ms / 1e3 / st.wall_s : 0;
    long prev = a;
    for (std::uint64_t k = s0 + 1; k <= s1; ++k) {
      long i = first_with_samples(k, 0);
      if (i < 0) break;
      st.each.push_back(static_cast<double>(sh->rec[i].cpu_ns - sh->rec[prev].cpu_ns) / 1e6);
      prev = i;
    }
    return st;
  }

  struct View {
    bool ok = false;
    double wait_ms = 0;  // request -> status_gen >= ticket, polled as the handler does (0.2 ms)
    double done_ms = 0;  // request -> the sampler's loop is back at the top after rendering
    double cpu_ms = 0;   // the sampler's CPU in the iteration that rendered
    int tries = 0;
    std::uint32_t blob = 0;
    std::int64_t asked_ns = 0;
  };
  // One status page as status.cpp asks for it, 100 ms after a scheduled sample.
  View view(unsigned format) {
    View v;
    for (v.tries = 1; v.tries <= 5; ++v.tries) {
      if (first_with_samples(last().samples + 1) < 0) fail("no sample within 30 s");
      sleep_ms(static_cast<double>(std::min<std::int64_t>(interval_ms / 5, 100)));
      const std::uint64_t n_before = nrec();
      const std::int64_t asked = mono_ns();
      seg->status_wanted.store(1);  // one part for every format: `format` names the run only
      const std::uint64_t ticket = seg->status_requests.fetch_add(1) + 1;
      if (write(g_wake, "s", 1) != 1) std::perror("write");
      // status.cpp gives up after 2500 steps (~0.5 s) and shows the previous rendering; here the
      // wait goes on (up to 30 s) so that a slow render is measured, not hidden.
      while (seg->status_gen.load() < ticket && mono_ns() - asked < 30'000'000'000) {
        struct timespec ts {
          0, 200 * 1000
        };
        nanosleep(&ts, nullptr);
      }
      const std::int64_t served = mono_ns();
      if (seg->status_gen.load() < ticket) fail("status page not rendered within 30 s");
      // The record closing the iteration that rendered.
      long i = -1;
      const std::int64_t deadline = mono_ns() + 5'000'000'000;
      while (i < 0 && mono_ns() < deadline) {
        std::uint64_t n = nrec();
        for (std::uint64_t j = n_before; j < n; ++j)
          if (sh->rec[j].status_gen >= ticket) {
            i = static_cast<long>(j);
            break;
          }
        if (i < 0) usleep(200);
      }
      if (i <= 0) fail("no record of the rendering");
      const Record& prev = sh->rec[i - 1];
      const Record& done = sh->rec[i];
      if (done.samples != prev.samples) {
        std::fprintf(stderr,
                     "sampler_bench: view (format %u) rendered inside scheduled sample %llu; "
                     "retrying\n",
                     format, static_cast<unsigned long long>(done.samples));
        continue;
      }
      v.ok = true;
      v.wait_ms = static_cast<double>(served - asked) / 1e6;
      v.done_ms = static_cast<double>(done.mono_ns - asked) / 1e6;
      v.cpu_ms = static_cast<double>(done.cpu_ns - prev.cpu_ns) / 1e6;
      v.blob = seg->blob_len.load();
      v.asked_ns = asked;
      return v;
    }
    v.tries = 5;
    return v;
  }
};

struct Views {
  const char* name;
  unsigned format;
  std::vector<Bench::View> first, watched;
};

std::vector<double> field(const std::vector<Bench::View>& vs, double Bench::View::*m) {
  std::vector<double> out;
  for (const auto& v : vs)
    if (v.ok) out.push_back(v.*m);
  return out;
}

void print_views(const char* label, const char* name, const std::vector<Bench::View>& vs) {
  auto w = field(vs, &Bench::View::wait_ms), d = field(vs, &Bench::View::done_ms),
       c = field(vs, &Bench::View::cpu_ms);
  if (w.empty()) return;
  std::uint32_t blob = 0;
  for (const auto& v : vs)
    if (v.ok) blob = v.blob;
  std::fprintf(stderr,
               "  %s %s (%zu): page waited %.3f ms (%.3f-%.3f), rendered after %.3f ms, sampler "
               "CPU %.3f ms (%.3f-%.3f), blob %u bytes\n",
               label, name, w.size(), median(w), vmin(w), vmax(w), median(d), median(c), vmin(c),
               vmax(c), blob);
}

void json_list(FILE* f, const std::vector<double>& v) {
  std::fprintf(f, "[");
  for (std::size_t i = 0; i < v.size(); ++i) std::fprintf(f, "%s%.4f", i ? ", " : "", v[i]);
  std::fprintf(f, "]");
}
void json_views(FILE* f, const std::vector<Bench::View>& vs) {
  auto w = field(vs, &Bench::View::wait_ms), d = field(vs, &Bench::View::done_ms),
       c = field(vs, &Bench::View::cpu_ms);
  std::uint32_t blob = 0;
  int retries = 0;
  for (const auto& v : vs) {
    if (v.ok) blob = v.blob;
    retries += v.tries - 1;
  }
  std::fprintf(f,
               "{\"n\": %zu, \"wait_ms\": %.4f, \"wait_ms_min\": %.4f, \"wait_ms_max\": %.4f, "
               "\"done_ms\": %.4f, \"cpu_ms\": %.4f, \"cpu_ms_min\": %.4f, \"cpu_ms_max\": %.4f, "
               "\"blob_bytes\": %u, \"retries\": %d, \"wait_ms_all\": ",
               w.size(), median(w), vmin(w), vmax(w), median(d), median(c), vmin(c), vmax(c), blob,
               retries);
  json_list(f, w);
  std::fprintf(f, ", \"cpu_ms_all\": ");
  json_list(f, c);
  std::fprintf(f, "}");
}
void json_steady(FILE* f, const Bench::Steady& s) {
  std::fprintf(f,
               "{\"samples\": %llu, \"wall_s\": %.3f, \"cpu_ms\": %.4f, \"cpu_ms_per_sample\": "
               "%.4f, \"sample_cpu_ms_min\": %.4f, \"sample_cpu_ms_median\": %.4f, "
               "\"sample_cpu_ms_max\": %.4f, \"core_pct\": %.4f, \"core_pct_wall\": %.4f, "
               "\"each\": ",
               static_cast<unsigned long long>(s.samples), s.wall_s, s.cpu_ms, s.per_sample_ms,
               vmin(s.each), median(s.each), vmax(s.each), s.core_pct, s.core_pct_wall);
  json_list(f, s.each);
  std::fprintf(f, "}");
}
void print_steady(const char* label, const Bench::Steady& s, std::int64_t interval_ms) {
  std::fprintf(stderr,
               "  %s: %llu samples in %.1f s, %.3f ms CPU per sample (min %.3f, median %.3f, max "
               "%.3f) = %.3f %% of a core at %lld ms (%.3f %% over the wall time)\n",
               label, static_cast<unsigned long long>(s.samples), s.wall_s, s.per_sample_ms,
               vmin(s.each), median(s.each), vmax(s.each), s.core_pct,
               static_cast<long long>(interval_ms), s.core_pct_wall);
}

}  // namespace

int main(int argc, char** argv) {
  int workers = 1000, containers = 1, renders = 5, first_views = 3;
  double seconds = 10, watch_seconds = -1;
  bool quiet_minute = false;
  std::int64_t interval_ms = 500;
  std::string dir = "build/bench", json;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](const char* k) -> const char* {
      std::size_t n = std::strlen(k);
      return a.compare(0, n, k) == 0 ? a.c_str() + n : nullptr;
    };
    if (const char* v = val("--workers="))
      workers = std::atoi(v);
    else if (const char* v = val("--seconds="))
      seconds = std::atof(v);
    else if (const char* v = val("--watch-seconds="))
      watch_seconds = std::atof(v);
    else if (const char* v = val("--interval="))
      interval_ms = std::atoll(v);
    else if (const char* v = val("--containers="))
      containers = std::atoi(v);
    else if (const char* v = val("--renders="))
      renders = std::atoi(v);
    else if (const char* v = val("--first-views="))
      first_views = std::atoi(v);
    else if (a == "--quiet-minute")
      quiet_minute = true;
    else if (const char* v = val("--dir="))
      dir = v;
    else if (const char* v = val("--json="))
      json = v;
    else {
      std::fprintf(stderr, "sampler_bench: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  if (watch_seconds < 0) watch_seconds = seconds;
  if (watch_seconds > 45) watch_seconds = 45;  // the page must still count as watched at the end

  // Inputs.
  const std::string ubc = dir + "/user_beancounters.sampler";
  const std::string errlog = dir + "/sampler_bench_error.log";
  if (!benchfx::write_text(ubc, benchfx::hardware_node_text(containers)) ||
      !benchfx::write_text(errlog, ""))
    return 1;

  struct sigaction sa {};
  sa.sa_handler = [](int sig) {
    cleanup();
    _exit(128 + sig);
  };
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  // Workers first: each is a copy of this process, so fork them while it is small.
  std::int64_t t0 = mono_ns();
  g_workers = benchfx::spawn_workers(workers);
  const double spawn_s = static_cast<double>(mono_ns() - t0) / 1e9;
  if (static_cast<int>(g_workers.size()) != workers) {
    std::fprintf(stderr, "sampler_bench: only %zu of %d workers\n", g_workers.size(), workers);
    cleanup();
    return 1;
  }
  usleep(200 * 1000);  // let every worker map and touch its segment
  const std::vector<unsigned char> table = benchfx::fcgid_table(g_workers, 0);  // all idle

  Bench b;
  // The shared segment, as post_config makes it: anonymous, shared with the sampler process.
  b.seg = shared_alloc<shm::Segment>();
  b.sh = shared_alloc<Shared>();
  b.interval_ms = interval_ms;
  b.cfg.probe.beancounters = ubc;
  b.cfg.probe.container = std::string("101");
  b.cfg.interval_ms = interval_ms;
  b.cfg.error_log = errlog;
  b.cfg.fcgid_table = table.data();
  b.cfg.parent_pid = getpid();

  std::vector<Views> views = {{"html", 1, {}, {}}, {"metrics", 8, {}, {}}};

  // 1. The first sample, then the steady state nobody watches.
  b.start();
  const Record base = b.sh->rec[0];
  const long fi = b.first_with_samples(1);
  if (fi < 0) fail("no first sample within 30 s");
  const double first_ms = static_cast<double>(b.sh->rec[fi].cpu_ns - base.cpu_ns) / 1e6;
  const Bench::Steady unwatched = b.steady(seconds);

  // 2. The first status view (never rendered before: every process is refreshed).
  views[0].first.push_back(b.view(1));
  // 3. Watched views, alternating the formats.
  std::int64_t last_view = views[0].first.back().asked_ns;
  for (int r = 0; r < renders; ++r)
    for (auto& vs : views) {
      vs.watched.push_back(b.view(vs.format));
      last_view = vs.watched.back().asked_ns;
    }
  // 4. The steady state while the page counts as watched.
  const Bench::Steady watched = b.steady(watch_seconds);
  // 5. A quiet minute: unwatched again, then the first view after it.
  Bench::Steady after;
  Bench::View quiet;
  if (quiet_minute) {
    sleep_ms(static_cast<double>(last_view + 61'000'000'000 - mono_ns()) / 1e6);
    after = b.steady(std::min(seconds, 5.0));
    quiet = b.view(1);
  }
  const std::uint64_t total_samples = b.seg->samples.load();
  const Record last = b.last();
  const std::uint64_t log_lines = b.sh->log_lines.load();
  const auto [rusage_cpu_ms, exit_status] = b.stop();
  if (b.nrec() >= kMaxRecords) fail("record page full");

  // 6. More first views, each from a fresh sampler process.
  int other_exits = 0;
  for (auto& vs : views) {
    while (static_cast<int>(vs.first.size()) < first_views) {
      b.start();
      if (b.first_with_samples(2) < 0) fail("no second sample within 30 s");
      vs.first.push_back(b.view(vs.format));
      if (b.stop().second != 0) ++other_exits;
    }
  }
  cleanup();

  std::fprintf(stderr,
               "sampler_bench: %d workers (spawned in %.1f s), %d containers, interval %lld ms\n"
               "  first sample (maps of every worker): %.2f ms CPU\n",
               workers, spawn_s, containers, static_cast<long long>(interval_ms), first_ms);
  print_steady("steady, page not watched", unwatched, interval_ms);
  print_steady("steady, page watched (RSS slices, discovery every 10 s)", watched, interval_ms);
  if (quiet_minute) print_steady("steady, a minute after the last view", after, interval_ms);
  for (const auto& vs : views) {
    print_views("first view (refresh every process)", vs.name, vs.first);
    print_views("watched view", vs.name, vs.watched);
  }
  if (quiet_minute) print_views("first view after a real quiet minute", "html", {quiet});
  std::fprintf(stderr,
               "  main sampler: %llu samples, %.1f ms CPU at the last record, %.1f ms by wait4 "
               "(exit status %d, %llu log lines); %zu more sampler processes for first views "
               "(%d bad exits)\n",
               static_cast<unsigned long long>(total_samples),
               static_cast<double>(last.cpu_ns) / 1e6, rusage_cpu_ms, exit_status,
               static_cast<unsigned long long>(log_lines),
               views[0].first.size() - 1 + views[1].first.size(), other_exits);

  bool views_ok = true;
  for (const auto& vs : views)
    for (const auto* list : {&vs.first, &vs.watched})
      for (const auto& v : *list) views_ok = views_ok && v.ok;
  if (quiet_minute) views_ok = views_ok && quiet.ok;

  if (!json.empty()) {
    FILE* f = std::fopen(json.c_str(), "w");
    if (!f) {
      std::perror(json.c_str());
      return 1;
    }
    std::fprintf(f,
                 "{\"workers\": %d, \"containers\": %d, \"interval_ms\": %lld, \"spawn_s\": %.3f,\n"
                 " \"first_sample_cpu_ms\": %.4f,\n"
                 " \"cpu_ms_per_sample\": %.4f, \"core_pct\": %.4f, \"steady_samples\": %llu,\n",
                 workers, containers, static_cast<long long>(interval_ms), spawn_s, first_ms,
                 unwatched.per_sample_ms, unwatched.core_pct,
                 static_cast<unsigned long long>(unwatched.samples));
    std::fprintf(f, " \"steady\": ");
    json_steady(f, unwatched);
    std::fprintf(f, ",\n \"steady_watched\": ");
    json_steady(f, watched);
    if (quiet_minute) {
      std::fprintf(f, ",\n \"steady_after_quiet_minute\": ");
      json_steady(f, after);
      std::fprintf(f, ",\n \"view_after_quiet_minute\": ");
      json_views(f, {quiet});
    }
    for (const auto& vs : views) {
      std::fprintf(f, ",\n \"first_view_%s\": ", vs.name);
      json_views(f, vs.first);
      std::fprintf(f, ",\n \"watched_view_%s\": ", vs.name);
      json_views(f, vs.watched);
    }
    std::fprintf(f,
                 ",\n \"total_samples\": %llu, \"cpu_ms_at_last_record\": %.4f, \"rusage_cpu_ms\": "
                 "%.4f, \"exit_status\": %d, \"log_lines\": %llu, \"views_ok\": %s}\n",
                 static_cast<unsigned long long>(total_samples),
                 static_cast<double>(last.cpu_ns) / 1e6, rusage_cpu_ms, exit_status,
                 static_cast<unsigned long long>(log_lines), views_ok ? "true" : "false");
    std::fclose(f);
  }
  return (exit_status == 0 && other_exits == 0 && unwatched.samples > 0 && views_ok) ? 0 : 1;
}
