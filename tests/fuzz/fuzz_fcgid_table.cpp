// libFuzzer target: mod_fcgid's shared process table (core/fcgid.cpp) read without its lock.
// The table is mod_fcgid's memory, written by its process manager and every child: torn,
// changed or (a different layout) garbage. The input is the table's first bytes (the rest
// zero); every reader must stay in bounds, end, and count no more workers than were listed.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "shmguard/fcgid.hpp"

namespace {
bool any_alive(int) {
  return true;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace f = shmguard::fcgid;
  static std::vector<unsigned char> table(f::kSlots * f::kNodeSize);
  std::memset(table.data(), 0, table.size());
  std::memcpy(table.data(), data, std::min(size, table.size()));
  const auto nodes = f::read_table(table.data());
  // Three walks (idle, busy, error), each bounded: a torn table may list a node on several.
  const std::size_t most = 3 * static_cast<std::size_t>(f::kSlots);
  if (nodes.size() > most) std::abort();
  std::vector<f::NodeLite> lite;
  f::read_table_lite(table.data(), lite);
  if (lite.size() > most) std::abort();
  std::size_t listed = 0;
  for (const auto& n : nodes) {
    if (n.index < 0 || n.index >= f::kSlots) std::abort();
    if (n.cmdline.size() > f::off::cmdline_max || n.executable.size() > f::off::path_max)
      std::abort();
    listed += n.list != f::List::Error;
    (void)f::node_executable(table.data(), n.index);
    (void)f::class_hash_at(table.data(), n.index, n.pid, n.start_time_us);
  }
  // The class of the first listed node, and one that matches nothing.
  f::ClassKey key;
  if (!nodes.empty()) key = f::class_of(nodes.front());
  // -1: a key it cannot match (a command line of cmdline_max bytes, no NUL in the node).
  const int counted = f::count_class_workers(table.data(), key, any_alive);
  if (counted < -1 || counted > f::kSlots) std::abort();
  (void)f::count_class_workers(table.data(), f::ClassKey{}, nullptr);
  for (int index : {-1, 0, 4, f::kSlots - 1, f::kSlots, 1 << 30}) {
    (void)f::node_executable(table.data(), index);
    (void)f::class_hash_at(table.data(), index, 1, 0);
  }
  (void)listed;
  return 0;
}
