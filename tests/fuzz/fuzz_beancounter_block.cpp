// libFuzzer target, differential: read_beancounter_block (the sampler's single-block reader)
// against parse_user_beancounters + select_beancounter_block. When the full parser accepts the
// text, the fast reader must return the identical selected block (or the identical selection error)
// for no container, every id in the file and an absent one. Whatever the text, its result must
// equal the oracle's (tests/unit/beancounter_oracle.hpp: the full parser on the text with the
// skipped blocks' rows made valid), and it must never crash, hang or throw.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "../unit/beancounter_oracle.hpp"
#include "shmguard/sources.hpp"

using namespace shmguard;
using namespace shmguard_test;

namespace {
void check(bool ok) {
  if (!ok) __builtin_trap();
}

void check_error(const std::string& e) {
  check(e.rfind("malformed at line ", 0) == 0 || e.rfind("no block for container ", 0) == 0 ||
        e.find(" beancounter blocks and none is the host's '0'") != std::string::npos);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);

  std::vector<std::optional<std::string>> containers = {std::nullopt, std::string("no such id")};
  std::vector<std::string> ids = bc_block_ids(text);
  for (std::size_t i = 0; i < ids.size() && i < 8; ++i) containers.emplace_back(ids[i]);
  if (ids.size() > 8) containers.emplace_back(ids.back());

  Result<BeancounterFile> f = parse_user_beancounters(text);
  for (const auto& c : containers) {
    Result<BeancounterSelection> fast = read_beancounter_block(text, c);
    if (fast) {
      check(fast.error.empty());
      check(!fast.value->block.id.empty() && !fast.value->block.rows.empty());
      check(fast.value->blocks_in_file >= 1);
      check(fast.value->version_known == (fast.value->version == "2.5"));
      if (c) check(fast.value->block.id == *c);
    } else {
      check_error(fast.error);
    }
    if (f) {
      Result<BeancounterBlock> b = select_beancounter_block(*f.value, c);
      Result<BeancounterSelection> ref =
          b ? Result<BeancounterSelection>::ok(BeancounterSelection{
                  f.value->version, f.value->version_known, f.value->blocks.size(), *b.value})
            : Result<BeancounterSelection>::fail(b.error);
      check(bc_same(fast, ref));
    }
    check(bc_same(fast, bc_expected(text, c)));
  }
  return 0;
}
