// mod_shmguard sampler: the one privileged piece. Runs in a process forked by the httpd parent
// (root) for each server generation; reads every limit through the core, watches the error log for
// PHP's allocation-failure line, and publishes to the children through the shared segment.
// No httpd header: logging goes through a callback.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shm/segment.hpp"
#include "shmguard/model.hpp"

namespace shmguard::sampler {

struct Config {
  ProbeConfig probe;
  std::int64_t interval_ms = 500;
  bool warn_is_percent = true;
  double warn_percent = 25.0;
  std::uint64_t warn_bytes = 0;
  std::string error_log;                       // "" when the error log is not a file
  const unsigned char* fcgid_table = nullptr;  // mod_fcgid's process table, if reachable
  int wake_fd = -1;                            // readable when a child asks for a fresh scan
  int parent_pid = 0;                          // exit when the parent is gone
  std::string state_file;  // headroom for shmguard-php-wrapper (ShmGuardAction degrade), or ""
  // The error log opened (read-only) before privileges were dropped, and an inotify descriptor
  // already watching it; -1: LogTail opens `error_log` itself. Owned by the LogTail from then on.
  int error_log_fd = -1;
  int error_log_watch_fd = -1;
  bool full_commands = false;        // ShmGuardStatusCommands full: whole command lines on the page
  std::size_t status_max_bytes = 0;  // bound of the encoded status part (the blob's size)
  // ShmGuardFpmPool: (socket, pm.status_path) of PHP-FPM pools whose status the page shows.
  std::vector<std::pair<std::string, std::string>> fpm_pools;
  // The same pools' FPM error logs (path, or "" none; the descriptor opened while root, or -1),
  // one per pool in the same order.
  std::vector<std::pair<std::string, int>> fpm_logs;
  // The Unix sockets of the PHP-FPM pools this server proxies to (the server configuration's
  // mod_proxy_fcgi targets and ShmGuardFpmPool's): only their processes are listed as PHP-FPM's.
  std::vector<std::string> fpm_sockets;
};

enum class Level { Debug, Info, Notice, Warning, Error };
using Logger = std::function<void(Level, const std::string&)>;

// The sampler's exit status when a log it was given opened (FPM's, opened while root) was
// rotated: the parent starts a new sampler, which opens the new file while root.
constexpr int kExitReopen = 75;

// Runs until stop() returns true or the parent is gone (0), or until a log it was given opened
// was rotated (kExitReopen). Never throws.
int run(const Config& cfg, shm::Segment* seg, const Logger& log, const std::function<bool()>& stop);

// Follows a growing file from its end, line by line. When the file shrinks (rotated or cut in
// place) it goes on from the new end: what is in the file then was written before, and old lines
// must not be taken for new evidence.
class LogTail {
 public:
  explicit LogTail(std::string path);
  // Adopts `fd` (the file, opened read-only) and `watch_fd` (inotify watching it, or -1), opened
  // while the process could still open the file; the path is then never opened again. fd < 0:
  // as LogTail(path).
  LogTail(std::string path, int fd, int watch_fd);
  ~LogTail();
  LogTail(const LogTail&) = delete;
  LogTail& operator=(const LogTail&) = delete;
  // Reads what was appended since the last call; calls on_line for each complete line (valid
  // during the call only).
  void poll(const std::function<void(std::string_view)>& on_line);
  // The path names another file than the one followed, and that file has something in it: the
  // log was renamed away and its writer reopened it (logrotate, then SIGUSR1 to FPM). A tail
  // that opened the path itself reopens it in poll(); an adopted descriptor cannot be reopened
  // without the privileges it was opened with: true then.
  bool replaced() const;
  int notify_fd() const { return inotify_fd_; }  // readable after the file changed, or -1

 private:
  bool open_file();
  void start_at_end();
  std::string path_;
  int fd_ = -1, inotify_fd_ = -1;
  bool adopted_ = false;  // fd_ came from the constructor: never reopened by path
  std::uint64_t offset_ = 0;
  std::string partial_;
};

}  // namespace shmguard::sampler
