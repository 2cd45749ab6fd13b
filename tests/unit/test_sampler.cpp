// The sampler loop without httpd: publication into the shared segment, the error-log tail, the
// on-demand status rendering, and the evidence tickets children wait for.
#include <fcntl.h>
#include <sys/stat.h>
#include <filesystem>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../../mod_shmguard/sampler/sampler.hpp"
#include "shmguard/lean.hpp"
#include "shmguard/status.hpp"
#include "fcgid_table.hpp"
#include "test_util.hpp"

using namespace shmguard;

using namespace shmguard_test;
using shmguard::fcgid::kErrorHead;

namespace {

void append(const std::string& file, const std::string& text) {
  std::ofstream(file, std::ios::app) << text << std::flush;
}

// PHP's OPcache line for a segment it could not map, as php-cgi writes it to the error log.
std::string opcache_line(const char* when, long pid, std::uint64_t bytes) {
  return std::string(when) + " (" + std::to_string(pid) +
         "): Fatal Error Unable to allocate shared memory segment of " + std::to_string(bytes) +
         " bytes: mmap: Cannot allocate memory (12)\n";
}

struct Running {
  std::unique_ptr<shm::Segment> seg = std::make_unique<shm::Segment>();
  std::atomic<bool> stop{false};
  std::vector<std::string> logged;
  std::thread thread;
  int pipe_fds[2] = {-1, -1};

  explicit Running(sampler::Config cfg) {
    shm::init(seg.get(), 1, cfg.interval_ms);
    if (::pipe(pipe_fds) == 0) cfg.wake_fd = pipe_fds[0];
    thread = std::thread([this, cfg] {
      sampler::Logger log = [this](sampler::Level, const std::string& m) { logged.push_back(m); };
      sampler::run(cfg, seg.get(), log, [this] { return stop.load(); });
    });
  }
  ~Running() {
    stop = true;
    wake();
    thread.join();
    for (int fd : pipe_fds)
      if (fd >= 0) ::close(fd);
  }
  void wake() { (void)!::write(pipe_fds[1], "x", 1); }
};

sampler::Config config(const std::string& beancounters, const std::string& error_log = "") {
  sampler::Config cfg;
  cfg.probe.beancounters = beancounters;
  cfg.probe.cgroup.mode = CgroupOptions::Mode::Off;
  cfg.probe.devshm = "";
  cfg.probe.page_size = 4096;
  cfg.interval_ms = 100;
  cfg.error_log = error_log;
  return cfg;
}

// A mod_fcgid table whose error list holds these pids (workers that died: their OPcache lines
// count; a line naming any other pid does not).
Table dead_workers(std::initializer_list<int> pids) {
  Table t;
  int i = 4;
  for (int pid : pids) t.add(kErrorHead, i++, pid, 1, 1, "/usr/bin/php-cgi");
  return t;
}

}  // namespace

TEST(Sampler, PublishesHeadroomBindingAndFailcnt) {
  Running r(config(fixtures() + "/beancounters/openvz6-container.txt"));
  ASSERT_TRUE(eventually([&] { return r.seg->samples.load() >= 2; }));
  EXPECT_EQ(r.seg->headroom.load(), (262144 - 247122) * 4096LL);
  EXPECT_EQ(r.seg->binding.load(), static_cast<std::int32_t>(BindingLimit::Shmpages));
  EXPECT_EQ(r.seg->binding_limit.load(), 262144LL * 4096);
  EXPECT_EQ(r.seg->failcnt_sum.load(), 10067u);  // shmpages 10067 + privvmpages 0
  EXPECT_GT(r.seg->sample_wall_ms.load(), 0);
  // No status page asked: nothing rendered.
  EXPECT_EQ(r.seg->blob_seq.load(), 0u);
}

TEST(Sampler, UnreadableSourceMeansUnboundedNotZero) {
  Running r(config("/nonexistent/user_beancounters"));
  ASSERT_TRUE(eventually([&] { return r.seg->samples.load() >= 1; }));
  // Whatever this machine's other limits are, a missing beancounter file never reads as 0 headroom.
  EXPECT_NE(r.seg->binding.load(), static_cast<std::int32_t>(BindingLimit::Shmpages));
  EXPECT_TRUE(r.seg->headroom.load() == -1 ||
              r.seg->binding.load() == static_cast<std::int32_t>(BindingLimit::Overcommit))
      << "with the cgroup off, only strict overcommit could bind here";
}

