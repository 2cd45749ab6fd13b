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

// What one process can make the sampler do is bounded: any local user's process can have tens of
// thousands of mappings (65 000 once took 1.6 s per read; two processes sharing 30 000 1-MiB
// memfds blanked the status page). Of a process's maps at most kMapsMaxBytes are read and
// kMapsMaxLines mappings parsed, and at most kMaxSegments distinct segments are kept: the largest
// (a php-cgi maps a handful: OPcache, APCu, their locks).
constexpr std::size_t kMapsMaxBytes = 1u << 20;
constexpr std::size_t kMapsMaxLines = 8192;
constexpr std::size_t kMaxSegments = 64;
// What a read of a process's maps left out (MapsBounds::note() says it for the status page).
struct MapsBounds {
  bool cut = false;                   // more than kMapsMaxBytes or kMapsMaxLines: the rest unread
  std::size_t segments_left_out = 0;  // distinct segments past kMaxSegments (the smallest)
  std::string note() const;           // "" when nothing was left out
};

// Shared mappings ('s' in perms) of /proc/PID/maps that are anonymous shared memory: /dev/zero
// (deleted), /SYSV########, /anon_hugepage, /memfd:. One Segment per (dev, inode), in first-seen
// order, found by sorting (O(n log n) in the mappings); at most kMapsMaxLines lines read and
// kMaxSegments segments kept, as `bounds` tells.
Result<std::vector<Segment>> parse_maps_shared(std::string_view text, MapsBounds* bounds = nullptr);

// What a process runs, as its /proc/PID/stat shows it besides the name. An exec keeps the pid and
// the start time but replaces the image: the name (comm: the file executed, the script itself for
// "#!") and the addresses of the new image's code, stack, arguments and environment (fields 26-28
// and 48-51). Address-space randomisation moves them at every exec; without it the stack and the
// argument area still move with the length of the new arguments (a re-exec of the same program
// with arguments of the same length and the same environment is then not told apart). The kernel
// shows them as 0 (code: 1) to a reader without ptrace access to the process (the sampler keeps
// CAP_SYS_PTRACE); then only the name tells an exec. Fields 48-51 exist since Linux 3.5.
struct ExecImage {
  std::uint64_t start_code = 0, end_code = 0, start_stack = 0;
  std::uint64_t arg_start = 0, arg_end = 0, env_start = 0, env_end = 0;
  bool operator==(const ExecImage& o) const {
    return start_code == o.start_code && end_code == o.end_code && start_stack == o.start_stack &&
           arg_start == o.arg_start && arg_end == o.arg_end && env_start == o.env_start &&
           env_end == o.env_end;
  }
  bool operator!=(const ExecImage& o) const { return !(*this == o); }
};

struct ProcStat {
  int pid = 0, ppid = 0;
  std::string comm;
  std::uint64_t start_ticks = 0;  // field 22: clock ticks after boot
  std::uint64_t vsize = 0;        // field 23: virtual memory size, bytes (0 when absent)
  ExecImage image;                // fields 26-28, 48-51 (0 when absent)
  char state = '?';               // field 3: R, S, D, Z (zombie), X (dead), ...
};
// /proc/PID/stat (comm may contain spaces and parentheses: split at the last ')'). Fields past
// the start time are optional (older kernels print fewer).
Result<ProcStat> parse_proc_stat(std::string_view text);
// One process's /proc/PID/stat.
Result<ProcStat> read_proc_stat(const std::string& procfs, int pid);

// Does the process exist (a zombie too; a process of another user too)? kill(pid, 0) != ESRCH.
bool pid_alive(int pid);
// Gone, or a zombie waiting to be reaped (which pid_alive still counts): its stat under `procfs`
// is unreadable or says Z or X. False for pid <= 0.
bool pid_exited(const std::string& procfs, int pid);

struct Worker {
  int pid = 0, ppid = 0;
  unsigned uid = 0;
  std::string comm, cmdline;
  std::uint64_t start_ticks = 0;
  std::uint64_t vsize = 0;      // virtual size when read (stat, before the maps)
  ExecImage image;              // what it ran when read (with comm): see compare_identity
  std::uint64_t rss_shmem = 0;  // RssShmem from /proc/PID/status, bytes
  std::uint64_t rss_anon = 0;   // RssAnon from /proc/PID/status, bytes
  std::vector<Segment> segments;
  std::string error;      // set when maps could not be read (the worker is still listed)
  std::string maps_note;  // MapsBounds::note() of the last maps read ("" when all was read)
};

// At most this much of a process's command line is read (any process can make its own longer).
constexpr std::size_t kCmdlineMax = 1024;

