// libFuzzer target: the decoder of the sampler's part of the status model (the shared segment's
// blob) must not crash, hang or throw on any input, and what it accepts must be exactly one
// encoding (it encodes back to the same bytes) that every writer can write.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "shmguard/status.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view blob(reinterpret_cast<const char*>(data), size);
  auto part = shmguard::decode_sampler_part(blob);
  if (!part) return 0;
  if (shmguard::encode_sampler_part(*part) != blob) std::abort();
  if (part->workers.first.size() != part->workers.rows.size() + 1) std::abort();
  shmguard::StatusModel m;
  m.part = std::move(part);
  (void)shmguard::write_status_html(m);
  (void)shmguard::write_status_json(m);
  (void)shmguard::write_status_auto(m);
  (void)shmguard::write_status_prometheus(m);
  return 0;
}
