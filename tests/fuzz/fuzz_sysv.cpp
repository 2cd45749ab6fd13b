// libFuzzer target: parse_sysvipc_shm must not crash, hang or throw; failures carry a reason.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "shmguard/sources.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = shmguard::parse_sysvipc_shm(text);
  if (!r && r.error.compare(0, 18, "malformed at line ") != 0) std::abort();
  if (r) {
    shmguard::Sysv s;
    s.segments = *r.value;
    std::uint64_t total = 0;
    for (const auto& seg : *r.value)
      total = seg.size > UINT64_MAX - total ? UINT64_MAX : total + seg.size;
    if (s.segments_bytes() != total) std::abort();
  }
  return 0;
}
