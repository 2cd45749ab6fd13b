// P4 with the real sampler code: mod_shmguard/sampler/sampler.cpp's run() in a forked process,
// with N live worker processes listed in a synthetic mod_fcgid 2.3.9 process table, at the default
// interval, against a hardware-node beancounter file. Built by bench/run.sh:
//   g++ -O2 -std=c++17 -Iinclude bench/sampler_bench.cpp mod_shmguard/sampler/sampler.cpp
//       build/libshmguard_core.a -lpthread -o build/bench/sampler_bench
//
//   sampler_bench [--workers=1000] [--seconds=10] [--interval=500] [--containers=500]
//                 [--renders=5] [--dir=build/bench] [--json=FILE]
//
// What runs is exactly what the module's sampler process runs (sampler_glue.cpp minus the privilege
// drop and the httpd logger): sampler::run(cfg, seg, log, stop) with cfg.probe reading the
// beancounter file (container 101 of 1 + N blocks; cgroup, overcommit, SysV and /dev/shm of this
// machine), cfg.fcgid_table, an (empty, watched) error log, the wake pipe and parent_pid. The
// segment is a MAP_SHARED anonymous mapping like the module's, so this process reads the sampler's
// counters and asks for status pages the way a child's status handler does (status.cpp:
// status_wanted |= format, ticket from status_requests, a byte into the wake pipe, wait for
// status_gen >= ticket).
//
// CPU: the stop callback (called by run() at the top of every loop iteration, i.e. right after
// each sample and each poll wake-up) records clock_gettime(CLOCK_PROCESS_CPUTIME_ID) whenever
// seg->samples changed, into a shared page. So every sample's CPU is known to the nanosecond
// (scheduler runtime), including the first one (which reads every worker's /proc/PID/maps) and the
// on-demand renders. The total from wait4()'s rusage is printed as a cross-check (it includes
// fork, start-up and exit). Every process made here is SIGKILLed and reaped at the end (and on
// SIGINT/SIGTERM), and dies with this one (PR_SET_PDEATHSIG).
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

#include "../mod_shmguard/glue/shm_layout.hpp"
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

// One line per sample the sampler finished: written by the sampler process, read by this one.
struct Record {
  std::uint64_t samples;  // seg->samples after the sample
  std::int64_t cpu_ns;    // the sampler process's CPU time (user+sys) at that moment
  std::int64_t mono_ns;
};
constexpr std::size_t kMaxRecords = 1 << 16;
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

void cleanup() {
  if (g_sampler > 0) {
    kill(g_sampler, SIGKILL);
    waitpid(g_sampler, nullptr, 0);
    g_sampler = 0;
  }
  benchfx::reap_workers(g_workers);
}

