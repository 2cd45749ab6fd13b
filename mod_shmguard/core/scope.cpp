// mod_shmguard core: the processes a server serves from (scope.hpp).
#include "shmguard/scope.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

namespace shmguard {

namespace {
bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  return true;
}
}  // namespace

std::vector<std::string> fpm_sockets_in(std::string_view args) {
  std::vector<std::string> out;
  for (std::size_t at = 0; at + 5 <= args.size(); ++at) {
    if (!starts_with_nocase(args.substr(at), "unix:")) continue;
    // "unix:" starts a word, or follows "proxy:" (a handler name).
    const bool word = at == 0 || args[at - 1] == '"' || args[at - 1] == '\'' ||
                      std::isspace(static_cast<unsigned char>(args[at - 1])) ||
                      (at >= 6 && starts_with_nocase(args.substr(at - 6), "proxy:"));
    if (!word) continue;
    const std::size_t start = at + 5;
    const std::size_t bar = args.find('|', start);
    if (bar == std::string_view::npos) break;
    std::string_view path = args.substr(start, bar - start);
    at = bar;
    if (path.empty() || path[0] != '/' || path.size() > 107) continue;
    if (std::any_of(path.begin(), path.end(), [](char c) {
          return std::isspace(static_cast<unsigned char>(c)) || c == '"' || c == '\'' || c == '\0';
        }))
      continue;
    if (!starts_with_nocase(args.substr(bar + 1), "fcgi://")) continue;
    std::string p(path);
    if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(std::move(p));
  }
  return out;
}

int unix_listener_pid(const std::string& path) {
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof addr.sun_path) return 0;
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  int pid = 0;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && len == sizeof cred)
      pid = cred.pid > 0 ? static_cast<int>(cred.pid) : 0;
  }
  ::close(fd);
  return pid;
}

std::vector<std::size_t> fpm_scope(const std::vector<ProcStat>& stats,
                                   const std::vector<int>& masters) {
  std::unordered_map<int, std::size_t> by_pid;
  std::unordered_map<int, std::vector<std::size_t>> children;
  for (std::size_t i = 0; i < stats.size(); ++i) {
    by_pid[stats[i].pid] = i;
    children[stats[i].ppid].push_back(i);
  }
  auto php = [&](std::size_t i) { return stats[i].comm.rfind("php", 0) == 0; };
  std::vector<std::size_t> out;
  std::unordered_set<int> taken;
  auto add = [&](std::size_t i) {
    if (out.size() >= kMaxFpmScope || !taken.insert(stats[i].pid).second) return false;
    out.push_back(i);
    return true;
  };
  for (int m : masters) {
    auto it = by_pid.find(m);
    if (m <= 1 || it == by_pid.end() || !php(it->second) || !add(it->second)) continue;
    std::vector<int> frontier{m};
    for (int depth = 0; depth < 8 && !frontier.empty(); ++depth) {
      std::vector<int> next;
      for (int parent : frontier) {
        auto c = children.find(parent);
        if (c == children.end()) continue;
        for (std::size_t i : c->second)
          if (php(i) && add(i)) next.push_back(stats[i].pid);
      }
      frontier.swap(next);
    }
  }
  return out;
}

}  // namespace shmguard
