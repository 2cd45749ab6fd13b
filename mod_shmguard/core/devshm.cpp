// mod_shmguard core: the size of a tmpfs such as /dev/shm.
#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>

#include "shmguard/sources.hpp"

namespace shmguard {

namespace {
std::uint64_t mul_sat(std::uint64_t a, std::uint64_t b) {
  std::uint64_t r;
  return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}
}  // namespace

Result<DevShm> read_devshm(const std::string& path) {
  struct statvfs st;
  int rc;
  do {
    rc = ::statvfs(path.c_str(), &st);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    int e = errno;
    if (e == ENOENT || e == ENOTDIR) return Result<DevShm>::fail("missing: " + path);
    if (e == EACCES || e == EPERM) return Result<DevShm>::fail("permission denied: " + path);
    return Result<DevShm>::fail("unreadable: " + path + ": " + std::strerror(e));
  }
  DevShm d;
  d.path = path;
  std::uint64_t frsize = st.f_frsize ? st.f_frsize : st.f_bsize;
  d.total = mul_sat(st.f_blocks, frsize);
  d.free = mul_sat(st.f_bfree, frsize);
  d.avail = mul_sat(st.f_bavail, frsize);
  return Result<DevShm>::ok(d);
}

}  // namespace shmguard
