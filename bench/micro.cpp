// mod_shmguard micro-benchmarks (Google Benchmark), built by bench/run.sh:
//   g++ -O2 -std=c++17 -Iinclude -Imod_shmguard bench/micro.cpp build/libshmguard_core.a
//       -lbenchmark -lpthread -o build/bench/micro
//
// P3  decide() alone, and the guard's real fast path (shm::try_admit + release_claim:
// shared-segment loads,
//     class key, class slot, decide, in-flight accounting) minus the APR/mod_fcgid calls.
// P4  the parts of a sampler cycle, alone: probe() with a hardware-node /proc/user_beancounters
//     (500 containers + block 0), the single-block parse, the full parse (reference), and the
//     /proc reads the sampler makes per worker: maps once per new worker (first sample),
//     stat/status/cmdline per worker + every process's stat only when a status page asks.
//     The sampler loop itself (sampler.cpp's run(), CPU per sample at the default interval with
//     N live workers) is measured by bench/sampler_bench.cpp.
// P5  the status model with N workers: the sampler's part and its encoding, and what a child does
//     to serve /shmguard-status (seqlock copy + decode + the format's writer).
//
// Worker processes (bench/fixtures.hpp): main() forks --workers=N (default 1000) children before
// running; each maps its own 64 MiB shared anonymous segment ("/dev/zero (deleted)" in maps, like
// OPcache) with one page touched, inherits ~220 extra file-backed mappings so that /proc/PID/maps
// is as long as a real php-cgi's, and sleeps. They die with the parent (PR_SET_PDEATHSIG) and are
// SIGKILLed and reaped at exit.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "fixtures.hpp"
#include "shm/claims.hpp"
#include "shm/segment.hpp"
#include "shmguard/fcgid.hpp"
#include "shmguard/refusal.hpp"
#include "shmguard/model.hpp"
#include "shmguard/sources.hpp"
#include "shmguard/status.hpp"
#include "shmguard/workers.hpp"

using namespace shmguard;

