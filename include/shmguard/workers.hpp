// mod_shmguard core: FastCGI worker processes and the shared segments they map (what `top`
// sorted by SHR showed, done right: segments identified by (device, inode), not by name).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shmguard/sources.hpp"

namespace shmguard {

struct Segment {
  std::uint32_t dev_major = 0, dev_minor = 0;
  std::uint64_t inode = 0;
  std::uint64_t size = 0;  // bytes mapped (largest mapping of this segment in the process)
  std::string kind;        // "anon-shared" (/dev/zero), "sysv", "hugepage", "memfd", "file"
  bool operator==(const Segment& o) const {
    return dev_major == o.dev_major && dev_minor == o.dev_minor && inode == o.inode;
  }
};

// Shared mappings ('s' in perms) of /proc/PID/maps that are anonymous shared memory: /dev/zero
// (deleted), /SYSV########, /anon_hugepage, /memfd:. One Segment per (dev, inode).
Result<std::vector<Segment>> parse_maps_shared(std::string_view text);

struct ProcStat {
  int pid = 0, ppid = 0;
  std::string comm;
  std::uint64_t start_ticks = 0;  // field 22: clock ticks after boot
};
// /proc/PID/stat (comm may contain spaces and parentheses: split at the last ')').
Result<ProcStat> parse_proc_stat(std::string_view text);

struct Worker {
  int pid = 0, ppid = 0;
  unsigned uid = 0;
  std::string comm, cmdline;
  std::uint64_t start_ticks = 0;
  std::uint64_t rss_shmem = 0;  // RssShmem from /proc/PID/status, bytes
  std::vector<Segment> segments;
  std::string error;  // set when maps could not be read (the worker is still listed)
};

// At most this much of a process's command line is read (any process can make its own longer).
constexpr std::size_t kCmdlineMax = 1024;

// Reads one process (stat, status, cmdline (its first kCmdlineMax bytes) and, with `with_maps`,
// maps — the costly part: the kernel walks every mapping). Fails only when the process is gone.
Result<Worker> read_worker(const std::string& procfs, int pid, bool with_maps = true);
// RssShmem of one process in bytes (its /proc/PID/status), 0 when the line is absent.
Result<std::uint64_t> read_rss_shmem(const std::string& procfs, int pid);
// The shared segments of one process (its /proc/PID/maps).
Result<std::vector<Segment>> read_segments(const std::string& procfs, int pid);
// Now, in the clock ticks since boot that /proc/PID/stat's start time uses (-1 if unknown).
std::int64_t boot_ticks_now(const std::string& procfs);

// All numeric entries of <procfs>.
std::vector<int> list_pids(const std::string& procfs);
// Descendants of `root` (children, grandchildren...) among the given stats.
std::vector<int> descendants(const std::vector<ProcStat>& all, int root);
// Every process's stat (those that vanish meanwhile are skipped).
std::vector<ProcStat> read_all_stats(const std::string& procfs);

}  // namespace shmguard
