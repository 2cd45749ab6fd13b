// mod_shmguard core: PHP's own words in the error log when a worker cannot get its shared memory.
// php-cgi's stderr is the main error log, unprefixed; httpd's own lines start with '['. A line
// counts only in PHP's exact format from its start, so a phrase inside a logged URL or an app's
// message in httpd's format is never evidence. (The guard also wants the OPcache line's pid to
// have exited, and an APCu line to come with a failure counter that rose: see rules.hpp.)
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shmguard {

enum class ShmErrorSource : std::uint8_t { Opcache, Apcu };

struct PhpShmError {
  ShmErrorSource source = ShmErrorSource::Opcache;
  std::uint64_t bytes = 0;
  int pid = 0;          // OPcache's line names its pid; APCu's does not (0)
  std::string model;    // OPcache: "mmap", "shm", ...
  std::string message;  // OPcache: "Cannot allocate memory (12)"
};

// OPcache (php-src zend_accelerator_debug.c + zend_shared_alloc.c), asctime, pid, label, text:
//   "Fri Nov 27 14:16:30 2026 (12958): Fatal Error Unable to allocate shared memory segment of
//    1073741824 bytes: mmap: Cannot allocate memory (12)"
// APCu (apc_mmap.c, an E_CORE_ERROR logged by php-cgi at startup):
//   "PHP Fatal error:  apc_mmap: Failed to mmap 33554432 bytes. Is your apc.shm_size too large?
//    in Unknown on line 0"   (5.1.25+: "... bytes. apc.shm_size may be too large. ...")
std::optional<PhpShmError> parse_php_shm_error(std::string_view line);

// OPcache lines read from the error log, waiting for their pid to exit (php-cgi exits right after
// its line; a live process writing it is not dying of it). Any tenant's code can write PHP's exact
// line to its stderr (the main error log), naming any pid. So a line counts only when its pid is
// a mod_fcgid worker (`is_worker`: in the table now or in a recent walk, as the sampler knows) and
// has exited; at most one line per pid waits; a line whose pid is not known as a worker yet (the
// process manager may link a new worker's node a moment after it starts) waits in a small queue of
// its own, so lines naming other pids (pid 1, pids that never existed) can neither count nor
// crowd out a worker's line; every line waits at most kWaitMs.
class PhpErrorQueue {
 public:
  static constexpr std::size_t kMaxWorkerLines = 1024;  // mod_fcgid's table holds 1024 workers
  static constexpr std::size_t kMaxUnknownLines = 64;
  static constexpr std::int64_t kWaitMs = 5000;
  struct Line {
    int pid = 0;
    std::uint64_t bytes = 0;
    std::int64_t seen_ms = 0;
  };
  // A line just read. Dropped when its pid already has one waiting; else queued (as a worker's
  // when is_worker says so); a full queue drops its oldest line of the same kind.
  void offer(const Line& line, const std::function<bool(int)>& is_worker);
  // The lines that count now, oldest first: a worker's (is_worker is asked again for the lines
  // not known as a worker's yet) whose pid `exited`. Lines older than kWaitMs are dropped.
  std::vector<Line> settle(std::int64_t now_ms, const std::function<bool(int)>& is_worker,
                           const std::function<bool(int)>& exited);
  // Is every worker's line's pid gone already (nothing worth waiting for)?
  bool all_exited(const std::function<bool(int)>& exited) const;
  bool empty() const { return workers_.empty() && unknown_.empty(); }
  std::size_t size() const { return workers_.size() + unknown_.size(); }

 private:
  bool waiting(int pid) const;
  std::deque<Line> workers_, unknown_;
};

}  // namespace shmguard