namespace {

// ------------------------------------------------------------------------------ configuration
int g_workers = 1000;
int g_containers = 500;
std::string g_dir = "build/bench";
std::vector<pid_t> g_pids;
std::string g_hwnode_file;  // hardware-node beancounter file (g_containers + block 0)
std::string g_hwnode_text;
std::vector<unsigned char> g_fcgid_table;

void build_fcgid_table() {
  g_fcgid_table = benchfx::fcgid_table(g_pids, 10);  // one class, 10 % busy, the rest idle
}

ProbeConfig probe_config() {
  ProbeConfig cfg;
  cfg.beancounters = g_hwnode_file;
  cfg.container = std::string("101");
  return cfg;
}

template <class R>
auto set_backend(R& r, int) -> decltype(r.backend = "mod_fcgid", void()) {
  r.backend = "mod_fcgid";
  r.kind = "php-cgi";
}
template <class R>
void set_backend(R& r, long) {
  r.kind = "php-cgi (mod_fcgid)";
}

// ------------------------------------------------------------------------------ worker rows
// Worker rows like those the sampler hands to the renderer (mod_fcgid table + read_worker per
// pid, segments included), as input for the P5 render benchmarks; not timed.
std::vector<WorkerRow> scan_workers(shm::Segment* seg, const unsigned char* table) {
  std::vector<WorkerRow> rows;
  std::int64_t ticks_now = shmguard::boot_ticks_now("/proc");
  long hz = sysconf(_SC_CLK_TCK);
  if (hz <= 0) hz = 100;
  struct ClassAgg {
    std::uint64_t need = 0;  // a worker's segments, summed (the sampler's whole need)
  };
  std::map<std::uint64_t, ClassAgg> classes;
  for (const auto& node : fcgid::read_table(table)) {
    WorkerRow row;
    row.pid = node.pid;
    set_backend(row, 0);
    row.state = fcgid::to_string(node.list);
    row.vhost_id = node.vhost_id;
    row.klass = node.executable;
    row.command = node.cmdline;
    auto w = read_worker("/proc", node.pid);
    if (!w) {
      row.error = w.error;
      rows.push_back(std::move(row));
      continue;
    }
    row.rss_shmem = w.value->rss_shmem;
    row.segments = w.value->segments;
    row.error = w.value->error;
    if (!w.value->cmdline.empty()) row.command = w.value->cmdline;
    if (ticks_now >= 0 && static_cast<std::int64_t>(w.value->start_ticks) <= ticks_now)
      row.uptime_s = (ticks_now - static_cast<std::int64_t>(w.value->start_ticks)) / hz;
    if (node.list != fcgid::List::Error) {
      ClassAgg& agg = classes[fcgid::class_hash(fcgid::class_of(node))];
      std::uint64_t own = 0;
      for (const auto& s : row.segments) own += s.size;
      agg.need = std::max(agg.need, own);
    }
    rows.push_back(std::move(row));
  }
  for (const auto& [key, agg] : classes) {
    if (shm::ClassSlot* slot = shm::class_slot(seg, key)) {
      if (agg.need) slot->worker_need.store(agg.need, std::memory_order_relaxed);
    }
  }
  return rows;
}

struct SegmentDeleter {
  void operator()(shm::Segment* s) const { std::free(s); }
};
std::unique_ptr<shm::Segment, SegmentDeleter> new_segment() {
  auto* s = static_cast<shm::Segment*>(std::calloc(1, sizeof(shm::Segment)));
  shm::init(s, 1, 500);
  return std::unique_ptr<shm::Segment, SegmentDeleter>(s);
}

// ------------------------------------------------------------------------------ P3
void BM_Decide(benchmark::State& state) {
  GuardInput in;
  in.fresh = true;
  in.bounded = true;
  in.headroom = 900ull << 20;
  in.need = 64ull << 20;
  in.spawns_workers = true;
  in.workers = 2;
  in.inflight = 1;
  for (auto _ : state) {
    benchmark::DoNotOptimize(in);
    Decision d = decide(in);
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_Decide);

// The fixups fast path with ample headroom: what glue/request_hooks.cpp's admit() runs (freshness, the class
// slot, shm::try_admit() with the core's decide(), the claim record) and the release at the
// response's end (shm::release_claim()), without r->pool allocation, mod_fcgid's
// get_wrapper_info() and ap_run_get_suexec_identity(), which cannot run outside httpd. The real
// functions, not a copy.
void BM_FastPath(benchmark::State& state) {
  auto seg = new_segment();
  seg->headroom.store(16ll << 30);  // ample: room for far more than kAmpleWorkers workers
  std::int64_t request_ms = 1'700'000'000'100ll;
  seg->sample_wall_ms.store(request_ms - 100);
  shm::VhostCounters* vc = &seg->vhosts[0];
  for (auto _ : state) {
    vc->guarded.fetch_add(1, std::memory_order_relaxed);
    fcgid::ClassKey k;
    k.vhost_id = 1;
    k.deviceid = 65025;
    k.inode = 1234567;
    k.cmdline = "/usr/local/bin/php-wrapper";
    std::uint64_t key = fcgid::class_hash(k);
    shm::ClassSlot* slot = shm::class_slot(seg.get(), key);
    GuardInput in;
    in.need = 64ull << 20;
    // Not read when ample (admit() skips the table).
    shm::Admission a = shm::try_admit(
        seg.get(), slot, in, request_ms, [](const GuardInput&) { return 0; }, 4242, 7, false);
    benchmark::DoNotOptimize(a);
    vc->passed.fetch_add(1, std::memory_order_relaxed);
    shm::release_claim(seg.get(), a.claim, a.word);
  }
}
BENCHMARK(BM_FastPath);

// ------------------------------------------------------------------------------ P4
// What probe() does with the text since the single-block reader: the selected block is parsed, the
// other 500 skipped. The block asked for is the file's last (every other one skipped); block "0"
// (no container, the file's first) or 101 take the same time within noise.
void BM_ParseBeancounters(benchmark::State& state) {
  const std::optional<std::string> container = std::to_string(100 + g_containers);
  std::size_t blocks = 0;
  for (auto _ : state) {
    auto b = read_beancounter_block(g_hwnode_text, container);
    if (!b) {
      state.SkipWithError(b.error.c_str());
      return;
    }
    blocks = b.value->blocks_in_file;
    benchmark::DoNotOptimize(b);
  }
  state.counters["blocks"] = static_cast<double>(blocks);
  state.counters["bytes"] = static_cast<double>(g_hwnode_text.size());
}
BENCHMARK(BM_ParseBeancounters)->Unit(benchmark::kMicrosecond);

// The full parser, every block (for reference: what probe() did before read_beancounter_block).
void BM_ParseBeancountersFull(benchmark::State& state) {
  std::size_t blocks = 0;
  for (auto _ : state) {
    auto f = parse_user_beancounters(g_hwnode_text);
    if (!f) {
      state.SkipWithError(f.error.c_str());
      return;
    }
    blocks = f.value->blocks.size();
    benchmark::DoNotOptimize(f);
  }
  state.counters["blocks"] = static_cast<double>(blocks);
  state.counters["bytes"] = static_cast<double>(g_hwnode_text.size());
}
BENCHMARK(BM_ParseBeancountersFull)->Unit(benchmark::kMicrosecond);

// Read + select, as probe() does for the beancounter source every sample (read_file of the whole
// file, then read_beancounter_block).
void BM_ReadSelectBeancounters(benchmark::State& state) {
  const std::optional<std::string> container = std::string("101");
  for (auto _ : state) {
    auto t = read_file(g_hwnode_file);
    auto b = read_beancounter_block(*t.value, container);
    benchmark::DoNotOptimize(b);
  }
}
BENCHMARK(BM_ReadSelectBeancounters)->Unit(benchmark::kMicrosecond);

void BM_Probe(benchmark::State& state) {
  ProbeConfig cfg = probe_config();
  for (auto _ : state) {
    Snapshot s = probe(cfg);
    benchmark::DoNotOptimize(s);
  }
}
BENCHMARK(BM_Probe)->Unit(benchmark::kMicrosecond);

// What the sampler reads once per new worker (pid, start time): /proc/PID/maps. The first sample
// after start-up does it for every worker at once.
void BM_ReadSegments(benchmark::State& state) {
  for (auto _ : state) {
    for (pid_t p : g_pids) {
      auto w = read_segments("/proc", p);
      benchmark::DoNotOptimize(w);
    }
  }
  state.counters["workers"] = static_cast<double>(g_pids.size());
}
BENCHMARK(BM_ReadSegments)->Unit(benchmark::kMillisecond);

// What the on-demand scan reads per worker: stat, status, cmdline (maps come from the cache).
void BM_ReadWorkersNoMaps(benchmark::State& state) {
  for (auto _ : state) {
    for (pid_t p : g_pids) {
      auto w = read_worker("/proc", p, false);
      benchmark::DoNotOptimize(w);
    }
  }
  state.counters["workers"] = static_cast<double>(g_pids.size());
}
BENCHMARK(BM_ReadWorkersNoMaps)->Unit(benchmark::kMillisecond);

// The on-demand scan's other part: every process's /proc/PID/stat (to find PHP_FCGI_CHILDREN
// children and php-fpm), and descendants() per table node.
void BM_ReadAllStats(benchmark::State& state) {
  std::size_t n = 0;
  for (auto _ : state) {
    auto all = read_all_stats("/proc");
    n = all.size();
    benchmark::DoNotOptimize(all);
  }
  state.counters["processes"] = static_cast<double>(n);
}
BENCHMARK(BM_ReadAllStats)->Unit(benchmark::kMillisecond);

void BM_DescendantsPerNode(benchmark::State& state) {
  auto all = read_all_stats("/proc");
  auto nodes = fcgid::read_table(g_fcgid_table.data());
  for (auto _ : state) {
    std::size_t k = 0;
    for (const auto& node : nodes) k += descendants(all, node.pid).size();
    benchmark::DoNotOptimize(k);
  }
  state.counters["nodes"] = static_cast<double>(nodes.size());
}
BENCHMARK(BM_DescendantsPerNode)->Unit(benchmark::kMillisecond);

// ------------------------------------------------------------------------------ P5
struct StatusFixture {
  Snapshot snap;
  std::vector<WorkerRow> rows;
  std::unique_ptr<shm::Segment, SegmentDeleter> seg = new_segment();
  StatusFixture() {
    snap = probe(probe_config());
    rows = scan_workers(seg.get(), g_fcgid_table.data());
    shm::publish_blob(seg.get(), encode_sampler_part(make_sampler_part(snap, rows)));
  }
};
StatusFixture& status_fixture() {
  static StatusFixture f;
  return f;
}

// The sampler's work for a status view (sampler.cpp render_status, after the /proc reads): the
// sharing, the findings, the totals, the listed rows, and their encoding into the blob.
void BM_MakeSamplerPart(benchmark::State& state) {
  auto& f = status_fixture();
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string blob = encode_sampler_part(make_sampler_part(f.snap, f.rows));
    bytes = blob.size();
    benchmark::DoNotOptimize(blob);
  }
  state.counters["workers"] = static_cast<double>(f.rows.size());
  state.counters["blob_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_MakeSamplerPart)->Unit(benchmark::kMicrosecond);

// What status_handler() in a child does per request (glue/status.cpp) once the sampler has
// published: copy the blob under the seqlock, decode it, add the vhosts (here 20, counters
// zero), write the format. Arg: 0 HTML, 1 ?auto, 2 ?json, 3 ?metrics.
void BM_ServeStatus(benchmark::State& state) {
  auto& f = status_fixture();
  std::vector<VhostStatus> vhosts(20);
  for (std::size_t i = 0; i < vhosts.size(); ++i) {
    vhosts[i].label = "site" + std::to_string(i) + ".example:80";
    vhosts[i].fcgid_vhost_id = static_cast<int>(i + 1);
    vhosts[i].guard = true;
    vhosts[i].action = "refuse";
    vhosts[i].reserve.bytes = 64u << 20;
  }
  std::size_t bytes = 0;
  for (auto _ : state) {
    StatusModel m;
    std::string blob;
    if (shm::read_blob(f.seg.get(), blob)) m.part = decode_sampler_part(blob);
    m.vhosts = vhosts;
    HotValues hot;
    m.sampler.fresh = true;
    m.headline = decide_headline(m.sampler, hot, m.vhosts, m.part ? &*m.part : nullptr);
    std::string out;
    switch (state.range(0)) {
      case 0:
        out = write_status_html(m);
        break;
      case 1:
        out = write_status_auto(m);
        break;
      case 2:
        out = write_status_json(m);
        break;
      default:
        out = write_status_prometheus(m);
    }
    bytes = out.size();
    benchmark::DoNotOptimize(out);
  }
  state.counters["workers"] = static_cast<double>(f.rows.size());
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_ServeStatus)->Arg(0)->Arg(1)->Arg(2)->Arg(3)->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  // Our own flags first (--workers=N --containers=N --dir=DIR); the rest go to Google Benchmark.
  std::vector<char*> rest = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--workers=", 0) == 0)
      g_workers = std::atoi(a.c_str() + 10);
    else if (a.rfind("--containers=", 0) == 0)
      g_containers = std::atoi(a.c_str() + 13);
    else if (a.rfind("--dir=", 0) == 0)
      g_dir = a.substr(6);
    else
      rest.push_back(argv[i]);
  }
  int rargc = static_cast<int>(rest.size());
  benchmark::Initialize(&rargc, rest.data());
  if (benchmark::ReportUnrecognizedArguments(rargc, rest.data())) return 1;

  g_hwnode_text = benchfx::hardware_node_text(g_containers);
  g_hwnode_file = g_dir + "/user_beancounters.hwnode";
  if (!benchfx::write_text(g_hwnode_file, g_hwnode_text)) return 1;
  signal(SIGINT, [](int) {
    benchfx::reap_workers(g_pids);
    _exit(130);
  });
  signal(SIGTERM, [](int) {
    benchfx::reap_workers(g_pids);
    _exit(143);
  });
  g_pids = benchfx::spawn_workers(g_workers);
  build_fcgid_table();
  std::fprintf(stderr,
               "micro: %zu worker processes, beancounter file %zu bytes (%d containers + 0)\n",
               g_pids.size(), g_hwnode_text.size(), g_containers);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  benchfx::reap_workers(g_pids);
  return 0;
}
