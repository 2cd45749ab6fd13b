// Test oracle for read_beancounter_block (used by tests/unit/test_beancounter_block.cpp and
// tests/fuzz/fuzz_beancounter_block.cpp): what the fast single-block reader must return for any
// text, computed with the full parser.
//
// The fast reader parses only the rows of the candidate blocks (the wanted container's block;
// without a container, the first block and block "0") and checks only the ids of the others. So
// its result must be parse_user_beancounters + select_beancounter_block of the text in which
// every row of a non-candidate block is replaced by something valid, with line numbers kept:
// continuation rows become blank lines, a block's first row becomes "<id>: dummy 0 0 0 0 0"
// (kept as is when the id is invalid, so that the error quotes the same token). The block-start
// rule ("the first token contains ':'") is restated here on purpose, independently of the parser.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shmguard/sources.hpp"

namespace shmguard_test {

inline bool bc_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

// The first whitespace-separated token of a line ("" for a blank line).
inline std::string_view bc_first_token(std::string_view line) {
  std::size_t i = 0;
  while (i < line.size() && bc_space(line[i])) ++i;
  std::size_t start = i;
  while (i < line.size() && !bc_space(line[i])) ++i;
  return line.substr(start, i - start);
}

inline bool bc_valid_id(std::string_view id) {
  if (id.empty()) return false;
  for (char c : id) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return false;
  }
  return true;
}

inline std::vector<std::string_view> bc_split_lines(std::string_view text) {
  std::vector<std::string_view> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    out.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return out;
}

// The ids of the lines (from line 3 on) that start a block, in order, duplicates included.
inline std::vector<std::string> bc_block_ids(std::string_view text) {
  std::vector<std::string> ids;
  std::vector<std::string_view> lines = bc_split_lines(text);
  for (std::size_t i = 2; i < lines.size(); ++i) {
    std::string_view first = bc_first_token(lines[i]);
    std::size_t colon = first.find(':');
    if (colon != std::string_view::npos) ids.emplace_back(first.substr(0, colon));
  }
  return ids;
}

// The text with the rows of non-candidate blocks made valid (see the top of the file).
inline std::string bc_sanitize(std::string_view text, const std::optional<std::string>& container) {
  std::vector<std::string_view> lines = bc_split_lines(text);
  std::string out;
  std::size_t blocks = 0;
  bool candidate = true;  // rows before the first block are checked by both readers
  for (std::size_t i = 0; i < lines.size(); ++i) {
    std::string_view line = lines[i];
    std::string replaced;
    bool keep = true;
    if (i >= 2) {
      std::string_view first = bc_first_token(line);
      std::size_t colon = first.find(':');
      if (colon != std::string_view::npos) {
        std::string_view id = first.substr(0, colon);
        ++blocks;
        candidate = container ? id == *container : (blocks == 1 || id == "0");
        if (!candidate && bc_valid_id(id)) {
          replaced = std::string(id) + ": dummy 0 0 0 0 0";
          keep = false;
        }
      } else if (!candidate && !first.empty()) {
        keep = false;  // a blank line
      }
    }
    if (keep)
      out += line;
    else
      out += replaced;
    if (i + 1 < lines.size() || (!text.empty() && text.back() == '\n')) out += '\n';
  }
  return out;
}

// What read_beancounter_block(text, container) must return.
inline shmguard::Result<shmguard::BeancounterSelection> bc_expected(
    std::string_view text, const std::optional<std::string>& container) {
  using namespace shmguard;
  using R = Result<BeancounterSelection>;
  std::string clean = bc_sanitize(text, container);
  Result<BeancounterFile> f = parse_user_beancounters(clean);
  if (!f) return R::fail(f.error);
  Result<BeancounterBlock> b = select_beancounter_block(*f.value, container);
  if (!b) return R::fail(b.error);
  BeancounterSelection s;
  s.version = f.value->version;
  s.version_known = f.value->version_known;
  s.blocks_in_file = f.value->blocks.size();
  s.block = std::move(*b.value);
  return R::ok(std::move(s));
}

inline bool bc_same_row(const shmguard::BeancounterRow& a, const shmguard::BeancounterRow& b) {
  return a.resource == b.resource && a.held == b.held && a.maxheld == b.maxheld &&
         a.barrier == b.barrier && a.limit == b.limit && a.failcnt == b.failcnt && a.unit == b.unit;
}

inline bool bc_same_block(const shmguard::BeancounterBlock& a,
                          const shmguard::BeancounterBlock& b) {
  if (a.id != b.id || a.rows.size() != b.rows.size()) return false;
  for (std::size_t i = 0; i < a.rows.size(); ++i)
    if (!bc_same_row(a.rows[i], b.rows[i])) return false;
  return true;
}

// Equal outcomes: both values equal in every field, or both errors with the same text.
inline bool bc_same(const shmguard::Result<shmguard::BeancounterSelection>& a,
                    const shmguard::Result<shmguard::BeancounterSelection>& b) {
  if (bool(a) != bool(b)) return false;
  if (!a) return a.error == b.error;
  const shmguard::BeancounterSelection& x = *a.value;
  const shmguard::BeancounterSelection& y = *b.value;
  return x.version == y.version && x.version_known == y.version_known &&
         x.blocks_in_file == y.blocks_in_file && bc_same_block(x.block, y.block);
}

// For a failing assertion: "ok <id> (<n> rows, <blocks> blocks)" or "error: <text>".
inline std::string bc_describe(const shmguard::Result<shmguard::BeancounterSelection>& r) {
  if (!r) return "error: " + r.error;
  return "ok " + r.value->block.id + " (" + std::to_string(r.value->block.rows.size()) + " rows, " +
         std::to_string(r.value->blocks_in_file) + " blocks, version " + r.value->version + ")";
}

}  // namespace shmguard_test
