// mod_shmguard core: OpenVZ/Virtuozzo beancounters (/proc/user_beancounters,
// /proc/bc/<id>/resources).
//
// Formats, from the OpenVZ kernels' kernel/bc/proc.c:
//   header  "Version: 2.5\n" then head_fmt "%10s  %-12s %20s %20s %20s %20s %20s\n"
//           (uid resource held maxheld barrier limit failcnt; %10s on 32-bit kernels)
//   OpenVZ 6 rows  "%10s  %-12s %20lu %20lu %20lu %20lu %20lu\n", uid "852638:" on the first row of
//   a
//                  block, "" on the others
//   VZ7 rows       "%10s%c %-12s %20lu ...", the beancounter name and ':' on the first row (a name
//                  longer than 10 characters is not padded), "" and ' ' on the others
//   /proc/bc/<id>/resources: the VZ7/OpenVZ 6 row format with no uid (show_uid = 0), no header, and
//                  the "dummy" rows left out.
// Numbers are printed with %lu, so never signed. Parsing splits on whitespace, which covers every
// column width; the first token of a block's first row is split at its first ':' ("331:kmemsize").
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "shmguard/sources.hpp"

namespace shmguard {

namespace {

constexpr std::uint64_t kLongMax64 = 9223372036854775807ULL;
constexpr std::uint64_t kLongMax32 = 2147483647ULL;
constexpr std::size_t kMaxShown = 40;  // longest piece of input quoted in an error message

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

// Splits a line into whitespace-separated tokens.
std::vector<std::string_view> tokens_of(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_space(line[i])) ++i;
    std::size_t start = i;
    while (i < line.size() && !is_space(line[i])) ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

// Input quoted in an error message: printable ASCII only, cut at kMaxShown characters.
std::string shown(std::string_view s) {
  std::string out = "'";
  for (std::size_t i = 0; i < s.size() && i < kMaxShown; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  }
  if (s.size() > kMaxShown) out += "...";
  out += "'";
  return out;
}

std::string at_line(std::size_t n, const std::string& what) {
  return "malformed at line " + std::to_string(n) + ": " + what;
}

// A resource name as the kernel prints them: a letter, then letters, digits or '_'.
bool valid_resource(std::string_view s) {
  if (s.empty()) return false;
  auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  if (!alpha(s[0])) return false;
  for (char c : s)
    if (!alpha(c) && !(c >= '0' && c <= '9') && c != '_') return false;
  return true;
}

// A beancounter id: a numeric CTID, a name or a UUID. No control characters; ':' cannot occur
// because the token was split at its first ':'.
bool valid_id(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return false;
  }
  return true;
}

// Iterates over the lines of a text, numbering them from 1. A final line without '\n' counts.
class Lines {
 public:
  explicit Lines(std::string_view text) : text_(text) {}
  bool next(std::string_view& line) {
    if (pos_ >= text_.size()) return false;
    std::size_t nl = text_.find('\n', pos_);
    if (nl == std::string_view::npos) nl = text_.size();
    line = text_.substr(pos_, nl - pos_);
    pos_ = nl + 1;
    ++number_;
    return true;
  }
  std::size_t number() const { return number_; }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
  std::size_t number_ = 0;
};

bool blank(std::string_view text) {
  for (char c : text)
    if (!is_space(c) && c != '\n') return false;
  return true;
}

const char* const kColumns[] = {"held", "maxheld", "barrier", "limit", "failcnt"};

// Fills row from `resource` and the five numbers in nums. Returns an error text, empty on success.
std::string fill_row(std::string_view resource, const std::vector<std::string_view>& nums,
                     BeancounterRow& row) {
  if (!valid_resource(resource)) return "bad resource name " + shown(resource);
  std::uint64_t v[5] = {};
  for (std::size_t i = 0; i < 5 && i < nums.size(); ++i) {
    std::string_view t = nums[i];
    std::optional<std::uint64_t> n = parse_u64(t);
    if (!n) {
      std::string col = std::string(kColumns[i]) + " of " + shown(resource);
      if (t[0] == '-') return "negative number " + shown(t) + " in " + col;
      bool digits = true;
      for (char c : t)
        if (c < '0' || c > '9') digits = false;
      if (digits) return "number " + shown(t) + " out of range (over 2^64-1) in " + col;
      return "not a number: " + shown(t) + " in " + col;
    }
    v[i] = *n;
  }
  if (nums.size() < 5)
    return "truncated row: " + std::to_string(nums.size()) + " of 5 numbers after " +
           shown(resource);
  if (nums.size() > 5)
    return "unexpected text " + shown(nums[5]) + " after the 5 numbers of " + shown(resource);
  row.resource = std::string(resource);
  row.held = v[0];
  row.maxheld = v[1];
  row.barrier = v[2];
  row.limit = v[3];
  row.failcnt = v[4];
  row.unit = beancounter_unit(resource);
  return {};
}

bool unlimited(std::uint64_t v) {
  return v == 0 || v == kLongMax32 || v >= kLongMax64;
}

}  // namespace

const char* to_string(BcUnit u) {
  switch (u) {
    case BcUnit::Pages:
      return "pages";
    case BcUnit::Bytes:
      return "bytes";
    case BcUnit::Count:
      return "count";
  }
  return "bytes";
}

BcUnit beancounter_unit(std::string_view resource) {
  constexpr std::string_view pages = "pages";
  if (resource.size() >= pages.size() && resource.substr(resource.size() - pages.size()) == pages)
    return BcUnit::Pages;
  if (resource.substr(0, 3) == "num") return BcUnit::Count;
  return BcUnit::Bytes;
}

