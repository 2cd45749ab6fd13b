// mod_fcgid process table reader on a synthetic table with the 2.3.9 layout.
#include <gtest/gtest.h>

#include "fcgid_table.hpp"

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "shmguard/fcgid.hpp"

using namespace shmguard::fcgid;
using shmguard_test::Table;

namespace {
bool all_alive(int) {
  return true;
}
bool odd_alive(int pid) {
  return pid % 2 == 1;
}
}  // namespace

TEST(FcgidTable, CountsIdleAndBusyOfTheClass) {
  Table t;
  t.add(kIdleHead, 4, 101, 77, 1, "/srv/wrap.sh");
  t.add(kIdleHead, 5, 103, 77, 1, "/srv/wrap.sh");
  t.add(kBusyHead, 6, 105, 77, 1, "/srv/wrap.sh");
  t.add(kBusyHead, 7, 107, 77, 2, "/srv/wrap.sh");   // other vhost
  t.add(kIdleHead, 8, 109, 78, 1, "/srv/other.sh");  // other wrapper
  t.add(kErrorHead, 9, 111, 77, 1, "/srv/wrap.sh");  // dying: not counted
  ClassKey k;
  k.inode = 77;
  k.deviceid = 65024;
  k.vhost_id = 1;
  EXPECT_EQ(count_class_workers(t.mem.data(), k, all_alive), 3);
  k.cmdline = "/srv/wrap.sh";
  EXPECT_EQ(count_class_workers(t.mem.data(), k, all_alive), 3);
  k.cmdline = "/srv/wrap.sh -x";
  EXPECT_EQ(count_class_workers(t.mem.data(), k, all_alive), 0);
  k.cmdline = nullptr;
  k.vhost_id = 2;
  EXPECT_EQ(count_class_workers(t.mem.data(), k, all_alive), 1);
  EXPECT_EQ(count_class_workers(nullptr, k, all_alive), -1);
}

TEST(FcgidTable, DeadPidsAreNotWorkers) {
  Table t;
  t.add(kIdleHead, 4, 100, 77, 1, "/w");
  t.add(kIdleHead, 5, 101, 77, 1, "/w");
  ClassKey k;
  k.inode = 77;
  k.deviceid = 65024;
  k.vhost_id = 1;
  EXPECT_EQ(count_class_workers(t.mem.data(), k, odd_alive), 1);
}

namespace {
// mod_fcgid's own list moves (fcgid_bridge.c apply_free_procnode / return_procnode: unlink, then
// push at the front of the other list), with each link written whole, as another process's
// stores reach this one.
int link_of(Table& t, int i) {
  return __atomic_load_n(reinterpret_cast<int*>(t.node(i) + off::next_index), __ATOMIC_RELAXED);
}
void set_link(Table& t, int i, int to) {
  __atomic_store_n(reinterpret_cast<int*>(t.node(i) + off::next_index), to, __ATOMIC_RELAXED);
}
void move_node(Table& t, int from_head, int to_head, int node) {
  for (int prev = from_head, cur = link_of(t, from_head); cur != 0;
       prev = cur, cur = link_of(t, cur))
    if (cur == node) {
      set_link(t, prev, link_of(t, node));
      set_link(t, node, link_of(t, to_head));
      set_link(t, to_head, node);
      return;
    }
}
}  // namespace