// What a status view does: asks for the sampler's part, waits for its ticket, decodes the blob.
static std::optional<SamplerPart> ask_for_status(Running& r) {
  r.seg->status_wanted.store(1);
  std::uint64_t ticket = r.seg->status_requests.fetch_add(1) + 1;
  r.wake();
  if (!eventually([&] { return r.seg->status_gen.load() >= ticket; })) return std::nullopt;
  std::string blob;
  if (!shm::read_blob(r.seg.get(), blob)) return std::nullopt;
  return decode_sampler_part(blob);
}

TEST(Sampler, PublishesStatusOnlyWhenAskedAndServesTheTicket) {
  Running r(config(fixtures() + "/beancounters/openvz6-container.txt"));
  ASSERT_TRUE(eventually([&] { return r.seg->samples.load() >= 1; }));
  auto part = ask_for_status(r);
  ASSERT_TRUE(part);
  // the sample the hot values came from
  EXPECT_EQ(part->snap.binding, "beancounter:shmpages");
  ASSERT_TRUE(part->snap.headroom_bytes);
  EXPECT_EQ(static_cast<std::int64_t>(*part->snap.headroom_bytes), r.seg->headroom.load());
}

// The status page's last hour: every sample is recorded, with the refusals the children counted;
// it travels in the sampler's part and the HTML page draws it before the limits table.
TEST(Sampler, StatusPartCarriesTheHistoryWithRefusals) {
  Running r(config(fixtures() + "/beancounters/openvz6-container.txt"));
  ASSERT_TRUE(eventually([&] { return r.seg->samples.load() >= 1; }));
  r.seg->vhosts[0].refused.fetch_add(2);  // two refusals after the first sample
  const std::uint64_t seen = r.seg->samples.load();
  ASSERT_TRUE(eventually([&] { return r.seg->samples.load() >= seen + 2; }));
  auto part = ask_for_status(r);
  ASSERT_TRUE(part);
  ASSERT_TRUE(part->history);
  std::uint64_t refused = 0, samples = 0;
  for (const auto& b : part->history->window) {
    refused += b.refused;
    samples += b.samples;
  }
  EXPECT_EQ(refused, 2u);
  EXPECT_GE(samples, seen + 2);
  StatusModel m;
  m.part = std::move(part);
  const std::string html = write_status_html(m, 0);
  const std::size_t history = html.find("<h2 id=\"history\">Last hour</h2>");
  ASSERT_NE(history, std::string::npos) << html;
  EXPECT_LT(history, html.find("<h2 id=\"limits\">"));
  EXPECT_NE(html.find("headroom now 58.7 MiB"), std::string::npos);
  EXPECT_NE(html.find("2 requests refused"), std::string::npos);
  EXPECT_EQ(write_status_json(m).find("history"), std::string::npos) << "HTML only";
}

TEST(Sampler, SeesPhpAllocationFailureAppendedToTheErrorLog) {
  TempDir d;
  const std::string log = d.path() + "/error.log";
  append(log, "[core:notice] earlier line that is not evidence\n");
  // The pids of the lines below are mod_fcgid workers that have exited (no process has them).
  const int p1 = no_such_pid(1), p2 = no_such_pid(2), p3 = no_such_pid(3);
  Table t = dead_workers({p1, p2, p3});
  sampler::Config cfg = config(fixtures() + "/beancounters/openvz6-container.txt", log);
  cfg.fcgid_table = t.mem.data();
  Running r(cfg);
  ASSERT_TRUE(eventually([&] { return r.seg->samples.load() >= 1; }));
  EXPECT_EQ(r.seg->php_errors.load(), 0u);
  // A line written before the sampler started is not counted; a new one is, at once (inotify).
  append(log, opcache_line("Fri Nov 27 14:16:30 2026", p1, 67108864));
  ASSERT_TRUE(eventually([&] { return r.seg->php_errors.load() == 1; }));
  EXPECT_EQ(r.seg->php_error_bytes.load(), 67108864u);
  EXPECT_EQ(r.seg->php_error_pid.load(), p1);
  // A partial line is held back until its newline arrives.
  const std::string second = opcache_line("Fri Nov 27 14:16:31 2026", p2, 134217728);
  const std::size_t cut = second.find("segment of");
  append(log, second.substr(0, cut));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(r.seg->php_errors.load(), 1u);
  append(log, second.substr(cut));
  ASSERT_TRUE(eventually([&] { return r.seg->php_errors.load() == 2; }));
  EXPECT_EQ(r.seg->php_error_bytes.load(), 134217728u);
  // The log shrinks (rotated or cut in place) to lines written before: they are not new
  // evidence. Rewritten in place without passing through an empty file: the first line again at
  // offset 0, then cut after it.
  {
    const std::string old_line = opcache_line("Fri Nov 27 14:16:30 2026", p1, 67108864);
    int fd = ::open(log.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, old_line.data(), old_line.size(), 0),
              static_cast<ssize_t>(old_line.size()));
    ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(old_line.size())), 0);
    ::close(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // inotify: seen within ms
  EXPECT_EQ(r.seg->php_errors.load(), 2u) << "an old line was taken for new evidence";
  EXPECT_EQ(r.seg->php_error_bytes.load(), 134217728u);
  // What is appended after the shrink is new.
  append(log, opcache_line("Fri Nov 27 14:17:00 2026", p3, 1048576));
  ASSERT_TRUE(eventually([&] { return r.seg->php_errors.load() == 3; }));
  EXPECT_EQ(r.seg->php_error_pid.load(), p3);
}

