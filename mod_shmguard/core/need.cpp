// mod_shmguard core: a new worker's need and its basis (need.hpp).
#include "shmguard/need.hpp"

#include <algorithm>

namespace shmguard {

NeedBasis need_basis(std::string_view binding) {
  return binding == binding_name(BindingLimit::Cgroup) ? NeedBasis::Touched : NeedBasis::Mapped;
}

const char* need_basis_key(NeedBasis b) {
  return b == NeedBasis::Touched ? "touched" : "mapped";
}

std::string need_basis_text(NeedBasis b, std::string_view binding) {
  if (b == NeedBasis::Touched)
    return "touched (memory cgroup charges pages as touched: a worker's RssShmem + RssAnon, the "
           "largest on the class's running workers)";
  std::string what;
  switch (binding_limit(binding)) {
    case BindingLimit::Shmpages:
      what = "shmpages charges at mmap";
      break;
    case BindingLimit::Privvmpages:
      what = "privvmpages charges at mmap";
      break;
    case BindingLimit::Overcommit:
      what = "strict overcommit charges at mmap";
      break;
    default:
      what = "no memory cgroup binds: a limit that charges at mmap is assumed";
      break;
  }
  return "mapped (" + what + ": a worker's private shared segments summed)";
}

std::uint64_t touched_bytes(std::uint64_t rss_shmem, std::uint64_t rss_anon) {
  return rss_shmem > UINT64_MAX - rss_anon ? UINT64_MAX : rss_shmem + rss_anon;
}

std::uint64_t class_need(const Snapshot& s, std::uint64_t mapped, std::uint64_t touched) {
  if (need_basis(s.binding) == NeedBasis::Mapped || touched == 0) return mapped;
  const Limit* b = s.binding_limit();
  if (!b) return mapped;
  const std::uint64_t h = b->headroom_bytes();
  std::uint64_t need = touched;
  // A limit that charges at mmap (beancounter, overcommit) must still hold the mapping.
  for (const Limit& l : s.limits) {
    if (need_basis(l.name) == NeedBasis::Touched) continue;
    const std::uint64_t above = l.headroom_bytes() - std::min(l.headroom_bytes(), h);
    if (mapped > above) need = std::max(need, mapped - above);
  }
  return need;
}

Reserve effective_reserve(bool is_auto, std::uint64_t fixed_bytes, std::uint64_t measured_need,
                          std::uint64_t default_bytes) {
  if (!is_auto) return Reserve{fixed_bytes, true};
  if (measured_need) return Reserve{measured_need, true};
  return Reserve{default_bytes, false};
}

bool oom_kills_counted(const Snapshot& s) {
  if (!s.cgroup || !s.cgroup->events_oom_kill) return false;
  for (const Limit& l : s.limits)
    if (need_basis(l.name) == NeedBasis::Touched) return true;  // the memory cgroup's limit
  return false;
}

}  // namespace shmguard
