// mod_shmguard core: System V shared memory limits and segments.
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

namespace {

// The key is printed with %10d: negative for keys with the top bit set.
std::optional<std::int64_t> parse_i64(std::string_view s) {
  bool neg = !s.empty() && s.front() == '-';
  if (neg) s.remove_prefix(1);
  auto v = parse_u64(s);
  if (!v) return std::nullopt;
  if (neg) {
    if (*v > std::uint64_t{INT64_MAX} + 1) return std::nullopt;
    return *v == std::uint64_t{INT64_MAX} + 1 ? INT64_MIN : -static_cast<std::int64_t>(*v);
  }
  if (*v > std::uint64_t{INT64_MAX}) return std::nullopt;
  return static_cast<std::int64_t>(*v);
}

}  // namespace

std::uint64_t Sysv::segments_bytes() const {
  std::uint64_t total = 0;
  if (!segments) return 0;
  for (const SysvSegment& s : *segments)
    if (__builtin_add_overflow(total, s.size, &total)) return UINT64_MAX;
  return total;
}

Result<std::vector<SysvSegment>> parse_sysvipc_shm(std::string_view text) {
  using R = Result<std::vector<SysvSegment>>;
  if (trim(text).empty()) return R::fail(malformed(1, "empty file"));
  std::vector<SysvSegment> out;
  std::vector<std::string_view> header;
  // Column index of each field, or -1 when the kernel does not print it.
  int c_key = -1, c_shmid = -1, c_size = -1, c_cpid = -1, c_nattch = -1, c_uid = -1, c_rss = -1,
      c_swap = -1;
  Lines lines(text);
  for (std::string_view line; lines.next(line);) {
    const std::size_t no = lines.number();
    if (trim(line).empty()) continue;
    std::vector<std::string_view> t = split_ws(line);
    if (header.empty()) {
      header = t;
      for (std::size_t i = 0; i < header.size(); ++i) {
        int idx = static_cast<int>(i);
        std::string_view h = header[i];
        if (h == "key")
          c_key = idx;
        else if (h == "shmid")
          c_shmid = idx;
        else if (h == "size")
          c_size = idx;
        else if (h == "cpid")
          c_cpid = idx;
        else if (h == "nattch")
          c_nattch = idx;
        else if (h == "uid")
          c_uid = idx;
        else if (h == "rss")
          c_rss = idx;
        else if (h == "swap")
          c_swap = idx;
      }
      const std::pair<const char*, int> required[] = {{"key", c_key},       {"shmid", c_shmid},
                                                      {"size", c_size},     {"cpid", c_cpid},
                                                      {"nattch", c_nattch}, {"uid", c_uid}};
      for (const auto& [name, idx] : required)
        if (idx < 0)
          return R::fail(
              malformed(no, std::string("header has no \"") + name + "\" column: " + quote(line)));
      continue;
    }
    if (t.size() != header.size())
      return R::fail(malformed(no, "expected " + std::to_string(header.size()) + " columns, got " +
                                       std::to_string(t.size()) + ": " + quote(line)));
    SysvSegment s;
    auto key = parse_i64(t[static_cast<std::size_t>(c_key)]);
    if (!key) return R::fail(malformed(no, "key is not a number: " + quote(t[c_key])));
    s.key = *key;
    const std::pair<int, std::uint64_t*> cols[] = {{c_shmid, &s.shmid},
                                                   {c_size, &s.size},
                                                   {c_cpid, &s.cpid},
                                                   {c_nattch, &s.nattch},
                                                   {c_uid, &s.uid}};
    for (const auto& [idx, dst] : cols) {
      std::string_view cell = t[static_cast<std::size_t>(idx)];
      auto v = parse_u64(cell);
      if (!v)
        return R::fail(malformed(no, std::string(header[static_cast<std::size_t>(idx)]) +
                                         " is not an unsigned number: " + quote(cell)));
      *dst = *v;
    }
    for (const auto& [idx, dst] :
         {std::pair<int, std::optional<std::uint64_t>*>{c_rss, &s.rss},
          std::pair<int, std::optional<std::uint64_t>*>{c_swap, &s.swap}}) {
      if (idx < 0) continue;
      std::string_view cell = t[static_cast<std::size_t>(idx)];
      auto v = parse_u64(cell);
      if (!v)
        return R::fail(malformed(no, std::string(header[static_cast<std::size_t>(idx)]) +
                                         " is not an unsigned number: " + quote(cell)));
      *dst = *v;
    }
    out.push_back(s);
  }
  return R::ok(std::move(out));
}

Result<Sysv> read_sysv(const std::string& procfs_in) {
  std::string procfs = procfs_in;
  while (procfs.size() > 1 && procfs.back() == '/') procfs.pop_back();
  Sysv sv;
  std::vector<std::string> errors;
  auto number = [&](const char* name, std::optional<std::uint64_t>& dst) {
    const std::string path = procfs + "/sys/kernel/" + name;
    auto text = read_file(path, 4096);
    if (!text) {
      errors.push_back(text.error);
      return;
    }
    std::string_view t = trim(*text.value);
    auto v = parse_u64(t);
    if (t.empty() || !v) {
      errors.push_back(malformed(1, "expected a number, got " + quote(t)) + " in " + path);
      return;
    }
    dst = *v;
  };
  number("shmmax", sv.shmmax);
  number("shmall", sv.shmall);
  number("shmmni", sv.shmmni);

  const std::string shm_path = procfs + "/sysvipc/shm";
  if (auto text = read_file(shm_path)) {
    auto segs = parse_sysvipc_shm(*text.value);
    if (segs)
      sv.segments = std::move(*segs.value);
    else
      errors.push_back(segs.error + " in " + shm_path);
  } else {
    errors.push_back(text.error);
  }

  if (!sv.shmmax && !sv.shmall && !sv.shmmni && !sv.segments) {
    std::string why;
    for (const std::string& e : errors) why += (why.empty() ? "" : "; ") + e;
    return Result<Sysv>::fail(why);
  }
  return Result<Sysv>::ok(std::move(sv));
}

}  // namespace shmguard
