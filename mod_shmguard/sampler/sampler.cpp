// mod_shmguard sampler loop.
#include "sampler.hpp"

#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include <signal.h>

#include <cerrno>

#include "shm/claims.hpp"
#include "shmguard/evidence.hpp"
#include "shmguard/fcgid.hpp"
#include "shmguard/fpm.hpp"
#include "shmguard/rules.hpp"
#include "shmguard/history.hpp"
#include "shmguard/lean.hpp"
#include "shmguard/need.hpp"
#include "shmguard/scope.hpp"
#include "shmguard/status_model.hpp"
#include "shmguard/units.hpp"
#include "shmguard/workers.hpp"

namespace shmguard::sampler {

namespace {

// The failure counter of a beancounter limit ("beancounter:shmpages:failcnt") and its row's
// failcnt.
std::string failcnt_name(BindingLimit b) {
  return std::string(binding_name(b)) + ":failcnt";
}
std::uint64_t failcnt_of(const Snapshot& s, BindingLimit b) {
  if (!s.beancounters) return 0;
  const std::string name = binding_name(b);
  const BeancounterRow* r = s.beancounters->block.find(name.substr(name.find(':') + 1));
  return r ? r->failcnt : 0;
}

class Sampler {
 public:
  Sampler(const Config& cfg, shm::Segment* seg, const Logger& log)
      : cfg_(cfg),
        seg_(seg),
        log_(log),
        tail_(cfg.error_log, cfg.error_log_fd, cfg.error_log_watch_fd) {
    // One follower per FPM error log, whichever pools name it (one master's pools share one).
    for (std::size_t i = 0; i < cfg.fpm_logs.size() && i < shm::kFpmPoolSlots; ++i) {
      const auto& [path, fd] = cfg.fpm_logs[i];
      if (path.empty()) continue;
      auto same = std::find_if(fpm_tails_.begin(), fpm_tails_.end(),
                               [&](const FpmTail& t) { return t.path == path; });
      if (same != fpm_tails_.end()) {
        same->pools.push_back(i);
        if (fd >= 0) close(fd);  // the first descriptor of that path is the one followed
        continue;
      }
      fpm_tails_.push_back(FpmTail{path, std::make_unique<LogTail>(path, fd, -1), {i}});
    }
    fpm_last_failure_.resize(cfg.fpm_pools.size());
    fpm_skip_until_.resize(cfg.fpm_pools.size(), 0);
    fpm_reached_.resize(cfg.fpm_pools.size());
  }

  // Every interval: the limits, mod_fcgid's table (segments read once per new worker), the
  // error log, the hot values. The full worker scan and the status page's part of the model only
  // when a status page asked for them (status_wanted), so an idle server pays nothing for them.
  void sample() {
    full_sample_ms_ = mono_ms();
    std::uint64_t wake_ticket = seg_->wake_requests.load(std::memory_order_acquire);
    Snapshot snap = probe(cfg_.probe);
    log_held(held_.apply(snap, staleness_bound_ms(cfg_.interval_ms)));
    tracker_.observe(snap.taken_at_ms, snap);
    recheck_processes();
    update_classes(snap);
    read_log();
    // The pools' status for the guard and for the 503s' numbers, every kFpmGuardEveryMs, within
    // kFpmGuardBudgetMs for all pools (a pool that does not answer is not asked again for
    // kFpmBackoffMs: it costs the samples at most that budget once in a while).
    if (!cfg_.fpm_pools.empty() && mono_ms() - fpm_read_ms_ >= kFpmGuardEveryMs) {
      // The pools' children (rule 2.2 measures them) are found by the discovery scan.
      if (discovered_ms_ == 0 || mono_ms() - discovered_ms_ >= 30000) discover_now(mono_ms());
      read_pools(mono_ms(), kFpmGuardBudgetMs);
    }
    warn(snap);  // before publishing: the warning precedes the refusals it explains
    publish(snap);
    record_history(snap);
    last_ = std::move(snap);
    std::int64_t now = mono_ms();
    if (!render_status(now) && status_ms_ != 0) {
      if (now - status_ms_ < 60000)
        refresh_for_status(now, false);
      else if (now - discovered_ms_ >= 60000)  // once the page was viewed, keep it ready
        discover_now(now);
    }
    std::uint64_t done = seg_->evidence_gen.load(std::memory_order_relaxed);
    if (wake_ticket > done) seg_->evidence_gen.store(wake_ticket, std::memory_order_release);
  }

  // A child woke the sampler: for evidence (a 500) a full fresh sample; for a status page only
  // its part of the model, from the last sample (at most one interval old).
  // Evidence wakes are rate-limited: at most one full sample per 20 ms; the wakes that arrive
  // meanwhile are answered together by the next one (a flood of 500s costs at most 50 samples a
  // second, and none while the headroom is ample: the children do not ask then).
  void on_wake() {
    bool evidence = seg_->wake_requests.load(std::memory_order_acquire) >
                    seg_->evidence_gen.load(std::memory_order_acquire);
    std::int64_t now = mono_ms();
    if (evidence && last_ && now - full_sample_ms_ < 20) {
      ::usleep(static_cast<useconds_t>((20 - (now - full_sample_ms_)) * 1000));
    }
    if (evidence || !last_)
      sample();
    else
      render_status(now);
  }

