// libFuzzer target: parse_meminfo must not crash, hang or throw; failures carry a reason.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "shmguard/sources.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = shmguard::parse_meminfo(text);
  if (!r && r.error.compare(0, 18, "malformed at line ") != 0) std::abort();
  if (r && r.value->empty()) std::abort();  // a parsed file has at least one key
  return 0;
}
