// mod_shmguard core: the guard's rules, decide() and every numbered rule (see rules.hpp).
#include "shmguard/rules.hpp"

#include "text.hpp"

namespace shmguard {

const char* to_string(Verdict v) {
  switch (v) {
    case Verdict::Pass:
      return "pass";
    case Verdict::Lean:
      return "lean";
    case Verdict::Wait:
      return "wait";
    case Verdict::Refuse:
      return "refuse";
    case Verdict::WouldRefuse:
      return "would-refuse";
    case Verdict::FailOpen:
      return "fail-open";
  }
  return "?";
}

const char* to_string(Action a) {
  switch (a) {
    case Action::Refuse:
      return "refuse";
    case Action::Log:
      return "log";
    case Action::Degrade:
      return "degrade";
  }
  return "?";
}

const char* to_string(Claim c) {
  switch (c) {
    case Claim::None:
      return "none";
    case Claim::Worker:
      return "worker";
    case Claim::Spawn:
      return "spawn";
    case Claim::Lean:
      return "lean";
  }
  return "?";
}

const char* to_string(WaitFor w) {
  switch (w) {
    case WaitFor::None:
      return "none";
    case WaitFor::Worker:
      return "worker";
    case WaitFor::Reclaim:
      return "reclaim";
    case WaitFor::Measure:
      return "measure";
    case WaitFor::Share:
      return "share";
  }
  return "?";
}

const char* wait_words(WaitFor w) {
  switch (w) {
    case WaitFor::None:
      return "not waiting";
    case WaitFor::Worker:
      return "waiting for a worker of this class";
    case WaitFor::Reclaim:
      return "waiting for room freed by a reclaim";
    case WaitFor::Measure:
      return "waiting for the spawn being measured";
    case WaitFor::Share:
      return "waiting for its fair share (a worker of a site above its share, as it frees)";
  }
  return "?";
}

Decision decide(const GuardInput& in) {
  if (!in.fresh) return {Verdict::FailOpen, in.spawns_workers ? Claim::Worker : Claim::None, 0};
  if (in.fpm) {
    Decision d{Verdict::Pass, Claim::None, 0};
    if (in.fpm_pool && in.fpm_idle > 0) return d;  // 2.1
    if (in.fpm_pool && in.fpm_forks && in.fpm_child_need > 0 && in.private_bounded &&
        in.private_headroom < in.fpm_child_need) {  // 2.2
      d.warn = d.fork_short = true;
      return d;
    }
    d.warn = in.bounded && in.low;
    return d;
  }
  if (!in.spawns_workers) {
    if (!in.bounded || in.headroom >= in.need) return {Verdict::Pass, Claim::None, 0};
    return {in.action == Action::Log ? Verdict::WouldRefuse : Verdict::Refuse, Claim::None, 0};
  }
  if (ample(in)) return {Verdict::Pass, Claim::Spawn, 0};  // counted, nothing reserved
  if (in.workers < 0) return {Verdict::FailOpen, Claim::Worker, 0};
  if (in.workers - in.inflight - in.queued > 0) return {Verdict::Pass, Claim::Worker, 0};
  const std::uint64_t left = room(in);
  const bool spawn_in_flight = in.inflight > in.workers;
  const bool spawn_now = in.workers == 0 || !in.may_wait || in.waited_ms >= kSpawnAfterWaitMs ||
                         in.class_waiting > in.workers;
  // On the default need: the last spawn's worker is not measured yet, and its time is not up.
  const bool measuring = !in.need_known && in.since_unmeasured_spawn_ms < in.measure_wait_ms;
  if (left >= in.need && (in.need_known || (!spawn_in_flight && !measuring)) && spawn_now)
    return {Verdict::Pass, Claim::Spawn, in.need};
  // A lean worker only where no full one fits (else a full worker is due soon: wait for it).
  if (in.action == Action::Degrade && left < in.need && left >= in.lean_need && !spawn_in_flight)
    return {Verdict::Lean, Claim::Lean, in.lean_need};
  const bool coming = in.workers > 0 || in.inflight > 0 || measuring;
  // Rule 8b: nothing of the class's own to wait for; another class's idle worker may make room.
  const bool reclaim = in.reclaim && in.may_wait && !coming && !in.reclaim_pending;
  if (in.action == Action::Log) return {Verdict::WouldRefuse, Claim::Spawn, in.need, reclaim};
  if ((coming || in.reclaim_pending || in.share_owed) && in.may_wait) {
    Decision d{Verdict::Wait, Claim::None, 0};
    d.wait_for = in.reclaim_pending                    ? WaitFor::Reclaim
                 : measuring                           ? WaitFor::Measure
                 : (in.workers > 0 || in.inflight > 0) ? WaitFor::Worker
                                                       : WaitFor::Share;
    return d;
  }
  if (reclaim) {
    Decision d{Verdict::Wait, Claim::None, 0, true};
    d.wait_for = WaitFor::Reclaim;
    return d;
  }
  return {Verdict::Refuse, Claim::None, 0};
}

bool module_starts_worker(const GuardInput& in, const Decision& d) {
  if (in.action == Action::Log) return false;
  if (d.verdict == Verdict::Pass) return d.claim == Claim::Spawn && d.reserve_bytes > 0;
  return d.verdict == Verdict::Lean && in.workers > 0;
}

bool freshness(std::int64_t sampled_ms, std::int64_t now_ms, std::int64_t bound_ms) {
  if (sampled_ms <= 0) return false;
  const std::int64_t age = now_ms - sampled_ms;
  return age > -1000 && age <= bound_ms;
}

namespace {
std::int64_t three_intervals_at_least(std::int64_t interval_ms, std::int64_t floor_ms) {
  const std::int64_t t = 3 * interval_ms;
  return t < floor_ms ? floor_ms : t;
}
}  // namespace

std::int64_t measure_wait_ms(std::int64_t interval_ms) {
  return three_intervals_at_least(interval_ms, kMeasureWaitMs);
}

std::int64_t staleness_bound_ms(std::int64_t interval_ms) {
  return three_intervals_at_least(interval_ms, 1500);
}

std::int32_t max_waiting_per_class(std::int32_t max_waiting) {
  if (max_waiting <= 1) return max_waiting;
  return max_waiting - std::max<std::int32_t>(1, max_waiting / 4);
}

std::uint64_t workers_that_fit(std::uint64_t room_bytes, std::uint64_t need) {
  return need == 0 ? 0 : room_bytes / need;
}

FitAdvice fit_advice(std::uint64_t room, std::uint64_t workers, std::uint64_t need,
                     std::uint64_t most_seen) {
  FitAdvice f;
  // Saturating: a share past 2^64 bytes is no limit anyone configures.
  const std::uint64_t share = text::sat_add(room, text::sat_mul(workers, need));
  f.more = workers_that_fit(room, need);
  f.max_processes = workers_that_fit(share, need);
  if (most_seen > 0) f.per_worker = share / most_seen;
  return f;
}

bool must_wait_for_evidence(bool fresh_bounded_ample, bool counters_moved, bool oom_kills_counted) {
  return !fresh_bounded_ample || counters_moved || oom_kills_counted;
}

std::string evidence_text(const EvidenceCounters& start, const EvidenceCounters& now,
                          const EvidenceDetail& d, std::int64_t request_start_ms) {
  std::string out;
  auto add = [&](const std::string& s) {
    if (!out.empty()) out += "; ";
    out += s;
  };
  const bool counters_rose = now.failcnt_sum > start.failcnt_sum || now.oom_kills > start.oom_kills;
  if (now.php_errors > start.php_errors && d.php_wall_ms >= request_start_ms - 5)
    add("PHP: \"Unable to allocate shared memory segment of " + std::to_string(d.php_bytes) +
        " bytes\" (pid " + std::to_string(d.php_pid) + ", exited)");
  if (now.apcu_errors > start.apcu_errors && d.apcu_wall_ms >= request_start_ms - 5 &&
      counters_rose)
    add("APCu: \"apc_mmap: Failed to mmap " + std::to_string(d.apcu_bytes) + " bytes\"");
  if (now.failcnt_sum > start.failcnt_sum)
    add("beancounter failcnt +" + std::to_string(now.failcnt_sum - start.failcnt_sum));
  if (now.oom_kills > start.oom_kills)
    add("cgroup oom_kill +" + std::to_string(now.oom_kills - start.oom_kills));
  return out;
}

}  // namespace shmguard
