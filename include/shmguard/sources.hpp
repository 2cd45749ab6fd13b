// mod_shmguard core: the kernel sources of shared-memory limits.
//
// Pure C++17, no httpd/APR header. Every parser takes the file's text and returns either the parsed
// value or a reason ("malformed at line 3: ..."); every reader takes paths derived from
// configurable roots (procfs, sysfs) so tests use fixture trees. Unavailable never means zero.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shmguard {

// A parse/read outcome: a value, or the reason there is none.
template <class T>
struct Result {
  std::optional<T> value;
  std::string error;  // set when !value: "missing", "permission denied", "malformed at line N: ..."

  static Result ok(T v) { return Result{std::move(v), {}}; }
  static Result fail(std::string why) { return Result{std::nullopt, std::move(why)}; }
  explicit operator bool() const { return value.has_value(); }
};

// Reads a whole (small) file. Errors are worded for admins: "missing: PATH", "permission denied:
// PATH", "unreadable: PATH: <strerror>". Files above max_bytes are refused, not truncated.
Result<std::string> read_file(const std::string& path, std::size_t max_bytes = 16 << 20);

// The first max_bytes of a file (a longer file is cut, not refused): for /proc/PID/cmdline, which
// any process can make as long as it likes.
Result<std::string> read_file_prefix(const std::string& path, std::size_t max_bytes);

// Reads `path` through `kept_fd`, a descriptor opened earlier (by the sampler while it still had
// the privilege to open it), from offset 0 with pread: a kernel seq file (/proc/user_beancounters)
// is generated anew, a regular file rewritten in place is read as it is now. The descriptor is
// used while `path` still names the same file, or when `path` can no longer be looked up by this
// process (EACCES/EPERM: /proc/bc is 0500 root); when `path` names another file now (replaced by a
// rename) or is gone, the path is read instead, like read_file. kept_fd < 0: read_file(path).
Result<std::string> read_kept_file(int kept_fd, const std::string& path,
                                   std::size_t max_bytes = 16 << 20);

// Replaces `path` with `text` so that a reader sees the old file or the new one, whole: a new file
// beside it, created exclusively under a random name (mkstemp: never a FIFO, link or file someone
// planted at a fixed temporary name), written, given `mode`, fsync'd when `durable`, renamed over
// `path`. An existing `path` that is not a regular file is left alone. False on any error (the
// temporary file is removed). The one atomic file replace (shmguard-probe's state, the sampler's
// headroom file for shmguard-php-wrapper).
bool replace_file(const std::string& path, std::string_view text, unsigned mode, bool durable);

// Strict unsigned decimal: digits only, no sign, no overflow past 2^64-1.
std::optional<std::uint64_t> parse_u64(std::string_view s);

// ---------------------------------------------------------------- beancounters (OpenVZ/Virtuozzo)

enum class BcUnit { Pages, Bytes, Count };
const char* to_string(BcUnit u);                     // "pages", "bytes", "count"
BcUnit beancounter_unit(std::string_view resource);  // *pages -> Pages, num* -> Count, else Bytes

struct BeancounterRow {
  std::string resource;
  std::uint64_t held = 0, maxheld = 0, barrier = 0, limit = 0, failcnt = 0;
  BcUnit unit = BcUnit::Bytes;
  // LONG_MAX (64-bit), 2147483647 (32-bit kernels) and 0 mean "no limit" (as vzubc reads them).
  bool barrier_unlimited() const;
  bool limit_unlimited() const;
};

struct BeancounterBlock {
  std::string id;  // "852638", "101", a name or UUID; "0" is the hardware node itself
  std::vector<BeancounterRow> rows;
  const BeancounterRow* find(std::string_view resource) const;
};

struct BeancounterFile {
  std::string version;        // "2.5"
  bool version_known = true;  // false: parsed because the columns matched, but not 2.5
  std::vector<BeancounterBlock> blocks;
};

