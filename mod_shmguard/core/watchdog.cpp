// mod_shmguard core: the parent's watchdog on the sampler (watchdog.hpp).
#include "shmguard/watchdog.hpp"

#include <algorithm>

#include "shmguard/rules.hpp"

namespace shmguard {

SamplerWatchdog::SamplerWatchdog(std::int64_t interval_ms)
    : stall_ms_(std::max<std::int64_t>(4 * staleness_bound_ms(interval_ms), 10000)) {}

bool SamplerWatchdog::stalled(int pid, std::uint64_t samples, std::int64_t now_ms) {
  if (pid <= 0) {
    pid_ = 0;
    quiet_ms_ = 0;
    return false;
  }
  if (pid != pid_ || samples != samples_) {  // another sampler, or it published: a new start
    pid_ = pid;
    samples_ = samples;
    since_ms_ = now_ms;
    quiet_ms_ = 0;
    return false;
  }
  quiet_ms_ = now_ms - since_ms_;
  if (quiet_ms_ < stall_ms_) return false;
  since_ms_ = now_ms;  // once per stall: the next look starts counting again
  return true;
}

}  // namespace shmguard