Record wait_record(Shared* sh, std::uint64_t at_least_samples, std::int64_t timeout_ms) {
  const std::int64_t deadline = mono_ns() + timeout_ms * 1000000;
  while (mono_ns() < deadline) {
    std::uint64_t n = sh->nrec.load(std::memory_order_acquire);
    if (n && sh->rec[n - 1].samples >= at_least_samples) return sh->rec[n - 1];
    usleep(1000);
  }
  return Record{0, 0, 0};
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  int workers = 1000, containers = 500, renders = 5;
  double seconds = 10;
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
    else if (const char* v = val("--interval="))
      interval_ms = std::atoll(v);
    else if (const char* v = val("--containers="))
      containers = std::atoi(v);
    else if (const char* v = val("--renders="))
      renders = std::atoi(v);
    else if (const char* v = val("--dir="))
      dir = v;
    else if (const char* v = val("--json="))
      json = v;
    else {
      std::fprintf(stderr, "sampler_bench: unknown argument %s\n", argv[i]);
      return 2;
    }
  }

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

  // The shared segment, as post_config makes it: anonymous, shared with the sampler process.
  auto* seg = shared_alloc<shm::Segment>();
  shm::init(seg, 1, interval_ms);
  auto* sh = shared_alloc<Shared>();
  int wake[2];
  if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    std::perror("pipe2");
    cleanup();
    return 1;
  }

  sampler::Config cfg;
  cfg.probe.beancounters = ubc;
  cfg.probe.container = std::string("101");
  cfg.interval_ms = interval_ms;
  cfg.error_log = errlog;
  cfg.fcgid_table = table.data();
  cfg.wake_fd = wake[0];
  cfg.parent_pid = getpid();

  const pid_t parent = getpid();
  g_sampler = fork();
  if (g_sampler < 0) {
    std::perror("fork");
    cleanup();
    return 1;
  }
  if (g_sampler == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(0);
    prctl(PR_SET_NAME, "shmguard-smplr");
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    close(wake[1]);
    g_workers.clear();  // not ours to reap
    seg->sampler_pid.store(static_cast<std::int32_t>(getpid()));
    std::uint64_t last = ~0ull;
    auto record = [&] {
      std::uint64_t s = seg->samples.load(std::memory_order_relaxed);
      if (s == last) return;
      last = s;
      std::uint64_t i = sh->nrec.load(std::memory_order_relaxed);
      if (i >= kMaxRecords) return;
      sh->rec[i] = Record{s, clock_ns(CLOCK_PROCESS_CPUTIME_ID), mono_ns()};
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

  // 1. Steady state: the sampler alone at its interval for `seconds`.
  const Record first = wait_record(sh, 1, 30000);
  if (!first.samples) {
    std::fprintf(stderr, "sampler_bench: no first sample within 30 s\n");
    cleanup();
    return 1;
  }
  const Record base = sh->rec[0];
  usleep(static_cast<useconds_t>(seconds * 1e6));
  const std::uint64_t n_steady = sh->nrec.load(std::memory_order_acquire);
  const Record steady_end = sh->rec[n_steady - 1];
  const std::uint64_t steady_samples = steady_end.samples - first.samples;

  // 2. On-demand status pages, as the handler asks for them: right after a scheduled sample (so
  //    the woken sample is the only one between two records), `renders` times per format.
  struct RenderResult {
    const char* name;
    unsigned format;
    std::vector<double> cpu_ms, wait_ms;
  };
  std::vector<RenderResult> results = {{"html", kHtml, {}, {}}, {"metrics", kMetrics, {}, {}}};
  std::uint32_t blob_len[2] = {0, 0};
  for (int r = 0; r < renders; ++r) {
    for (std::size_t f = 0; f < results.size(); ++f) {
      RenderResult& rr = results[f];
      const std::uint64_t s0 = sh->nrec.load() ? sh->rec[sh->nrec.load() - 1].samples : 0;
      const Record before = wait_record(sh, s0 + 1, 5000);  // a scheduled sample just finished
      usleep(static_cast<useconds_t>(std::min<std::int64_t>(interval_ms / 5, 100) * 1000));
      const Record prev = sh->rec[sh->nrec.load() - 1];
      const std::int64_t asked = mono_ns();
      seg->status_wanted.fetch_or(rr.format);
      const std::uint64_t ticket = seg->status_requests.fetch_add(1) + 1;
      if (write(wake[1], "s", 1) != 1) std::perror("write");
      while (seg->status_gen.load() < ticket && mono_ns() - asked < 10'000'000'000) usleep(100);
      const std::int64_t served = mono_ns();
      const Record done = wait_record(sh, prev.samples + 1, 5000);
      if (!before.samples || done.samples != prev.samples + 1 || seg->status_gen.load() < ticket) {
        std::fprintf(stderr, "sampler_bench: render %s %d not isolated (samples %llu -> %llu)\n",
                     rr.name, r, static_cast<unsigned long long>(prev.samples),
                     static_cast<unsigned long long>(done.samples));
        continue;
      }
      rr.cpu_ms.push_back(static_cast<double>(done.cpu_ns - prev.cpu_ns) / 1e6);
      rr.wait_ms.push_back(static_cast<double>(served - asked) / 1e6);
      blob_len[f] = seg->blob_len.load();
    }
  }

  // 3. Stop it and take its CPU from the kernel as well.
  sh->stop.store(1, std::memory_order_release);
  if (write(wake[1], "s", 1) != 1) std::perror("write");
  int status = 0;
  rusage ru{};
  pid_t w = wait4(g_sampler, &status, 0, &ru);
  if (w == g_sampler) g_sampler = 0;
  const double rusage_cpu_ms = (static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
                                static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3);
  const std::uint64_t nrec = sh->nrec.load();
  const Record last = sh->rec[nrec - 1];
  const std::uint64_t total_samples = seg->samples.load();
  close(wake[1]);
  cleanup();

  // Per steady sample: CPU between the end of the first sample and the end of the steady phase
  // (samples and the poll wake-ups between them), divided by the samples taken meanwhile.
  const double first_ms = static_cast<double>(first.cpu_ns - base.cpu_ns) / 1e6;
  const double steady_cpu_ms = static_cast<double>(steady_end.cpu_ns - first.cpu_ns) / 1e6;
  const double steady_wall_s = static_cast<double>(steady_end.mono_ns - first.mono_ns) / 1e9;
  const double per_sample_ms = steady_samples ? steady_cpu_ms / steady_samples : 0;
  const double core_pct_interval = 100.0 * per_sample_ms / static_cast<double>(interval_ms);
  const double core_pct_wall = steady_wall_s > 0 ? 100.0 * steady_cpu_ms / 1e3 / steady_wall_s : 0;
  // Per-sample spread in the steady phase.
  std::vector<double> each;
  for (std::uint64_t i = 1; i < n_steady; ++i)
    if (sh->rec[i - 1].samples >= first.samples && sh->rec[i].samples == sh->rec[i - 1].samples + 1)
      each.push_back(static_cast<double>(sh->rec[i].cpu_ns - sh->rec[i - 1].cpu_ns) / 1e6);
  std::sort(each.begin(), each.end());

  std::fprintf(stderr,
               "sampler_bench: %d workers (spawned in %.1f s), %d containers, interval %lld ms\n"
               "  first sample (maps of every worker): %.2f ms CPU\n"
               "  steady: %llu samples in %.1f s, %.3f ms CPU per sample (min %.3f, median %.3f, "
               "max %.3f) = %.3f %% of a core (%.3f %% over the wall time)\n",
               workers, spawn_s, containers, static_cast<long long>(interval_ms), first_ms,
               static_cast<unsigned long long>(steady_samples), steady_wall_s, per_sample_ms,
               each.empty() ? 0 : each.front(), median(each), each.empty() ? 0 : each.back(),
               core_pct_interval, core_pct_wall);
  for (std::size_t f = 0; f < results.size(); ++f) {
    const auto& rr = results[f];
    std::fprintf(stderr,
                 "  on-demand %s: sample + scan + render %.2f ms CPU (median of %zu; steady sample "
                 "%.3f), page waited %.2f ms, blob %u bytes\n",
                 rr.name, median(rr.cpu_ms), rr.cpu_ms.size(), per_sample_ms, median(rr.wait_ms),
                 blob_len[f]);
  }
  std::fprintf(stderr,
               "  total: %llu samples, %.1f ms CPU at the last sample, %.1f ms by wait4 (exit "
               "status %d, %llu log lines)\n",
               static_cast<unsigned long long>(total_samples),
               static_cast<double>(last.cpu_ns) / 1e6, rusage_cpu_ms,
               WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status),
               static_cast<unsigned long long>(sh->log_lines.load()));

  if (!json.empty()) {
    FILE* f = std::fopen(json.c_str(), "w");
    if (!f) {
      std::perror(json.c_str());
      return 1;
    }
    std::fprintf(f,
                 "{\"workers\": %d, \"containers\": %d, \"interval_ms\": %lld, \"spawn_s\": %.3f,\n"
                 " \"first_sample_cpu_ms\": %.4f,\n"
                 " \"steady_samples\": %llu, \"steady_wall_s\": %.3f, \"steady_cpu_ms\": %.4f,\n"
                 " \"cpu_ms_per_sample\": %.4f, \"sample_cpu_ms_min\": %.4f, "
                 "\"sample_cpu_ms_median\": %.4f, \"sample_cpu_ms_max\": %.4f,\n"
                 " \"core_pct\": %.4f, \"core_pct_wall\": %.4f,\n",
                 workers, containers, static_cast<long long>(interval_ms), spawn_s, first_ms,
                 static_cast<unsigned long long>(steady_samples), steady_wall_s, steady_cpu_ms,
                 per_sample_ms, each.empty() ? 0 : each.front(), median(each),
                 each.empty() ? 0 : each.back(), core_pct_interval, core_pct_wall);
    for (std::size_t k = 0; k < results.size(); ++k) {
      const auto& rr = results[k];
      std::fprintf(f, " \"render_%s\": {\"cpu_ms\": %.4f, \"wait_ms\": %.4f, \"n\": %zu, "
                      "\"blob_bytes\": %u, \"cpu_ms_all\": [",
                   rr.name, median(rr.cpu_ms), median(rr.wait_ms), rr.cpu_ms.size(), blob_len[k]);
      for (std::size_t i = 0; i < rr.cpu_ms.size(); ++i)
        std::fprintf(f, "%s%.4f", i ? ", " : "", rr.cpu_ms[i]);
      std::fprintf(f, "]},\n");
    }
    std::fprintf(f,
                 " \"total_samples\": %llu, \"cpu_ms_at_last_sample\": %.4f, \"rusage_cpu_ms\": "
                 "%.4f, \"exit_status\": %d, \"log_lines\": %llu}\n",
                 static_cast<unsigned long long>(total_samples),
                 static_cast<double>(last.cpu_ns) / 1e6, rusage_cpu_ms,
                 WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status),
                 static_cast<unsigned long long>(sh->log_lines.load()));
    std::fclose(f);
  }
  return (WIFEXITED(status) && WEXITSTATUS(status) == 0 && steady_samples > 0) ? 0 : 1;
}
