// mod_shmguard core: the kernel's commit accounting (vm.overcommit_memory and /proc/meminfo).
#include <cstdio>
#include <utility>

#include "text.hpp"
#include "shmguard/sources.hpp"

namespace shmguard {
using text::is_space;
using text::Lines;
using text::malformed;
using text::quote;
using text::split_ws;
using text::trim;

namespace {}  // namespace

Result<std::map<std::string, std::uint64_t>> parse_meminfo(std::string_view text) {
  using R = Result<std::map<std::string, std::uint64_t>>;
  if (trim(text).empty()) return R::fail(malformed(1, "empty file"));
  std::map<std::string, std::uint64_t> out;
  Lines lines(text);
  for (std::string_view line; lines.next(line);) {
    const std::size_t no = lines.number();
    if (trim(line).empty()) continue;
    std::size_t colon = line.find(':');
    std::string_view key = colon == std::string_view::npos ? line : trim(line.substr(0, colon));
    if (colon == std::string_view::npos || key.empty() ||
        key.find_first_of(" \t") != std::string_view::npos)
      return R::fail(malformed(no, "expected \"Key: value [kB]\", got " + quote(line)));
    std::vector<std::string_view> t = split_ws(line.substr(colon + 1));
    if (t.empty() || t.size() > 2 || (t.size() == 2 && t[1] != "kB"))
      return R::fail(malformed(no, "expected \"Key: value [kB]\", got " + quote(line)));
    auto v = parse_u64(t[0]);
    if (!v)
      return R::fail(
          malformed(no, "value of " + quote(key) + " is not an unsigned number: " + quote(t[0])));
    std::uint64_t bytes = *v;
    if (t.size() == 2 && __builtin_mul_overflow(*v, std::uint64_t{1024}, &bytes))
      return R::fail(malformed(
          no, "value of " + quote(key) + " overflows 64 bits in bytes: " + quote(t[0]) + " kB"));
    out.emplace(std::string(key), bytes);
  }
  return R::ok(std::move(out));
}

Result<Overcommit> read_overcommit(const std::string& procfs_in) {
  std::string procfs = procfs_in;
  while (procfs.size() > 1 && procfs.back() == '/') procfs.pop_back();
  Overcommit oc;

  const std::string mode_path = procfs + "/sys/vm/overcommit_memory";
  auto mode_text = read_file(mode_path, 4096);
  if (!mode_text) return Result<Overcommit>::fail(mode_text.error);
  std::string_view mt = trim(*mode_text.value);
  auto mode = parse_u64(mt);
  if (mt.empty() || !mode || *mode > 2)
    return Result<Overcommit>::fail(malformed(1, "expected 0, 1 or 2, got " + quote(mt)) + " in " +
                                    mode_path);
  oc.mode = static_cast<int>(*mode);

  const std::string mi_path = procfs + "/meminfo";
  auto mi_text = read_file(mi_path);
  if (!mi_text) return Result<Overcommit>::fail(mi_text.error);
  auto mi = parse_meminfo(*mi_text.value);
  if (!mi) return Result<Overcommit>::fail(mi.error + " in " + mi_path);
  auto get = [&](const char* key) -> std::optional<std::uint64_t> {
    auto it = mi.value->find(key);
    if (it == mi.value->end()) return std::nullopt;
    return it->second;
  };
  oc.commit_limit = get("CommitLimit");
  oc.committed_as = get("Committed_AS");
  oc.shmem = get("Shmem");
  oc.mem_available = get("MemAvailable");  // absent before Linux 3.14
  oc.mem_total = get("MemTotal");
  return Result<Overcommit>::ok(std::move(oc));
}

}  // namespace shmguard
