// Unit tests: read_beancounter_block, the single-block reader of /proc/user_beancounters
// (mod_shmguard/core/beancounters.cpp), against parse_user_beancounters + select_beancounter_block.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <dirent.h>
#include <optional>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <vector>

#include <gtest/gtest.h>

#include "beancounter_oracle.hpp"
#include "shmguard/sources.hpp"
#include "test_util.hpp"

using namespace shmguard;
using namespace shmguard_test;

namespace {

// Every regular file below dir, sorted.
void files_below(const std::string& dir, std::vector<std::string>& out) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string path = dir + "/" + name;
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode))
      files_below(path, out);
    else if (S_ISREG(st.st_mode))
      out.push_back(path);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
}

std::string load_path(const std::string& path) {
  Result<std::string> r = read_file(path);
  EXPECT_TRUE(r) << r.error << " (run from the repo root or set SHMGUARD_FIXTURES)";
  return r ? *r.value : std::string();
}

// The full parser's answer, when it parses the file.
Result<BeancounterSelection> full(std::string_view text,
                                  const std::optional<std::string>& container) {
  using R = Result<BeancounterSelection>;
  Result<BeancounterFile> f = parse_user_beancounters(text);
  if (!f) return R::fail(f.error);
  Result<BeancounterBlock> b = select_beancounter_block(*f.value, container);
  if (!b) return R::fail(b.error);
  return R::ok(BeancounterSelection{f.value->version, f.value->version_known,
                                    f.value->blocks.size(), *b.value});
}

// The containers to try on a text: none, every id in it, and one that is not there.
std::vector<std::optional<std::string>> containers_of(std::string_view text) {
  std::vector<std::optional<std::string>> out = {std::nullopt, std::string("no-such-ct")};
  for (const std::string& id : bc_block_ids(text)) out.emplace_back(id);
  return out;
}

std::string label(const std::optional<std::string>& c) {
  return c ? "container '" + *c + "'" : std::string("no container");
}

// The fast reader against the oracle; and against the full parser itself when the full parser
// accepts the file, or when its error is one the fast reader must report too.
void expect_like_full(const std::string& name, std::string_view text,
                      const std::optional<std::string>& c) {
  Result<BeancounterSelection> fast = read_beancounter_block(text, c);
  Result<BeancounterSelection> want = bc_expected(text, c);
  EXPECT_TRUE(bc_same(fast, want))
      << name << ", " << label(c) << "\n  fast:     " << bc_describe(fast)
      << "\n  expected: " << bc_describe(want);
  Result<BeancounterFile> f = parse_user_beancounters(text);
  if (f) {
    Result<BeancounterSelection> ref = full(text, c);
    EXPECT_TRUE(bc_same(fast, ref)) << name << ", " << label(c) << "\n  fast: " << bc_describe(fast)
                                    << "\n  full: " << bc_describe(ref);
  }
}

// /proc/user_beancounters of a hardware node with `containers` blocks (101, 102, ...) and block
// "0" (first or last). layout 0: OpenVZ 6 ("%10s  %-12s"), 1: VZ7 ("%10s%c %-12s"), 2: no space
// ("331:kmemsize"). Container i's shmpages held is 1000 + i.
std::string hardware_node(int containers, int layout, bool host_first, const char* eol = "\n") {
  static const char* const res[] = {
      "kmemsize",   "lockedpages", "privvmpages",  "shmpages",     "dummy",       "numproc",
      "physpages",  "vmguarpages", "oomguarpages", "numtcpsock",   "numflock",    "numpty",
      "numsiginfo", "tcpsndbuf",   "tcprcvbuf",    "othersockbuf", "dgramrcvbuf", "numothersock",
      "dcachesize", "numfile",     "dummy",        "dummy",        "dummy",       "numiptent"};
  std::string out = std::string("Version: 2.5") + eol;
  char line[512];
  std::snprintf(line, sizeof line, "%10s  %-12s %20s %20s %20s %20s %20s", "uid", "resource",
                "held", "maxheld", "barrier", "limit", "failcnt");
  out += std::string(line) + eol;
  std::vector<std::pair<std::string, int>> ids;
  if (host_first) ids.emplace_back("0", 0);
  for (int i = 1; i <= containers; ++i) ids.emplace_back(std::to_string(100 + i), i);
  if (!host_first) ids.emplace_back("0", 0);
  for (const auto& [id, k] : ids) {
    for (std::size_t r = 0; r < 24; ++r) {
      unsigned long long held = r == 3 ? 1000ULL + static_cast<unsigned>(k) : r * 7ULL + k;
      unsigned long long limit = r == 6 ? 9223372036854775807ULL : 262144;
      if (r == 0 && layout == 2) {
        std::snprintf(line, sizeof line, "%10s:%-12s %20llu %20llu %20llu %20llu %20llu",
                      id.c_str(), res[r], held, held + 5, 262144ULL, limit, 0ULL + k % 3);
      } else {
        std::string uid = r == 0 ? id + ":" : "";
        const char* sep = layout == 1 ? " " : "  ";
        std::snprintf(line, sizeof line, "%10s%s%-12s %20llu %20llu %20llu %20llu %20llu",
                      uid.c_str(), sep, res[r], held, held + 5, 262144ULL, limit, 0ULL + k % 3);
      }
      out += std::string(line) + eol;
    }
  }
  return out;
}

