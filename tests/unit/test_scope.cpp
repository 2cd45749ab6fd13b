// Which processes a server lists as its PHP-FPM pools' (issue 20 item 5): the configuration's
// mod_proxy_fcgi sockets, their listeners, their children; not every php-fpm on the machine.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "shmguard/scope.hpp"

using namespace shmguard;

TEST(Scope, FpmSocketsOfEveryProxyFcgiForm) {
  EXPECT_EQ(fpm_sockets_in("\"proxy:unix:/run/php/php8.2-fpm.sock|fcgi://localhost\""),
            std::vector<std::string>{"/run/php/php8.2-fpm.sock"});
  EXPECT_EQ(fpm_sockets_in("proxy:UNIX:/run/a.sock|FCGI://localhost/"),
            std::vector<std::string>{"/run/a.sock"});
  EXPECT_EQ(fpm_sockets_in("\"^/pp/(.*\\.php)$\" "
                           "\"unix:/srv/r/run/php-fpm.sock|fcgi://localhost/srv/r/htdocs/$1\""),
            std::vector<std::string>{"/srv/r/run/php-fpm.sock"});
  EXPECT_EQ(
      fpm_sockets_in("/app/ unix:/a.sock|fcgi://x/ unix:/b.sock|fcgi://y/ unix:/a.sock|fcgi://z"),
      (std::vector<std::string>{"/a.sock", "/b.sock"}));
  // Not FastCGI, not absolute, not a word, too long, no target: nothing.
  EXPECT_TRUE(fpm_sockets_in("unix:/run/x.sock|http://localhost/").empty());
  EXPECT_TRUE(fpm_sockets_in("unix:run/x.sock|fcgi://localhost/").empty());
  EXPECT_TRUE(fpm_sockets_in("xunix:/run/x.sock|fcgi://localhost/").empty());
  EXPECT_TRUE(fpm_sockets_in("unix:/" + std::string(200, 'a') + "|fcgi://l/").empty());
  EXPECT_TRUE(fpm_sockets_in("unix:/run/x.sock").empty());
  EXPECT_TRUE(fpm_sockets_in("fcgi://127.0.0.1:9000/").empty());
  EXPECT_TRUE(fpm_sockets_in("").empty());
}

TEST(Scope, ListenerPidIsTheProcessThatListens) {
  char dir[] = "/tmp/shmguard-scope-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/fpm.sock";
  EXPECT_EQ(unix_listener_pid(path), 0);  // no socket
  int ready[2], done[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(done), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // the "master": listens, says so, waits until the parent is done
    ::close(ready[0]);
    ::close(done[1]);
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, path.c_str());
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(fd, 4) != 0)
      ::_exit(1);
    (void)!::write(ready[1], "x", 1);
    char c;
    (void)!::read(done[0], &c, 1);
    ::_exit(0);
  }
  ::close(ready[1]);
  ::close(done[0]);
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  // Never accepted: the connection waits in the backlog, its peer is still the listener.
  EXPECT_EQ(unix_listener_pid(path), child);
  EXPECT_EQ(unix_listener_pid(path), child);
  ::close(done[1]);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_EQ(unix_listener_pid(path), 0);  // nobody listens any more
  ::unlink(path.c_str());
  ::rmdir(dir);
  EXPECT_EQ(unix_listener_pid(""), 0);
  EXPECT_EQ(unix_listener_pid(std::string(200, '/')), 0);
}

namespace {
ProcStat st(int pid, int ppid, const char* comm) {
  ProcStat s;
  s.pid = pid;
  s.ppid = ppid;
  s.comm = comm;
  return s;
}
std::vector<int> pids(const std::vector<ProcStat>& all, const std::vector<std::size_t>& at) {
  std::vector<int> out;
  for (std::size_t i : at) out.push_back(all[i].pid);
  return out;
}
}  // namespace

TEST(Scope, FpmScopeIsTheListenersAndTheirChildrenOnly) {
  const std::vector<ProcStat> all = {
      st(1, 0, "systemd"),        st(100, 1, "php-fpm8.2"),  // this server's master
      st(101, 100, "php-fpm8.2"), st(102, 100, "php-fpm8.2"),
      st(103, 102, "sh"),     // a pool's PHP ran a shell: not a worker
      st(104, 103, "php"),    // under a non-PHP process: not followed
      st(200, 1, "php-fpm"),  // somebody else's "php-fpm: pool x"
      st(201, 200, "php-fpm"),    st(300, 1, "nginx"),
  };
  EXPECT_EQ(pids(all, fpm_scope(all, {100})), (std::vector<int>{100, 101, 102}));
  EXPECT_TRUE(fpm_scope(all, {}).empty());
  // A socket handed over by systemd names pid 1; a listener that is not PHP: nothing.
  EXPECT_TRUE(fpm_scope(all, {1}).empty());
  EXPECT_TRUE(fpm_scope(all, {300}).empty());
  EXPECT_TRUE(fpm_scope(all, {999}).empty());  // gone
  // Two sockets of one master, and a second master: each once.
  EXPECT_EQ(pids(all, fpm_scope(all, {100, 100, 200})),
            (std::vector<int>{100, 101, 102, 200, 201}));
}

TEST(Scope, FpmScopeIsBounded) {
  std::vector<ProcStat> all = {st(10, 1, "php-fpm")};
  for (int i = 0; i < 5000; ++i) all.push_back(st(100 + i, 10, "php-fpm"));
  EXPECT_EQ(fpm_scope(all, {10}).size(), kMaxFpmScope);
}
