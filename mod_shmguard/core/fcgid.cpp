// mod_shmguard core: mod_fcgid process table reader.
#include "shmguard/fcgid.hpp"

#include <cstring>
#include <vector>

namespace shmguard::fcgid {

namespace {
static_assert(sizeof(void*) == 8, "the mod_fcgid table layout is known for 64-bit builds only");

template <class T>
T load(const unsigned char* node, std::size_t offset) {
  T v;
  std::memcpy(&v, node + offset, sizeof v);
  return v;
}

const unsigned char* node_at(const unsigned char* table, int index) {
  return table + static_cast<std::size_t>(index) * kNodeSize;
}

std::string bounded_string(const unsigned char* p, std::size_t max) {
  const void* nul = std::memchr(p, 0, max);
  std::size_t n = nul ? static_cast<std::size_t>(static_cast<const unsigned char*>(nul) - p) : max;
  return std::string(reinterpret_cast<const char*>(p), n);
}

bool cmdline_equals(const unsigned char* node, const char* want) {
  std::size_t n = std::strlen(want);
  if (n >= off::cmdline_max) return false;
  return std::memcmp(node + off::cmdline, want, n + 1) == 0;
}

// Calls f(index) for each node of a list, at most kSlots steps; stops at an out-of-range index.
template <class F>
void walk(const unsigned char* table, int head, F&& f) {
  int i = load<int>(node_at(table, head), off::next_index);
  for (int steps = 0; i != 0 && steps < kSlots; ++steps) {
    if (i < 4 || i >= kSlots) return;
    f(i);
    i = load<int>(node_at(table, i), off::next_index);
  }
}
}  // namespace

const char* to_string(List l) {
  switch (l) {
    case List::Idle:
      return "idle";
    case List::Busy:
      return "busy";
    case List::Error:
      return "error";
  }
  return "?";
}

std::vector<Node> read_table(const unsigned char* table) {
  std::vector<Node> out;
  if (!table) return out;
  const std::pair<int, List> heads[] = {
      {kIdleHead, List::Idle}, {kBusyHead, List::Busy}, {kErrorHead, List::Error}};
  for (const auto& [head, list] : heads) {
    walk(table, head, [&, list = list](int i) {
      const unsigned char* n = node_at(table, i);
      Node node;
      node.index = i;
      node.list = list;
      node.pid = load<int>(n, off::pid);
      node.executable = bounded_string(n + off::executable_path, off::path_max);
      node.cmdline = bounded_string(n + off::cmdline, off::cmdline_max);
      node.inode = load<std::uint64_t>(n, off::inode);
      node.deviceid = load<std::uint64_t>(n, off::deviceid);
      node.gid = load<std::uint32_t>(n, off::gid);
      node.uid = load<std::uint32_t>(n, off::uid);
      node.vhost_id = load<int>(n, off::vhost_id);
      node.start_time_us = load<std::int64_t>(n, off::start_time);
      node.last_active_us = load<std::int64_t>(n, off::last_active_time);
      node.requests_handled = load<int>(n, off::requests_handled);
      out.push_back(std::move(node));
    });
  }
  return out;
}

void read_table_lite(const unsigned char* table, std::vector<NodeLite>& out) {
  out.clear();
  if (!table) return;
  const std::pair<int, List> heads[] = {
      {kIdleHead, List::Idle}, {kBusyHead, List::Busy}, {kErrorHead, List::Error}};
  for (const auto& [head, list] : heads) {
    walk(table, head, [&, list = list](int i) {
      const unsigned char* n = node_at(table, i);
      out.push_back(NodeLite{i, load<int>(n, off::pid), list, load<std::uint64_t>(n, off::inode),
                             load<std::uint64_t>(n, off::deviceid), load<int>(n, off::vhost_id),
                             load<std::int64_t>(n, off::start_time)});
    });
  }
}

std::string node_executable(const unsigned char* table, int index) {
  if (!table || index < 4 || index >= kSlots) return {};
  return bounded_string(node_at(table, index) + off::executable_path, off::path_max);
}

namespace {
// One walk of the idle and busy lists: the pids of the class's nodes (each node taken at its
// first visit only), a signature of the nodes met in order, and whether a node was met twice.
struct ClassWalk {
  int pids[kSlots];
  int count;
  std::uint64_t signature;
  bool node_twice;  // a node met twice, or met on the idle/busy walk and on the error list
};
void walk_class(const unsigned char* table, const ClassKey& key, ClassWalk& w) {
  w.count = 0;
  w.signature = 0x53474b32ULL;  // "SGK2"
  w.node_twice = false;
  std::uint64_t seen[(kSlots + 63) / 64] = {};
  auto sign = [&](std::uint64_t v) { w.signature = (w.signature ^ v) * 0x9E3779B97F4A7C15ULL; };
  auto visit = [&](int i) {
    const std::uint64_t bit = 1ULL << (i % 64);
    if (seen[i / 64] & bit) {
      w.node_twice = true;
      return;
    }
    seen[i / 64] |= bit;
    const unsigned char* n = node_at(table, i);
    const int pid = load<int>(n, off::pid);
    sign((static_cast<std::uint64_t>(i) << 32) | static_cast<std::uint32_t>(pid));
    if (load<std::uint64_t>(n, off::inode) != key.inode ||
        load<std::uint64_t>(n, off::deviceid) != key.deviceid ||
        load<int>(n, off::vhost_id) != key.vhost_id ||
        load<std::uint32_t>(n, off::uid) != key.uid || load<std::uint32_t>(n, off::gid) != key.gid)
      return;
    if (key.cmdline && !cmdline_equals(n, key.cmdline)) return;
    if (pid > 0 && w.count < kSlots) w.pids[w.count++] = pid;
  };
  walk(table, kIdleHead, visit);
  sign(~0ULL);  // where the busy list begins
  walk(table, kBusyHead, visit);
  // A walk that followed a moved node's link into the error list met dying workers as idle or
  // busy ones: such a node is on the error list now too, and the walk does not count.
  walk(table, kErrorHead, [&](int i) {
    if (seen[i / 64] & (1ULL << (i % 64))) w.node_twice = true;
  });
}
int alive_among(const ClassWalk& w, bool (*alive)(int)) {
  if (!alive) return w.count;
  int n = 0;
  for (int i = 0; i < w.count; ++i) n += alive(w.pids[i]) ? 1 : 0;
  return n;
}
}  // namespace

int count_class_workers(const unsigned char* table, const ClassKey& key, bool (*alive)(int)) {
  if (!table) return -1;
  // A command line longer than mod_fcgid's field can never be compared whole: the class is
  // unknown (the guard fails open) rather than "no worker".
  if (key.cmdline && std::strlen(key.cmdline) >= off::cmdline_max) return -1;
  // mod_fcgid moves nodes between its lists under its process-table lock, which this reader does
  // not take: one walk can meet a worker taken from the idle list again on the busy list, or
  // follow a moved node's link into another list (the error list's dying workers). One worker
  // too many sends a request to mod_fcgid where none is free, and mod_fcgid starts one a second
  // later, unreserved. So a count is used only when two walks in a row met the same nodes in the
  // same order, none twice (liveness is asked after, of that walk's pids only); if the lists
  // keep moving, the smallest count seen (one too few only makes a request wait, or start a
  // worker the room holds).
  ClassWalk walks[2];
  walk_class(table, key, walks[0]);
  int least = walks[0].count;
  for (int attempt = 1; attempt <= 4; ++attempt) {
    ClassWalk& w = walks[attempt % 2];
    const ClassWalk& last = walks[(attempt + 1) % 2];
    walk_class(table, key, w);
    if (!w.node_twice && !last.node_twice && w.signature == last.signature)
      return alive_among(w, alive);
    if (w.count < least) least = w.count;
  }
  // No two walks agreed: the smallest, of the last walk's live pids at most.
  const int live = alive_among(walks[0], alive);
  return live < least ? live : least;
}

namespace {
unsigned char g_class_secret[16] = {};

std::uint64_t rotl(std::uint64_t x, int b) {
  return (x << b) | (x >> (64 - b));
}
std::uint64_t load_le64(const unsigned char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
}  // namespace

std::uint64_t siphash24(const unsigned char (&key)[16], const void* data, std::size_t len) {
  const std::uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
  std::uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1,
                v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
  auto round = [&] {
    v0 += v1;
    v1 = rotl(v1, 13);
    v1 ^= v0;
    v0 = rotl(v0, 32);
    v2 += v3;
    v3 = rotl(v3, 16);
    v3 ^= v2;
    v0 += v3;
    v3 = rotl(v3, 21);
    v3 ^= v0;
    v2 += v1;
    v1 = rotl(v1, 17);
    v1 ^= v2;
    v2 = rotl(v2, 32);
  };
  const auto* in = static_cast<const unsigned char*>(data);
  const std::size_t whole = len - len % 8;
  for (std::size_t i = 0; i < whole; i += 8) {
    const std::uint64_t m = load_le64(in + i);
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }
  std::uint64_t b = static_cast<std::uint64_t>(len) << 56;
  for (std::size_t i = 0; i < len % 8; ++i)
    b |= static_cast<std::uint64_t>(in[whole + i]) << (8 * i);
  v3 ^= b;
  round();
  round();
  v0 ^= b;
  v2 ^= 0xff;
  round();
  round();
  round();
  round();
  return v0 ^ v1 ^ v2 ^ v3;
}

void set_class_hash_secret(const unsigned char (&key)[16]) {
  std::memcpy(g_class_secret, key, sizeof g_class_secret);
}

std::uint64_t class_hash(const ClassKey& key) {
  // One message of fixed-width fields and the command line (its length is in SipHash's last
  // block, so no two keys share a message).
  unsigned char msg[28 + off::cmdline_max];
  const std::uint32_t vhost = static_cast<std::uint32_t>(key.vhost_id);
  std::memcpy(msg, &vhost, 4);
  std::memcpy(msg + 4, &key.deviceid, 8);
  std::memcpy(msg + 12, &key.inode, 8);
  std::memcpy(msg + 20, &key.uid, 4);
  std::memcpy(msg + 24, &key.gid, 4);
  const std::size_t n = key.cmdline ? strnlen(key.cmdline, off::cmdline_max - 1) : 0;
  if (n) std::memcpy(msg + 28, key.cmdline, n);
  const std::uint64_t h = siphash24(g_class_secret, msg, 28 + n);
  return h == 0 ? 1 : h;
}

ClassKey class_of(const Node& n) {
  ClassKey k;
  k.inode = n.inode;
  k.deviceid = n.deviceid;
  k.vhost_id = n.vhost_id;
  k.uid = n.uid;
  k.gid = n.gid;
  k.cmdline = n.cmdline.c_str();
  return k;
}

std::uint64_t class_hash_at(const unsigned char* table, int index, int pid,
                            std::int64_t start_time_us) {
  if (!table || index < 4 || index >= kSlots) return 0;
  const unsigned char* n = node_at(table, index);
  char cmdline[off::cmdline_max];  // a copy: the field may be torn, the copy ends with a NUL
  std::memcpy(cmdline, n + off::cmdline, off::cmdline_max - 1);
  cmdline[off::cmdline_max - 1] = '\0';
  ClassKey k;
  k.inode = load<std::uint64_t>(n, off::inode);
  k.deviceid = load<std::uint64_t>(n, off::deviceid);
  k.vhost_id = load<int>(n, off::vhost_id);
  k.uid = load<std::uint32_t>(n, off::uid);
  k.gid = load<std::uint32_t>(n, off::gid);
  k.cmdline = cmdline;
  // Read the node's process again after the copy: a node freed and given to another process
  // meanwhile may have mixed fields.
  if (load<int>(n, off::pid) != pid || load<std::int64_t>(n, off::start_time) != start_time_us)
    return 0;
  return class_hash(k);
}

bool retire_idle_node(unsigned char* table, int index, int pid, std::int64_t start_time_us,
                      char diewhy) {
  if (!table || index < 4 || index >= kSlots) return false;
  // Find the node on the idle list, and the node that links to it (the head, or a node).
  int prev = kIdleHead;
  int i = load<int>(node_at(table, kIdleHead), off::next_index);
  for (int steps = 0; i != index; ++steps) {
    if (i == 0 || i < 4 || i >= kSlots || steps >= kSlots) return false;
    prev = i;
    i = load<int>(node_at(table, i), off::next_index);
  }
  unsigned char* node = table + static_cast<std::size_t>(index) * kNodeSize;
  if (load<int>(node, off::pid) != pid ||
      load<std::int64_t>(node, off::start_time) != start_time_us)
    return false;
  const int after = load<int>(node, off::next_index);
  const int error_first = load<int>(node_at(table, kErrorHead), off::next_index);
  if ((after != 0 && (after < 4 || after >= kSlots)) ||
      (error_first != 0 && (error_first < 4 || error_first >= kSlots)))
    return false;
  // As scan_idlelist: diewhy, unlink from the idle list, link at the head of the error list.
  std::memcpy(node + off::diewhy, &diewhy, 1);
  std::memcpy(table + static_cast<std::size_t>(prev) * kNodeSize + off::next_index, &after,
              sizeof after);
  std::memcpy(node + off::next_index, &error_first, sizeof error_first);
  std::memcpy(table + static_cast<std::size_t>(kErrorHead) * kNodeSize + off::next_index, &index,
              sizeof index);
  return true;
}

bool version_supported(std::string_view version) {
  return version == "2.3.9";
}

std::string version_in(std::string_view desc) {
  static constexpr std::string_view kKey = "mod_fcgid/";
  std::string found;
  int count = 0;
  for (std::size_t at = desc.find(kKey); at != std::string_view::npos;
       at = desc.find(kKey, at + 1)) {
    if (at > 0 && desc[at - 1] != ' ') continue;  // a word of its own
    std::size_t start = at + kKey.size();
    std::size_t end = desc.find(' ', start);
    found = std::string(desc.substr(start, end == std::string_view::npos ? end : end - start));
    ++count;
  }
  return count == 1 ? found : std::string();
}

std::string check_table(const TableGeometry& g) {
  if (!g.table) return "no process table";
  if (g.table_size != static_cast<std::size_t>(kSlots))
    return "table of " + std::to_string(g.table_size) + " nodes, expected " +
           std::to_string(kSlots);
  const unsigned char* heads[] = {g.idle, g.busy, g.error, g.free};
  const char* names[] = {"idle", "busy", "error", "free"};
  for (int h = 0; h < 4; ++h) {
    if (heads[h] != node_at(g.table, h)) {
      if (!heads[h]) return std::string(names[h]) + " list head missing";
      long diff = static_cast<long>(heads[h] - g.table);
      return std::string(names[h]) + " list head at byte " + std::to_string(diff) +
             " of the table, expected " + std::to_string(h * static_cast<long>(kNodeSize)) +
             " (node size " + std::to_string(kNodeSize) + ")";
    }
  }
  std::vector<bool> seen(kSlots, false);
  int on_lists = 0;
  for (int h = 0; h < 4; ++h) {
    int i = load<int>(node_at(g.table, h), off::next_index);
    for (int steps = 0; i != 0; ++steps) {
      if (i < 4 || i >= kSlots)
        return std::string(names[h]) + " list links to node " + std::to_string(i) +
               ", outside 4.." + std::to_string(kSlots - 1);
      if (seen[static_cast<std::size_t>(i)])
        return "node " + std::to_string(i) + " is on the " + names[h] +
               " list twice or on two lists";
      if (steps >= kSlots) return std::string(names[h]) + " list does not end";
      seen[static_cast<std::size_t>(i)] = true;
      ++on_lists;
      i = load<int>(node_at(g.table, i), off::next_index);
    }
  }
  if (on_lists != kSlots - 4)
    return std::to_string(on_lists) + " nodes on the lists, expected " + std::to_string(kSlots - 4);
  return {};
}

}  // namespace shmguard::fcgid
