// mod_shmguard core: lean workers (ShmGuardAction degrade). The sampler publishes the headroom in
// a small state file; shmguard-php-wrapper, mod_fcgid's FcgidWrapper in front of php-cgi, reads it
// at spawn time and, when a full worker (OPcache + APCu) does not fit, starts php-cgi with smaller
// segments, OPcache in file-cache-only mode, or without them. The status page recognises such a
// worker by its command line (the -d settings and the marker -d shmguard.lean=1).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shmguard {

// ---------------------------------------------------------------- the state file
struct HeadroomState {
  std::int64_t sampled_ms = 0;  // wall clock of the sample
  bool bounded = false;         // a finite limit exists
  std::uint64_t headroom = 0;   // bytes
  std::uint64_t reserved = 0;   // bytes of admitted spawns no sample has seen yet
  std::string binding;
};
std::string format_headroom_state(const HeadroomState& s);
// nullopt (with a reason in `error`) for anything that is not a whole state file.
std::optional<HeadroomState> parse_headroom_state(std::string_view text, std::string* error);

// Does the state file count a reservation made before the segment's sample count read
// `samples_at_claim`? The sampler writes the file after it publishes each sample and before it
// takes the next, reading the reservations then: the file of sample samples_at_claim + 1 counts
// it, and is whole once sample samples_at_claim + 2 is published. A lean spawn the module asks
// for itself waits for that (the wrapper plans from the file).
bool state_counts_claim(std::uint64_t samples_at_claim, std::uint64_t samples_now);

// ---------------------------------------------------------------- the plan
struct LeanOptions {
  std::uint64_t opcache = 128ULL << 20;    // what a full worker's OPcache maps
  std::uint64_t apcu = 0;                  // what a full worker's APCu maps (0: no APCu)
  std::uint64_t lean_max = 48ULL << 20;    // a lean worker maps at most this (ShmGuardLeanReserve)
  std::uint64_t opcache_min = 8ULL << 20;  // PHP's smallest opcache.memory_consumption
  std::uint64_t apcu_min = 4ULL << 20;
  std::string file_cache;  // OPcache file cache directory, "" none
};

struct LeanPlan {
  bool lean = false;          // false: start the worker as configured
  std::uint64_t opcache = 0;  // bytes; 0 with file_cache_only or OPcache off
  bool opcache_file_only = false;
  bool opcache_off = false;
  std::uint64_t apcu = 0;             // bytes; 0: APCu off
  std::vector<std::string> php_args;  // "-d", "opcache.memory_consumption=48", ...
  std::string why;                    // for the log line
};

// Full when the room (headroom - reserved, or unbounded) holds opcache + apcu; else the largest
// lean worker within min(room, lean_max): APCu a quarter (>= apcu_min, else off), OPcache the
// rest (>= opcache_min, else file-cache-only when a directory is given, else off).
LeanPlan plan_lean(const std::optional<HeadroomState>& state, const LeanOptions& o);

// What a worker's command line says about it: lean (the marker) and its -d sizes.
struct LeanSettings {
  bool lean = false;
  std::optional<std::uint64_t> opcache;  // bytes (opcache.memory_consumption, MiB in PHP)
  std::optional<std::uint64_t> apcu;     // bytes (apc.shm_size)
  bool opcache_file_only = false, opcache_off = false, apcu_off = false;
  std::string describe() const;  // "OPcache 24.0 MiB, APCu 8.0 MiB" / "OPcache file cache only"
};
LeanSettings lean_settings(std::string_view cmdline);

// Why an OPcache file-cache directory (shmguard-php-wrapper --file-cache) must not be used, or ""
// when it may: a lean worker runs the compiled scripts it finds there, so a directory that another
// tenant can write lets that tenant plant code for this one. Required: a directory (not a
// symlink), owned by `uid` (the worker's own: a per-tenant directory under suEXEC), writable by
// nobody else (no group or other write bit).
std::string file_cache_problem(const std::string& dir, unsigned uid);

}  // namespace shmguard