// The guard counts workers without mod_fcgid's lock while mod_fcgid moves them between lists. A
// worker taken from the idle list between the walks of the idle and the busy list was counted
// twice: a "free" worker that did not exist, and mod_fcgid started one a second later, unreserved.
TEST(FcgidTable, CountNeverExceedsTheWorkersWhileTheListsMove) {
  Table t;
  t.add(kIdleHead, 4, 101, 77, 1, "/w");
  t.add(kIdleHead, 5, 103, 77, 1, "/w");
  t.add(kBusyHead, 6, 105, 78, 1, "/other");
  t.add(kErrorHead, 7, 107, 77, 1, "/w");  // dying, still alive: not a worker
  ClassKey k;
  k.inode = 77;
  k.deviceid = 65024;
  k.vhost_id = 1;
  k.cmdline = "/w";
  ASSERT_EQ(count_class_workers(t.mem.data(), k, all_alive), 2);
  std::atomic<bool> stop{false};
  std::thread fcgid([&] {
    for (unsigned n = 0; !stop.load(std::memory_order_relaxed); ++n) {
      int node = 4 + static_cast<int>(n % 2);
      move_node(t, kIdleHead, kBusyHead, node);  // a request takes it
      move_node(t, kBusyHead, kIdleHead, node);  // and gives it back
      if (n % 8 == 0) {                          // the idle scan kills one, then it comes back
        move_node(t, kIdleHead, kErrorHead, node);
        move_node(t, kErrorHead, kIdleHead, node);
      }
    }
  });
  int most = 0;
  for (int i = 0; i < 300000; ++i) {
    int c = count_class_workers(t.mem.data(), k, all_alive);
    if (c > most) most = c;
  }
  stop = true;
  fcgid.join();
  EXPECT_LE(most, 2) << "a worker counted twice (or a dying one counted) while the lists moved";
  EXPECT_EQ(count_class_workers(t.mem.data(), k, all_alive), 2);
}

TEST(FcgidTable, ReadTableListsEveryList) {
  Table t;
  t.add(kIdleHead, 4, 101, 77, 1, "/srv/wrap.sh");
  t.add(kBusyHead, 10, 102, 77, 1, "/srv/wrap.sh");
  t.add(kErrorHead, 1027, 103, 77, 1, "/srv/wrap.sh");
  auto nodes = read_table(t.mem.data());
  ASSERT_EQ(nodes.size(), 3u);
  EXPECT_EQ(nodes[0].pid, 101);
  EXPECT_EQ(nodes[0].list, List::Idle);
  EXPECT_EQ(nodes[0].cmdline, "/srv/wrap.sh");
  EXPECT_EQ(nodes[1].list, List::Busy);
  EXPECT_EQ(nodes[2].index, 1027);
  EXPECT_EQ(nodes[2].list, List::Error);
}

TEST(FcgidTable, CorruptLinksAreBounded) {
  Table t;
  t.add(kIdleHead, 4, 101, 77, 1, "/w");
  t.put(4, off::next_index, 4);  // a cycle
  ClassKey k;
  k.inode = 77;
  k.deviceid = 65024;
  k.vhost_id = 1;
  EXPECT_LE(count_class_workers(t.mem.data(), k, all_alive), kSlots);
  t.put(4, off::next_index, 99999);  // out of range
  EXPECT_EQ(count_class_workers(t.mem.data(), k, all_alive), 1);
  t.put(kIdleHead, off::next_index, -5);
  EXPECT_EQ(read_table(t.mem.data()).size(), 0u);
}

TEST(FcgidTable, LiteReadMatchesFullRead) {
  Table t;
  t.add(kIdleHead, 4, 101, 77, 1, "/srv/wrap.sh");
  t.add(kBusyHead, 10, 102, 78, 2, "/srv/wrap.sh");
  t.add(kErrorHead, 1027, 103, 79, 3, "/srv/other.sh");
  t.put<std::int64_t>(10, off::start_time, 1234567);
  auto full = read_table(t.mem.data());
  std::vector<NodeLite> lite;
  read_table_lite(t.mem.data(), lite);
  ASSERT_EQ(lite.size(), full.size());
  for (std::size_t i = 0; i < lite.size(); ++i) {
    EXPECT_EQ(lite[i].pid, full[i].pid);
    EXPECT_EQ(lite[i].list, full[i].list);
    EXPECT_EQ(lite[i].inode, full[i].inode);
    EXPECT_EQ(lite[i].vhost_id, full[i].vhost_id);
    EXPECT_EQ(lite[i].start_time_us, full[i].start_time_us);
  }
  EXPECT_EQ(lite[1].start_time_us, 1234567);
  EXPECT_EQ(lite[1].index, 10);
  EXPECT_EQ(node_executable(t.mem.data(), lite[2].index), "/srv/other.sh");
  EXPECT_EQ(node_executable(t.mem.data(), 2), "");  // a list head, not a node
  EXPECT_EQ(node_executable(t.mem.data(), kSlots), "");
  read_table_lite(nullptr, lite);
  EXPECT_TRUE(lite.empty());
}

