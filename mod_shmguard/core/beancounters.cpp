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
#include <string.h>  // memrchr

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "shmguard/sources.hpp"
#include "text.hpp"

namespace shmguard {

namespace {
using text::Lines;

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

bool blank(std::string_view text) {
  for (char c : text)
    if (!is_space(c) && c != '\n') return false;
  return true;
}

const char* const kColumns[] = {"held", "maxheld", "barrier", "limit", "failcnt"};

// Fills row from `resource` and the `count` numbers in nums (only the first min(count, 6) are
// read). Returns an error text, empty on success.
std::string fill_row(std::string_view resource, const std::string_view* nums, std::size_t count,
                     BeancounterRow& row) {
  if (!valid_resource(resource)) return "bad resource name " + shown(resource);
  std::uint64_t v[5] = {};
  for (std::size_t i = 0; i < 5 && i < count; ++i) {
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
  if (count < 5)
    return "truncated row: " + std::to_string(count) + " of 5 numbers after " + shown(resource);
  if (count > 5)
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

// The whitespace-separated tokens of a line from offset `from` on, without allocating: the first
// kMax are kept, n counts them all. A row needs at most 7 (resource, 5 numbers, the one too many).
struct RowTokens {
  static constexpr std::size_t kMax = 8;
  std::string_view t[kMax];
  std::size_t n = 0;
};

RowTokens row_tokens(std::string_view line, std::size_t from) {
  RowTokens out;
  std::size_t i = from;
  while (i < line.size()) {
    while (i < line.size() && is_space(line[i])) ++i;
    std::size_t start = i;
    while (i < line.size() && !is_space(line[i])) ++i;
    if (i > start) {
      if (out.n < RowTokens::kMax) out.t[out.n] = line.substr(start, i - start);
      ++out.n;
    }
  }
  return out;
}

// The first token of a /proc/user_beancounters row line. A line whose first token contains ':'
// starts a block; the token is split at its first ':' into the id and what follows.
struct RowHead {
  std::string_view first;                      // empty: a blank line
  std::size_t colon = std::string_view::npos;  // first ':' in `first`
  std::size_t end = 0;                         // offset in the line just after `first`
  bool blank() const { return first.empty(); }
  bool starts_block() const { return colon != std::string_view::npos; }
  std::string_view id() const { return first.substr(0, colon); }
};

RowHead row_head(std::string_view line) {
  RowHead h;
  std::size_t i = 0;
  while (i < line.size() && is_space(line[i])) ++i;
  const std::size_t start = i;
  while (i < line.size() && !is_space(line[i])) {
    if (line[i] == ':' && h.colon == std::string_view::npos) h.colon = i - start;
    ++i;
  }
  h.first = line.substr(start, i - start);
  h.end = i;
  return h;
}

// The checks of a block's id, in the full parser's order. `ids` holds the ids seen so far (views
// into the text). Returns an error text, empty on success.
std::string check_block_id(const RowHead& h, std::unordered_set<std::string_view>& ids) {
  std::string_view id = h.id();
  if (!valid_id(id)) return "bad container id in " + shown(h.first);
  if (!ids.insert(id).second) return "duplicate container id " + shown(id);
  return {};
}

std::string row_before_any_id(const RowHead& h) {
  return "row " + shown(h.first) + " before any container id";
}

// Parses one non-blank row line (a block's first row, "852638:  kmemsize ...", "101: kmemsize
// ...", "331:kmemsize ...", or a continuation row "kmemsize ..."). Returns an error text, empty on
// success. Shared by parse_user_beancounters and read_beancounter_block.
std::string parse_row(std::string_view line, const RowHead& h, BeancounterRow& row) {
  const RowTokens rest = row_tokens(line, h.end);
  if (!h.starts_block()) return fill_row(h.first, rest.t, rest.n, row);
  std::string_view after = h.first.substr(h.colon + 1);
  if (!after.empty()) return fill_row(after, rest.t, rest.n, row);          // "331:kmemsize"
  if (rest.n > 0) return fill_row(rest.t[0], rest.t + 1, rest.n - 1, row);  // "101: kmemsize"
  return "truncated row: nothing after " + shown(h.first);
}

// A "Version:" line: "Version: 2.5" or "Version:2.5". Returns an error text (without the line
// number), empty on success.
std::string parse_version_line(std::string_view line, std::string& version_out,
                               bool& version_known) {
  std::vector<std::string_view> t = tokens_of(line);
  std::string_view version;
  if (!t.empty() && t[0] == "Version:" && t.size() == 2) {
    version = t[1];
  } else if (t.size() == 1 && t[0].substr(0, 8) == "Version:" && t[0].size() > 8) {
    version = t[0].substr(8);
  } else {
    return "expected 'Version: 2.5', got " + shown(line);
  }
  for (char c : version)
    if (!((c >= '0' && c <= '9') || c == '.')) return "bad version " + shown(version);
  version_out = std::string(version);
  version_known = version == "2.5";
  return {};
}

const char* const kHeader[] = {"uid", "resource", "held", "maxheld", "barrier", "limit", "failcnt"};

// The column header. Returns an error text (without the line number), empty on success.
std::string check_header_line(std::string_view line) {
  std::vector<std::string_view> t = tokens_of(line);
  bool ok = t.size() == 7;
  for (std::size_t i = 0; ok && i < 7; ++i) ok = t[i] == kHeader[i];
  if (!ok)
    return "expected header 'uid resource held maxheld barrier limit failcnt', got " + shown(line);
  return {};
}

// Lines 1 and 2: "Version: 2.5" and the column header. Returns an error (with its line), empty on
// success; `lines` is left at line 3.
std::string parse_preamble(Lines& lines, std::string& version_out, bool& version_known) {
  std::string_view line;
  lines.next(line);
  std::string err = parse_version_line(line, version_out, version_known);
  if (!err.empty()) return text::malformed(1, err);
  if (!lines.next(line)) return text::malformed(2, "missing column header");
  err = check_header_line(line);
  if (!err.empty()) return text::malformed(2, err);
  return {};
}

// The rows of /proc/user_beancounters from `lines` on, into file.blocks. Returns an error (with its
// line), empty on success. `hook` sees every blank line (hook.blank(n)) and every parsed row
// (hook.row(line, n, head, row)): the lenient reading notes what differs from the kernel's format.
struct NoRowHook {
  void blank(std::size_t) {}
  void row(std::string_view, std::size_t, const RowHead&, const BeancounterRow&) {}
};

template <class Hook>
std::string parse_rows(Lines& lines, BeancounterFile& file, Hook& hook) {
  std::string_view line;
  BeancounterBlock* block = nullptr;
  std::unordered_set<std::string_view> ids;  // views into the text
  while (lines.next(line)) {
    const std::size_t n = lines.number();
    const RowHead h = row_head(line);
    if (h.blank()) {
      hook.blank(n);
      continue;
    }
    if (h.starts_block()) {
      std::string err = check_block_id(h, ids);
      if (!err.empty()) return text::malformed(n, err);
      file.blocks.push_back(BeancounterBlock{std::string(h.id()), {}});
      block = &file.blocks.back();
    } else if (block == nullptr) {
      return text::malformed(n, row_before_any_id(h));
    }
    BeancounterRow row;
    std::string err = parse_row(line, h, row);
    if (!err.empty()) return text::malformed(n, err);
    hook.row(line, n, h, row);
    block->rows.push_back(std::move(row));
  }
  return {};
}

// select_beancounter_block's list of the ids in a file: "(have: 101, 102, ...)", the first 20.
template <class IdAt>
std::string have_ids(std::size_t count, IdAt id_at) {
  std::string s;
  for (std::size_t i = 0; i < count; ++i) {
    if (i == 20) {
      s += ", ... (" + std::to_string(count) + " in all)";
      break;
    }
    if (i) s += ", ";
    s += id_at(i);
  }
  return "(have: " + (s.empty() ? std::string("none") : s) + ")";
}

std::string no_block_for(const std::string& container, const std::string& have) {
  return "no block for container " + shown(container) + " " + have;
}

std::string no_host_block(std::size_t count, const std::string& have) {
  if (count == 0) return "no beancounter blocks " + have;
  return std::to_string(count) +
         " beancounter blocks and none is the host's '0': name the container " + have;
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
  if (blank(text)) return R::fail(text::malformed(1, "empty file"));

  Lines lines(text);
  BeancounterFile file;
  std::string err = parse_preamble(lines, file.version, file.version_known);
  if (!err.empty()) return R::fail(std::move(err));
  NoRowHook hook;
  err = parse_rows(lines, file, hook);
  if (!err.empty()) return R::fail(std::move(err));
  if (file.blocks.empty())
    return R::fail(text::malformed(lines.number() + 1, "no beancounter rows after the header"));
  return R::ok(std::move(file));
}

// ---------------------------------------------------------------- lenient reading (probe only)

namespace {

// Unicode spaces a copy from a web page, a mail or a chat puts where the kernel printed ' '
// (UTF-8): no-break space, en/em/thin/... spaces, narrow no-break space, medium mathematical space,
// ideographic space. Returns the length of the sequence at s[i], 0 if none.
std::size_t unicode_space_at(std::string_view s, std::size_t i) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const std::size_t left = s.size() - i;
  if (left >= 2 && byte(0) == 0xC2 && byte(1) == 0xA0) return 2;
  if (left >= 3 && byte(0) == 0xE2 && byte(1) == 0x80 &&
      ((byte(2) >= 0x80 && byte(2) <= 0x8A) || byte(2) == 0xAF))
    return 3;
  if (left >= 3 && byte(0) == 0xE2 && byte(1) == 0x81 && byte(2) == 0x9F) return 3;
  if (left >= 3 && byte(0) == 0xE3 && byte(1) == 0x80 && byte(2) == 0x80) return 3;
  return 0;
}

std::string pad_left(std::string_view s, std::size_t w) {
  std::string out;
  if (s.size() < w) out.assign(w - s.size(), ' ');
  out += s;
  return out;
}

std::string pad_right(std::string_view s, std::size_t w) {
  std::string out(s);
  if (out.size() < w) out.append(w - out.size(), ' ');
  return out;
}

// The column header as the kernel prints it (kernel/bc/proc.c head_fmt): "%10s  %-12s" then " %Ws"
// for the 5 numbers, W = 20 (10 on 32-bit kernels).
std::string kernel_header(std::size_t w) {
  std::string out = pad_left(kHeader[0], 10) + "  " + pad_right(kHeader[1], 12);
  for (std::size_t i = 2; i < 7; ++i) out += " " + pad_left(kHeader[i], w);
  return out;
}

// Is `line` a row exactly as the kernel prints it, with number columns W wide? OpenVZ 6 prints
// "%10s  %-12s" with "ID:" on a block's first row, VZ7 "%10s%c %-12s" with "ID" and ':'; both print
// 12 spaces before the resource on the other rows. Numbers are " %Wlu".
bool kernel_row(std::string_view line, const RowHead& h, const BeancounterRow& r, std::size_t w) {
  std::string nums;
  for (std::uint64_t v : {r.held, r.maxheld, r.barrier, r.limit, r.failcnt})
    nums += " " + pad_left(std::to_string(v), w);
  const std::string res = pad_right(r.resource, 12);
  if (!h.starts_block()) return line == std::string(12, ' ') + res + nums;
  const std::string id(h.id());
  return line == pad_left(id + ":", 10) + "  " + res + nums ||
         line == pad_left(id, 10) + ": " + res + nums;
}

std::string plural(std::size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// Collects, while the rows are parsed, how the text differs from what the kernel prints.
struct LenientHook {
  std::size_t width = 0;  // number column width from an exact header; 0: not known
  std::size_t blanks = 0, rows = 0, inexact = 0, first_inexact = 0;
  void blank(std::size_t) { ++blanks; }
  void row(std::string_view line, std::size_t n, const RowHead& h, const BeancounterRow& r) {
    ++rows;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    bool exact = false;
    for (std::size_t w : {std::size_t{20}, std::size_t{10}})
      if ((width == 0 || width == w) && kernel_row(line, h, r, w)) exact = true;
    if (!exact && inexact++ == 0) first_inexact = n;
  }
};

}  // namespace

Result<LenientBeancounters> parse_user_beancounters_lenient(std::string_view text) {
  using R = Result<LenientBeancounters>;
  std::vector<std::string> notes;

  // Unicode spaces become ' ', a byte-order mark goes; line numbers stay those of the input.
  std::string norm;
  norm.reserve(text.size());
  std::size_t i = 0, unicode_spaces = 0;
  if (text.substr(0, 3) == "\xEF\xBB\xBF") {
    i = 3;
    notes.push_back("a byte-order mark at the start");
  }
  for (; i < text.size(); ++i) {
    if (std::size_t n = unicode_space_at(text, i)) {
      norm += ' ';
      i += n - 1;
      ++unicode_spaces;
    } else {
      norm += text[i];
    }
  }
  if (unicode_spaces > 0)
    notes.push_back(plural(unicode_spaces, "non-breaking or other Unicode space",
                           "non-breaking or other Unicode spaces") +
                    " read as ' '");
  const std::size_t crlf = static_cast<std::size_t>(std::count(norm.begin(), norm.end(), '\r'));
  if (crlf > 0) notes.push_back("Windows line ends (CR LF)");
  if (blank(norm)) return R::fail(text::malformed(1, "empty file"));

  Lines lines(norm);
  LenientHook hook;
  LenientBeancounters out;
  BeancounterFile& file = out.file;
  std::string_view line;

  // Blank lines, and the command that printed the file ("# cat /proc/user_beancounters"), before
  // it.
  auto next_meaningful = [&]() {
    while (true) {
      Lines before = lines;
      if (!lines.next(line)) return false;
      if (row_head(line).blank()) {
        hook.blank(lines.number());
        continue;
      }
      if (line.find("user_beancounters") != std::string_view::npos &&
          tokens_of(line)[0].substr(0, 8) != "Version:" && file.version.empty() && hook.rows == 0) {
        notes.push_back("line " + std::to_string(lines.number()) + " skipped: " + shown(line) +
                        " (the command that printed the file?)");
        continue;
      }
      lines = before;
      return true;
    }
  };

  // "Version:" line, if any.
  bool have_version = false;
  if (next_meaningful()) {
    Lines before = lines;
    lines.next(line);
    if (tokens_of(line)[0].substr(0, 8) == "Version:") {
      std::string err = parse_version_line(line, file.version, file.version_known);
      if (!err.empty()) return R::fail(text::malformed(lines.number(), err));
      have_version = true;
      std::string_view exact = line;
      if (!exact.empty() && exact.back() == '\r') exact.remove_suffix(1);
      if (exact != "Version: " + file.version)
        notes.push_back("the 'Version:' line is not as the kernel prints it");
    } else {
      lines = before;
      file.version_known = false;
      notes.push_back("no 'Version:' line (lost in copying?)");
    }
  }
  // Column header, if any.
  bool have_header = false;
  if (next_meaningful()) {
    Lines before = lines;
    lines.next(line);
    if (tokens_of(line)[0] == "uid") {
      std::string err = check_header_line(line);
      if (!err.empty()) return R::fail(text::malformed(lines.number(), err));
      have_header = true;
      std::string_view exact = line;
      if (!exact.empty() && exact.back() == '\r') exact.remove_suffix(1);
      for (std::size_t w : {std::size_t{20}, std::size_t{10}})
        if (exact == kernel_header(w)) hook.width = w;
      if (hook.width == 0) notes.push_back("the column header is not as the kernel prints it");
    } else {
      lines = before;
      notes.push_back("no column header line (lost in copying?)");
    }
  }

  std::string err = parse_rows(lines, file, hook);
  if (!err.empty()) return R::fail(std::move(err));
  if (file.blocks.empty())
    return R::fail(text::malformed(lines.number() + 1, have_version || have_header
                                                           ? "no beancounter rows after the header"
                                                           : "no beancounter rows"));
  if (hook.inexact > 0)
    notes.push_back(std::to_string(hook.inexact) + " of " + plural(hook.rows, "row", "rows") +
                    " not laid out as the kernel prints them (spaces collapsed or changed), the "
                    "first at line " +
                    std::to_string(hook.first_inexact));
  if (hook.blanks > 0) notes.push_back(plural(hook.blanks, "blank line", "blank lines"));
  out.notes = std::move(notes);
  // The file's ids point into `norm`: the blocks hold copies, nothing refers to it after this.
  return R::ok(std::move(out));
}

Result<BeancounterBlock> parse_bc_resources(std::string_view text, std::string id) {
  using R = Result<BeancounterBlock>;
  if (blank(text)) return R::fail(text::malformed(1, "empty file"));
  BeancounterBlock block;
  block.id = std::move(id);
  Lines lines(text);
  std::string_view line;
  while (lines.next(line)) {
    if (blank(line)) continue;
    const RowTokens t = row_tokens(line, 0);
    BeancounterRow row;
    std::string err = fill_row(t.t[0], t.t + 1, t.n - 1, row);
    if (!err.empty()) return R::fail(text::malformed(lines.number(), err));
    block.rows.push_back(std::move(row));
  }
  return R::ok(std::move(block));
}

Result<BeancounterBlock> select_beancounter_block(const BeancounterFile& f,
                                                  const std::optional<std::string>& container) {
  using R = Result<BeancounterBlock>;
  auto have = [&f]() {
    return have_ids(f.blocks.size(),
                    [&f](std::size_t i) -> const std::string& { return f.blocks[i].id; });
  };
  if (container) {
    for (const BeancounterBlock& b : f.blocks)
      if (b.id == *container) return R::ok(b);
    return R::fail(no_block_for(*container, have()));
  }
  if (f.blocks.size() == 1) return R::ok(f.blocks.front());
  for (const BeancounterBlock& b : f.blocks)
    if (b.id == "0") return R::ok(b);
  return R::fail(no_host_block(f.blocks.size(), have()));
}

Result<BeancounterSelection> read_beancounter_block(std::string_view text,
                                                    const std::optional<std::string>& container) {
  using R = Result<BeancounterSelection>;
  if (blank(text)) return R::fail(text::malformed(1, "empty file"));

  Lines lines(text);
  BeancounterSelection out;
  std::string err = parse_preamble(lines, out.version, out.version_known);
  if (!err.empty()) return R::fail(std::move(err));

  // Lines are not counted while reading (skipped blocks are never split into lines); an error
  // counts the newlines before the offending line.
  auto line_at = [text](std::size_t pos) {
    return 1 + static_cast<std::size_t>(std::count(text.begin(), text.begin() + pos, '\n'));
  };

  const char* const data = text.data();
  const std::size_t size = text.size();
  std::size_t pos = lines.pos();
  std::unordered_set<std::string_view> ids;  // every block's id (views into `text`)
  std::vector<std::string_view> listed;      // the first 20 ids, for the selection errors
  std::size_t count = 0;                     // blocks in the file
  // The candidates: the wanted container's block; without a container, the first block (used
  // when it is the only one) and block "0".
  BeancounterBlock wanted, first, host;
  bool have_wanted = false, have_host = false;
  BeancounterBlock* cur = nullptr;  // the candidate whose rows are being read; nullptr: skipping
  while (pos < size) {
    if (cur == nullptr && count > 0) {
      // Skipping a block. The next block starts at a line whose first token contains ':', so no
      // line before the next ':' can start one: jump to it, then back to the start of its line.
      const void* colon = std::memchr(data + pos, ':', size - pos);
      if (colon == nullptr) break;
      const std::size_t at = static_cast<std::size_t>(static_cast<const char*>(colon) - data);
      const void* nl = ::memrchr(data + pos, '\n', at - pos);
      if (nl != nullptr) pos = static_cast<std::size_t>(static_cast<const char*>(nl) - data) + 1;
    }
    const void* nl = std::memchr(data + pos, '\n', size - pos);
    const std::size_t eol =
        nl != nullptr ? static_cast<std::size_t>(static_cast<const char*>(nl) - data) : size;
    const std::string_view line(data + pos, eol - pos);
    const std::size_t line_pos = pos;
    pos = eol + 1;

    const RowHead h = row_head(line);
    if (h.blank()) continue;
    if (h.starts_block()) {
      err = check_block_id(h, ids);
      if (!err.empty()) return R::fail(text::malformed(line_at(line_pos), err));
      const std::string_view id = h.id();
      if (listed.size() < 20) listed.push_back(id);
      ++count;
      if (container) {
        cur = id == *container ? &wanted : nullptr;  // ids are unique: at most one match
        have_wanted = have_wanted || cur != nullptr;
      } else if (count == 1) {
        cur = &first;
      } else if (id == "0") {
        cur = &host;
        have_host = true;
      } else {
        cur = nullptr;
      }
      if (cur != nullptr) cur->id = std::string(id);
    } else if (count == 0) {
      return R::fail(text::malformed(line_at(line_pos), row_before_any_id(h)));
    }
    if (cur == nullptr) continue;  // a row of a skipped block, reached by the ':' jump
    BeancounterRow row;
    err = parse_row(line, h, row);
    if (!err.empty()) return R::fail(text::malformed(line_at(line_pos), err));
    cur->rows.push_back(std::move(row));
  }

  if (count == 0) {
    const std::size_t last = line_at(size) - (text.back() == '\n' ? 1 : 0);
    return R::fail(text::malformed(last + 1, "no beancounter rows after the header"));
  }
  out.blocks_in_file = count;
  auto have = [&]() { return have_ids(count, [&](std::size_t i) { return listed[i]; }); };
  if (container) {
    if (!have_wanted) return R::fail(no_block_for(*container, have()));
    out.block = std::move(wanted);
  } else if (count == 1 || first.id == "0") {
    out.block = std::move(first);
  } else if (have_host) {
    out.block = std::move(host);
  } else {
    return R::fail(no_host_block(count, have()));
  }
  return R::ok(std::move(out));
}
}  // namespace shmguard
