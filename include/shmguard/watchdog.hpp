// mod_shmguard core: the parent's watchdog on the sampler. Code running as the server's User can
// SIGSTOP the sampler (same uid): the children then fail open on stale samples for ever. The
// parent looks now and then (httpd's monitor hook, about every 10 s) at the count of samples
// published; when it has not moved for stall_ms() while the same sampler ran, the sampler is
// stalled: the parent kills it, and its death starts a new one.
#pragma once

#include <cstdint>

namespace shmguard {

class SamplerWatchdog {
 public:
  explicit SamplerWatchdog(std::int64_t interval_ms);
  // One look at `now_ms` (monotonic): the running sampler's pid (0: none) and the samples
  // published so far. True when this sampler published nothing new for stall_ms() (counted from
  // its first look: a new sampler gets the whole time).
  bool stalled(int pid, std::uint64_t samples, std::int64_t now_ms);
  // How long without a sample (ms) at the last look.
  std::int64_t quiet_ms() const { return quiet_ms_; }
  // max(4 x the staleness bound, 10 s): far past the guard's own bound, so a slow sample (a large
  // scan) is never taken for a stall.
  std::int64_t stall_ms() const { return stall_ms_; }

 private:
  std::int64_t stall_ms_;
  int pid_ = 0;
  std::uint64_t samples_ = 0;
  std::int64_t since_ms_ = 0, quiet_ms_ = 0;
};

}  // namespace shmguard
