// Unit tests: OpenVZ/Virtuozzo beancounter parsing (mod_shmguard/core/beancounters.cpp).
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "shmguard/sources.hpp"

using namespace shmguard;

namespace {

constexpr std::uint64_t kLongMax = 9223372036854775807ULL;
constexpr std::uint64_t kLongMax32 = 2147483647ULL;

// Fixture files live under $SHMGUARD_FIXTURES, else tests/fixtures (tests run from the repo root).
std::string fixture_path(const std::string& rel) {
  const char* env = std::getenv("SHMGUARD_FIXTURES");
  std::string root = (env != nullptr && *env != '\0') ? env : "tests/fixtures";
  return root + "/" + rel;
}

std::string load(const std::string& rel) {
  Result<std::string> r = read_file(fixture_path(rel));
  EXPECT_TRUE(r) << r.error << " (run from the repo root or set SHMGUARD_FIXTURES)";
  return r ? *r.value : std::string();
}

BeancounterFile parse_ok(std::string_view text) {
  Result<BeancounterFile> r = parse_user_beancounters(text);
  EXPECT_TRUE(r) << r.error;
  return r ? *r.value : BeancounterFile{};
}

std::string parse_error(std::string_view text) {
  Result<BeancounterFile> r = parse_user_beancounters(text);
  EXPECT_FALSE(r) << "parsed although malformed";
  return r.error;
}

void expect_row(const BeancounterBlock& b, std::string_view res, std::uint64_t held,
                std::uint64_t maxheld, std::uint64_t barrier, std::uint64_t limit,
                std::uint64_t failcnt) {
  const BeancounterRow* r = b.find(res);
  ASSERT_NE(r, nullptr) << "no row " << res << " in block " << b.id;
  EXPECT_EQ(r->resource, res);
  EXPECT_EQ(r->held, held) << res;
  EXPECT_EQ(r->maxheld, maxheld) << res;
  EXPECT_EQ(r->barrier, barrier) << res;
  EXPECT_EQ(r->limit, limit) << res;
  EXPECT_EQ(r->failcnt, failcnt) << res;
}

const char* const kCompatOrder[] = {
    "kmemsize",   "lockedpages", "privvmpages",  "shmpages",     "dummy",       "numproc",
    "physpages",  "vmguarpages", "oomguarpages", "numtcpsock",   "numflock",    "numpty",
    "numsiginfo", "tcpsndbuf",   "tcprcvbuf",    "othersockbuf", "dgramrcvbuf", "numothersock",
    "dcachesize", "numfile",     "dummy",        "dummy",        "dummy",       "numiptent"};

// Every resource row of /proc/user_beancounters is kept, in kernel order, dummies included.
void expect_compat_rows(const BeancounterBlock& b) {
  ASSERT_EQ(b.rows.size(), 24u) << b.id;
  for (std::size_t i = 0; i < 24; ++i) EXPECT_EQ(b.rows[i].resource, kCompatOrder[i]) << i;
}

const std::string kHeader64 =
    "Version: 2.5\n"
    "       uid  resource                     held              maxheld              barrier      "
    "          limit              failcnt\n";

}  // namespace

// ------------------------------------------------------------------ units and "unlimited"

TEST(BeancounterUnit, ByName) {
  EXPECT_EQ(beancounter_unit("shmpages"), BcUnit::Pages);
  EXPECT_EQ(beancounter_unit("privvmpages"), BcUnit::Pages);
  EXPECT_EQ(beancounter_unit("physpages"), BcUnit::Pages);
  EXPECT_EQ(beancounter_unit("swappages"), BcUnit::Pages);
  EXPECT_EQ(beancounter_unit("numproc"), BcUnit::Count);
  EXPECT_EQ(beancounter_unit("numiptent"), BcUnit::Count);
  EXPECT_EQ(beancounter_unit("numfile"), BcUnit::Count);
  EXPECT_EQ(beancounter_unit("kmemsize"), BcUnit::Bytes);
  EXPECT_EQ(beancounter_unit("tcpsndbuf"), BcUnit::Bytes);
  EXPECT_EQ(beancounter_unit("dcachesize"), BcUnit::Bytes);
  EXPECT_EQ(beancounter_unit("dummy"), BcUnit::Bytes);
  EXPECT_EQ(beancounter_unit(""), BcUnit::Bytes);
  EXPECT_EQ(beancounter_unit("pages"), BcUnit::Pages);
  EXPECT_EQ(beancounter_unit("nu"), BcUnit::Bytes);
}