const std::string kHeader =
    "Version: 2.5\n"
    "       uid  resource                     held              maxheld              barrier      "
    "          limit              failcnt\n";

}  // namespace

// ------------------------------------------------------------------ every fixture

TEST(BeancounterBlock, EveryFixtureLikeTheFullParser) {
  std::vector<std::string> files;
  files_below(fixtures() + "/beancounters", files);
  std::vector<std::string> trees;
  files_below(fixtures() + "/trees", trees);
  for (const std::string& t : trees)
    if (t.size() >= 18 && t.compare(t.size() - 18, 18, "/user_beancounters") == 0)
      files.push_back(t);
  ASSERT_GE(files.size(), 14u) << "fixtures not found under " << fixtures();
  std::size_t bad = 0;
  for (const std::string& path : files) {
    std::string text = load_path(path);
    if (!parse_user_beancounters(text)) ++bad;
    for (const auto& c : containers_of(text)) expect_like_full(path, text, c);
  }
  EXPECT_GE(bad, 6u);  // the bad/ fixtures were tried too
}

TEST(BeancounterBlock, BadFixturesReportTheFullParsersError) {
  // Each bad fixture's error is in its only (or first) block, or before any block: without a
  // container the fast reader reads that block and reports exactly the full parser's error.
  std::vector<std::string> files;
  files_below(fixtures() + "/beancounters/bad", files);
  ASSERT_GE(files.size(), 6u);
  for (const std::string& path : files) {
    std::string text = load_path(path);
    Result<BeancounterFile> f = parse_user_beancounters(text);
    ASSERT_FALSE(f) << path;
    Result<BeancounterSelection> fast = read_beancounter_block(text, std::nullopt);
    ASSERT_FALSE(fast) << path;
    EXPECT_EQ(fast.error, f.error) << path;
  }
}

TEST(BeancounterBlock, HardwareNodeFixture) {
  std::string text = load_path(fixtures() + "/beancounters/hardware-node.txt");
  Result<BeancounterSelection> r = read_beancounter_block(text, std::nullopt);
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->block.id, "0");
  EXPECT_EQ(r.value->blocks_in_file, 4u);
  EXPECT_EQ(r.value->version, "2.5");
  EXPECT_TRUE(r.value->version_known);
  EXPECT_EQ(r.value->block.rows.size(), 24u);

  r = read_beancounter_block(text, std::string("102"));
  ASSERT_TRUE(r) << r.error;
  const BeancounterRow* shm = r.value->block.find("shmpages");
  ASSERT_NE(shm, nullptr);
  EXPECT_EQ(shm->held, 247122u);
  EXPECT_EQ(shm->failcnt, 10067u);

  r = read_beancounter_block(text, std::string("999"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error, "no block for container '999' (have: 101, 102, 1007, 0)");
  EXPECT_FALSE(read_beancounter_block(text, std::string("10")));
  EXPECT_FALSE(read_beancounter_block(text, std::string("")));
}

// ------------------------------------------------------------------ generated hardware nodes

