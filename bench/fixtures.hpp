// mod_shmguard benchmarks: inputs shared by bench/micro.cpp and bench/sampler_bench.cpp.
//
//  - worker processes: N sleeping children, each mapping its own 64 MiB MAP_SHARED|MAP_ANONYMOUS
//    segment ("/dev/zero (deleted)" in maps, like OPcache's) with one page touched, and ~220 extra
//    file-backed mappings inherited from the parent so that /proc/PID/maps is as long as a real
//    php-cgi 8.2's (224 lines). They die with the parent (PR_SET_PDEATHSIG) and reap_workers()
//    SIGKILLs and reaps them.
//  - a mod_fcgid 2.3.9 process table (layout of include/shmguard/fcgid.hpp) listing those pids;
//  - /proc/user_beancounters of an OpenVZ 6 hardware node (block 0 + N containers).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "shmguard/fcgid.hpp"

namespace benchfx {

constexpr std::size_t kSegBytes = 64u << 20;  // mapped per worker (a distinct segment each)
constexpr int kPadMappings = 220;             // a real php-cgi 8.2 has ~224 lines in maps

// Alternate protections page by page over a read-only private file mapping: each page becomes its
// own line "r--p ... /path" in /proc/PID/maps. Inherited by the workers forked afterwards.
inline void pad_mappings() {
  const char* candidates[] = {"/usr/bin/php-cgi8.2", "/usr/lib/apache2/modules/mod_fcgid.so",
                              "/bin/sh"};
  for (const char* path : candidates) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st;
    long page = sysconf(_SC_PAGESIZE);
    std::size_t len = static_cast<std::size_t>(kPadMappings) * static_cast<std::size_t>(page);
    if (fstat(fd, &st) == 0 && static_cast<std::size_t>(st.st_size) >= len) {
      void* p = mmap(nullptr, len, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p != MAP_FAILED) {
        for (int i = 0; i < kPadMappings; i += 2)
          mprotect(static_cast<char*>(p) + static_cast<std::size_t>(i) * page,
                   static_cast<std::size_t>(page), PROT_NONE);
      }
      close(fd);
      return;
    }
    close(fd);
  }
}

// Forks n sleeping "php-cgi" processes. Call before anything large is allocated (each child is a
// copy of the caller).
inline std::vector<pid_t> spawn_workers(int n) {
  std::vector<pid_t> pids;
  pad_mappings();
  pid_t parent = getpid();
  for (int i = 0; i < n; ++i) {
    pid_t pid = fork();
    if (pid < 0) {
      std::perror("fork");
      break;
    }
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(0);
      prctl(PR_SET_NAME, "php-cgi");
      void* seg =
          mmap(nullptr, kSegBytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
      if (seg != MAP_FAILED) static_cast<volatile char*>(seg)[0] = 1;  // one page resident
      for (;;) pause();
    }
    pids.push_back(pid);
  }
  return pids;
}

inline void reap_workers(std::vector<pid_t>& pids) {
  for (pid_t p : pids) kill(p, SIGKILL);
  for (pid_t p : pids) waitpid(p, nullptr, 0);
  pids.clear();
}

// mod_fcgid 2.3.9 process table listing `pids` (one class: the FcgidWrapper), each pushed at the
// front of its list as mod_fcgid does; every `busy_every`-th on the busy list (0: all idle).
inline std::vector<unsigned char> fcgid_table(const std::vector<pid_t>& pids, int busy_every) {
  using namespace shmguard::fcgid;
  std::vector<unsigned char> t(static_cast<std::size_t>(kSlots) * kNodeSize, 0);
  auto node = [&](int i) { return t.data() + static_cast<std::size_t>(i) * kNodeSize; };
  auto put = [&](int i, std::size_t o, auto v) { std::memcpy(node(i) + o, &v, sizeof v); };
  const char* exe = "/var/www/example.com/bin/php-wrapper";
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  const std::int64_t now_us = static_cast<std::int64_t>(tv.tv_sec) * 1000000 + tv.tv_usec;
  int n = std::min<int>(static_cast<int>(pids.size()), kSlots - 4);
  for (int k = 0; k < n; ++k) {
    int i = 4 + k;
    int head = (busy_every > 0 && k % busy_every == 0) ? kBusyHead : kIdleHead;
    int first;
    std::memcpy(&first, node(head), sizeof first);
    put(i, off::next_index, first);
    put(head, off::next_index, i);
    put(i, off::pid, static_cast<int>(pids[static_cast<std::size_t>(k)]));
    put(i, off::inode, static_cast<std::uint64_t>(1234567));
    put(i, off::deviceid, static_cast<std::uint64_t>(65025));
    put(i, off::vhost_id, 1);
    put(i, off::uid, 0xffffffffu);
    put(i, off::gid, 0xffffffffu);
    put(i, off::start_time, static_cast<std::int64_t>(now_us - 1000 * (n - k)));
    put(i, off::last_active_time, now_us);
    std::strcpy(reinterpret_cast<char*>(node(i) + off::executable_path), exe);
    std::strcpy(reinterpret_cast<char*>(node(i) + off::cmdline), exe);
  }
  return t;
}