  // Publishes the status page's sampler part (make_sampler_part, encode_sampler_part) if a page
  // asked for it; true if it did. The children write every format from it.
  bool render_status(std::int64_t now) {
    std::uint64_t ticket = seg_->status_requests.load(std::memory_order_acquire);
    const bool wanted = seg_->status_wanted.exchange(0, std::memory_order_acq_rel) != 0;
    if (!wanted || !last_) return false;
    // Every view is answered from the caches at once: the handler waits for the encoding only.
    // The first view after a quiet minute then freshens them (the scan for the processes
    // mod_fcgid does not list if none was made yet, 100 workers' RssShmem), for the views after it.
    const bool watched = status_ms_ != 0 && now - status_ms_ < 60000;
    status_ms_ = now;
    StatusOptions opts;
    opts.full_commands = cfg_.full_commands;
    opts.max_bytes = cfg_.status_max_bytes;
    std::size_t encoded = 0;
    {
      std::vector<WorkerRow> rows = worker_rows();
      std::vector<std::string> process_pools;  // "php-fpm: pool NAME" processes (their klass)
      for (const WorkerRow& r : rows)
        if (r.backend == "php-fpm" && r.kind.rfind("php-fpm pool ", 0) == 0 &&
            std::find(process_pools.begin(), process_pools.end(), r.klass) == process_pools.end() &&
            process_pools.size() < kMaxFpmPools / 2)
          process_pools.push_back(r.klass);
      std::vector<FpmPool> reads = fpm_reads_;
      if (reads.empty())  // not read yet: the read follows this view
        for (const auto& [socket, path] : cfg_.fpm_pools)
          reads.push_back(unread_fpm_pool(socket, path, "not read yet (the next view shows it)"));
      std::vector<FpmPool> pools = fpm_pools_view(std::move(reads), process_pools);
      for (std::size_t i = 0; i < cfg_.fpm_pools.size() && i < pools.size(); ++i) {
        if (i >= shm::kFpmPoolSlots) break;
        const shm::FpmPoolHot& hot = seg_->fpm_pools[i];
        pools[i].log = i < cfg_.fpm_logs.size() ? cfg_.fpm_logs[i].first : std::string();
        pools[i].fork_failures = hot.fork_failures.load(std::memory_order_relaxed);
        pools[i].translated = hot.translated.load(std::memory_order_relaxed);
        pools[i].last_failure = fpm_last_failure_[i];
      }
      if (!pools.empty() && opts.max_bytes) {  // the pools' bytes come off the rows' bound
        SamplerPart only;
        only.fpm_pools = pools;
        const std::size_t extra = encode_sampler_part(only).size();
        opts.max_bytes = opts.max_bytes > extra ? opts.max_bytes - extra : 1;
      }
      SamplerPart part = make_sampler_part(
          *last_, std::move(rows), opts, StatusHistory{history_.bucket_ms(), history_.window(now)});
      part.fpm_pools = std::move(pools);
      // Never a blob cut at the segment's size (it does not decode: a page without limits,
      // counters or workers): what matters least is left out first, and said.
      if (fit_sampler_part(part, cfg_.status_max_bytes)) {
        const std::string blob = encode_sampler_part(part);
        encoded = blob.size();
        shm::publish_blob(seg_, blob);
      }
    }
    seg_->status_gen.store(ticket, std::memory_order_release);
    // The pools' status, for the next view (as the caches below), once a second while the page
    // is viewed: kFpmBudgetMs for all pools together (a pool that does not answer must not
    // delay the samples the guard decides on), kFpmTimeoutMs each at most.
    if (!cfg_.fpm_pools.empty() && now - fpm_read_ms_ >= 1000) read_pools(now, kFpmBudgetMs);
    if (!watched) refresh_for_status(now, true);
    // A large part (many workers, long command lines) gives its memory back at once.
    if (encoded > (1u << 20)) malloc_trim(0);
    return true;
  }

  // PHP's own lines only (parse_php_shm_error: exact format from the line's start). An OPcache
  // line counts once its pid, a mod_fcgid worker's, has exited (PhpErrorQueue: a line naming
  // any other pid is a tenant's forgery or not about a worker). APCu's line names no pid; the
  // guard wants a failure counter that rose beside it.
  void read_log() {
    const std::int64_t now = now_ms();
    log_read_ms_ = mono_ms();
    seg_->log_reads.fetch_add(1, std::memory_order_relaxed);
    bool walked = false;  // at most one extra walk of mod_fcgid's table per read
    auto is_worker = [&](int pid) {
      if (known_worker(pid)) return true;
      if (walked) return false;
      walked = true;
      walk_workers();
      return known_worker(pid);
    };
    read_fpm_logs();
    tail_.poll([&](std::string_view line) {
      auto e = parse_php_shm_error(line);
      if (!e) return;
      if (e->source == ShmErrorSource::Apcu) {
        seg_->apcu_error_bytes.store(e->bytes, std::memory_order_relaxed);
        seg_->apcu_error_wall_ms.store(now, std::memory_order_relaxed);
        seg_->apcu_errors.fetch_add(1, std::memory_order_release);
        return;
      }
      php_errors_.offer({e->pid, e->bytes, now}, is_worker);
    });
    if (php_errors_.empty()) return;
    auto exited = [](int pid) { return pid_exited("/proc", pid); };
    // php-cgi exits right after its line: give it up to 100 ms (a 500 waits for this scan).
    for (int i = 0; i < 50 && !php_errors_.all_exited(exited); ++i) ::usleep(2000);
    walked = false;  // the table may have moved meanwhile
    for (const auto& l : php_errors_.settle(now, is_worker, exited)) {
      seg_->php_error_bytes.store(l.bytes, std::memory_order_relaxed);
      seg_->php_error_pid.store(l.pid, std::memory_order_relaxed);
      seg_->php_error_wall_ms.store(l.seen_ms, std::memory_order_relaxed);
      seg_->php_errors.fetch_add(1, std::memory_order_release);
    }
  }

  // FPM's own error logs (ShmGuardFpmPool's third argument): its "fork() failed" and "server
  // reached pm.max_children" lines, FPM's exact format from the line's start only
  // (parse_fpm_log_line), counted for the pools that name the log (a fork failure names no
  // pool: it counts for each of them; a max_children line for the pool it names, or for each
  // when that pool's name is not known yet).
  void read_fpm_logs() {
    for (FpmTail& t : fpm_tails_) {
      if (t.tail->replaced() && !rotated_) rotated_ = &t.path;  // after this last read of it
      t.tail->poll([&](std::string_view line) {
        auto e = parse_fpm_log_line(line);
        if (!e) return;
        for (std::size_t i : t.pools) {
          shm::FpmPoolHot& hot = seg_->fpm_pools[i];
          if (e->kind == FpmLogEvent::Kind::ForkFailed) {
            hot.fork_errno.store(e->err, std::memory_order_relaxed);
            hot.fork_failures.fetch_add(1, std::memory_order_release);
            fpm_last_failure_[i] = fpm_fork_failure_words(e->err);
            continue;
          }
          const std::string known =
              i < fpm_reads_.size() && fpm_reads_[i].ok ? fpm_reads_[i].status.pool : std::string();
          if (!known.empty() && known != e->pool) continue;
          hot.max_children.store(e->max_children, std::memory_order_relaxed);
          hot.max_children_lines.fetch_add(1, std::memory_order_release);
        }
      });
    }
  }

