// Unit tests: the lenient reading of a pasted /proc/user_beancounters
// (parse_user_beancounters_lenient, used by shmguard-probe --lenient only).
//
// The expected rows always come from the strict parser on the untouched fixture file; the lenient
// reader gets the same file with its Version line or header removed, its spaces collapsed, ...
// (the edits are made here, from the file's text), and must give the same blocks and say what it
// forgave.
#include <cstddef>
#include <cstdlib>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "shmguard/sources.hpp"

using namespace shmguard;

namespace {

std::string fixture(const std::string& rel) {
  const char* env = std::getenv("SHMGUARD_FIXTURES");
  std::string root = (env != nullptr && *env != '\0') ? env : "tests/fixtures";
  Result<std::string> r = read_file(root + "/beancounters/" + rel);
  EXPECT_TRUE(r) << r.error << " (run from the repo root or set SHMGUARD_FIXTURES)";
  return r ? *r.value : std::string();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::string join(const std::vector<std::string>& lines, std::size_t from = 0) {
  std::string out;
  for (std::size_t i = from; i < lines.size(); ++i) out += lines[i] + "\n";
  return out;
}

// Every run of spaces in `line` becomes `with` (no std::regex: GCC 12 warns inside it at -O1).
std::string replace_runs(const std::string& line, const std::string& with) {
  std::string out;
  for (std::size_t i = 0; i < line.size(); ++i) {
    if (line[i] != ' ') {
      out += line[i];
      continue;
    }
    out += with;
    while (i + 1 < line.size() && line[i + 1] == ' ') ++i;
  }
  return out;
}

// Every run of spaces becomes one, leading spaces go (what a web form or a chat does).
std::string collapse(const std::string& text) {
  std::string out;
  for (const std::string& l : lines_of(text)) {
    std::string c = replace_runs(l, " ");
    if (!c.empty() && c[0] == ' ') c.erase(0, 1);
    out += c + "\n";
  }
  return out;
}

BeancounterFile strict_ok(const std::string& text) {
  Result<BeancounterFile> r = parse_user_beancounters(text);
  EXPECT_TRUE(r) << r.error;
  return r ? *r.value : BeancounterFile{};
}

LenientBeancounters lenient_ok(const std::string& text) {
  Result<LenientBeancounters> r = parse_user_beancounters_lenient(text);
  EXPECT_TRUE(r) << r.error;
  return r ? *r.value : LenientBeancounters{};
}

std::string lenient_error(const std::string& text) {
  Result<LenientBeancounters> r = parse_user_beancounters_lenient(text);
  EXPECT_FALSE(r) << "read although malformed";
  return r.error;
}

void expect_same_blocks(const BeancounterFile& want, const BeancounterFile& got) {
  ASSERT_EQ(want.blocks.size(), got.blocks.size());
  for (std::size_t b = 0; b < want.blocks.size(); ++b) {
    const BeancounterBlock& w = want.blocks[b];
    const BeancounterBlock& g = got.blocks[b];
    EXPECT_EQ(w.id, g.id);
    ASSERT_EQ(w.rows.size(), g.rows.size()) << "block " << w.id;
    for (std::size_t i = 0; i < w.rows.size(); ++i) {
      EXPECT_EQ(w.rows[i].resource, g.rows[i].resource);
      EXPECT_EQ(w.rows[i].held, g.rows[i].held) << w.rows[i].resource;
      EXPECT_EQ(w.rows[i].maxheld, g.rows[i].maxheld) << w.rows[i].resource;
      EXPECT_EQ(w.rows[i].barrier, g.rows[i].barrier) << w.rows[i].resource;
      EXPECT_EQ(w.rows[i].limit, g.rows[i].limit) << w.rows[i].resource;
      EXPECT_EQ(w.rows[i].failcnt, g.rows[i].failcnt) << w.rows[i].resource;
      EXPECT_EQ(w.rows[i].unit, g.rows[i].unit) << w.rows[i].resource;
    }
  }
}

std::size_t row_count(const BeancounterFile& f) {
  std::size_t n = 0;
  for (const auto& b : f.blocks) n += b.rows.size();
  return n;
}

bool has_note(const LenientBeancounters& l, const std::string& part) {
  for (const std::string& n : l.notes)
    if (n.find(part) != std::string::npos) return true;
  return false;
}

std::string all_notes(const LenientBeancounters& l) {
  std::string s;
  for (const std::string& n : l.notes) s += "[" + n + "] ";
  return s;
}

// Files exactly as kernels print them (virtuozzo-nospace.txt is a knowledge-base sample whose
// spaces were lost: see below).
const char* const kExact[] = {"openvz6-container.txt", "vz7-container.txt", "vz7-uuid-id.txt",
                              "hardware-node.txt",     "x86-32bit.txt",     "all-unlimited.txt",
                              "version-2.6.txt"};

}  // namespace

TEST(LenientBeancounters, KernelFilesAreExactAndReadAsStrictly) {
  for (const char* name : kExact) {
    const std::string text = fixture(name);
    LenientBeancounters l = lenient_ok(text);
    EXPECT_TRUE(l.notes.empty()) << name << ": " << all_notes(l);
    BeancounterFile s = strict_ok(text);
    expect_same_blocks(s, l.file);
    EXPECT_EQ(l.file.version, s.version) << name;
    EXPECT_EQ(l.file.version_known, s.version_known) << name;
  }
}

TEST(LenientBeancounters, KnowledgeBaseSampleIsFlagged) {
  const std::string text = fixture("virtuozzo-nospace.txt");
  LenientBeancounters l = lenient_ok(text);
  expect_same_blocks(strict_ok(text), l.file);
  EXPECT_TRUE(has_note(l, "not laid out as the kernel prints them")) << all_notes(l);
}

TEST(LenientBeancounters, VersionLineLost) {
  for (const char* name : kExact) {
    const std::string text = fixture(name);
    const std::vector<std::string> lines = lines_of(text);
    LenientBeancounters l = lenient_ok(join(lines, 1));
    expect_same_blocks(strict_ok(text), l.file);
    EXPECT_EQ(l.file.version, "") << name;
    EXPECT_FALSE(l.file.version_known) << name;
    ASSERT_EQ(l.notes.size(), 1u) << name << ": " << all_notes(l);
    EXPECT_EQ(l.notes[0], "no 'Version:' line (lost in copying?)");
    // The strict reading (the module's) refuses it.
    EXPECT_FALSE(parse_user_beancounters(join(lines, 1))) << name;
  }
}

TEST(LenientBeancounters, HeaderLost) {
  const std::string text = fixture("openvz6-container.txt");
  std::vector<std::string> lines = lines_of(text);
  lines.erase(lines.begin() + 1);
  LenientBeancounters l = lenient_ok(join(lines));
  expect_same_blocks(strict_ok(text), l.file);
  EXPECT_EQ(l.file.version, "2.5");
  EXPECT_TRUE(l.file.version_known);
  ASSERT_EQ(l.notes.size(), 1u) << all_notes(l);
  EXPECT_EQ(l.notes[0], "no column header line (lost in copying?)");
  EXPECT_FALSE(parse_user_beancounters(join(lines)));
}

TEST(LenientBeancounters, VersionAndHeaderLost) {
  for (const char* name : kExact) {
    const std::string text = fixture(name);
    LenientBeancounters l = lenient_ok(join(lines_of(text), 2));
    expect_same_blocks(strict_ok(text), l.file);
    EXPECT_EQ(l.notes.size(), 2u) << name << ": " << all_notes(l);
    EXPECT_TRUE(has_note(l, "no 'Version:' line")) << name;
    EXPECT_TRUE(has_note(l, "no column header line")) << name;
  }
}

TEST(LenientBeancounters, SpacesCollapsedEveryRowCounted) {
  for (const char* name : kExact) {
    const std::string text = fixture(name);
    const BeancounterFile s = strict_ok(text);
    const std::string pasted = collapse(text);
    ASSERT_NE(pasted, text);
    LenientBeancounters l = lenient_ok(pasted);
    expect_same_blocks(s, l.file);
    const std::string want = std::to_string(row_count(s)) + " of " + std::to_string(row_count(s)) +
                             " rows not laid out as the kernel prints them (spaces collapsed or "
                             "changed), the first at line 3";
    EXPECT_TRUE(has_note(l, want)) << name << ": " << all_notes(l);
    EXPECT_TRUE(has_note(l, "the column header is not as the kernel prints it")) << name;
  }
}

TEST(LenientBeancounters, OneRowChangedIsNamedByLine) {
  const std::string text = fixture("openvz6-container.txt");
  std::vector<std::string> lines = lines_of(text);
  ASSERT_GT(lines.size(), 8u);
  lines[7] = replace_runs(lines[7], "\t");  // tabs, from a spreadsheet
  LenientBeancounters l = lenient_ok(join(lines));
  const BeancounterFile s = strict_ok(text);
  expect_same_blocks(s, l.file);
  ASSERT_EQ(l.notes.size(), 1u) << all_notes(l);
  EXPECT_EQ(l.notes[0], "1 of " + std::to_string(row_count(s)) +
                            " rows not laid out as the kernel prints them (spaces collapsed or "
                            "changed), the first at line 8");
}

TEST(LenientBeancounters, TrailingSpaceAndLeadingZerosAreNotExact) {
  const std::string text = fixture("vz7-container.txt");
  std::vector<std::string> lines = lines_of(text);
  lines[3] += " ";
  LenientBeancounters l = lenient_ok(join(lines));
  EXPECT_TRUE(has_note(l, "1 of ")) << all_notes(l);
  EXPECT_TRUE(has_note(l, "the first at line 4")) << all_notes(l);

  lines = lines_of(text);
  // The same width, but a number the kernel would print without leading zeros.
  const std::string before = lines[4];
  ASSERT_EQ(lines[4].substr(lines[4].size() - 2), " 0");
  lines[4].replace(lines[4].size() - 2, 2, "00");
  ASSERT_NE(lines[4], before);
  l = lenient_ok(join(lines));
  EXPECT_TRUE(has_note(l, "the first at line 5")) << all_notes(l);
}

TEST(LenientBeancounters, WrongColumnWidthForTheHeaderIsNotExact) {
  // A 64-bit header above rows printed with 32-bit (10-wide) columns: no kernel prints that.
  std::vector<std::string> wide = lines_of(fixture("openvz6-container.txt"));
  std::vector<std::string> narrow = lines_of(fixture("x86-32bit.txt"));
  narrow[1] = wide[1];
  LenientBeancounters l = lenient_ok(join(narrow));
  EXPECT_TRUE(has_note(l, "the first at line 3")) << all_notes(l);
}

TEST(LenientBeancounters, UnicodeSpacesCrLfBomAndBlankLines) {
  const std::string text = fixture("openvz6-container.txt");
  std::vector<std::string> lines = lines_of(text);
  // Two no-break spaces (U+00A0) and a narrow one (U+202F) in line 4, as a web page copies them.
  std::string& row = lines[3];
  std::size_t at = row.find("  ");
  ASSERT_NE(at, std::string::npos);
  row.replace(at, 2, "\xC2\xA0\xC2\xA0");
  at = row.rfind(' ');
  row.replace(at, 1, "\xE2\x80\xAF");
  std::string pasted = "\xEF\xBB\xBF";
  for (std::size_t i = 0; i < lines.size(); ++i) {
    pasted += lines[i] + "\r\n";
    if (i == 5) pasted += "\r\n";
  }
  pasted += "\n";
  LenientBeancounters l = lenient_ok(pasted);
  expect_same_blocks(strict_ok(text), l.file);
  EXPECT_TRUE(has_note(l, "a byte-order mark at the start")) << all_notes(l);
  EXPECT_TRUE(has_note(l, "3 non-breaking or other Unicode spaces read as ' '")) << all_notes(l);
  EXPECT_TRUE(has_note(l, "Windows line ends (CR LF)")) << all_notes(l);
  EXPECT_TRUE(has_note(l, "2 blank lines")) << all_notes(l);
  // The spaces are read as spaces, so the row is as the kernel prints it; CR LF is noted once.
  EXPECT_FALSE(has_note(l, "not laid out")) << all_notes(l);
  EXPECT_FALSE(has_note(l, "the 'Version:' line is not")) << all_notes(l);
}

TEST(LenientBeancounters, CommandLineBeforeTheFileIsSkipped) {
  const std::string text = fixture("hardware-node.txt");
  LenientBeancounters l = lenient_ok("[root@node ~]# cat /proc/user_beancounters\n" + text);
  expect_same_blocks(strict_ok(text), l.file);
  ASSERT_EQ(l.notes.size(), 1u) << all_notes(l);
  // The line is quoted as every input in a message is: at most 40 characters.
  EXPECT_EQ(l.notes[0],
            "line 1 skipped: '[root@node ~]# cat /proc/user_beancounte...' (the "
            "command that printed the file?)");
}

TEST(LenientBeancounters, VersionWithoutSpaceIsNoted) {
  std::vector<std::string> lines = lines_of(fixture("openvz6-container.txt"));
  lines[0] = "Version:2.5";
  LenientBeancounters l = lenient_ok(join(lines));
  EXPECT_EQ(l.file.version, "2.5");
  ASSERT_EQ(l.notes.size(), 1u) << all_notes(l);
  EXPECT_EQ(l.notes[0], "the 'Version:' line is not as the kernel prints it");
}

TEST(LenientBeancounters, ErrorsKeepTheStrictTextsAndTheInputsLineNumbers) {
  EXPECT_EQ(lenient_error(""), "malformed at line 1: empty file");
  EXPECT_EQ(lenient_error("\xC2\xA0\n \r\n"), "malformed at line 1: empty file");
  EXPECT_EQ(lenient_error("1: shmpages 1 2 3 4\n"),
            "malformed at line 1: truncated row: 4 of 5 numbers after 'shmpages'");
  EXPECT_EQ(lenient_error("# cat /proc/user_beancounters\n\n1: shmpages 1 2 3 x 5\n"),
            "malformed at line 3: not a number: 'x' in limit of 'shmpages'");
  EXPECT_EQ(lenient_error("  shmpages 1 2 3 4 5\n"),
            "malformed at line 1: row 'shmpages' before any container id");
  EXPECT_EQ(lenient_error("1: shmpages 1 2 3 4 5\n1: numproc 1 2 3 4 5\n"),
            "malformed at line 2: duplicate container id '1'");
  std::string e = lenient_error("Version: two\n1: shmpages 1 2 3 4 5\n");
  EXPECT_EQ(e.rfind("malformed at line 1: bad version 'two'", 0), 0u) << e;
  e = lenient_error("Version: 2.5\nuid resource held\n1: shmpages 1 2 3 4 5\n");
  EXPECT_EQ(e.rfind("malformed at line 2: expected header", 0), 0u) << e;
  e = lenient_error("Version: 2.5\n uid resource held maxheld barrier limit failcnt\n\n");
  EXPECT_EQ(e, "malformed at line 4: no beancounter rows after the header");
  e = lenient_error("just some text a customer pasted\n");
  EXPECT_EQ(e, "malformed at line 1: row 'just' before any container id");
  e = lenient_error("<html><head><title>403 Forbidden</title></head></html>\n");
  EXPECT_EQ(e.rfind("malformed at line 1: ", 0), 0u) << e;
  // A byte sequence that only looks like the start of a Unicode space stays what it is.
  e = lenient_error("1: shm\xC2pages 1 2 3 4 5\n");
  EXPECT_EQ(e.rfind("malformed at line 1: bad resource name", 0), 0u) << e;
  e = lenient_error("1: shmpages 1 2 3 4 5\xE2\x80");
  EXPECT_EQ(e.rfind("malformed at line 1: not a number", 0), 0u) << e;
}

TEST(LenientBeancounters, SelectBlockWorksOnTheResult) {
  LenientBeancounters l = lenient_ok(collapse(fixture("hardware-node.txt")));
  Result<BeancounterBlock> host = select_beancounter_block(l.file, std::nullopt);
  ASSERT_TRUE(host) << host.error;
  EXPECT_EQ(host.value->id, "0");
}