TEST(BeancounterUnit, ToString) {
  EXPECT_STREQ(to_string(BcUnit::Pages), "pages");
  EXPECT_STREQ(to_string(BcUnit::Bytes), "bytes");
  EXPECT_STREQ(to_string(BcUnit::Count), "count");
}

TEST(BeancounterRow, Unlimited) {
  BeancounterRow r;
  r.barrier = kLongMax;
  r.limit = kLongMax32;
  EXPECT_TRUE(r.barrier_unlimited());
  EXPECT_TRUE(r.limit_unlimited());
  r.barrier = 0;
  r.limit = 0;
  EXPECT_TRUE(r.barrier_unlimited());
  EXPECT_TRUE(r.limit_unlimited());
  r.barrier = 262144;
  r.limit = 262144;
  EXPECT_FALSE(r.barrier_unlimited());
  EXPECT_FALSE(r.limit_unlimited());
  r.barrier = kLongMax - 1;
  r.limit = kLongMax32 - 1;
  EXPECT_FALSE(r.barrier_unlimited());
  EXPECT_FALSE(r.limit_unlimited());
  r.barrier = UINT64_MAX;  // above LONG_MAX: no real limit can be that high
  EXPECT_TRUE(r.barrier_unlimited());
}

// ------------------------------------------------------------------ good fixtures

TEST(UserBeancounters, OpenVZ6FieldReport) {
  BeancounterFile f = parse_ok(load("beancounters/openvz6-container.txt"));
  EXPECT_EQ(f.version, "2.5");
  EXPECT_TRUE(f.version_known);
  ASSERT_EQ(f.blocks.size(), 1u);
  const BeancounterBlock& b = f.blocks[0];
  EXPECT_EQ(b.id, "852638");
  expect_compat_rows(b);
  expect_row(b, "shmpages", 247122, 262131, 262144, 262144, 10067);
  expect_row(b, "privvmpages", 498310, 523944, 2359296, 2359296, 0);
  expect_row(b, "kmemsize", 16595303, 21577728, 67108864, 75497472, 0);
  expect_row(b, "lockedpages", 0, 0, 64, 64, 0);
  expect_row(b, "physpages", 389512, 1451334, 0, 2621440, 0);
  expect_row(b, "numproc", 87, 142, 2048, 2048, 0);
  expect_row(b, "numiptent", 24, 24, kLongMax, kLongMax, 0);

  const BeancounterRow* shm = b.find("shmpages");
  ASSERT_NE(shm, nullptr);
  EXPECT_EQ(shm->unit, BcUnit::Pages);
  EXPECT_FALSE(shm->barrier_unlimited());
  EXPECT_FALSE(shm->limit_unlimited());
  EXPECT_EQ(b.find("kmemsize")->unit, BcUnit::Bytes);
  EXPECT_EQ(b.find("numproc")->unit, BcUnit::Count);
  const BeancounterRow* phys = b.find("physpages");
  EXPECT_TRUE(phys->barrier_unlimited());  // vswap: barrier 0
  EXPECT_FALSE(phys->limit_unlimited());
  EXPECT_TRUE(b.find("numtcpsock")->limit_unlimited());
  EXPECT_EQ(b.find("swappages"), nullptr);
  EXPECT_EQ(b.find("shm"), nullptr);
  EXPECT_EQ(b.find(""), nullptr);
}

TEST(UserBeancounters, VZ7Container) {
  BeancounterFile f = parse_ok(load("beancounters/vz7-container.txt"));
  EXPECT_TRUE(f.version_known);
  ASSERT_EQ(f.blocks.size(), 1u);
  EXPECT_EQ(f.blocks[0].id, "101");
  expect_compat_rows(f.blocks[0]);
  expect_row(f.blocks[0], "shmpages", 21954, 36521, 131072, 131072, 0);
  expect_row(f.blocks[0], "privvmpages", 303817, 377103, kLongMax, kLongMax, 0);
  expect_row(f.blocks[0], "physpages", 212475, 262144, 262144, 262144, 3);
  expect_row(f.blocks[0], "numiptent", 31, 31, 2000, 2000, 0);
}