  // Reads the configured pools' status (read_fpm_pool) within `budget_ms` for all, for the page
  // (fpm_reads_) and the children (the segment's FpmPoolHot).
  void read_pools(std::int64_t now, std::int64_t budget_ms) {
    fpm_read_ms_ = now;
    const std::int64_t start = mono_ms();
    std::vector<FpmPool> reads;
    for (std::size_t i = 0; i < cfg_.fpm_pools.size(); ++i) {
      const auto& [socket, path] = cfg_.fpm_pools[i];
      const std::int64_t left = budget_ms - (mono_ms() - start);
      if (fpm_skip_until_[i] > now && i < fpm_reads_.size()) {
        reads.push_back(fpm_reads_[i]);  // did not answer last time: its last read stands
        continue;
      }
      if (left < 20) {
        reads.push_back(
            unread_fpm_pool(socket, path, "not read this time: the pools before it took the time"));
        continue;
      }
      const int timeout = static_cast<int>(std::min<std::int64_t>(left, kFpmTimeoutMs));
      // Before the read: a request that starts during it is counted by FPM too (an early
      // warning at worst), never by neither.
      const std::int64_t inflight =
          i < shm::kFpmPoolSlots ? seg_->fpm_pools[i].inflight.load(std::memory_order_relaxed) : 0;
      reads.push_back(read_fpm_pool(socket, path, timeout));
      if (reads.back().error.rfind("no answer within", 0) == 0)
        fpm_skip_until_[i] = mono_ms() + kFpmBackoffMs;
      if (i < shm::kFpmPoolSlots) {
        shm::FpmPoolHot& hot = seg_->fpm_pools[i];
        const FpmPool& p = reads.back();
        hot.idle.store(p.status.idle, std::memory_order_relaxed);
        hot.active.store(p.status.active, std::memory_order_relaxed);
        hot.total.store(p.status.total, std::memory_order_relaxed);
        hot.listen_queue.store(p.status.listen_queue, std::memory_order_relaxed);
        hot.max_children_reached.store(p.status.max_children_reached, std::memory_order_relaxed);
        hot.free_children.store(fpm_free_children(p.status), std::memory_order_relaxed);
        hot.inflight_at_read.store(inflight, std::memory_order_relaxed);
        hot.forks.store(p.ok && fpm_forks(p.status, fpm_reached_[i]) ? 1 : 0,
                        std::memory_order_relaxed);
        if (p.ok) {
          fpm_reached_[i] = p.status.max_children_reached;
          const std::uint64_t need = child_need(p.status.pool);
          if (need) hot.child_need.store(need, std::memory_order_relaxed);
        } else {
          fpm_reached_[i].reset();
        }
        hot.status_wall_ms.store(p.ok ? p.read_ms : 0, std::memory_order_release);
      }
    }
    fpm_reads_ = std::move(reads);
  }

  // One new child's private pages for pool `name`: the largest private writable memory
  // (read_private_writable) of its running children ("php-fpm: pool NAME" processes the last
  // discovery found), at most kChildReads of them read. 0: none found.
  static constexpr std::size_t kChildReads = 64;
  std::uint64_t child_need(const std::string& name) {
    std::uint64_t need = 0;
    std::size_t reads = 0;
    const std::string title = "php-fpm: pool " + name;
    for (const auto& [pid, p] : procs_) {
      if (!p.fpm || reads >= kChildReads) continue;
      std::string_view cmd = p.info.cmdline;
      while (!cmd.empty() && cmd.back() == ' ') cmd.remove_suffix(1);
      if (cmd != title) continue;
      ++reads;
      if (auto v = read_private_writable("/proc", pid)) need = std::max(need, *v.value);
    }
    return need;
  }

  // mod_fcgid workers seen in the table walks of the last kWorkerMemoryMs (a worker that died of
  // its allocation failure stays in the table until the process manager's error scan reaps it).
  static constexpr std::int64_t kWorkerMemoryMs = 10000;
  bool known_worker(int pid) const {
    auto it = recent_workers_.find(pid);
    return it != recent_workers_.end() && mono_ms() - it->second <= kWorkerMemoryMs;
  }
  void remember_workers(const std::vector<fcgid::NodeLite>& nodes) {
    const std::int64_t now = mono_ms();
    for (const auto& n : nodes) recent_workers_[n.pid] = now;
    for (auto it = recent_workers_.begin(); it != recent_workers_.end();)
      it = now - it->second > kWorkerMemoryMs ? recent_workers_.erase(it) : std::next(it);
  }
  void walk_workers() {
    if (!cfg_.fcgid_table) return;
    fcgid::read_table_lite(cfg_.fcgid_table, walk_);
    remember_workers(walk_);
  }

  int notify_fd() const { return tail_.notify_fd(); }
  const std::string* rotated_log() const { return rotated_; }
  // The follower's own reads (the error log grew, no child waiting) come at most one per
  // kLogGapMs: a flood of log lines (an aborted request, a 404 logged at error level...) costs
  // at most 1000 / kLogGapMs wake-ups a second, not one per line. The first line after a quiet
  // gap is read at once; a child that waits for evidence wakes a sample, which reads the log
  // whatever the gap.
  static constexpr std::int64_t kLogGapMs = 100;
  std::int64_t log_due_ms() const { return log_read_ms_ + kLogGapMs; }

 private:
  // The status page's last hour (history.hpp): this sample's headroom and the refusal and
  // translation counters summed over the virtual hosts, on the monotonic clock.
  void record_history(const Snapshot& snap) {
    std::uint64_t refused = 0, translated = 0;
    const std::size_t n = std::min<std::size_t>(seg_->nvhosts, shm::kMaxVhosts);
    for (std::size_t i = 0; i < n; ++i) {
      refused += seg_->vhosts[i].refused.load(std::memory_order_relaxed);
      translated += seg_->vhosts[i].translated.load(std::memory_order_relaxed);
    }
    history_.record(mono_ms(), history_sample(snap, refused, translated));
  }