// /proc/user_beancounters of a hardware node, OpenVZ 6 64-bit format (kernel/bc/proc.c widths):
// block 0 (the node, unlimited) and containers 101, 102, ...
inline std::string hardware_node_text(int containers) {
  struct Row {
    const char* name;
    unsigned long long v[5];
  };
  const unsigned long long LM = 9223372036854775807ULL;
  const Row rows[] = {
      {"kmemsize", {16595303, 21577728, 67108864, 75497472, 0}},
      {"lockedpages", {0, 0, 64, 64, 0}},
      {"privvmpages", {239894, 258143, 393216, 442368, 161}},
      {"shmpages", {653, 1005, 262144, 262144, 0}},
      {"dummy", {0, 0, 0, 0, 0}},
      {"numproc", {89, 120, 800, 800, 0}},
      {"physpages", {96664, 216508, 262144, LM, 0}},
      {"vmguarpages", {0, 0, 33792, LM, 0}},
      {"oomguarpages", {96664, 216508, 26112, LM, 0}},
      {"numtcpsock", {12, 40, 80, 80, 0}},
      {"numflock", {4, 12, 100, 110, 0}},
      {"numpty", {1, 2, 16, 16, 0}},
      {"numsiginfo", {0, 12, 256, 256, 0}},
      {"tcpsndbuf", {215872, 1138336, 319488, 524288, 0}},
      {"tcprcvbuf", {196608, 1064304, 319488, 524288, 0}},
      {"othersockbuf", {13872, 119128, 132096, 336896, 0}},
      {"dgramrcvbuf", {0, 8464, 132096, 132096, 0}},
      {"numothersock", {20, 58, 80, 80, 0}},
      {"dcachesize", {0, 0, LM, LM, 0}},
      {"numfile", {1234, 2048, 2048, 2048, 0}},
      {"dummy", {0, 0, 0, 0, 0}},
      {"dummy", {0, 0, 0, 0, 0}},
      {"dummy", {0, 0, 0, 0, 0}},
      {"numiptent", {24, 24, 128, 128, 0}},
  };
  std::string out = "Version: 2.5\n";
  char line[256];
  std::snprintf(line, sizeof line, "%10s  %-12s %20s %20s %20s %20s %20s\n", "uid", "resource",
                "held", "maxheld", "barrier", "limit", "failcnt");
  out += line;
  std::vector<std::string> ids = {"0"};
  for (int i = 0; i < containers; ++i) ids.push_back(std::to_string(101 + i));
  for (const auto& id : ids) {
    bool first = true;
    for (const Row& r : rows) {
      std::string uid = first ? id + ":" : "";
      first = false;
      unsigned long long v[5];
      std::memcpy(v, r.v, sizeof v);
      if (id == "0" && v[2] != LM) v[2] = v[3] = LM;  // the node itself: unlimited
      std::snprintf(line, sizeof line, "%10s  %-12s %20llu %20llu %20llu %20llu %20llu\n",
                    uid.c_str(), r.name, v[0], v[1], v[2], v[3], v[4]);
      out += line;
    }
  }
  return out;
}

inline bool write_text(const std::string& path, const std::string& text) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f) {
    std::perror(path.c_str());
    return false;
  }
  std::fwrite(text.data(), 1, text.size(), f);
  return std::fclose(f) == 0;
}

}  // namespace benchfx