TEST(BeancounterBlock, Generated500ContainerHardwareNode) {
  std::string text = hardware_node(500, 0, true);
  EXPECT_GT(text.size(), 1500000u);
  Result<BeancounterFile> f = parse_user_beancounters(text);
  ASSERT_TRUE(f) << f.error;
  ASSERT_EQ(f.value->blocks.size(), 501u);
  std::vector<std::optional<std::string>> cs = {std::nullopt, std::string("x")};
  for (const BeancounterBlock& b : f.value->blocks) cs.emplace_back(b.id);
  for (const auto& c : cs) {
    Result<BeancounterSelection> fast = read_beancounter_block(text, c);
    Result<BeancounterBlock> b = select_beancounter_block(*f.value, c);
    Result<BeancounterSelection> ref =
        b ? Result<BeancounterSelection>::ok(
                BeancounterSelection{f.value->version, f.value->version_known, 501, *b.value})
          : Result<BeancounterSelection>::fail(b.error);
    ASSERT_TRUE(bc_same(fast, ref))
        << label(c) << "\n  fast: " << bc_describe(fast) << "\n  full: " << bc_describe(ref);
  }
  Result<BeancounterSelection> r = read_beancounter_block(text, std::string("600"));
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->blocks_in_file, 501u);
  EXPECT_EQ(r.value->block.find("shmpages")->held, 1500u);
  r = read_beancounter_block(text, std::string("x"));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error.find("(have: 0, 101, 102,"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find(", ... (501 in all))"), std::string::npos) << r.error;
}

TEST(BeancounterBlock, GeneratedLayoutsHostLastAndCrlf) {
  for (int layout = 0; layout < 3; ++layout) {
    for (bool host_first : {true, false}) {
      for (const char* eol : {"\n", "\r\n"}) {
        std::string text = hardware_node(30, layout, host_first, eol);
        ASSERT_TRUE(parse_user_beancounters(text)) << layout;
        for (const auto& c : containers_of(text))
          expect_like_full("layout " + std::to_string(layout), text, c);
        Result<BeancounterSelection> r = read_beancounter_block(text, std::nullopt);
        ASSERT_TRUE(r) << r.error;
        EXPECT_EQ(r.value->block.id, "0");
        EXPECT_EQ(r.value->block.find("shmpages")->held, 1000u);
        // Without a final newline too.
        std::string cut = text.substr(0, text.size() - std::string(eol).size());
        for (const auto& c : containers_of(cut)) expect_like_full("no final newline", cut, c);
      }
    }
  }
}

// ------------------------------------------------------------------ what is and is not checked

TEST(BeancounterBlock, ErrorsInSkippedBlocksAreNotDetected) {
  std::string text = kHeader +
                     "       101:  kmemsize 1 2 3 4 5\n"
                     "             shmpages 6 7 8 9 10\n"
                     "       102:  kmemsize 1 2 3 4 5\n"
                     "             shmpages 6 7 <html> 9 10\n"  // line 6
                     "        0:  kmemsize 1 2 3 4 5\n"
                     "             shmpages 11 12 13 14 15\n";
  Result<BeancounterFile> f = parse_user_beancounters(text);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error, "malformed at line 6: not a number: '<html>' in barrier of 'shmpages'");
  // Blocks 101 and 0 do not contain the error.
  Result<BeancounterSelection> r = read_beancounter_block(text, std::nullopt);
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->block.id, "0");
  EXPECT_EQ(r.value->blocks_in_file, 3u);
  EXPECT_EQ(r.value->block.find("shmpages")->held, 11u);
  r = read_beancounter_block(text, std::string("101"));
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->block.find("shmpages")->held, 6u);
  // Block 102 does: the full parser's error, same line.
  r = read_beancounter_block(text, std::string("102"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error, f.error);
}

TEST(BeancounterBlock, ErrorLineNumbersAfterSkippedBlocks) {
  std::string text = hardware_node(500, 0, false);  // block 0 last
  // Break the last row of block 0, the file's last line.
  std::size_t last = text.rfind("numiptent");
  text.replace(last, 9, "numiptent 7");
  Result<BeancounterFile> f = parse_user_beancounters(text);
  ASSERT_FALSE(f);
  const std::string expected_line = "malformed at line " + std::to_string(2 + 501 * 24) + ": ";
  EXPECT_EQ(f.error.rfind(expected_line, 0), 0u) << f.error;
  Result<BeancounterSelection> r = read_beancounter_block(text, std::nullopt);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error, f.error);
  r = read_beancounter_block(text, std::string("0"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error, f.error);
  // Another container's block is read: block 0's rows are skipped.
  r = read_beancounter_block(text, std::string("250"));
  ASSERT_TRUE(r) << r.error;
}

