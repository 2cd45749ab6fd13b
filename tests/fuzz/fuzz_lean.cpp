// libFuzzer target: the lean-worker inputs. The headroom state file is read by
// shmguard-php-wrapper at every spawn (a file in the runtime dir), and lean_settings reads worker
// command lines, which any local user chooses. Neither may crash, hang or throw; a state file
// parsed and written again must parse to the same values; a plan from any parsed state must stay
// within the lean bound when it is lean.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "shmguard/lean.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)shmguard::lean_settings(text).describe();

  std::string error;
  auto st = shmguard::parse_headroom_state(text, &error);
  if (!st) {
    if (error.empty()) std::abort();
    return 0;
  }
  std::string again_error;
  auto again = shmguard::parse_headroom_state(shmguard::format_headroom_state(*st), &again_error);
  if (!again || again->sampled_ms != st->sampled_ms || again->bounded != st->bounded ||
      again->headroom != st->headroom || again->reserved != st->reserved ||
      again->binding != st->binding)
    std::abort();
  shmguard::LeanOptions o;
  o.apcu = 32ULL << 20;
  shmguard::LeanPlan p = shmguard::plan_lean(st, o);
  if (p.lean && p.opcache + p.apcu > o.lean_max) std::abort();
  return 0;
}