// /proc/user_beancounters in all row layouts ("852638:  kmemsize", "101: kmemsize",
// "331:kmemsize").
Result<BeancounterFile> parse_user_beancounters(std::string_view text);
// A pasted copy of /proc/user_beancounters, read leniently (shmguard-probe --lenient; the module
// always reads the kernel's file with parse_user_beancounters / read_beancounter_block). Forgiven:
// a missing "Version:" line and/or column header, collapsed or changed spaces (tabs, Unicode
// no-break spaces from a web page or a chat), CR LF line ends, a byte-order mark, blank lines, and
// a line naming user_beancounters before the file (the command that printed it). The rows are read
// with the strict rules and error texts ("malformed at line N: ..."; N counts the input's lines).
// `notes` says, in words for the output, every way the text differs from what the kernel prints
// (the "Version:" line, the header and every row are compared with the kernel's printf layout);
// empty: the text is exactly the kernel's format. Without a "Version:" line, version is "" and
// version_known false.
struct LenientBeancounters {
  BeancounterFile file;
  std::vector<std::string> notes;
};
Result<LenientBeancounters> parse_user_beancounters_lenient(std::string_view text);
// VZ7 /proc/bc/<id>/resources: "resource held maxheld barrier limit failcnt" lines, no uid column.
Result<BeancounterBlock> parse_bc_resources(std::string_view text, std::string id);
// The block to use: `container` if given (error if absent), else the only block, else block "0".
Result<BeancounterBlock> select_beancounter_block(const BeancounterFile& f,
                                                  const std::optional<std::string>& container);

// One block of /proc/user_beancounters, as read_beancounter_block returns it.
struct BeancounterSelection {
  std::string version;        // as BeancounterFile
  bool version_known = true;  // as BeancounterFile
  std::size_t blocks_in_file = 0;
  BeancounterBlock block;  // the block select_beancounter_block would choose
};
// The fast path of parse_user_beancounters + select_beancounter_block for the sampler (a hardware
// node lists every container: 500 containers are ~1.5 MB, and one block is used). One pass: the
// Version line and the header are checked as the full parser does; every block's id is checked
// (valid, not a duplicate) and counted; only the rows of the candidate blocks are parsed (the
// `container` block; without one, the first block and block "0"), with the full parser's rules
// and error texts ("malformed at line N: ..."). The other blocks' rows are skipped without being
// split into lines or tokens, so ERRORS INSIDE THE ROWS OF SKIPPED BLOCKS ARE NOT DETECTED (bad
// numbers, resource names, truncated rows, an id with nothing after it): where the full parser
// fails on such an error, this returns the selected block. Otherwise the outcome is the full
// parser's and select_beancounter_block's: the same block, the same error texts.
Result<BeancounterSelection> read_beancounter_block(std::string_view text,
                                                    const std::optional<std::string>& container);

// ---------------------------------------------------------------- cgroup memory controller

struct CgroupLevel {
  std::string dir;                     // absolute directory of this cgroup level
  std::optional<std::uint64_t> limit;  // nullopt: unlimited ("max", v1 huge value) or unreadable
  std::optional<std::uint64_t> usage;
  // This level's own memory.stat (every level is read: an ancestor's limit binds with its own
  // cache): the file LRU lists and the dirty and writeback pages among them. v2: inactive_file,
  // active_file, file_dirty, file_writeback; v1: their total_* (hierarchical) keys, the local
  // keys where a level has no total_*. nullopt: not in the file, or memory.stat unreadable.
  std::optional<std::uint64_t> inactive_file = std::nullopt, active_file = std::nullopt,
                               dirty = std::nullopt, writeback = std::nullopt;
};

// The clean file cache of a level, which the kernel reclaims before it fails a charge or
// OOM-kills: inactive_file + active_file - dirty - writeback, never below 0 nor above usage.
// Shared memory (OPcache, APCu, tmpfs) is never in it: it sits on the anon LRU (measured, README
// "Memory cgroups"). nullopt when neither LRU figure was read (then nothing counts as
// reclaimable). A missing dirty or writeback figure counts as 0.
std::optional<std::uint64_t> cgroup_reclaimable(const CgroupLevel& level);

// One line of a PSI file (Documentation/accounting/psi.rst; kernel/sched/psi.c psi_show prints
// "%s avg10=%lu.%02lu avg60=%lu.%02lu avg300=%lu.%02lu total=%llu"): the share of time tasks were
// stalled over the last 10, 60 and 300 s, in hundredths of a percent (12.34 % -> 1234; at most
// 100.99 as the kernel's LOAD_INT.LOAD_FRAC can print it), and the total stall time in us.
struct PsiLine {
  std::uint32_t avg10 = 0, avg60 = 0, avg300 = 0;
  std::uint64_t total_us = 0;
};
// A cgroup v2 memory.pressure: "some" (at least one task stalled on memory) and "full" (all
// non-idle tasks stalled at once: the cgroup is thrashing).
struct Psi {
  std::optional<PsiLine> some, full;
};
// Parses a PSI file ("some ..." and "full ..." lines). Every line must be "some" or "full"
// followed by avg10=, avg60=, avg300= (a number with exactly two decimals, at most 100.99) and
// total= (an unsigned 64-bit number), each once; other key=value tokens are ignored (a future
// kernel's), anything else, a repeated line or key, or no "some" line is an error.
Result<Psi> parse_psi(std::string_view text);
// "12.34" for 1234 (a PsiLine average).
std::string psi_percent(std::uint32_t hundredths);

