// libFuzzer target: the process-side parsers (/proc/PID/maps, /proc/PID/stat, PHP's error line)
// must not crash, hang or throw on any input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "shmguard/evidence.hpp"
#include "shmguard/workers.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto maps = shmguard::parse_maps_shared(text);
  if (!maps && maps.error.compare(0, 18, "malformed at line ") != 0) std::abort();
  if (maps)
    for (const auto& seg : *maps.value)
      if (seg.kind.empty()) std::abort();
  auto st = shmguard::parse_proc_stat(text);
  if (st && st.value->pid < 0) std::abort();
  auto php = shmguard::parse_php_shm_error(text);
  if (php && php->source == shmguard::ShmErrorSource::Opcache && php->pid <= 0) std::abort();
  return 0;
}
