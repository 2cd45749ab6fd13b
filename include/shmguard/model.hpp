// mod_shmguard core: one snapshot of every source, and the headroom model over it.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shmguard/sources.hpp"

namespace shmguard {

struct ProbeConfig {
  std::string procfs = "/proc";
  std::string sysfs = "/sys";
  std::string beancounters;  // empty: <procfs>/user_beancounters
  bool beancounters_off = false;
  // Read the beancounter file as a pasted copy (parse_user_beancounters_lenient): shmguard-probe
  // --lenient only; the module always reads the kernel's file strictly.
  bool beancounters_lenient = false;
  std::optional<std::string> container;
  std::string devshm = "/dev/shm";
  CgroupOptions cgroup;
  std::uint64_t page_size = 0;  // 0: the machine's page size
  // Descriptors opened before privileges were dropped (the sampler's; -1: none), read from offset 0
  // while their path still names them (read_kept_file): the beancounter file, and VZ7's
  // <procfs>/bc/<container>/resources. Not owned.
  int beancounters_fd = -1;
  int bc_resources_fd = -1;
};

struct Unavail {
  std::string source;  // "beancounter", "cgroup", "overcommit", "sysv", "devshm"
  std::string reason;
};

// The limits that refuse a new shared anonymous mapping (what OPcache allocates), as the shared
// segment stores the binding one (an int32).
enum class BindingLimit : std::int32_t { None = 0, Shmpages, Privvmpages, Cgroup, Overcommit };
// "beancounter:shmpages", "beancounter:privvmpages", "cgroup:memory", "overcommit"; "" for None.
const char* binding_name(BindingLimit b);
BindingLimit binding_limit(std::string_view name);  // None for any other name

// One limit that refuses a new shared anonymous mapping.
struct Limit {
  std::string name;           // binding_name() of its BindingLimit
  std::uint64_t limit_bytes;  // the value the kernel compares against (barrier for beancounters)
  std::uint64_t used_bytes;   // what counts against it (a cgroup: usage - reclaimable)
  // A memory cgroup: its clean file cache, which the kernel reclaims before it fails a charge
  // (usage = used_bytes + this). nullopt for the other limits, and for a cgroup whose memory.stat
  // was not read (nothing counted as reclaimable).
  std::optional<std::uint64_t> reclaimable_bytes = std::nullopt;
  std::uint64_t headroom_bytes() const {
    return used_bytes >= limit_bytes ? 0 : limit_bytes - used_bytes;
  }
};

// A failure counter and how it moved.
struct Counter {
  std::string name;  // "beancounter:shmpages:failcnt", "cgroup:oom_kill", ...
  std::uint64_t value = 0;
  std::uint64_t since_start = 0;  // rise since the tracker first saw it
  std::uint64_t last_minute = 0;  // rise over the last 60 s
};

struct Beancounters {
  std::string file;  // the path read
  std::string version;
  bool version_known = true;
  std::size_t blocks_in_file = 1;
  BeancounterBlock block;  // the block in use
  // Read leniently (ProbeConfig::beancounters_lenient): how the file differs from the kernel's
  // exact format (empty: it is exactly what the kernel prints). Always empty when read strictly.
  bool lenient = false;
  std::vector<std::string> format_notes;
};

struct Snapshot {
  std::int64_t taken_at_ms = 0;  // wall clock, ms since the epoch
  std::uint64_t page_size = 4096;
  std::optional<Beancounters> beancounters;
  std::optional<CgroupMemory> cgroup;
  std::optional<Overcommit> overcommit;
  std::optional<Sysv> sysv;
  std::optional<DevShm> devshm;
  std::vector<Unavail> unavailable;

  // The model: every finite limit, the smallest headroom among them and its name.
  std::vector<Limit> limits;
  std::optional<std::uint64_t> headroom_bytes;  // nullopt: no finite limit known
  std::string binding;                          // "" when headroom_bytes is nullopt
  const Limit* binding_limit() const;
  std::vector<Counter> counters;  // failure counters (filled by FailcntTracker::observe)
};

// Wall clock, ms since the epoch (what Snapshot::taken_at_ms and the shared segment use).
std::int64_t now_ms();
// Monotonic clock, ms (for intervals, deadlines and ages that a clock step must not move).
std::int64_t mono_ms();

// Reads every source (never throws for kernel-file problems: they go to `unavailable`).
Snapshot probe(const ProbeConfig& cfg);

// Fills limits / headroom_bytes / binding from the sources already in the snapshot.
void compute_headroom(Snapshot& s);
// Sets headroom_bytes / binding from the limits already in the snapshot: the tightest wins
// (compute_headroom ends with it).
void choose_binding(Snapshot& s);

// Raw failure counters present in a snapshot (value only), in a stable order.
std::vector<Counter> raw_counters(const Snapshot& s);

// Whether a counter of raw_counters() counts real failures: every beancounter failcnt (a refused
// allocation), cgroup:oom and cgroup:oom_kill. Not v1's cgroup:failcnt nor v2's cgroup:max: they
// count every time usage reached the limit, i.e. every reclaim of a full page cache, with nothing
// failing (measured: README "Memory cgroups"). Only failures are evidence, warnings or findings.
bool counter_is_failure(std::string_view name);

// Tracks failure counters over time: delta since start and over the last minute.
class FailcntTracker {
 public:
  explicit FailcntTracker(std::int64_t window_ms = 60000) : window_ms_(window_ms) {}
  // Records the snapshot's counters at now_ms and writes the deltas into s.counters.
  void observe(std::int64_t now_ms, Snapshot& s);

 private:
  struct Sample {
    std::int64_t at_ms;
    std::vector<Counter> values;
  };
  std::int64_t window_ms_;
  std::vector<Counter> first_;
  std::deque<Sample> history_;
};

// Across failed reads, a limit source (beancounter, cgroup, overcommit) that was read before keeps
// its last good reading for at most bound_ms (the guard's staleness bound): one empty or torn read
// (a beancounter file rewritten in place, a cgroup file between two writes) must not make the
// sample "no limit", which would let every spawn through. The source stays listed in
// `unavailable` (its reason then says the last good reading is used, and how old it is). Past the
// bound the reading is dropped: the source is unavailable, its limit no longer applies, and the
// guard fails open on it as documented. The sampler's; shmguard-probe reads once and holds nothing.
class LastGoodReadings {
 public:
  struct Event {
    enum class Kind { Held, Expired, Back } kind;
    std::string source;       // "beancounter", "cgroup", "overcommit"
    std::string reason;       // why the read failed (Held, Expired)
    std::int64_t age_ms = 0;  // of the last good reading (Held, Expired); of the outage (Back)
  };
  // Fills each source that failed in `s` from its last good reading when that is at most
  // bound_ms older than s.taken_at_ms, recomputes the headroom, and remembers the sources read
  // now. Returns the transitions (first failure held, held reading given up, readable again),
  // one event per source per transition.
  std::vector<Event> apply(Snapshot& s, std::int64_t bound_ms);

 private:
  template <class T>
  struct Kept {
    std::optional<T> value;
    std::int64_t at_ms = 0;
    bool failing = false, expired = false;
    std::int64_t failing_since_ms = 0;
  };
  Kept<Beancounters> beancounters_;
  Kept<CgroupMemory> cgroup_;
  Kept<Overcommit> overcommit_;
  template <class T>
  void keep(const char* source, std::optional<T>& now, Kept<T>& kept, Snapshot& s,
            std::int64_t bound_ms, std::vector<Event>& out);
};

}  // namespace shmguard
