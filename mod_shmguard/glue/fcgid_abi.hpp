// mod_shmguard glue: mod_fcgid's private ABI (see fcgid_abi.cpp). The table layout itself is
// core's (include/shmguard/fcgid.hpp).
#pragma once

#include <cstdint>

#include "glue.hpp"
#include "shmguard/fcgid.hpp"

namespace shmguard::glue {

// Finds mod_fcgid's symbols and checks its version and table geometry (post_config); fills
// gen.fcgid_*. On a mismatch SG0102 and nothing of mod_fcgid's is read: its requests fail open.
void find_fcgid(server_rec* s);

// mod_fcgid's vhost id of a server (the first member of its server configuration); 0 when
// mod_fcgid is not in use.
int fcgid_vhost_id(const server_rec* s);
// The server whose mod_fcgid vhost id is `id` (nullptr: none).
server_rec* server_of_fcgid_vhost(int id);

// mod_fcgid's process-class key for this request (see fcgid_bridge.c apply_free_procnode).
struct FcgidClass {
  fcgid::ClassKey key;
  std::uint64_t hash;
  const void* wrapper;  // get_wrapper_info()'s answer (mod_fcgid's fcgid_cmd_conf), or nullptr
};
bool fcgid_class(request_rec* r, FcgidClass& out);

// Asks mod_fcgid's process manager for a worker of the request's class (`wrapper`: the class's
// FcgidClass::wrapper), as its handler would; nothing where the handler would refuse first.
void start_worker(request_rec* r, const void* wrapper);

// mod_fcgid's own table lock, held for a scope (given back whatever happens in it).
struct FcgidTableLock {
  request_rec* r;
  explicit FcgidTableLock(request_rec* req) : r(req) { gen.fcgid_lock(r); }
  ~FcgidTableLock() { gen.fcgid_unlock(r); }
  FcgidTableLock(const FcgidTableLock&) = delete;
  FcgidTableLock& operator=(const FcgidTableLock&) = delete;
};

}  // namespace shmguard::glue