namespace {
int next_of(Table& t, int i) {
  int n;
  std::memcpy(&n, t.node(i) + off::next_index, sizeof n);
  return n;
}
std::vector<int> list_of(Table& t, int head) {
  std::vector<int> out;
  for (int i = next_of(t, head); i != 0 && out.size() < 16; i = next_of(t, i)) out.push_back(i);
  return out;
}
char diewhy_of(Table& t, int i) {
  return static_cast<char>(t.node(i)[off::diewhy]);
}
}  // namespace

TEST(FcgidRetire, MovesTheIdleNodeToTheErrorListAsScanIdlelistDoes) {
  Table t;
  t.add(kIdleHead, 4, 101, 77, 1, "/srv/wrap.sh");
  t.add(kIdleHead, 5, 103, 77, 1, "/srv/wrap.sh");
  t.add(kIdleHead, 6, 105, 77, 1, "/srv/wrap.sh");  // idle list: 6 5 4
  t.add(kBusyHead, 7, 107, 77, 1, "/srv/wrap.sh");
  t.add(kErrorHead, 8, 109, 77, 1, "/srv/wrap.sh");
  t.put<std::int64_t>(5, off::start_time, 555);
  const auto before = t.mem;
  EXPECT_FALSE(retire_idle_node(t.mem.data(), 5, 103, 556, kDieIdleTimeout)) << "another process";
  EXPECT_FALSE(retire_idle_node(t.mem.data(), 5, 104, 555, kDieIdleTimeout)) << "another pid";
  EXPECT_EQ(t.mem, before) << "nothing written";
  ASSERT_TRUE(retire_idle_node(t.mem.data(), 5, 103, 555, kDieIdleTimeout));
  EXPECT_EQ(list_of(t, kIdleHead), (std::vector<int>{6, 4}));
  EXPECT_EQ(list_of(t, kErrorHead), (std::vector<int>{5, 8})) << "at the head, as mod_fcgid links";
  EXPECT_EQ(list_of(t, kBusyHead), (std::vector<int>{7}));
  EXPECT_EQ(diewhy_of(t, 5), kDieIdleTimeout);
  EXPECT_EQ(diewhy_of(t, 8), 0) << "no other node touched";
  // The reader sees it dying: no longer a worker of the class.
  ClassKey k;
  k.inode = 77;
  k.deviceid = 65024;
  k.vhost_id = 1;
  EXPECT_EQ(count_class_workers(t.mem.data(), k, nullptr), 3);
}

TEST(FcgidRetire, TheFirstAndLastNodesOfTheIdleList) {
  Table t;
  t.add(kIdleHead, 4, 101, 77, 1, "/w");
  t.add(kIdleHead, 5, 103, 77, 1, "/w");  // idle: 5 4
  ASSERT_TRUE(retire_idle_node(t.mem.data(), 5, 103, 0, kDieIdleTimeout));
  EXPECT_EQ(list_of(t, kIdleHead), (std::vector<int>{4}));
  ASSERT_TRUE(retire_idle_node(t.mem.data(), 4, 101, 0, kDieIdleTimeout));
  EXPECT_TRUE(list_of(t, kIdleHead).empty());
  EXPECT_EQ(list_of(t, kErrorHead), (std::vector<int>{4, 5}));
}

