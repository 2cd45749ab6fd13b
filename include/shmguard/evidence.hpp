// mod_shmguard core: PHP's own words in the error log when a worker cannot get its shared memory.
// php-cgi's stderr is the main error log, unprefixed; httpd's own lines start with '['. A line
// counts only in PHP's exact format from its start, so a phrase inside a logged URL or an app's
// message in httpd's format is never evidence. (The guard also wants the OPcache line's pid to
// have exited, and an APCu line to come with a failure counter that rose: see guard.hpp.)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

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

}  // namespace shmguard
