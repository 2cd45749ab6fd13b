// mod_shmguard core: reading small kernel files, strict number parsing.
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shmguard/sources.hpp"

namespace shmguard {

namespace {
// Closes a file descriptor when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};
// Errors worded for admins (see read_file).
Result<std::string> read_error(const std::string& path, int e) {
  if (e == ENOENT || e == ENOTDIR) return Result<std::string>::fail("missing: " + path);
  if (e == EACCES || e == EPERM) return Result<std::string>::fail("permission denied: " + path);
  return Result<std::string>::fail("unreadable: " + path + ": " + std::strerror(e));
}
}  // namespace

Result<std::string> read_file(const std::string& path, std::size_t max_bytes) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (fd.get() < 0) {
    int e = errno;
    if (e == ENOENT || e == ENOTDIR) return Result<std::string>::fail("missing: " + path);
    if (e == EACCES || e == EPERM) return Result<std::string>::fail("permission denied: " + path);
    return Result<std::string>::fail("unreadable: " + path + ": " + std::strerror(e));
  }
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      if (e == EACCES || e == EPERM) return Result<std::string>::fail("permission denied: " + path);
      return Result<std::string>::fail("unreadable: " + path + ": " + std::strerror(e));
    }
    if (n == 0) break;
    if (out.size() + static_cast<std::size_t>(n) > max_bytes)
      return Result<std::string>::fail("too large (over " + std::to_string(max_bytes) +
                                       " bytes): " + path);
    out.append(buf, static_cast<std::size_t>(n));
  }
  return Result<std::string>::ok(std::move(out));
}

Result<std::string> read_file_prefix(const std::string& path, std::size_t max_bytes) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (fd.get() < 0) return read_error(path, errno);
  // Grown as read (a bound of a MiB costs nothing for a file of a few KiB).
  std::string out;
  char buf[65536];
  while (out.size() < max_bytes) {
    ssize_t n = ::read(fd.get(), buf, std::min(sizeof buf, max_bytes - out.size()));
    if (n < 0) {
      if (errno == EINTR) continue;
      return read_error(path, errno);
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return Result<std::string>::ok(std::move(out));
}

namespace {
// Does `path` still name the file open as `fd` (or can this process not look it up at all)?
bool kept_fd_usable(int fd, const std::string& path) {
  struct stat held, now;
  if (::fstat(fd, &held) != 0) return false;
  if (::stat(path.c_str(), &now) != 0) return errno == EACCES || errno == EPERM;
  return held.st_dev == now.st_dev && held.st_ino == now.st_ino;
}
}  // namespace

Result<std::string> read_kept_file(int kept_fd, const std::string& path, std::size_t max_bytes) {
  if (kept_fd < 0 || !kept_fd_usable(kept_fd, path)) return read_file(path, max_bytes);
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::pread(kept_fd, buf, sizeof buf, static_cast<off_t>(out.size()));
    if (n < 0) {
      if (errno == EINTR) continue;
      return read_error(path, errno);
    }
    if (n == 0) break;
    if (out.size() + static_cast<std::size_t>(n) > max_bytes)
      return Result<std::string>::fail("too large (over " + std::to_string(max_bytes) +
                                       " bytes): " + path);
    out.append(buf, static_cast<std::size_t>(n));
  }
  return Result<std::string>::ok(std::move(out));
}

bool replace_file(const std::string& path, std::string_view text, unsigned mode, bool durable) {
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) return false;
  const std::size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::string tmp = dir + "." + base + ".XXXXXX";
  int fd = ::mkstemp(&tmp[0]);
  if (fd < 0) return false;
  bool ok = true;
  for (std::size_t done = 0; ok && done < text.size();) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<std::size_t>(n);
  }
  ok = ::fchmod(fd, static_cast<mode_t>(mode)) == 0 && ok;
  if (durable) ok = ::fsync(fd) == 0 && ok;
  ok = ::close(fd) == 0 && ok;
  if (ok) ok = ::rename(tmp.c_str(), path.c_str()) == 0;
  if (!ok) ::unlink(tmp.c_str());
  return ok;
}

std::optional<std::uint64_t> parse_u64(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    std::uint64_t d = static_cast<std::uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

}  // namespace shmguard