  // mod_fcgid's workers per class (live count, largest segment) for the guard's auto reserve.
  // A process is read when it first appears (maps, stat, status, cmdline), keyed by pid and
  // start time, and again when a check finds it exec'd or its maps changed (recheck_processes).
  // Under a memory cgroup binding (need.hpp: the touched basis) the workers' RssShmem + RssAnon
  // grow as they run: their status is read again, the least recently read first, at most
  // kTouchedReadsPerSample per sample and each at most once per kTouchedRefreshMs.
  void update_classes(const Snapshot& snap) {
    ++generation_;
    fcgid::read_table_lite(cfg_.fcgid_table, nodes_);
    remember_workers(nodes_);
    classes_.clear();
    const bool touched_basis = need_basis(snap.binding) == NeedBasis::Touched;
    if (touched_basis) refresh_touched();
    std::map<std::pair<std::uint64_t, std::uint64_t>, int> mapped_by;  // segment -> processes
    for (const auto& node : nodes_) {
      Proc& p = track(node.pid, node.start_time_us);
      p.fcgid = true;
      if (node.list == fcgid::List::Error) continue;
      for (const auto& sg : p.info.segments)
        ++mapped_by[{(static_cast<std::uint64_t>(sg.dev_major) << 32) | sg.dev_minor, sg.inode}];
    }
    for (const auto& node : nodes_) {
      if (node.list == fcgid::List::Error) continue;
      Proc& p = procs_.at(node.pid);
      // The class's key is the node's for the process's life: read (command line) once.
      if (!p.class_key)
        p.class_key =
            fcgid::class_hash_at(cfg_.fcgid_table, node.index, node.pid, node.start_time_us);
      if (!p.class_key) continue;  // its node changed since the table was read: next sample
      ClassAgg& agg = classes_[p.class_key];
      // A worker's whole need: every segment only it maps (OPcache + APCu + any other).
      std::uint64_t own = 0;
      for (const auto& sg : p.info.segments)
        if (mapped_by[{(static_cast<std::uint64_t>(sg.dev_major) << 32) | sg.dev_minor,
                       sg.inode}] == 1)
          own += sg.size;
      agg.need = std::max(agg.need, own);
      agg.touched = std::max(agg.touched, touched_bytes(p.info.rss_shmem, p.info.rss_anon));
      ++agg.workers;
    }
    for (const auto& [key, agg] : classes_) {
      if (shm::ClassSlot* slot = shm::class_slot(seg_, key)) {
        if (agg.need) slot->worker_mapped.store(agg.need, std::memory_order_relaxed);
        if (agg.touched) slot->worker_touched.store(agg.touched, std::memory_order_relaxed);
        if (agg.workers > slot->max_workers_seen.load(std::memory_order_relaxed))
          slot->max_workers_seen.store(agg.workers, std::memory_order_relaxed);
      }
    }
    // Every class's need on this sample's limits (a class with no worker now keeps what its
    // workers measured; the binding, and so the basis, may have changed since).
    for (shm::ClassSlot& slot : seg_->classes) {
      if (slot.key.load(std::memory_order_relaxed) == 0) continue;
      const std::uint64_t mapped = slot.worker_mapped.load(std::memory_order_relaxed);
      if (!mapped) continue;  // not measured: the default applies
      const std::uint64_t need =
          class_need(snap, mapped, slot.worker_touched.load(std::memory_order_relaxed));
      if (slot.worker_need.load(std::memory_order_relaxed) != need)
        slot.worker_need.store(need, std::memory_order_relaxed);
    }
    // Forget mod_fcgid workers that left the table; other processes go with the discovery scan.
    for (auto it = procs_.begin(); it != procs_.end();)
      it = (it->second.fcgid && it->second.seen != generation_) ? procs_.erase(it) : std::next(it);
  }

  // For the status page. Processes mod_fcgid's table does not list (PHP-FPM, children of a
  // php-cgi that forks them) are found by a scan of every process: right after the first view,
  // then every 30 s while the page is watched (a view in the last minute), once a minute
  // otherwise. Resident shared memory (RssShmem, /proc/PID/status) is re-read for the least
  // recently read processes: 100 right after a view that follows a quiet minute, 50 per interval
  // while watched.
  void refresh_for_status(std::int64_t now, bool first_view) {
    // The first view ever scans at once; a later first view uses the scan kept at most a minute
    // old in the background (sample()), so it costs no more than a watched one.
    if (discovered_ms_ == 0 || (!first_view && now - discovered_ms_ >= 30000)) discover_now(now);
    std::vector<Proc*> order;
    for (auto& [pid, p] : procs_) order.push_back(&p);
    std::size_t n = std::min<std::size_t>(order.size(), first_view ? 100 : 50);
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n), order.end(),
                      [](const Proc* a, const Proc* b) { return a->read_ms < b->read_ms; });
    for (std::size_t i = 0; i < n; ++i) {
      auto rss = read_resident("/proc", order[i]->info.pid);
      if (!rss) continue;  // gone: the next table walk or discovery drops it
      order[i]->info.rss_shmem = rss.value->rss_shmem;
      order[i]->info.rss_anon = rss.value->rss_anon;
      order[i]->read_ms = now;
    }
  }

