// A synthetic mod_fcgid 2.3.9 process table (fcgid_proctbl.h's layout) for the unit tests.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "shmguard/fcgid.hpp"

namespace shmguard_test {
using namespace shmguard::fcgid;

struct Table {
  std::vector<unsigned char> mem = std::vector<unsigned char>(kSlots * kNodeSize, 0);
  unsigned char* node(int i) { return mem.data() + static_cast<std::size_t>(i) * kNodeSize; }
  template <class T>
  void put(int i, std::size_t off, T v) {
    std::memcpy(node(i) + off, &v, sizeof v);
  }
  void add(int head, int i, int pid, std::uint64_t inode, int vhost, const char* cmd) {
    // push at the front of the list, like mod_fcgid
    int first;
    std::memcpy(&first, node(head), sizeof first);
    put(i, off::next_index, first);
    put(head, off::next_index, i);
    put(i, off::pid, pid);
    put<std::uint64_t>(i, off::inode, inode);
    put<std::uint64_t>(i, off::deviceid, 65024);
    put(i, off::vhost_id, vhost);
    put<std::uint32_t>(i, off::uid, 0xffffffffu);
    put<std::uint32_t>(i, off::gid, 0xffffffffu);
    std::strcpy(reinterpret_cast<char*>(node(i) + off::cmdline), cmd);
    std::strcpy(reinterpret_cast<char*>(node(i) + off::executable_path), cmd);
  }
};

}  // namespace shmguard_test