TEST(UserBeancounters, VZ7UuidId) {
  BeancounterFile f = parse_ok(load("beancounters/vz7-uuid-id.txt"));
  ASSERT_EQ(f.blocks.size(), 1u);
  EXPECT_EQ(f.blocks[0].id, "a1b2c3d4-e5f6-4789-8abc-1234567890ab");
  expect_compat_rows(f.blocks[0]);
  expect_row(f.blocks[0], "kmemsize", 48726016, 71303168, kLongMax, kLongMax, 0);
  expect_row(f.blocks[0], "shmpages", 65536, 65536, 65536, 65536, 412);
  expect_row(f.blocks[0], "privvmpages", 812003, 901223, 1048576, 1153433, 7);

  Result<BeancounterBlock> s =
      select_beancounter_block(f, std::string("a1b2c3d4-e5f6-4789-8abc-1234567890ab"));
  ASSERT_TRUE(s) << s.error;
  EXPECT_EQ(s.value->find("shmpages")->failcnt, 412u);
}

TEST(UserBeancounters, VirtuozzoNoSpace) {
  BeancounterFile f = parse_ok(load("beancounters/virtuozzo-nospace.txt"));
  ASSERT_EQ(f.blocks.size(), 1u);
  EXPECT_EQ(f.blocks[0].id, "331");
  expect_compat_rows(f.blocks[0]);
  expect_row(f.blocks[0], "kmemsize", 9764864, 15872000, 134217728, 150994944, 0);
  expect_row(f.blocks[0], "privvmpages", 131072, 180321, 262144, 275251, 2);
  expect_row(f.blocks[0], "shmpages", 4096, 10240, 32768, 32768, 0);
}

TEST(UserBeancounters, HardwareNodeSeveralBlocks) {
  BeancounterFile f = parse_ok(load("beancounters/hardware-node.txt"));
  ASSERT_EQ(f.blocks.size(), 4u);
  EXPECT_EQ(f.blocks[0].id, "101");
  EXPECT_EQ(f.blocks[1].id, "102");
  EXPECT_EQ(f.blocks[2].id, "1007");
  EXPECT_EQ(f.blocks[3].id, "0");
  for (const BeancounterBlock& b : f.blocks) expect_compat_rows(b);
  expect_row(f.blocks[0], "shmpages", 1200, 5000, 65536, 65536, 0);
  expect_row(f.blocks[1], "shmpages", 247122, 262131, 262144, 262144, 10067);
  expect_row(f.blocks[2], "shmpages", 3, 3, 131072, 131072, 0);
  expect_row(f.blocks[3], "shmpages", 247122 * 7, 262131 * 7, kLongMax, kLongMax, 0);
  expect_row(f.blocks[2], "privvmpages", 4211, 8022, 524288, 524288, 0);
}

TEST(UserBeancounters, X86_32BitColumns) {
  BeancounterFile f = parse_ok(load("beancounters/x86-32bit.txt"));
  EXPECT_TRUE(f.version_known);
  ASSERT_EQ(f.blocks.size(), 1u);
  const BeancounterBlock& b = f.blocks[0];
  EXPECT_EQ(b.id, "101");
  expect_compat_rows(b);
  expect_row(b, "shmpages", 4912, 8192, 21504, 21504, 37);
  expect_row(b, "privvmpages", 45119, 49152, 65536, 69632, 12);
  expect_row(b, "kmemsize", 2752512, 3227648, 11055923, 11377049, 0);
  expect_row(b, "physpages", 12006, 20981, 0, kLongMax32, 0);
  EXPECT_TRUE(b.find("physpages")->limit_unlimited());
  EXPECT_TRUE(b.find("vmguarpages")->limit_unlimited());
  EXPECT_FALSE(b.find("vmguarpages")->barrier_unlimited());
  EXPECT_FALSE(b.find("shmpages")->barrier_unlimited());
}

TEST(UserBeancounters, AllUnlimited) {
  BeancounterFile f = parse_ok(load("beancounters/all-unlimited.txt"));
  ASSERT_EQ(f.blocks.size(), 1u);
  EXPECT_EQ(f.blocks[0].id, "200");
  expect_compat_rows(f.blocks[0]);
  for (const BeancounterRow& r : f.blocks[0].rows) {
    EXPECT_TRUE(r.barrier_unlimited()) << r.resource;
    EXPECT_TRUE(r.limit_unlimited()) << r.resource;
  }
  expect_row(f.blocks[0], "shmpages", 21954, 36521, kLongMax, kLongMax, 0);
  expect_row(f.blocks[0], "physpages", 212475, 262144, 0, kLongMax, 0);
}

