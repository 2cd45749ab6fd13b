// libFuzzer target: the beancounter parsers and block selection must never crash, hang or throw,
// and what they accept must be self-consistent.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "shmguard/sources.hpp"

using namespace shmguard;

namespace {
void check(bool ok) {
  if (!ok) __builtin_trap();
}

void check_error(const std::string& e) {
  check(e.rfind("malformed at line ", 0) == 0);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);

  Result<BeancounterFile> f = parse_user_beancounters(text);
  if (f) {
    check(f.error.empty());
    check(!f.value->blocks.empty());
    check(f.value->version_known == (f.value->version == "2.5"));
    for (const BeancounterBlock& b : f.value->blocks) {
      check(!b.id.empty() && b.id.find(':') == std::string::npos);
      check(!b.rows.empty());
      for (const BeancounterRow& r : b.rows) {
        check(b.find(r.resource) != nullptr);
        check(r.unit == beancounter_unit(r.resource));
        (void)r.barrier_unlimited();
        (void)r.limit_unlimited();
        (void)to_string(r.unit);
      }
      Result<BeancounterBlock> s = select_beancounter_block(*f.value, b.id);
      check(s && s.value->id == b.id && s.value->rows.size() == b.rows.size());
    }
    Result<BeancounterBlock> any = select_beancounter_block(*f.value, std::nullopt);
    check(any || !any.error.empty());
    Result<BeancounterBlock> none = select_beancounter_block(*f.value, std::string("no such id"));
    check(!none && !none.error.empty());
  } else {
    check_error(f.error);
  }

  Result<BeancounterBlock> r = parse_bc_resources(text, "101");
  if (r) {
    check(r.value->id == "101");
    check(!r.value->rows.empty());
  } else {
    check_error(r.error);
  }
  return 0;
}
