// libFuzzer target: parse_php_shm_error reads lines any tenant's PHP or any client's URL can put in
// the error log. It must not crash, hang or throw; what it accepts must be PHP's own format from
// the line's start (OPcache with its pid, or APCu), and a line that starts with
// httpd's '[' (an URL logged by httpd) is never evidence.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "shmguard/evidence.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  auto e = shmguard::parse_php_shm_error(line);
  if (!e) return 0;
  if (!line.empty() && line.front() == '[') std::abort();
  if (e->source == shmguard::ShmErrorSource::Opcache) {
    if (e->pid <= 0 ||
        line.find("Unable to allocate shared memory segment of ") == std::string_view::npos)
      std::abort();
  } else {
    if (e->pid != 0 || line.rfind("PHP Fatal error:  apc_mmap: Failed to mmap ", 0) != 0)
      std::abort();
  }
  // Parsing what was accepted again gives the same result (no hidden state).
  auto again = shmguard::parse_php_shm_error(line);
  if (!again || again->bytes != e->bytes || again->pid != e->pid || again->model != e->model ||
      again->message != e->message)
    std::abort();
  return 0;
}