TEST(UserBeancounters, Version26ParsedButUnknown) {
  BeancounterFile f = parse_ok(load("beancounters/version-2.6.txt"));
  EXPECT_EQ(f.version, "2.6");
  EXPECT_FALSE(f.version_known);
  ASSERT_EQ(f.blocks.size(), 1u);
  EXPECT_EQ(f.blocks[0].id, "777");
  expect_row(f.blocks[0], "shmpages", 777, 1554, 524288, 524288, 0);
}

// ------------------------------------------------------------------ bad fixtures

struct BadCase {
  const char* file;
  const char* line;  // "malformed at line N"
  const char* what;  // a word of the reason
};

TEST(UserBeancounters, BadFixturesFailWithLine) {
  const BadCase cases[] = {
      {"empty.txt", "malformed at line 1: ", "empty"},
      {"truncated.txt", "malformed at line 6: ", "truncated row: 2 of 5 numbers"},
      {"garbage.txt", "malformed at line 4: ", "not a number: '<html><body>502'"},
      {"overflow.txt", "malformed at line 5: ", "out of range"},
      {"negative.txt", "malformed at line 6: ", "negative number '-1' in failcnt"},
      {"continuation-first.txt", "malformed at line 3: ", "before any container id"},
  };
  for (const BadCase& c : cases) {
    std::string text = load(std::string("beancounters/bad/") + c.file);
    Result<BeancounterFile> r = parse_user_beancounters(text);
    EXPECT_FALSE(r) << c.file;
    EXPECT_EQ(r.error.rfind(c.line, 0), 0u) << c.file << ": " << r.error;
    EXPECT_NE(r.error.find(c.what), std::string::npos) << c.file << ": " << r.error;
  }
}

// ------------------------------------------------------------------ inline: layouts

TEST(UserBeancountersInline, ThreeLayoutsOneFile) {
  BeancounterFile f = parse_ok(kHeader64 +
                               "    852638:  kmemsize 1 2 3 4 5\n"
                               "             shmpages 6 7 8 9 10\n"
                               "       101: kmemsize 11 12 13 14 15\n"
                               "            shmpages 16 17 18 19 20\n"
                               "       331:kmemsize 21 22 23 24 25\n"
                               "\tshmpages\t26\t27\t28\t29\t30\n");
  ASSERT_EQ(f.blocks.size(), 3u);
  EXPECT_EQ(f.blocks[0].id, "852638");
  EXPECT_EQ(f.blocks[1].id, "101");
  EXPECT_EQ(f.blocks[2].id, "331");
  expect_row(f.blocks[0], "shmpages", 6, 7, 8, 9, 10);
  expect_row(f.blocks[1], "kmemsize", 11, 12, 13, 14, 15);
  expect_row(f.blocks[2], "kmemsize", 21, 22, 23, 24, 25);
  expect_row(f.blocks[2], "shmpages", 26, 27, 28, 29, 30);
}

TEST(UserBeancountersInline, IdSplitAtFirstColon) {
  BeancounterFile f = parse_ok(kHeader64 + "ct:kmemsize 1 2 3 4 5\n");
  ASSERT_EQ(f.blocks.size(), 1u);
  EXPECT_EQ(f.blocks[0].id, "ct");
  EXPECT_EQ(f.blocks[0].rows[0].resource, "kmemsize");
  // "a:b:kmemsize" splits into id "a" and resource "b:kmemsize", which is no resource name.
  std::string e = parse_error(kHeader64 + "a:b:kmemsize 1 2 3 4 5\n");
  EXPECT_NE(e.find("malformed at line 3: bad resource name"), std::string::npos) << e;
}

TEST(UserBeancountersInline, CrlfNoFinalNewlineAndBlankLines) {
  BeancounterFile f = parse_ok(
      "Version: 2.5\r\n uid resource held maxheld barrier limit failcnt\r\n\r\n"
      " 5: shmpages 1 2 3 4 5\r\n\n   privvmpages 18446744073709551615 0 0 0 0");
  ASSERT_EQ(f.blocks.size(), 1u);
  EXPECT_EQ(f.blocks[0].id, "5");
  expect_row(f.blocks[0], "shmpages", 1, 2, 3, 4, 5);
  expect_row(f.blocks[0], "privvmpages", UINT64_MAX, 0, 0, 0, 0);
}

