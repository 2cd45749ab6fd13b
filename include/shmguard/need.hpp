// mod_shmguard core: what one new worker of a class needs (the reserve the guard compares with the
// room), and on which basis. One home for the rule: the sampler measures, the guard, the status
// page and the advisor ask here.
//
// A limit that charges a shared mapping when it is made (OpenVZ shmpages/privvmpages, strict
// overcommit) needs the worker's mapped size: OPcache + APCu + any other segment only it maps. A
// memory cgroup charges pages only when they are touched: a php-cgi with a 128 MiB OPcache and
// 32 MiB APCu charges a few MiB of shmem and ~15 MiB anon when it starts, more as OPcache fills.
// Under a memory cgroup binding the need is the worker's touched memory (RssShmem + RssAnon of
// /proc/PID/status), the largest on the class's running workers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "shmguard/model.hpp"

namespace shmguard {

enum class NeedBasis : std::uint8_t {
  Mapped,   // the limit charges at mmap: the mapped size of the worker's private segments
  Touched,  // a memory cgroup: the pages the worker touched (RssShmem + RssAnon)
};

// The basis for a binding limit (binding_name()): Touched for "cgroup:memory", Mapped otherwise
// (beancounters, overcommit, and no finite limit).
NeedBasis need_basis(std::string_view binding);
const char* need_basis_key(NeedBasis b);  // "mapped", "touched"
// Why, in words: "touched (memory cgroup charges pages as touched)", "mapped (shmpages charges at
// mmap)", ...
std::string need_basis_text(NeedBasis b, std::string_view binding);

// A worker's touched memory: what a memory cgroup charged for it (its resident shmem pages and
// its private anon). Shmem pages of a segment shared with other processes count in each: an
// overestimate, never an underestimate, of what the worker charged.
std::uint64_t touched_bytes(std::uint64_t rss_shmem, std::uint64_t rss_anon);

// What one new worker of a class needs against the snapshot's headroom (the binding limit's),
// given the largest mapped size and the largest touched memory of its running workers (0: not
// measured). Mapped basis: `mapped`. Touched basis: `touched`, but never less than what the
// mapping needs from any limit that charges at mmap (a beancounter, overcommit) beyond that
// limit's headroom above the binding's (mapped - (its headroom - the binding's)), so a spawn the
// touched need admits is still one the other limits hold. Touched not measured: `mapped`.
std::uint64_t class_need(const Snapshot& s, std::uint64_t mapped, std::uint64_t touched);

// The reserve the guard applies to a class: ShmGuardReserve's fixed size, or (auto) the class's
// measured need (class_need(), as the sampler publishes it), or the default while nothing was
// measured. The one rule behind the guard's and the status page's reserve.
struct Reserve {
  std::uint64_t bytes = 0;
  bool measured = false;  // fixed, or measured on a running worker (not the default)
};
Reserve effective_reserve(bool is_auto, std::uint64_t fixed_bytes, std::uint64_t measured_need,
                          std::uint64_t default_bytes);

// Whether OOM kills are counted where they matter (the segment's oom_counted,
// must_wait_for_evidence in rules.hpp): the snapshot read an oom_kill counter AND a memory cgroup
// limit of the model is finite. In an unlimited cgroup (a systemd slice, a container without a
// memory limit) no OOM kill can come from the cgroup, so a 500 there does not wait for the
// sampler's look.
bool oom_kills_counted(const Snapshot& s);

}  // namespace shmguard