bool BeancounterRow::barrier_unlimited() const {
  return unlimited(barrier);
}
bool BeancounterRow::limit_unlimited() const {
  return unlimited(limit);
}

const BeancounterRow* BeancounterBlock::find(std::string_view resource) const {
  for (const BeancounterRow& r : rows)
    if (r.resource == resource) return &r;
  return nullptr;
}

Result<BeancounterFile> parse_user_beancounters(std::string_view text) {
  using R = Result<BeancounterFile>;
  if (blank(text)) return R::fail(at_line(1, "empty file"));

  Lines lines(text);
  std::string_view line;
  BeancounterFile file;

  // Line 1: "Version: 2.5".
  lines.next(line);
  {
    std::vector<std::string_view> t = tokens_of(line);
    std::string_view version;
    if (!t.empty() && t[0] == "Version:" && t.size() == 2) {
      version = t[1];
    } else if (t.size() == 1 && t[0].substr(0, 8) == "Version:" && t[0].size() > 8) {
      version = t[0].substr(8);
    } else {
      return R::fail(at_line(1, "expected 'Version: 2.5', got " + shown(line)));
    }
    for (char c : version)
      if (!((c >= '0' && c <= '9') || c == '.'))
        return R::fail(at_line(1, "bad version " + shown(version)));
    file.version = std::string(version);
    file.version_known = version == "2.5";
  }

  // Line 2: the column header.
  if (!lines.next(line)) return R::fail(at_line(2, "missing column header"));
  {
    static const char* const header[] = {"uid",     "resource", "held",   "maxheld",
                                         "barrier", "limit",    "failcnt"};
    std::vector<std::string_view> t = tokens_of(line);
    bool ok = t.size() == 7;
    for (std::size_t i = 0; ok && i < 7; ++i) ok = t[i] == header[i];
    if (!ok)
      return R::fail(at_line(
          2,
          "expected header 'uid resource held maxheld barrier limit failcnt', got " + shown(line)));
  }

  // Rows.
  BeancounterBlock* block = nullptr;
  std::unordered_set<std::string_view> ids;  // views into `text`
  while (lines.next(line)) {
    const std::size_t n = lines.number();
    if (blank(line)) continue;
    std::vector<std::string_view> t = tokens_of(line);
    std::string_view first = t[0];
    std::size_t colon = first.find(':');
    std::string_view resource;
    std::vector<std::string_view> nums;
    if (colon != std::string_view::npos) {
      std::string_view id = first.substr(0, colon);
      std::string_view rest = first.substr(colon + 1);
      if (!valid_id(id)) return R::fail(at_line(n, "bad container id in " + shown(first)));
      if (!ids.insert(id).second) return R::fail(at_line(n, "duplicate container id " + shown(id)));
      std::size_t k = 1;
      if (!rest.empty()) {
        resource = rest;  // "331:kmemsize"
      } else if (t.size() > 1) {
        resource = t[1];  // "852638:  kmemsize", "101: kmemsize"
        k = 2;
      } else {
        return R::fail(at_line(n, "truncated row: nothing after " + shown(first)));
      }
      nums.assign(t.begin() + static_cast<std::ptrdiff_t>(k), t.end());
      file.blocks.push_back(BeancounterBlock{std::string(id), {}});
      block = &file.blocks.back();
    } else {
      if (block == nullptr)
        return R::fail(at_line(n, "row " + shown(first) + " before any container id"));
      resource = first;
      nums.assign(t.begin() + 1, t.end());
    }
    BeancounterRow row;
    std::string err = fill_row(resource, nums, row);
    if (!err.empty()) return R::fail(at_line(n, err));
    block->rows.push_back(std::move(row));
  }

  if (file.blocks.empty())
    return R::fail(at_line(lines.number() + 1, "no beancounter rows after the header"));
  return R::ok(std::move(file));
}

Result<BeancounterBlock> parse_bc_resources(std::string_view text, std::string id) {
  using R = Result<BeancounterBlock>;
  if (blank(text)) return R::fail(at_line(1, "empty file"));
  BeancounterBlock block;
  block.id = std::move(id);
  Lines lines(text);
  std::string_view line;
  while (lines.next(line)) {
    if (blank(line)) continue;
    std::vector<std::string_view> t = tokens_of(line);
    BeancounterRow row;
    std::string err = fill_row(t[0], std::vector<std::string_view>(t.begin() + 1, t.end()), row);
    if (!err.empty()) return R::fail(at_line(lines.number(), err));
    block.rows.push_back(std::move(row));
  }
  return R::ok(std::move(block));
}

Result<BeancounterBlock> select_beancounter_block(const BeancounterFile& f,
                                                  const std::optional<std::string>& container) {
  using R = Result<BeancounterBlock>;
  auto have = [&f]() {
    std::string s;
    std::size_t i = 0;
    for (const BeancounterBlock& b : f.blocks) {
      if (i == 20) {
        s += ", ... (" + std::to_string(f.blocks.size()) + " in all)";
        break;
      }
      if (i++) s += ", ";
      s += b.id;
    }
    return "(have: " + (s.empty() ? std::string("none") : s) + ")";
  };
  if (container) {
    for (const BeancounterBlock& b : f.blocks)
      if (b.id == *container) return R::ok(b);
    return R::fail("no block for container " + shown(*container) + " " + have());
  }
  if (f.blocks.size() == 1) return R::ok(f.blocks.front());
  for (const BeancounterBlock& b : f.blocks)
    if (b.id == "0") return R::ok(b);
  if (f.blocks.empty()) return R::fail("no beancounter blocks " + have());
  return R::fail(std::to_string(f.blocks.size()) +
                 " beancounter blocks and none is the host's '0': name the container " + have());
}

}  // namespace shmguard