  // The touched basis: mod_fcgid workers' RssShmem + RssAnon, read again (update_classes).
  static constexpr std::size_t kTouchedReadsPerSample = 32;
  static constexpr std::int64_t kTouchedRefreshMs = 1000;
  void refresh_touched() {
    const std::int64_t now = mono_ms();
    std::vector<Proc*> order;
    for (const auto& node : nodes_) {
      if (node.list == fcgid::List::Error) continue;
      auto it = procs_.find(node.pid);
      if (it != procs_.end() && now - it->second.read_ms >= kTouchedRefreshMs)
        order.push_back(&it->second);
    }
    const std::size_t n = std::min(order.size(), kTouchedReadsPerSample);
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n), order.end(),
                      [](const Proc* a, const Proc* b) { return a->read_ms < b->read_ms; });
    for (std::size_t i = 0; i < n; ++i) {
      auto rss = read_resident("/proc", order[i]->info.pid);
      if (!rss) continue;  // gone: the table walk drops it
      order[i]->info.rss_shmem = rss.value->rss_shmem;
      order[i]->info.rss_anon = rss.value->rss_anon;
      order[i]->read_ms = now;
    }
  }

  void discover_now(std::int64_t now) {
    discover(now);
    discovered_ms_ = now;
  }

  void discover(std::int64_t now) {
    const std::vector<ProcStat> stats = read_all_stats("/proc");
    ++discovery_;
    // Every process's stat was just read: a tracked one that exec'd since is read again, free.
    for (const auto& st : stats) {
      auto it = procs_.find(st.pid);
      if (it != procs_.end() && compare_identity(it->second.info, st) == Identity::Execed)
        read_process(it->second);
    }
    std::unordered_map<int, std::vector<const ProcStat*>> children;
    for (const auto& st : stats) children[st.ppid].push_back(&st);
    std::size_t kids = 0;  // a tenant's PHP can fork: at most kMaxFpmScope of them read
    for (const auto& node : nodes_) {
      std::vector<int> frontier{node.pid};  // every descendant, not only direct children
      for (std::size_t depth = 0; !frontier.empty() && depth < 8; ++depth) {
        std::vector<int> next;
        for (int parent : frontier) {
          auto it = children.find(parent);
          if (it == children.end()) continue;
          for (const ProcStat* st : it->second) {
            next.push_back(st->pid);
            if (st->comm.rfind("php", 0) != 0 || kids >= kMaxFpmScope) continue;
            ++kids;
            Proc& p = track(st->pid, static_cast<std::int64_t>(st->start_ticks));
            p.parent = node.pid;
            p.discovered = discovery_;
          }
        }
        frontier.swap(next);
      }
    }
    // PHP-FPM: the pools this server proxies to (their listeners and children), not every
    // process named php-fpm on the machine (any local user can start one).
    std::vector<int> masters;
    for (const std::string& socket : cfg_.fpm_sockets)
      if (int pid = unix_listener_pid(socket)) masters.push_back(pid);
    for (std::size_t i : fpm_scope(stats, masters)) {
      const ProcStat& st = stats[i];
      Proc& p = track(st.pid, static_cast<std::int64_t>(st.start_ticks));
      if (p.fcgid) continue;
      p.fpm = true;
      p.discovered = discovery_;
    }
    for (auto it = procs_.begin(); it != procs_.end();)
      it = (!it->second.fcgid && it->second.discovered != discovery_) ? procs_.erase(it)
                                                                      : std::next(it);
    (void)now;
  }

  // The process `pid` as first seen with identity `ident` (mod_fcgid's start time, or the
  // kernel's start ticks); a reused pid is a new process. Read in full when first seen, then
  // looked at again on a schedule (recheck_processes).
  struct Proc;
  Proc& track(int pid, std::int64_t ident) {
    Proc& p = procs_[pid];
    if (p.ident != ident || p.info.pid != pid) {
      p = Proc{};
      p.ident = ident;
      p.info.pid = pid;
      read_process(p);
    }
    p.seen = generation_;
    return p;
  }

  // Everything read once about a process (stat, status, cmdline, maps): at first sight, and
  // again after an exec. Schedules its next check.
  void read_process(Proc& p) {
    const int pid = p.info.pid;
    if (auto w = read_worker("/proc", pid, true)) {
      p.info = std::move(*w.value);
      p.read_ms = mono_ms();
    } else {
      p.info = Worker{};
      p.info.pid = pid;
      p.info.error = w.error;
    }
    LeanSettings ls = lean_settings(p.info.cmdline);
    p.lean = ls.lean ? ls.describe() : std::string();
    const std::int64_t now = boot_ms_now();
    p.maps_vsize = p.info.error.empty() ? p.info.vsize : kMapsUnread;
    p.full_read_ms = now;
    p.start_ms = p.info.start_ticks ? ticks_to_ms(p.info.start_ticks) : now;
    p.check_ms = next_exec_check_ms(p.start_ms, now, kCheckGapMs);
  }

  // What was read once can change: a starter script (FcgidWrapper .php-fcgi-starter: environment,
  // then `exec php-cgi`) keeps its pid and start time across the exec, and php-cgi maps its
  // segments one after the other while it starts. Every sample, the processes due for a check
  // (each at twice its age; at most kChecksPerSample, youngest first) get one /proc/PID/stat
  // read, and what reread_at_check says is read again. Old workers are due about once per
  // doubling of their age: no per-worker read per sample, nothing per request.
  void recheck_processes() {
    const std::int64_t now = boot_ms_now();
    due_.clear();
    due_procs_.clear();
    for (auto& [pid, p] : procs_) {
      if (p.check_ms > now) continue;
      due_.push_back(ExecCheckDue{p.start_ms, p.check_ms});
      due_procs_.push_back(&p);
    }
    if (due_.empty()) return;
    for (std::size_t i : pick_exec_checks(due_, now, kChecksPerSample)) {
      Proc& p = *due_procs_[i];
      p.check_ms = next_exec_check_ms(p.start_ms, now, kCheckGapMs);
      auto st = read_proc_stat("/proc", p.info.pid);
      if (!st) continue;  // gone: the table walk or the discovery drops it
      switch (reread_at_check(p.info, p.maps_vsize, now - p.full_read_ms, *st.value)) {
        case Reread::Everything:
          read_process(p);
          break;
        case Reread::Segments: {
          MapsBounds b;
          if (auto segs = read_segments("/proc", p.info.pid, &b)) {
            p.info.segments = std::move(*segs.value);
            p.info.error.clear();
            p.info.maps_note = b.note();
            p.maps_vsize = st.value->vsize;
          } else {
            p.info.error = segs.error;
            p.maps_vsize = kMapsUnread;
          }
          break;
        }
        case Reread::Nothing:
          break;
      }
    }
  }

  // FastCGI workers for the status page, from the caches above (no /proc read here).
  std::vector<WorkerRow> worker_rows() {
    std::vector<WorkerRow> rows;
    rows.reserve(procs_.size() + nodes_.size());
    std::int64_t ticks_now = boot_ticks_now("/proc");
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0) hz = 100;
    auto base = [&](WorkerRow& row, const Proc& p) {
      const Worker& w = p.info;
      row.pid = w.pid;
      row.rss_shmem = w.rss_shmem;
      row.rss_anon = w.rss_anon;
      row.segments = w.segments;
      row.error = w.error;
      row.command = w.cmdline;
      row.lean = p.lean;
      if (row.error.empty()) row.error = w.maps_note;  // what of its maps was left out
      if (ticks_now >= 0 && static_cast<std::int64_t>(w.start_ticks) <= ticks_now)
        row.uptime_s = (ticks_now - static_cast<std::int64_t>(w.start_ticks)) / hz;
    };
    std::unordered_map<int, std::vector<const Proc*>> kids;  // PHP_FCGI_CHILDREN, by parent
    for (const auto& [pid, p] : procs_)
      if (p.parent && !p.fcgid) kids[p.parent].push_back(&p);
    for (const auto& node : nodes_) {  // the table as of the last sample
      WorkerRow row;
      auto it = procs_.find(node.pid);
      if (it != procs_.end()) base(row, it->second);
      row.pid = node.pid;
      row.backend = "mod_fcgid";
      row.kind = "php-cgi";
      row.state = fcgid::to_string(node.list);
      row.vhost_id = node.vhost_id;
      std::string& exe = executables_[std::make_pair(node.deviceid, node.inode)];
      if (exe.empty()) exe = fcgid::node_executable(cfg_.fcgid_table, node.index);
      row.klass = exe;
      if (row.command.empty()) row.command = exe;
      rows.push_back(std::move(row));
      // php-cgi with PHP_FCGI_CHILDREN: its children serve the requests and share its segment.
      auto kid = kids.find(node.pid);
      if (kid == kids.end()) continue;
      for (const Proc* p : kid->second) {
        WorkerRow k;
        base(k, *p);
        k.backend = "mod_fcgid";
        k.kind = "php-cgi child of " + std::to_string(node.pid);
        k.vhost_id = node.vhost_id;
        k.klass = exe;
        rows.push_back(std::move(k));
      }
    }
    for (const auto& [pid, p] : procs_) {
      if (!p.fpm) continue;
      WorkerRow row;
      base(row, p);
      row.backend = "php-fpm";
      const std::string& cmd = p.info.cmdline;
      if (cmd.rfind("php-fpm: pool ", 0) == 0) {
        row.klass = cmd.substr(14);
        while (!row.klass.empty() && row.klass.back() == ' ') row.klass.pop_back();
        row.kind = "php-fpm pool " + row.klass;
      } else {
        row.kind = "php-fpm master";
        auto open = cmd.find('('), close = cmd.rfind(')');
        if (open != std::string::npos && close != std::string::npos && close > open)
          row.klass = cmd.substr(open + 1, close - open - 1);
      }
      rows.push_back(std::move(row));
    }
    return rows;
  }

  void publish(const Snapshot& snap) {
    const Limit* b = snap.binding_limit();
    seg_->headroom.store(snap.headroom_bytes ? static_cast<std::int64_t>(*snap.headroom_bytes) : -1,
                         std::memory_order_relaxed);
    seg_->binding.store(static_cast<std::int32_t>(binding_limit(snap.binding)),
                        std::memory_order_relaxed);
    seg_->binding_limit.store(b ? static_cast<std::int64_t>(b->limit_bytes) : 0,
                              std::memory_order_relaxed);
    seg_->binding_used.store(b ? static_cast<std::int64_t>(b->used_bytes) : 0,
                             std::memory_order_relaxed);
    const auto priv = private_headroom(snap.limits);
    seg_->private_headroom.store(priv ? static_cast<std::int64_t>(*priv) : -1,
                                 std::memory_order_relaxed);
    std::uint64_t rise = 0;
    for (const auto& c : snap.counters)
      if (c.name == failcnt_name(BindingLimit::Shmpages) ||
          c.name == failcnt_name(BindingLimit::Privvmpages))
        rise += c.last_minute;
    seg_->binding_failcnt_rise_minute.store(static_cast<std::int64_t>(rise),
                                            std::memory_order_relaxed);
    seg_->failcnt_sum.store(
        failcnt_of(snap, BindingLimit::Shmpages) + failcnt_of(snap, BindingLimit::Privvmpages),
        std::memory_order_relaxed);
    // OOM kills only (v2 memory.events, v1 memory.oom_control): v1's failcnt and v2's "max" count
    // every reclaim at the limit, with nothing failing.
    std::uint64_t ooms = 0;
    if (snap.cgroup && snap.cgroup->events_oom_kill) ooms = *snap.cgroup->events_oom_kill;
    seg_->oom_kills.store(ooms, std::memory_order_relaxed);
    // Counted where a memory cgroup limit is finite: there a 500 waits for the sample that reads
    // a kill (must_wait_for_evidence).
    seg_->oom_counted.store(oom_kills_counted(snap) ? 1 : 0, std::memory_order_relaxed);
    std::uint64_t n = seg_->samples.fetch_add(1, std::memory_order_acq_rel) + 1;
    seg_->sample_wall_ms.store(snap.taken_at_ms, std::memory_order_release);
    shm::drain_retired(seg_, n);
    if (n % 4 == 0) shm::reap_dead(seg_, pid_alive);  // claims of children that died (~2 s)
    shm::wake_all(seg_);                              // waiters re-decide on the new numbers
    if (!cfg_.state_file.empty()) write_state(snap);
  }

  // For shmguard-php-wrapper (ShmGuardAction degrade): the headroom at spawn time. Written to a
  // temporary file and renamed, so a reader sees a whole file.
  void write_state(const Snapshot& snap) {
    HeadroomState st;
    st.sampled_ms = snap.taken_at_ms;
    st.bounded = snap.headroom_bytes.has_value();
    st.headroom = snap.headroom_bytes ? *snap.headroom_bytes : 0;
    std::int64_t r = seg_->reserved.load(std::memory_order_relaxed);
    st.reserved = r > 0 ? static_cast<std::uint64_t>(r) : 0;
    st.binding = snap.binding;
    // A new file each time, renamed over the old (a reader sees a whole file): code running as
    // User, which may write the state directory, cannot stall the sampler with a FIFO or a link
    // planted at a fixed temporary name.
    replace_file(cfg_.state_file, format_headroom_state(st), 0644, false);
  }

  // A limit source that stopped reading, its held reading given up, or readable again: one line
  // each time.
  void log_held(const std::vector<LastGoodReadings::Event>& events) {
    for (const auto& e : events) {
      switch (e.kind) {
        case LastGoodReadings::Event::Kind::Held:
          log_(Level::Warning, "SG0310 the " + e.source + " limit could not be read (" + e.reason +
                                   "): its last good reading (" + std::to_string(e.age_ms) +
                                   " ms old) is used for up to " +
                                   std::to_string(staleness_bound_ms(cfg_.interval_ms)) + " ms");
          break;
        case LastGoodReadings::Event::Kind::Expired:
          log_(Level::Warning, "SG0311 the " + e.source + " limit still cannot be read (" +
                                   e.reason + "): its last good reading is " +
                                   std::to_string(e.age_ms) +
                                   " ms old and no longer used; the guard fails open on it");
          break;
        case LastGoodReadings::Event::Kind::Back:
          log_(Level::Notice, "SG0312 the " + e.source + " limit is readable again (after " +
                                  std::to_string(e.age_ms) + " ms)");
          break;
      }
    }
  }

  void warn(const Snapshot& snap) {
    // Headroom crossing ShmGuardWarnBelow, in either direction: one line each time.
    const Limit* b = snap.binding_limit();
    bool below = false;
    std::uint64_t threshold = 0;
    if (snap.headroom_bytes && b) {
      threshold = cfg_.warn_is_percent
                      ? static_cast<std::uint64_t>(static_cast<double>(b->limit_bytes) *
                                                   cfg_.warn_percent / 100.0)
                      : cfg_.warn_bytes;
      below = *snap.headroom_bytes < threshold;
    }
    int was = seg_->warn_state.exchange(below ? 1 : 0);
    if (below && !was) {
      log_(Level::Warning, "SG0301 shared-memory headroom " + human_bytes(*snap.headroom_bytes) +
                               " fell below ShmGuardWarnBelow (" + human_bytes(threshold) +
                               "): " + snap.binding + " " + human_bytes(b->used_bytes) + " of " +
                               human_bytes(b->limit_bytes) + " used");
    } else if (!below && was && snap.headroom_bytes) {
      log_(Level::Notice, "SG0302 shared-memory headroom back to " +
                              human_bytes(*snap.headroom_bytes) + " (above ShmGuardWarnBelow)");
    }
    // Failure counters that rose since the previous sample: one line per counter per 10 s.
    std::int64_t now = mono_ms();
    for (const auto& c : snap.counters) {
      if (!counter_is_failure(c.name)) continue;  // cgroup reclaim at the limit is no failure
      std::uint64_t& prev = last_value_[c.name];
      bool first = !seen_.count(c.name);
      seen_[c.name] = true;
      if (!first && c.value > prev) {
        pending_rise_[c.name] += c.value - prev;
        std::int64_t& last_log = last_log_[c.name];
        if (now - last_log >= 10000) {
          log_(Level::Warning, "SG0303 " + c.name + " rose by " +
                                   std::to_string(pending_rise_[c.name]) + " (now " +
                                   std::to_string(c.value) + ", +" + std::to_string(c.last_minute) +
                                   " in the last minute)");
          last_log = now;
          pending_rise_[c.name] = 0;
        }
      }
      prev = c.value;
    }
  }

  struct Proc {
    std::int64_t ident = -1;      // mod_fcgid's start time, or the kernel's start ticks
    Worker info;                  // stat, status, cmdline, segments
    std::string lean;             // lean_settings(cmdline).describe() when started lean, or ""
    std::int64_t read_ms = 0;     // when status (RssShmem) was last read
    bool fcgid = false;           // listed in mod_fcgid's table
    bool fpm = false;             // a php-fpm process
    int parent = 0;               // the php-cgi whose child this is (PHP_FCGI_CHILDREN), or 0
    std::uint64_t class_key = 0;  // mod_fcgid workers: fcgid::class_hash of its node, 0 unread
    std::uint64_t seen = 0, discovered = 0;
    // For recheck_processes, on boot_ms_now()'s clock: its start, its last full read, its next
    // check; and its virtual size when its maps were read.
    std::int64_t start_ms = 0, full_read_ms = 0, check_ms = 0;
    std::uint64_t maps_vsize = kMapsUnread;
  };
  static constexpr std::int64_t kCheckGapMs = 250;
  static constexpr std::size_t kChecksPerSample = 4;
  std::vector<ExecCheckDue> due_;  // recheck_processes' scratch, kept to spare the allocations
  std::vector<Proc*> due_procs_;
  const Config& cfg_;
  shm::Segment* seg_;
  std::vector<fcgid::NodeLite> nodes_;  // mod_fcgid's table at the last sample
  std::unordered_map<int, Proc> procs_;
  struct ClassAgg {
    std::uint64_t need = 0;     // bytes: the largest worker's private segments, summed
    std::uint64_t touched = 0;  // bytes: the largest worker's RssShmem + RssAnon
    int workers = 0;
  };
  std::unordered_map<std::uint64_t, ClassAgg> classes_;  // class key -> its workers
  PhpErrorQueue php_errors_;  // OPcache lines whose worker has not exited yet
  std::unordered_map<int, std::int64_t> recent_workers_;  // pid -> last seen (monotonic ms)
  std::vector<fcgid::NodeLite> walk_;                     // read_log's own walk
  std::int64_t full_sample_ms_ = 0;                       // monotonic, of the last full sample
  std::int64_t log_read_ms_ = 0;                          // monotonic, of the last error-log read
  std::uint64_t generation_ = 0, discovery_ = 0;
  std::int64_t status_ms_ = 0, discovered_ms_ = 0;
  std::vector<FpmPool> fpm_reads_;  // the configured pools as last read (ShmGuardFpmPool)
  std::int64_t fpm_read_ms_ = 0;
  static constexpr int kFpmTimeoutMs = 200;
  static constexpr std::int64_t kFpmBudgetMs = 250;
  static constexpr std::int64_t kFpmGuardEveryMs = 2000, kFpmGuardBudgetMs = 100;
  static constexpr std::int64_t kFpmBackoffMs = 5000;
  std::vector<std::int64_t> fpm_skip_until_;  // monotonic: a pool not asked again before then
  std::vector<std::optional<std::uint64_t>> fpm_reached_;  // its last "max children reached"
  struct FpmTail {
    std::string path;
    std::unique_ptr<LogTail> tail;
    std::vector<std::size_t> pools;  // the ShmGuardFpmPool indices naming this log
  };
  std::vector<FpmTail> fpm_tails_;
  const std::string* rotated_ = nullptr;  // an FPM log rotated (its tail's path), read to its end
  std::vector<std::string> fpm_last_failure_;  // per pool: FPM's words for its last failure
  std::optional<Snapshot> last_;
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::string> executables_;  // (dev, inode)
  const Logger& log_;
  FailcntTracker tracker_;
  LastGoodReadings held_;
  History history_;  // the last hour, for the status page's chart
  LogTail tail_;
  std::map<std::string, std::uint64_t> last_value_, pending_rise_;
  std::map<std::string, bool> seen_;
  std::map<std::string, std::int64_t> last_log_;
};

}  // namespace

