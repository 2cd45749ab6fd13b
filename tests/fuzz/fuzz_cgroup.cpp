// libFuzzer target: every cgroup parser on the same input. They must not crash, hang or throw,
// and a failure must always carry a reason.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "shmguard/sources.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);

  auto pc = shmguard::parse_proc_cgroup(text);
  if (!pc && pc.error.empty()) std::abort();
  if (pc) {
    if (pc.value->v2_path && (pc.value->v2_path->empty() || pc.value->v2_path->front() != '/'))
      std::abort();
    if (pc.value->v1_memory_path &&
        (pc.value->v1_memory_path->empty() || pc.value->v1_memory_path->front() != '/'))
      std::abort();
  }

  auto mi = shmguard::parse_mountinfo(text);
  if (!mi && mi.error.empty()) std::abort();
  if (mi && mi.value->v2_mount.has_value() != mi.value->v2_root.has_value()) std::abort();

  auto kv = shmguard::parse_flat_keyed(text);
  if (!kv && kv.error.empty()) std::abort();

  auto psi = shmguard::parse_psi(text);
  if (!psi && psi.error.empty()) std::abort();
  if (psi) {
    if (!psi.value->some) std::abort();  // a parsed file always has its "some" line
    for (const auto* l : {&psi.value->some, &psi.value->full})
      if (*l && ((*l)->avg10 > 10099 || (*l)->avg60 > 10099 || (*l)->avg300 > 10099)) std::abort();
  }

  auto lim = shmguard::parse_cgroup_limit(text);
  if (!lim && lim.error.empty()) std::abort();
  if (lim && *lim.value && **lim.value >= (std::uint64_t{1} << 62)) std::abort();
  return 0;
}