TEST(UserBeancountersInline, VersionWithoutSpace) {
  BeancounterFile f = parse_ok(
      "Version:2.5\nuid resource held maxheld barrier limit failcnt\n"
      "1: shmpages 1 2 3 4 5\n");
  EXPECT_EQ(f.version, "2.5");
  EXPECT_TRUE(f.version_known);
}

TEST(UserBeancountersInline, OtherVersionWithMatchingColumns) {
  BeancounterFile f = parse_ok(
      "Version: 3.0\nuid resource held maxheld barrier limit failcnt\n"
      "1: shmpages 1 2 3 4 5\n");
  EXPECT_EQ(f.version, "3.0");
  EXPECT_FALSE(f.version_known);
  expect_row(f.blocks.at(0), "shmpages", 1, 2, 3, 4, 5);
}

// ------------------------------------------------------------------ inline: errors

TEST(UserBeancountersInline, HeaderErrors) {
  EXPECT_EQ(parse_error(""), "malformed at line 1: empty file");
  EXPECT_EQ(parse_error(" \n\t\n"), "malformed at line 1: empty file");
  std::string e = parse_error("uid resource held maxheld barrier limit failcnt\n1: a 1 2 3 4 5\n");
  EXPECT_EQ(e.rfind("malformed at line 1: expected 'Version: 2.5'", 0), 0u) << e;
  e = parse_error("Version: 2.5\n");
  EXPECT_EQ(e, "malformed at line 2: missing column header");
  e = parse_error("Version: 2.5");
  EXPECT_EQ(e, "malformed at line 2: missing column header");
  e = parse_error("Version: 2.5\nuid resource held maxheld barrier limit\n1: a 1 2 3 4 5\n");
  EXPECT_EQ(e.rfind("malformed at line 2: expected header", 0), 0u) << e;
  e = parse_error("Version: 2.6\nuid resource held barrier maxheld limit failcnt\n");
  EXPECT_EQ(e.rfind("malformed at line 2: expected header", 0), 0u) << e;
  e = parse_error("Version: 2.5\nuid resource held maxheld barrier limit failcnt extra\n");
  EXPECT_EQ(e.rfind("malformed at line 2: ", 0), 0u) << e;
  e = parse_error("Version: two\nuid resource held maxheld barrier limit failcnt\n");
  EXPECT_EQ(e.rfind("malformed at line 1: bad version", 0), 0u) << e;
  e = parse_error("Version:\nuid resource held maxheld barrier limit failcnt\n");
  EXPECT_EQ(e.rfind("malformed at line 1: ", 0), 0u) << e;
  e = parse_error("<html><head><title>403 Forbidden</title></head></html>\n");
  EXPECT_EQ(e.rfind("malformed at line 1: ", 0), 0u) << e;
  e = parse_error(kHeader64);
  EXPECT_EQ(e, "malformed at line 3: no beancounter rows after the header");
}

