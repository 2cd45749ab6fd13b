// libFuzzer target: the lenient reading of a pasted /proc/user_beancounters must never crash, hang
// or throw, and must agree with the strict parser: a text it calls exact (no notes) is one the
// strict parser reads the same way, and an ASCII text the strict parser reads it reads the same
// way.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "shmguard/sources.hpp"

using namespace shmguard;

namespace {
void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool same_blocks(const BeancounterFile& a, const BeancounterFile& b) {
  if (a.blocks.size() != b.blocks.size() || a.version != b.version) return false;
  for (std::size_t i = 0; i < a.blocks.size(); ++i) {
    const BeancounterBlock &x = a.blocks[i], &y = b.blocks[i];
    if (x.id != y.id || x.rows.size() != y.rows.size()) return false;
    for (std::size_t j = 0; j < x.rows.size(); ++j) {
      const BeancounterRow &r = x.rows[j], &s = y.rows[j];
      if (r.resource != s.resource || r.held != s.held || r.maxheld != s.maxheld ||
          r.barrier != s.barrier || r.limit != s.limit || r.failcnt != s.failcnt)
        return false;
    }
  }
  return true;
}

bool ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  Result<LenientBeancounters> l = parse_user_beancounters_lenient(text);
  Result<BeancounterFile> strict = parse_user_beancounters(text);
  if (!l) {
    check(l.error.rfind("malformed at line ", 0) == 0);
    check(!strict || !ascii(text));
    return 0;
  }
  check(l.error.empty() && !l.value->file.blocks.empty());
  for (const std::string& n : l.value->notes) check(!n.empty());
  if (l.value->notes.empty()) check(strict && same_blocks(*strict.value, l.value->file));
  if (strict && ascii(text)) check(same_blocks(*strict.value, l.value->file));
  return 0;
}
