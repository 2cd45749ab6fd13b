// Helpers the unit tests share: the fixture root, a scratch directory, whole-file write and read,
// running a check without root's file privileges, and waiting for a condition.
#pragma once

#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace shmguard_test {

// tests/fixtures, or $SHMGUARD_FIXTURES (the package build runs the tests from elsewhere).
inline std::string fixtures() {
  const char* env = std::getenv("SHMGUARD_FIXTURES");
  return env && *env ? env : "tests/fixtures";
}

// A fixture tree (tests/fixtures/trees/<scenario>) and its proc/ directory.
inline std::string tree(const std::string& scenario) {
  return fixtures() + "/trees/" + scenario;
}
inline std::string proc(const std::string& scenario) {
  return tree(scenario) + "/proc";
}

inline bool starts_with(const std::string& s, const std::string& p) {
  return s.compare(0, p.size(), p) == 0;
}
inline bool contains(const std::string& s, const std::string& p) {
  return s.find(p) != std::string::npos;
}

// A scratch directory (mode 0755, so an unprivileged child can enter it), removed with
// everything in it.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "shmguard-test-XXXXXX").string();
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data())) path_ = buf.data();
    ::chmod(path_.c_str(), 0755);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Writes the whole file (parents created), replacing what was there.
inline void write_file(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text << std::flush;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs fn(result_fd) in a forked child and returns what it returned, handed back through a pipe
// whose write end is result_fd (a child that closes descriptors must keep it). Exit status 3 of
// the child (fn calls _exit(3) when it cannot set itself up) gives nullopt: the caller skips. A
// child that crashed or did not hand its result back is a test failure.
inline std::optional<std::string> run_in_child(const std::function<std::string(int)>& fn) {
  int fds[2];
  if (::pipe(fds) != 0) return std::nullopt;
  pid_t pid = ::fork();
  if (pid < 0) return std::nullopt;
  if (pid == 0) {
    ::close(fds[0]);
    std::string out = fn(fds[1]);
    ssize_t n = ::write(fds[1], out.data(), out.size());
    _exit(n == static_cast<ssize_t>(out.size()) ? 0 : 4);
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 3) return std::nullopt;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    ADD_FAILURE() << "the child "
                  << (WIFSIGNALED(status) ? "died of signal " + std::to_string(WTERMSIG(status))
                                          : "exited " + std::to_string(WEXITSTATUS(status)));
  return out;
}

// Runs fn without the privilege to ignore file modes (as "nobody" in a child when we are root).
// nullopt when privileges could not be dropped (the caller skips).
inline std::optional<std::string> run_unprivileged(const std::function<std::string()>& fn) {
  if (::geteuid() != 0) return fn();
  return run_in_child([&](int) -> std::string {
    if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) _exit(3);
    return fn();
  });
}

// A pid no process can have: Linux allocates pids below pid_max, and pid_max never exceeds
// PID_MAX_LIMIT (4194304). A test that needs "a worker that has exited" names one of these; a
// real-looking pid (12960) may belong to a live process on a busy machine, and an OPcache line
// then waits for that process to exit (the test failed in CI during the package build).
inline int no_such_pid(int n) {
  return 4194304 + n;
}

// Polls pred every 10 ms for up to `ms`; true as soon as it holds.
template <class P>
bool eventually(P pred, int ms = 3000) {
  for (int i = 0; i < ms / 10; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

}  // namespace shmguard_test