TEST(UserBeancountersInline, RowErrors) {
  struct Case {
    std::string rows;
    std::string expect;  // error prefix
  };
  const Case cases[] = {
      {"1: shmpages 1 2 3 4\n", "malformed at line 3: truncated row: 4 of 5 numbers"},
      {"1: shmpages\n", "malformed at line 3: truncated row: 0 of 5 numbers"},
      {"1:\n", "malformed at line 3: truncated row: nothing after '1:'"},
      {"1: 1 2 3 4 5\n", "malformed at line 3: bad resource name '1'"},
      {"1: shmpages 1 2 3 4 5 6\n", "malformed at line 3: unexpected text '6'"},
      {"1: shmpages 1 2 3 4 5\n  numproc 1 2 x 4 5\n",
       "malformed at line 4: not a number: 'x' in barrier of 'numproc'"},
      {"1: shmpages 1 2 3 4 5\n  numproc 1 2 +3 4 5\n", "malformed at line 4: not a number"},
      {"1: shmpages 1 2 3 4 0x10\n", "malformed at line 3: not a number: '0x10'"},
      {"1: shmpages 1 2 3 4 5\n\n\n  numproc 1 2 3 4 5.0\n", "malformed at line 6: not a number"},
      {"1: shmpages 18446744073709551616 2 3 4 5\n",
       "malformed at line 3: number '18446744073709551616' out of range"},
      {"1: shmpages 99999999999999999999999999 2 3 4 5\n",
       "malformed at line 3: number '99999999999999999999999999' out of range"},
      {"1: shmpages -5 2 3 4 5\n", "malformed at line 3: negative number '-5' in held"},
      {"1: shmpages 1 2 3 -9223372036854775808 5\n",
       "malformed at line 3: negative number '-9223372036854775808' in limit"},
      {"  shmpages 1 2 3 4 5\n", "malformed at line 3: row 'shmpages' before any container id"},
      {"1: shmpages 1 2 3 4 5\n2: shmpages 1 2 3 4 5\n1: shmpages 1 2 3 4 5\n",
       "malformed at line 5: duplicate container id '1'"},
      {":shmpages 1 2 3 4 5\n", "malformed at line 3: bad container id"},
      {std::string("1\x01: shmpages 1 2 3 4 5\n"), "malformed at line 3: bad container id"},
      {std::string("1: shm\0pages 1 2 3 4 5\n", 24), "malformed at line 3: bad resource name"},
      {"1: shmpages 1 2 3 4 5\n  uid resource held maxheld barrier limit failcnt\n",
       "malformed at line 4: "},
  };
  for (const Case& c : cases) {
    std::string e = parse_error(kHeader64 + c.rows);
    EXPECT_EQ(e.rfind(c.expect, 0), 0u) << "rows: " << c.rows << "\nerror: " << e;
  }
}

TEST(UserBeancountersInline, LongGarbageIsQuotedShort) {
  std::string junk(5000, 'z');
  std::string e = parse_error(kHeader64 + "1: shmpages 1 2 3 4 " + junk + "\n");
  EXPECT_EQ(e.rfind("malformed at line 3: not a number", 0), 0u) << e;
  EXPECT_LT(e.size(), 200u);
  EXPECT_NE(e.find("..."), std::string::npos);
}

// ------------------------------------------------------------------ selection

TEST(SelectBlock, HardwareNode) {
  BeancounterFile f = parse_ok(load("beancounters/hardware-node.txt"));
  Result<BeancounterBlock> host = select_beancounter_block(f, std::nullopt);
  ASSERT_TRUE(host) << host.error;
  EXPECT_EQ(host.value->id, "0");

  Result<BeancounterBlock> ct = select_beancounter_block(f, std::string("102"));
  ASSERT_TRUE(ct) << ct.error;
  EXPECT_EQ(ct.value->id, "102");
  expect_row(*ct.value, "shmpages", 247122, 262131, 262144, 262144, 10067);

  Result<BeancounterBlock> missing = select_beancounter_block(f, std::string("999"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error, "no block for container '999' (have: 101, 102, 1007, 0)");
  // Ids are matched exactly, not as prefixes or numbers.
  EXPECT_FALSE(select_beancounter_block(f, std::string("10")));
  EXPECT_FALSE(select_beancounter_block(f, std::string("0102")));
  EXPECT_FALSE(select_beancounter_block(f, std::string("")));
}

TEST(SelectBlock, SingleBlock) {
  BeancounterFile f = parse_ok(load("beancounters/openvz6-container.txt"));
  Result<BeancounterBlock> r = select_beancounter_block(f, std::nullopt);
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->id, "852638");
  r = select_beancounter_block(f, std::string("852638"));
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->rows.size(), 24u);
  // A named container that is not the only block is an error, not a fallback.
  r = select_beancounter_block(f, std::string("101"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error, "no block for container '101' (have: 852638)");
}

TEST(SelectBlock, SeveralWithoutHostBlock) {
  BeancounterFile f = parse_ok(kHeader64 + "101: shmpages 1 2 3 4 5\n102: shmpages 6 7 8 9 10\n");
  Result<BeancounterBlock> r = select_beancounter_block(f, std::nullopt);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error.find("(have: 101, 102)"), std::string::npos) << r.error;
  r = select_beancounter_block(f, std::string("102"));
  ASSERT_TRUE(r) << r.error;
  expect_row(*r.value, "shmpages", 6, 7, 8, 9, 10);
}