// Reads one process (stat, status, cmdline (its first kCmdlineMax bytes) and, with `with_maps`,
// maps — the costly part: the kernel walks every mapping). Fails only when the process is gone.
Result<Worker> read_worker(const std::string& procfs, int pid, bool with_maps = true);
// A process's private writable memory in bytes from its /proc/PID/status: VmData (private
// writable, not stack) + VmStk, what a fork of it charges to privvmpages or strict overcommit
// (a memory cgroup charges only the pages then touched). nullopt when either line is absent.
std::optional<std::uint64_t> parse_private_writable(std::string_view status);
Result<std::uint64_t> read_private_writable(const std::string& procfs, int pid);
// RssShmem of one process in bytes (its /proc/PID/status), 0 when the line is absent.
Result<std::uint64_t> read_rss_shmem(const std::string& procfs, int pid);
// What a process has resident of shared memory and of its private anon (RssShmem, RssAnon of its
// /proc/PID/status, bytes; 0 when a line is absent).
struct Resident {
  std::uint64_t rss_shmem = 0, rss_anon = 0;
};
Result<Resident> read_resident(const std::string& procfs, int pid);
// The shared segments of one process (its /proc/PID/maps, at most kMapsMaxBytes of it).
Result<std::vector<Segment>> read_segments(const std::string& procfs, int pid,
                                           MapsBounds* bounds = nullptr);
// Now, in the clock ticks since boot that /proc/PID/stat's start time uses (-1 if unknown).
std::int64_t boot_ticks_now(const std::string& procfs);

// ---------------------------------------------------------------- worker identity

// How a fresh /proc/PID/stat relates to a process read before. A worker's identity is what it
// runs, not only its pid and start time: a hosting panel's starter script (FcgidWrapper
// .php-fcgi-starter: environment, then `exec php-cgi`) keeps both across its exec, and what was
// read of it before (command line, segments, uid) describes the script, not the php-cgi.
enum class Identity {
  Same,    // same pid, start time, name and image
  Execed,  // same pid and start time, another name or image: everything read must be read again
  Other,   // another process (pid or start time differ): the pid was reused
};
Identity compare_identity(const Worker& before, const ProcStat& now);

// What to read again of a process at one of its checks (a fresh /proc/PID/stat `now`), given what
// was read of it (`before`), the virtual size its segments were read at (`maps_vsize`,
// kMapsUnread if they could not be read) and how long ago it was read in full.
//  - Everything after an exec (or for another process): stat, status, cmdline and maps.
//  - Segments when the maps may have changed: php-cgi maps its segments while it starts (APCu's
//    32 MiB before OPcache's 64 MiB, with time between, so a read in between saw only APCu's).
//    For kSegmentsSettleMs after a full read, and as long as no segment was seen, a changed
//    virtual size means: read the maps again (a segment mapped changes it; an unchanged size
//    spares the costly maps read).
//  - Nothing otherwise.
enum class Reread { Nothing, Segments, Everything };
constexpr std::uint64_t kMapsUnread = UINT64_MAX;
constexpr std::int64_t kSegmentsSettleMs = 60000;
Reread reread_at_check(const Worker& before, std::uint64_t maps_vsize, std::int64_t ms_since_read,
                       const ProcStat& now);

// Clock ticks after boot (/proc/PID/stat's start time) in milliseconds, and now on that clock
// (CLOCK_BOOTTIME, which the kernel's start times count on; -1 if unavailable).
std::int64_t ticks_to_ms(std::uint64_t ticks);
std::int64_t boot_ms_now();

// When to look again whether a process started at `start_ms` has exec'd, after a look at `now_ms`
// (both on boot_ms_now()'s clock): once it is twice as old, and at least `min_gap_ms` later.
// Starter scripts exec early in a worker's life: an exec at age t is seen by age
// max(2t, t + min_gap_ms) (plus one sampler interval). A process is looked at about
// log2(lifetime / min_gap_ms) times in its life, so old workers cost nothing per sample, and a
// process that renames itself without exec (prctl) cannot make itself looked at more often.
std::int64_t next_exec_check_ms(std::int64_t start_ms, std::int64_t now_ms,
                                std::int64_t min_gap_ms);

struct ExecCheckDue {
  std::int64_t start_ms = 0;  // process start (boot_ms_now()'s clock)
  std::int64_t check_ms = 0;  // when its next look is due
};
// Which processes to look at now: those due (check_ms <= now_ms), at most `max` of them, youngest
// at their due time first (check_ms - start_ms), so that a backlog of old processes (a sampler
// that just started beside 1000 workers) never delays a new worker's look. Indices into `all`, in
// that order; ties in index order.
std::vector<std::size_t> pick_exec_checks(const std::vector<ExecCheckDue>& all, std::int64_t now_ms,
                                          std::size_t max);

// All numeric entries of <procfs>.
std::vector<int> list_pids(const std::string& procfs);
// Descendants of `root` (children, grandchildren...) among the given stats.
std::vector<int> descendants(const std::vector<ProcStat>& all, int root);
// Every process's stat (those that vanish meanwhile are skipped).
std::vector<ProcStat> read_all_stats(const std::string& procfs);

}  // namespace shmguard