struct CgroupMemory {
  int version = 0;                     // 1 or 2
  std::string dir;                     // the process's own memory cgroup directory
  std::optional<std::uint64_t> limit;  // own level; nullopt = unlimited
  std::optional<std::uint64_t> usage;
  std::optional<std::uint64_t> shmem, file, anon;  // memory.stat (v1: total_shmem preferred)
  // v2 memory.events (max, oom, oom_kill); v1 has oom_kill alone, in memory.oom_control.
  std::optional<std::uint64_t> events_max, events_oom, events_oom_kill;
  std::optional<std::uint64_t> failcnt;  // v1 memory.failcnt: every time usage hit the limit
  // v2 memory.pressure of the own level (PSI; v1 has none). nullopt: v1, no such file (a kernel
  // without CONFIG_PSI or booted psi=0), or it did not parse. Shown and warned about, never a
  // reason to refuse (README "Memory cgroups").
  std::optional<Psi> pressure = std::nullopt;
  // The own level first, then every ancestor up to the mount root: a parent's limit binds too.
  std::vector<CgroupLevel> levels;
};

// Parse "/proc/self/cgroup": returns the v2 path ("0::/x") and the v1 memory path ("4:memory:/x").
struct ProcCgroup {
  std::optional<std::string> v2_path;
  std::optional<std::string> v1_memory_path;
};
Result<ProcCgroup> parse_proc_cgroup(std::string_view text);

// Mount points from /proc/self/mountinfo: where cgroup2 and the v1 memory controller are mounted,
// with the mount's root (field 4) so a namespaced path can be mapped.
struct CgroupMounts {
  std::optional<std::string> v2_mount, v2_root;
  std::optional<std::string> v1_memory_mount, v1_memory_root;
};
Result<CgroupMounts> parse_mountinfo(std::string_view text);

// "key value" lines (memory.stat, memory.events).
Result<std::map<std::string, std::uint64_t>> parse_flat_keyed(std::string_view text);

// memory.max ("max" or bytes) and v1 memory.limit_in_bytes (>= 2^62 means unlimited).
// Returns nullopt inside the Result for unlimited.
Result<std::optional<std::uint64_t>> parse_cgroup_limit(std::string_view text);

struct CgroupOptions {
  enum class Mode { Auto, Off, Dir } mode = Mode::Auto;
  std::string
      dir;  // with Mode::Dir: the cgroup directory to read (v2 if memory.max exists, else v1)
};
// Finds the cgroup from <procfs>/self/cgroup and <procfs>/self/mountinfo (falling back to
// <sysfs>/fs/cgroup, /unified and /memory), then reads it. Mode::Off: error "off".
Result<CgroupMemory> read_cgroup(const std::string& procfs, const std::string& sysfs,
                                 const CgroupOptions& opt);

// ---------------------------------------------------------------- overcommit

struct Overcommit {
  int mode = 0;  // /proc/sys/vm/overcommit_memory: 0 heuristic, 1 always, 2 strict
  std::optional<std::uint64_t> commit_limit, committed_as, shmem, mem_available,
      mem_total;  // bytes
};
// /proc/meminfo: "Key:   123 kB" lines, values returned in bytes (kB * 1024; lines without kB as
// is).
Result<std::map<std::string, std::uint64_t>> parse_meminfo(std::string_view text);
Result<Overcommit> read_overcommit(const std::string& procfs);

// ---------------------------------------------------------------- SysV shared memory

struct SysvSegment {
  std::int64_t key = 0;
  std::uint64_t shmid = 0, size = 0, cpid = 0, nattch = 0, uid = 0;
  std::optional<std::uint64_t> rss, swap;  // newer kernels only
};
struct Sysv {
  std::optional<std::uint64_t> shmmax;               // bytes
  std::optional<std::uint64_t> shmall;               // pages
  std::optional<std::uint64_t> shmmni;               // segments
  std::optional<std::vector<SysvSegment>> segments;  // nullopt: /proc/sysvipc/shm unreadable
  std::uint64_t segments_bytes() const;
};
// /proc/sysvipc/shm with the old (no rss/swap) and new column sets; columns found by header name.
Result<std::vector<SysvSegment>> parse_sysvipc_shm(std::string_view text);
// Error only when every SysV file is unreadable.
Result<Sysv> read_sysv(const std::string& procfs);

// ---------------------------------------------------------------- /dev/shm

struct DevShm {
  std::string path;
  std::uint64_t total = 0, free = 0, avail = 0;  // bytes
};
Result<DevShm> read_devshm(const std::string& path);

}  // namespace shmguard
