// mod_shmguard core: reading mod_fcgid 2.3.x's shared process table (fcgid_proctbl.h) without its
// lock. Not a stable interface of mod_fcgid: the layout below is 2.3.6-2.3.9 on 64-bit Linux
// (checked against Debian 12's mod_fcgid.so); every index is bounds-checked and every walk is
// bounded, so a changed or torn table gives wrong counts, never a crash. Callers fail open.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace shmguard::fcgid {

constexpr std::size_t kNodeSize = 1168;  // sizeof(fcgid_procnode)
constexpr int kSlots = 1028;             // FCGID_MAX_APPLICATION + 4
constexpr int kIdleHead = 0, kBusyHead = 1, kErrorHead = 2, kFreeHead = 3;
namespace off {
constexpr std::size_t next_index = 0, pid = 16, executable_path = 48, inode = 560, deviceid = 568,
                      cmdline = 576, gid = 1088, uid = 1092, vhost_id = 1096, start_time = 1104,
                      last_active_time = 1112, requests_handled = 1120, diewhy = 1124;
constexpr std::size_t path_max = 256, cmdline_max = 512;
}  // namespace off

enum class List { Idle, Busy, Error };
const char* to_string(List l);

struct Node {
  int index = 0;
  List list = List::Idle;
  int pid = 0;
  std::string executable, cmdline;
  std::uint64_t inode = 0, deviceid = 0;
  std::uint32_t uid = 0, gid = 0;
  int vhost_id = 0;
  std::int64_t start_time_us = 0, last_active_us = 0;
  int requests_handled = 0;
};

// The process class of a request, as mod_fcgid 2.3.9 matches it (fcgid_bridge.c
// apply_free_procnode and count_busy_processes): inode and device of the wrapper or script, the
// command line (strcmp), vhost_id, uid and gid (suEXEC's, or (uid_t)-1 / (gid_t)-1 without it).
// The command line is the FcgidWrapper's, or without a wrapper the script's path (r->filename:
// fcgid_handler's default_build_command).
struct ClassKey {
  std::uint64_t inode = 0, deviceid = 0;
  int vhost_id = 0;
  std::uint32_t uid = 0xffffffffu, gid = 0xffffffffu;
  const char* cmdline = nullptr;  // compared when set
};

// The class's key for the guard's claim slots: a keyed hash (SipHash-2-4 under the secret of
// set_class_hash_secret) of every field above (the command line as mod_fcgid stores it, at most
// off::cmdline_max - 1 bytes; nullptr as ""). Two suEXEC users that share a wrapper are two
// classes, as in mod_fcgid. Never 0. A tenant who may write FcgidWrapper in .htaccess chooses a
// class's command line: with an unkeyed mix one found, in 527 tries, a command line whose class
// hashed to another tenant's (sharing its slot: its reserve and its requests in flight).
std::uint64_t class_hash(const ClassKey& key);
// The secret: 16 random bytes, set by the module once per server generation (post_config, before
// the children and the sampler are forked, which inherit it). Until it is set: all zeros.
void set_class_hash_secret(const unsigned char (&key)[16]);
// SipHash-2-4 (Aumasson & Bernstein) of `len` bytes under a 16-byte key.
std::uint64_t siphash24(const unsigned char (&key)[16], const void* data, std::size_t len);
// The class of a node read with read_table (its cmdline points into `n`).
ClassKey class_of(const Node& n);
// The same for the node at `index` of the table (its own fields, the command line read in place,
// bounded); 0 if the index is out of range, or if the node no longer holds process `pid` started
// at `start_time_us` (freed and reused since the table was read: nothing to cache).
std::uint64_t class_hash_at(const unsigned char* table, int index, int pid,
                            std::int64_t start_time_us);

// All nodes on the idle, busy and error lists of the table that starts at `table` (the value of
// mod_fcgid's proctable_get_table_array()).
std::vector<Node> read_table(const unsigned char* table);

// The same without the strings: what the sampler needs every interval.
struct NodeLite {
  int index = 0;
  int pid = 0;
  List list = List::Idle;
  std::uint64_t inode = 0, deviceid = 0;
  int vhost_id = 0;
  std::int64_t start_time_us = 0;
};
void read_table_lite(const unsigned char* table, std::vector<NodeLite>& out);
// The executable path (wrapper or script) of the node at `index` (bounded; "" if out of range).
std::string node_executable(const unsigned char* table, int index);

// Workers of a class on the idle and busy lists whose pid `alive` accepts, from two walks that
// agree (the lists move under mod_fcgid's lock, not taken here; never more than were on them at
// once). No allocation.
int count_class_workers(const unsigned char* table, const ClassKey& key, bool (*alive)(int pid));

// mod_fcgid's reasons a worker dies (fcgid_proctbl.h FCGID_DIE_*; the process manager logs them).
constexpr char kDieIdleTimeout = 1;  // FCGID_DIE_IDLE_TIMEOUT: "idle timeout"

// Retires an idle worker the way mod_fcgid's scan_idlelist (fcgid_pm_main.c) retires one past
// its idle timeout: the node at `index` is unlinked from the idle list, its diewhy set, and it is
// linked at the head of the error list, where the process manager's next scan_errorlist sends
// SIGTERM and the one after reaps it. Only when that node is on the idle list now and still holds
// process `pid` started at `start_time_us`; on any other answer (not there: mod_fcgid gave it to a
// request, or it is dying already; a link out of range; a list that does not end) nothing is
// written and the answer is false. The caller holds mod_fcgid's table lock (proctable_lock), as
// mod_fcgid's own request path does when it moves a node (fcgid_bridge.c apply_free_procnode).
bool retire_idle_node(unsigned char* table, int index, int pid, std::int64_t start_time_us,
                      char diewhy);

// ---------------------------------------------------------------- is this the layout we know?
// Checked at post_config, before the module reads anything of mod_fcgid's: on any mismatch the
// module does not read mod_fcgid at all (SG0102: mod_fcgid requests fail open).

// The mod_fcgid versions whose structures (process table node, wrapper conf, server conf's first
// member) this module reads as laid out above: 2.3.9, checked against Debian 12's mod_fcgid.so.
bool version_supported(std::string_view version);
// "2.3.9" from a server description ("Apache/2.4.62 (Debian) mod_fcgid/2.3.9 OpenSSL/3.0"); "" when
// it names no mod_fcgid or names more than one.
std::string version_in(std::string_view server_description);

// What mod_fcgid's exported functions return (proctable_get_table_array, _get_table_size, and the
// four list heads).
struct TableGeometry {
  const unsigned char* table = nullptr;
  std::size_t table_size = 0;  // in nodes
  const unsigned char *idle = nullptr, *busy = nullptr, *error = nullptr, *free = nullptr;
};
// "" when the table is the layout above: kSlots nodes of kNodeSize bytes, the four list heads at
// nodes 0-3, and every list a chain of in-range node indexes that ends, no node on two lists, all
// kSlots - 4 nodes on some list (at post_config, before any spawn, they are all free). Otherwise
// what did not match, for the log.
std::string check_table(const TableGeometry& g);

}  // namespace shmguard::fcgid