LogTail::LogTail(std::string path) : LogTail(std::move(path), -1, -1) {}

LogTail::LogTail(std::string path, int fd, int watch_fd) : path_(std::move(path)) {
  if (fd >= 0) {
    fd_ = fd;
    inotify_fd_ = watch_fd;
    adopted_ = true;
    start_at_end();
    return;
  }
  if (watch_fd >= 0) close(watch_fd);
  if (path_.empty()) return;
  inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (open_file()) start_at_end();
}

void LogTail::start_at_end() {
  struct stat st;
  if (fstat(fd_, &st) == 0) offset_ = static_cast<std::uint64_t>(st.st_size);
}

LogTail::~LogTail() {
  if (fd_ >= 0) close(fd_);
  if (inotify_fd_ >= 0) close(inotify_fd_);
}

namespace {
// The path now names another file than fd, with something in it.
bool path_replaced(const std::string& path, int fd) {
  struct stat at, followed;
  if (fd < 0 || ::stat(path.c_str(), &at) != 0 || fstat(fd, &followed) != 0) return false;
  return (at.st_ino != followed.st_ino || at.st_dev != followed.st_dev) && at.st_size > 0;
}
}  // namespace

bool LogTail::replaced() const {
  return adopted_ && path_replaced(path_, fd_);
}

