// Worker scanning: maps, stat, and PHP's allocation-failure line.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstring>
#include <unistd.h>

#include "shmguard/workers.hpp"

using namespace shmguard;

TEST(Maps, FindsSharedAnonymousSegments) {
  const char* maps =
      "55d0c0a00000-55d0c0a2e000 r--p 00000000 fe:01 1837453    /usr/bin/php-cgi8.2\n"
      "7f1c2c000000-7f1c30000000 rw-s 00000000 00:01 40960      /dev/zero (deleted)\n"
      "7f1c30000000-7f1c32000000 rw-s 00000000 00:0f 98307      /SYSV00000000 (deleted)\n"
      "7f1c40000000-7f1c40400000 rw-s 00000000 00:10 77         /anon_hugepage (deleted)\n"
      "7f1c50000000-7f1c50001000 rw-s 00000000 fe:01 12         /var/lib/data.bin\n"
      "7ffd1e5f1000-7ffd1e612000 rw-p 00000000 00:00 0          [stack]\n";
  auto r = parse_maps_shared(maps);
  ASSERT_TRUE(r) << r.error;
  ASSERT_EQ(r.value->size(), 3u);
  EXPECT_EQ((*r.value)[0].kind, "anon-shared");
  EXPECT_EQ((*r.value)[0].size, 64ULL << 20);
  EXPECT_EQ((*r.value)[0].inode, 40960u);
  EXPECT_EQ((*r.value)[0].dev_minor, 1u);
  EXPECT_EQ((*r.value)[1].kind, "sysv");
  EXPECT_EQ((*r.value)[1].size, 32ULL << 20);
  EXPECT_EQ((*r.value)[2].kind, "hugepage");
}

TEST(Maps, MalformedSaysLine) {
  auto r = parse_maps_shared("7f-7e rw-s 0 00:01 1 /dev/zero\n");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error.find("line 1"), std::string::npos);
  EXPECT_FALSE(parse_maps_shared("garbage\n"));
  EXPECT_FALSE(parse_maps_shared("0-1000 rw-s 0 00:01 99999999999999999999999 /dev/zero\n"));
}

TEST(Maps, RealProcessWithSharedMapping) {
  // This process maps a shared anonymous segment: it must show up with its size.
  const std::size_t len = 3 << 20;
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  auto w = read_worker("/proc", ::getpid());
  ::munmap(p, len);
  ASSERT_TRUE(w) << w.error;
  EXPECT_EQ(w.value->pid, ::getpid());
  bool found = false;
  for (const auto& s : w.value->segments)
    if (s.kind == "anon-shared" && s.size == len) found = true;
  EXPECT_TRUE(found);
}

TEST(Stat, CommWithParenthesesAndSpaces) {
  auto st = parse_proc_stat(
      "4242 (php (cgi) x) S 4200 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 1 1");
  ASSERT_TRUE(st) << st.error;
  EXPECT_EQ(st.value->pid, 4242);
  EXPECT_EQ(st.value->ppid, 4200);
  EXPECT_EQ(st.value->comm, "php (cgi) x");
  EXPECT_EQ(st.value->start_ticks, 987654u);
  EXPECT_FALSE(parse_proc_stat("4242 (x) S"));
  EXPECT_FALSE(parse_proc_stat(""));
}

TEST(Stat, Descendants) {
  std::vector<ProcStat> all{{1, 0, "init", 0},   {10, 1, "apache2", 0}, {11, 10, "pm", 0},
                            {12, 11, "php", 0},  {13, 11, "php", 0},    {14, 10, "apache2", 0},
                            {20, 1, "other", 0}, {21, 12, "sh", 0}};
  EXPECT_EQ(descendants(all, 11), (std::vector<int>{12, 13, 21}));
  EXPECT_EQ(descendants(all, 99), std::vector<int>{});
}

TEST(Status, RssShmemOfThisProcessGrowsWithTouchedSharedPages) {
  auto before = read_rss_shmem("/proc", ::getpid());
  ASSERT_TRUE(before) << before.error;
  const std::size_t len = 4 << 20;
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  std::memset(p, 1, len);  // touched pages count in RssShmem
  auto after = read_rss_shmem("/proc", ::getpid());
  ::munmap(p, len);
  ASSERT_TRUE(after) << after.error;
  EXPECT_GE(*after.value, *before.value + len);
  EXPECT_FALSE(read_rss_shmem("/proc", 0x7ffffff0));
}