TEST(SelectBlock, NoBlocks) {
  BeancounterFile empty;
  Result<BeancounterBlock> r = select_beancounter_block(empty, std::nullopt);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error.find("have: none"), std::string::npos) << r.error;
  r = select_beancounter_block(empty, std::string("0"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error, "no block for container '0' (have: none)");
}

TEST(SelectBlock, ManyIdsListedShort) {
  std::string text = kHeader64;
  for (int i = 1; i <= 50; ++i) text += std::to_string(i) + ": shmpages 1 2 3 4 5\n";
  BeancounterFile f = parse_ok(text);
  ASSERT_EQ(f.blocks.size(), 50u);
  Result<BeancounterBlock> r = select_beancounter_block(f, std::string("x"));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error.find("(50 in all)"), std::string::npos) << r.error;
  EXPECT_EQ(r.error.find(", 21,"), std::string::npos) << r.error;
}

// ------------------------------------------------------------------ /proc/bc/<id>/resources

TEST(BcResources, VZ7Fixture) {
  std::string text = load("bc/101/resources");
  Result<BeancounterBlock> r = parse_bc_resources(text, "101");
  ASSERT_TRUE(r) << r.error;
  const BeancounterBlock& b = *r.value;
  EXPECT_EQ(b.id, "101");
  ASSERT_EQ(b.rows.size(), 21u);
  EXPECT_EQ(b.rows.front().resource, "kmemsize");
  EXPECT_EQ(b.rows.back().resource, "swappages");
  EXPECT_EQ(b.find("dummy"), nullptr);
  expect_row(b, "shmpages", 21954, 36521, 131072, 131072, 0);
  expect_row(b, "privvmpages", 303817, 377103, kLongMax, kLongMax, 0);
  expect_row(b, "swappages", 1204, 1955, 0, 524288, 0);
  EXPECT_EQ(b.find("swappages")->unit, BcUnit::Pages);

  // Same numbers as the container's /proc/user_beancounters block.
  BeancounterFile f = parse_ok(load("beancounters/vz7-container.txt"));
  const BeancounterBlock& ub = f.blocks.at(0);
  for (const BeancounterRow& row : b.rows) {
    const BeancounterRow* u = ub.find(row.resource);
    if (u == nullptr) continue;  // swappages is not in the compat list
    EXPECT_EQ(u->held, row.held) << row.resource;
    EXPECT_EQ(u->barrier, row.barrier) << row.resource;
  }
}

TEST(BcResources, Inline) {
  Result<BeancounterBlock> r = parse_bc_resources(
      "            kmemsize  1 2 3 4 5\n\tshmpages 6 7 8 9 10\r\n\n numproc 0 0 0 0 0", "ct-7");
  ASSERT_TRUE(r) << r.error;
  EXPECT_EQ(r.value->id, "ct-7");
  ASSERT_EQ(r.value->rows.size(), 3u);
  expect_row(*r.value, "shmpages", 6, 7, 8, 9, 10);
  EXPECT_EQ(r.value->find("numproc")->unit, BcUnit::Count);
}

TEST(BcResources, Errors) {
  struct Case {
    std::string text;
    std::string expect;
  };
  const Case cases[] = {
      {"", "malformed at line 1: empty file"},
      {"\n  \n", "malformed at line 1: empty file"},
      {"kmemsize 1 2 3 4 5\nshmpages 1 2 3\n", "malformed at line 2: truncated row: 3 of 5"},
      {"kmemsize 1 2 3 4 5\n\nshmpages 1 2 3 4 5 6\n", "malformed at line 3: unexpected text"},
      {"101: kmemsize 1 2 3 4 5\n", "malformed at line 1: bad resource name '101:'"},
      {"Version: 2.5\n", "malformed at line 1: bad resource name 'Version:'"},
      {"shmpages 1 2 3 4 18446744073709551616\n", "malformed at line 1: number"},
      {"shmpages 1 -2 3 4 5\n", "malformed at line 1: negative number '-2' in maxheld"},
      {"shmpages 1 2 3 4 five\n", "malformed at line 1: not a number: 'five' in failcnt"},
  };
  for (const Case& c : cases) {
    Result<BeancounterBlock> r = parse_bc_resources(c.text, "101");
    EXPECT_FALSE(r) << c.text;
    EXPECT_EQ(r.error.rfind(c.expect, 0), 0u) << "text: " << c.text << "\nerror: " << r.error;
  }
}