bool LogTail::open_file() {
  if (fd_ >= 0) return true;
  if (adopted_) return false;
  fd_ = open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd_ < 0) return false;
  if (inotify_fd_ >= 0) inotify_add_watch(inotify_fd_, path_.c_str(), IN_MODIFY);
  offset_ = 0;
  return true;
}

void LogTail::poll(const std::function<void(std::string_view)>& on_line) {
  if (path_.empty() && !adopted_) return;
  if (inotify_fd_ >= 0) {  // drain the notifications
    char buf[4096];
    while (read(inotify_fd_, buf, sizeof buf) > 0) {
    }
  }
  if (!open_file()) return;
  struct stat st;
  if (fstat(fd_, &st) != 0) return;
  auto size = static_cast<std::uint64_t>(st.st_size);
  // Renamed away and a new file written at the path: what the old file got, then the new one
  // from its start (all of it written after the rotation).
  const bool reopen = !adopted_ && path_replaced(path_, fd_);
  if (size < offset_) {  // shrunk (rotated or cut in place): go on from its end
    offset_ = size;
    partial_.clear();
  }
  char buf[65536];
  std::uint64_t budget = 4u << 20;  // at most 4 MiB per call; the rest on the next one
  while (offset_ < size && budget > 0) {
    ssize_t n = pread(fd_, buf, sizeof buf, static_cast<off_t>(offset_));
    if (n <= 0) break;
    offset_ += static_cast<std::uint64_t>(n);
    budget -= std::min<std::uint64_t>(budget, static_cast<std::uint64_t>(n));
    partial_.append(buf, static_cast<std::size_t>(n));
    std::size_t start = 0, nl;
    while ((nl = partial_.find('\n', start)) != std::string::npos) {
      on_line(std::string_view(partial_).substr(start, nl - start));
      start = nl + 1;
    }
    partial_.erase(0, start);
    if (partial_.size() > 65536) partial_.clear();  // a runaway line: drop it
  }
  if (reopen && offset_ >= size) {
    close(fd_);
    fd_ = -1;
    partial_.clear();
    if (inotify_fd_ >= 0) {  // the watch was on the old file
      close(inotify_fd_);
      inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    }
    open_file();
  }
}