TEST(BeancounterBlock, IdsOfEveryBlockAreChecked) {
  // Duplicates and bad ids are found in skipped blocks too, with the full parser's text.
  std::string dup = kHeader +
                    "101: shmpages 1 2 3 4 5\n102: shmpages 1 2 3 4 5\n\n"
                    "0: shmpages 1 2 3 4 5\n102: shmpages 1 2 3 4 5\n";
  Result<BeancounterFile> f = parse_user_beancounters(dup);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error, "malformed at line 7: duplicate container id '102'");
  for (const auto& c : containers_of(dup)) {
    Result<BeancounterSelection> r = read_beancounter_block(dup, c);
    ASSERT_FALSE(r) << label(c);
    EXPECT_EQ(r.error, f.error) << label(c);
  }
  std::string bad = kHeader +
                    "101: shmpages 1 2 3 4 5\n1\x01"
                    "2: shmpages 1 2 3 4 5\n";
  f = parse_user_beancounters(bad);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error, "malformed at line 4: bad container id in '1?2:'");
  Result<BeancounterSelection> r = read_beancounter_block(bad, std::string("101"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error, f.error);
}

TEST(BeancounterBlock, ColonInsideASkippedRow) {
  // A ':' that is not in a line's first token does not start a block, in a skipped block too.
  std::string text = kHeader +
                     "5: shmpages 1 2 3 4 5\n"
                     "101: shmpages 1 2 3 4 5\n   numproc 1:2 3 4 5 6\n   x y:z\n"
                     "0: shmpages 7 8 9 10 11\n";
  for (const auto& c : containers_of(text)) expect_like_full("colon", text, c);
  Result<BeancounterSelection> r = read_beancounter_block(text, std::nullopt);
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->block.id, "0");
  EXPECT_EQ(r.value->block.rows.size(), 1u);
  EXPECT_EQ(r.value->blocks_in_file, 3u);
  r = read_beancounter_block(text, std::string("5"));
  ASSERT_TRUE(r) << r.error;
  r = read_beancounter_block(text, std::string("101"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error, "malformed at line 5: not a number: '1:2' in held of 'numproc'");
}

TEST(BeancounterBlock, SelectionErrorsAsSelectBeancounterBlock) {
  std::string two = kHeader + "101: shmpages 1 2 3 4 5\n102: shmpages 6 7 8 9 10\n";
  Result<BeancounterSelection> r = read_beancounter_block(two, std::nullopt);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error,
            "2 beancounter blocks and none is the host's '0': name the container (have: 101, 102)");
  r = read_beancounter_block(two, std::string("102"));
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->block.find("shmpages")->held, 6u);

  std::string many = kHeader;
  for (int i = 1; i <= 50; ++i) many += std::to_string(i) + ": shmpages 1 2 3 4 5\n";
  for (const auto& c : containers_of(many)) expect_like_full("50 blocks", many, c);
  r = read_beancounter_block(many, std::string("x"));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error.find("(50 in all)"), std::string::npos) << r.error;
}

TEST(BeancounterBlock, FileLevelErrors) {
  const std::string cases[] = {
      "",
      " \n\n",
      "Version: 2.5\n",
      "Version: 3.x\nuid resource held maxheld barrier limit failcnt\n",
      "Version 2.5\n",
      "Version: 2.5\nuid resource held\n101: shmpages 1 2 3 4 5\n",
      kHeader,
      kHeader + "\n  \n",
      kHeader + "\n  \n\t",
      kHeader + "   shmpages 1 2 3 4 5\n101: shmpages 1 2 3 4 5\n",
      kHeader + "101:\n",
      kHeader + "101: shmpages 1 2 3 4\n",
      kHeader + "101: shmpages 1 2 3 4 5 6\n",
      kHeader + "101: shm-pages 1 2 3 4 5\n",
      kHeader + "101: shmpages 1 2 3 4 -5\n",
      kHeader + "101: shmpages 1 2 3 4 18446744073709551616\n",
  };
  for (const std::string& text : cases) {
    Result<BeancounterFile> f = parse_user_beancounters(text);
    ASSERT_FALSE(f) << text;
    for (const auto& c : containers_of(text)) {
      if (c && *c == "no-such-ct") continue;  // 101's row errors are skipped for other ids
      Result<BeancounterSelection> r = read_beancounter_block(text, c);
      ASSERT_FALSE(r) << text;
      EXPECT_EQ(r.error, f.error) << label(c) << ": " << text;
    }
    for (const auto& c : containers_of(text)) expect_like_full("file-level", text, c);
  }
}

TEST(BeancounterBlock, VersionCarriedOver) {
  std::string text = load_path(fixtures() + "/beancounters/version-2.6.txt");
  Result<BeancounterSelection> r = read_beancounter_block(text, std::nullopt);
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->version, "2.6");
  EXPECT_FALSE(r.value->version_known);
  EXPECT_EQ(r.value->block.id, "777");
  EXPECT_EQ(r.value->blocks_in_file, 1u);
}