// Any tenant can write PHP's exact line to the error log, naming any pid: only a mod_fcgid
// worker's line counts (a pid that never was one turned an unrelated 500 into a 503), once per
// pid, and lines naming other pids do not crowd out a worker's.
TEST(Sampler, OnlyAWorkersAllocationFailureLineCounts) {
  TempDir d;
  const std::string log = d.path() + "/error.log";
  append(log, "");
  Table t = dead_workers({2147483000});  // a worker, with a far-off pid
  sampler::Config cfg = config(fixtures() + "/beancounters/openvz6-container.txt", log);
  cfg.fcgid_table = t.mem.data();
  Running r(cfg);
  ASSERT_TRUE(eventually([&] { return r.seg->samples.load() >= 1; }));
  auto line = [](long pid) { return opcache_line("Fri Nov 27 14:16:30 2026", pid, 67108864); };
  // Forgeries: a pid that never existed, pid 1 (alive) three hundred times.
  std::string flood = line(2147483001);
  for (int i = 0; i < 300; ++i) flood += line(1);
  append(log, flood);
  ASSERT_TRUE(eventually([&] { return r.seg->log_reads.load() >= 2; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(r.seg->php_errors.load(), 0u) << "a line naming a pid that is no worker counted";
  // The worker's own line counts, once, even behind the flood.
  append(log, line(2147483000) + line(2147483000));
  ASSERT_TRUE(eventually([&] { return r.seg->php_errors.load() >= 1; }));
  EXPECT_EQ(r.seg->php_error_pid.load(), 2147483000);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(r.seg->php_errors.load(), 1u);
}

TEST(Sampler, EvidenceTicketIsServedAfterAWake) {
  Running r(config(fixtures() + "/beancounters/openvz6-container.txt"));
  ASSERT_TRUE(eventually([&] { return r.seg->samples.load() >= 1; }));
  std::uint64_t ticket = r.seg->wake_requests.fetch_add(1) + 1;
  r.wake();
  EXPECT_TRUE(eventually([&] { return r.seg->evidence_gen.load() >= ticket; }, 1000));
}

TEST(Sampler, WarnsOnceBelowThresholdAndLogsFailcntRise) {
  TempDir d;
  const std::string bc = d.path() + "/user_beancounters";
  std::string text;
  {
    std::ifstream in(fixtures() + "/beancounters/openvz6-container.txt");
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  { std::ofstream(bc) << text; }
  sampler::Config cfg = config(bc);
  cfg.warn_is_percent = false;
  cfg.warn_bytes = 64ULL << 20;  // headroom 58.7 MiB is below
  Running r(cfg);
  ASSERT_TRUE(eventually([&] { return r.seg->samples.load() >= 3; }));
  EXPECT_EQ(r.seg->warn_state.load(), 1);
  // Raise shmpages failcnt 10067 -> 10077 in the file.
  auto at = text.find("10067");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 5, "10077");
  { std::ofstream(bc + ".tmp") << text; }
  std::rename((bc + ".tmp").c_str(), bc.c_str());
  ASSERT_TRUE(eventually([&] { return r.seg->failcnt_sum.load() == 10077u; }));
  r.stop = true;
  r.wake();
  r.thread.join();
  r.thread = std::thread([] {});
  int warns = 0, rises = 0;
  for (const auto& m : r.logged) {
    if (m.rfind("SG0301 ", 0) == 0) ++warns;
    if (m.rfind("SG0303 beancounter:shmpages:failcnt rose by 10 (now 10077", 0) == 0) ++rises;
  }
  EXPECT_EQ(warns, 1);
  EXPECT_EQ(rises, 1);
}

// Issue 9 item 5: a flood of error-log lines (every client-aborted request logs one) must not wake
// the follower once per line. Its own reads come at most one per kLogGapMs (100 ms), on top of the
// scheduled samples' (100 ms here); a line of PHP's in the middle of the flood is still seen, and
// the first line after a quiet spell is read at once.
TEST(Sampler, FloodOfLogLinesIsReadInBatches) {
  TempDir d;
  const std::string log = d.path() + "/error.log";
  append(log, "");
  const int p1 = no_such_pid(1);
  Table t = dead_workers({p1});
  sampler::Config cfg = config(fixtures() + "/beancounters/openvz6-container.txt", log);
  cfg.fcgid_table = t.mem.data();
  Running r(cfg);
  ASSERT_TRUE(eventually([&] { return r.seg->samples.load() >= 1; }));
  const std::uint64_t reads0 = r.seg->log_reads.load();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 300; ++i) {
    if (i == 150) append(log, opcache_line("Fri Nov 27 14:16:30 2026", p1, 67108864));
    append(log,
           "[Tue Dec 01 23:06:31.096703 2026] [fcgid:warn] [pid 4131:tid 4151] (70008)"
           "Partial results are valid but processing is incomplete: [client 127.0.0.1:38916] "
           "mod_fcgid: can't get data from http client\n");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_TRUE(eventually([&] { return r.seg->php_errors.load() == 1; }));
  const std::uint64_t reads = r.seg->log_reads.load() - reads0;
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  // Scheduled samples (every 100 ms) and the follower (at most every 100 ms), with the edges.
  EXPECT_LE(reads, static_cast<std::uint64_t>(2 * ms / 100 + 4))
      << reads << " reads of the error log for 301 lines in " << ms << " ms";
  EXPECT_EQ(r.seg->php_error_pid.load(), p1);
}

TEST(Sampler, FirstLogLineAfterAQuietSpellIsReadAtOnce) {
  TempDir d;
  const std::string log = d.path() + "/error.log";
  append(log, "");
  sampler::Config cfg = config(fixtures() + "/beancounters/openvz6-container.txt", log);
  cfg.interval_ms = 10000;  // no scheduled sample reads the log in this test
  const int p3 = no_such_pid(3);
  Table t = dead_workers({p3});
  cfg.fcgid_table = t.mem.data();
  Running r(cfg);
  ASSERT_TRUE(eventually([&] { return r.seg->samples.load() >= 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(150));  // past the follower's gap
  append(log, opcache_line("Fri Nov 27 14:17:00 2026", p3, 1048576));
  ASSERT_TRUE(eventually([&] { return r.seg->php_errors.load() == 1; }, 2000));
  EXPECT_EQ(r.seg->php_error_pid.load(), p3);
  EXPECT_EQ(r.seg->samples.load(), 1u) << "read by a sample, not by the follower";
}

// Code running as User may write the state directory: a FIFO planted where the sampler once wrote
// its temporary file (an open() without O_NONBLOCK blocked there for good, and sampling stopped)
// must not stall it, and the headroom file is still replaced whole.
TEST(Sampler, APlantedFifoDoesNotStallTheHeadroomFile) {
  TempDir dir;
  const std::string state = dir.path() + "/headroom";
  ASSERT_EQ(::mkfifo((state + ".tmp").c_str(), 0666), 0);
  sampler::Config cfg = config(fixtures() + "/beancounters/openvz6-container.txt");
  cfg.state_file = state;
  bool advanced = false, written = false;
  {
    Running r(cfg);
    advanced = eventually([&] { return r.seg->samples.load() >= 5; });
    written = eventually([&] { return read_file(state).value.has_value(); });
    // Unblock an old-style writer stuck in open() on the FIFO, so the sampler can be joined.
    int fd = ::open((state + ".tmp").c_str(), O_RDONLY | O_NONBLOCK);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (fd >= 0) ::close(fd);
  }
  EXPECT_TRUE(advanced) << "the sampler stalled on the planted FIFO";
  ASSERT_TRUE(written);
  std::string why;
  EXPECT_TRUE(parse_headroom_state(*read_file(state).value, &why)) << why;
}

TEST(FileIo, ReplaceFileLeavesANonRegularPathAloneAndWritesWhole) {
  TempDir dir;
  const std::string fifo = dir.path() + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0666), 0);
  EXPECT_FALSE(replace_file(fifo, "x", 0644, false));
  struct stat st;
  ASSERT_EQ(::lstat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  const std::string f = dir.path() + "/f";
  ASSERT_TRUE(replace_file(f, "one\n", 0644, false));
  ASSERT_TRUE(replace_file(f, "two\n", 0640, true));
  EXPECT_EQ(*read_file(f).value, "two\n");
  ASSERT_EQ(::stat(f.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  // Nothing left beside it.
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    n += e.path().filename() != "fifo";
  EXPECT_EQ(n, 1);
}

// Issue 17: v1's memory.failcnt and v2's memory.events "max" rise on every reclaim at the limit
// (a full page cache, nothing failing): neither is published as OOM evidence nor warned about as a
// failure (SG0303). An OOM kill (v1 memory.oom_control, v2 memory.events oom_kill) is both.
namespace {
void cgroup_counters_test(const std::string& tree, const std::string& dir_in_tree,
                          const std::string& reclaim_file,
                          const std::function<std::string(int)>& reclaim_text,
                          const std::string& oom_file,
                          const std::function<std::string(int)>& oom_text,
                          const std::string& reclaim_counter, std::uint64_t oom_before) {
  TempDir t;
  std::filesystem::copy(fixtures() + "/trees/" + tree, t.path(),
                        std::filesystem::copy_options::recursive);
  const std::string dir = t.path() + dir_in_tree;
  sampler::Config cfg = config("/nonexistent/user_beancounters");
  cfg.probe.cgroup.mode = CgroupOptions::Mode::Dir;
  cfg.probe.cgroup.dir = dir;
  Running r(cfg);
  ASSERT_TRUE(eventually([&] { return r.seg->samples.load() >= 2; }));
  EXPECT_EQ(r.seg->oom_kills.load(), oom_before) << "the OOM kills alone, not failcnt/max";
  EXPECT_EQ(r.seg->binding.load(), static_cast<std::int32_t>(BindingLimit::Cgroup));
  // Reclaim: the counter jumps by 500, twice.
  for (int step = 1; step <= 2; ++step) {
    write_file(dir + "/" + reclaim_file, reclaim_text(step));
    std::uint64_t seen = r.seg->samples.load();
    ASSERT_TRUE(eventually([&] { return r.seg->samples.load() >= seen + 3; }));
  }
  EXPECT_EQ(r.seg->oom_kills.load(), oom_before);
  // An OOM kill.
  write_file(dir + "/" + oom_file, oom_text(1));
  ASSERT_TRUE(eventually([&] { return r.seg->oom_kills.load() == oom_before + 1; }));
  r.stop = true;
  r.wake();
  r.thread.join();
  r.thread = std::thread([] {});
  int reclaim_warnings = 0, oom_warnings = 0;
  for (const auto& m : r.logged) {
    if (m.rfind("SG0303 " + reclaim_counter + " ", 0) == 0) ++reclaim_warnings;
    if (m.rfind("SG0303 cgroup:oom_kill rose by 1 ", 0) == 0) ++oom_warnings;
  }
  EXPECT_EQ(reclaim_warnings, 0);
  EXPECT_EQ(oom_warnings, 1);
}
}  // namespace

TEST(Sampler, V1FailcntIsReclaimNotFailureOomControlIs) {
  cgroup_counters_test(
      "cgroup1-cache-full", "/sys/fs/cgroup/memory/hosting/web1", "memory.failcnt",
      [](int step) { return std::to_string(77 + 500 * step) + "\n"; }, "memory.oom_control",
      [](int n) {
        return "oom_kill_disable 0\nunder_oom 0\noom_kill " + std::to_string(1 + n) + "\n";
      },
      "cgroup:failcnt", 1);
}

TEST(Sampler, V2MaxEventsAreReclaimNotFailureOomKillIs) {
  auto events = [](int max, int oom_kill) {
    return "low 0\nhigh 0\nmax " + std::to_string(max) + "\noom " + std::to_string(oom_kill) +
           "\noom_kill " + std::to_string(oom_kill) + "\noom_group_kill 0\n";
  };
  cgroup_counters_test(
      "cgroup2-cache-full", "/sys/fs/cgroup/system.slice/apache2.service", "memory.events",
      [&](int step) { return events(472 + 500 * step, 0); }, "memory.events",
      [&](int n) { return events(1472, n); }, "cgroup:max", 0);
}

TEST(Segment, ABlobPastTheSegmentIsNotPublishedCut) {
  // A cut encoding does not decode (a page without limits, counters or workers): nothing is
  // published instead, the last whole blob stays.
  auto seg = std::make_unique<shm::Segment>();
  shm::init(seg.get(), 1, 100);
  ASSERT_TRUE(shm::publish_blob(seg.get(), "whole"));
  EXPECT_FALSE(shm::publish_blob(seg.get(), std::string(shm::kBlobMax + 1, 'x')));
  std::string out;
  ASSERT_TRUE(shm::read_blob(seg.get(), out));
  EXPECT_EQ(out, "whole");
  EXPECT_TRUE(shm::publish_blob(seg.get(), std::string(shm::kBlobMax, 'y')));
}