int run(const Config& cfg, shm::Segment* seg, const Logger& log,
        const std::function<bool()>& stop) {
  try {
    // The status page's buffers are large (hundreds of KiB with 1000 workers): keep them on the
    // heap and the heap mapped, instead of a fresh mmap and page faults for every rendering.
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 128 << 20);
    // The wake pipe is drained until empty: it must not block (the module creates it so).
    if (cfg.wake_fd >= 0) fcntl(cfg.wake_fd, F_SETFL, fcntl(cfg.wake_fd, F_GETFL) | O_NONBLOCK);
    Sampler s(cfg, seg, log);
    const std::int64_t interval = std::max<std::int64_t>(cfg.interval_ms, 10);
    std::int64_t next = mono_ms();
    while (!stop()) {
      if (cfg.parent_pid && getppid() != cfg.parent_pid) break;  // orphaned: the server is gone
      if (const std::string* rotated = s.rotated_log()) {
        log(Level::Notice, "SG0117 " + *rotated +
                               " was rotated (another file is at its path now): the sampler "
                               "ends so that a new one opens it while root");
        return kExitReopen;
      }
      std::int64_t now = mono_ms();
      if (now >= next) {
        s.sample();
        next = now + interval;
        continue;
      }
      pollfd fds[2];
      int n = 0;
      if (cfg.wake_fd >= 0) fds[n++] = pollfd{cfg.wake_fd, POLLIN, 0};
      std::int64_t until = std::min<std::int64_t>(next - now, 1000);
      if (s.notify_fd() >= 0) {
        // The error log is watched again once kLogGapMs have passed since its last read; what
        // it got meanwhile is read then, in one go.
        if (now >= s.log_due_ms())
          fds[n++] = pollfd{s.notify_fd(), POLLIN, 0};
        else
          until = std::min(until, s.log_due_ms() - now);
      }
      int timeout = static_cast<int>(until);
      int r = ::poll(fds, static_cast<nfds_t>(n), timeout);
      if (r <= 0) continue;
      bool woken = false;
      for (int i = 0; i < n; ++i) {
        if (!(fds[i].revents & POLLIN)) continue;
        if (fds[i].fd == cfg.wake_fd) {
          char buf[256];
          while (read(cfg.wake_fd, buf, sizeof buf) > 0) {
          }
          woken = true;
        } else {
          // The error log grew: look for PHP's line right away (the 500 follows within ms).
          s.read_log();
        }
      }
      if (woken) s.on_wake();  // a child waits for evidence or a status page
    }
  } catch (const std::exception& e) {
    log(Level::Error, std::string("SG0119 sampler stopped by an internal error: ") + e.what());
  } catch (...) {
    log(Level::Error, "SG0119 sampler stopped by an internal error");
  }
  return 0;
}

}  // namespace shmguard::sampler