TEST(FcgidRetire, NeverABusyOrDyingNode) {
  Table t;
  t.add(kIdleHead, 4, 101, 77, 1, "/w");
  t.add(kBusyHead, 5, 103, 77, 1, "/w");   // mod_fcgid handed it to a request
  t.add(kErrorHead, 6, 105, 77, 1, "/w");  // dying already
  const auto before = t.mem;
  EXPECT_FALSE(retire_idle_node(t.mem.data(), 5, 103, 0, kDieIdleTimeout));
  EXPECT_FALSE(retire_idle_node(t.mem.data(), 6, 105, 0, kDieIdleTimeout));
  EXPECT_FALSE(retire_idle_node(t.mem.data(), 9, 0, 0, kDieIdleTimeout)) << "a free node";
  EXPECT_FALSE(retire_idle_node(t.mem.data(), 2, 0, 0, kDieIdleTimeout)) << "a list head";
  EXPECT_FALSE(retire_idle_node(t.mem.data(), kSlots, 0, 0, kDieIdleTimeout));
  EXPECT_FALSE(retire_idle_node(nullptr, 4, 101, 0, kDieIdleTimeout));
  EXPECT_EQ(t.mem, before);
}

TEST(FcgidRetire, ACorruptTableIsNotWritten) {
  Table t;
  t.add(kIdleHead, 4, 101, 77, 1, "/w");
  t.add(kIdleHead, 5, 103, 77, 1, "/w");  // idle: 5 4
  t.put(5, off::next_index, 5);           // a cycle before node 4
  auto before = t.mem;
  EXPECT_FALSE(retire_idle_node(t.mem.data(), 4, 101, 0, kDieIdleTimeout));
  EXPECT_EQ(t.mem, before);
  t.put(5, off::next_index, 99999);  // out of range
  before = t.mem;
  EXPECT_FALSE(retire_idle_node(t.mem.data(), 4, 101, 0, kDieIdleTimeout));
  EXPECT_EQ(t.mem, before);
  t.put(5, off::next_index, 4);
  t.put(kErrorHead, off::next_index, -3);  // the error list's head is broken
  before = t.mem;
  EXPECT_FALSE(retire_idle_node(t.mem.data(), 4, 101, 0, kDieIdleTimeout));
  EXPECT_EQ(t.mem, before);
}

// SipHash-2-4's reference vector (the paper's appendix: key 00..0f, message 00..0e).
TEST(ClassHash, SipHashMatchesTheReferenceVector) {
  unsigned char key[16];
  for (int i = 0; i < 16; ++i) key[i] = static_cast<unsigned char>(i);
  unsigned char msg[15];
  for (int i = 0; i < 15; ++i) msg[i] = static_cast<unsigned char>(i);
  EXPECT_EQ(siphash24(key, msg, sizeof msg), 0xa129ca6149be45e5ULL);
  EXPECT_EQ(siphash24(key, msg, 0), 0x726fdb47dd0e0e31ULL);
}

// The class hash is keyed by the generation's secret: the same class hashes alike under one
// secret and differently under another, so a collision found under one secret (or offline, with
// no secret) does not carry over.
TEST(ClassHash, KeyedByTheGenerationsSecret) {
  ClassKey k;
  k.inode = 42;
  k.deviceid = 65024;
  k.vhost_id = 3;
  k.cmdline = "/var/www/php-fcgi-scripts/web1/.php-fcgi-starter";
  unsigned char a[16] = {1, 2, 3}, b[16] = {9, 8, 7};
  set_class_hash_secret(a);
  const std::uint64_t ha = class_hash(k);
  EXPECT_EQ(class_hash(k), ha);
  set_class_hash_secret(b);
  const std::uint64_t hb = class_hash(k);
  EXPECT_NE(ha, hb);
  // The command line's length is part of the message: a trailing NUL-free extension differs.
  ClassKey longer = k;
  longer.cmdline = "/var/www/php-fcgi-scripts/web1/.php-fcgi-starter ";
  EXPECT_NE(class_hash(longer), hb);
  unsigned char zero[16] = {};
  set_class_hash_secret(zero);
}
