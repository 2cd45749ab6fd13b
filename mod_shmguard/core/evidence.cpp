// mod_shmguard core: PHP's allocation-failure lines (see evidence.hpp).
#include "shmguard/evidence.hpp"

#include "shmguard/sources.hpp"

namespace shmguard {

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// asctime without its newline: "Www Mmm dd hh:mm:ss yyyy" (24 characters, day padded by a space).
bool is_asctime(std::string_view s) {
  if (s.size() != 24) return false;
  for (int i : {0, 1, 2, 4, 5, 6})
    if (!is_alpha(s[i])) return false;
  if (s[3] != ' ' || s[7] != ' ' || s[10] != ' ' || s[13] != ':' || s[16] != ':' || s[19] != ' ')
    return false;
  if (!(s[8] == ' ' || is_digit(s[8])) || !is_digit(s[9])) return false;
  for (int i : {11, 12, 14, 15, 17, 18, 20, 21, 22, 23})
    if (!is_digit(s[i])) return false;
  return true;
}

// Digits at the start of s, as a number (nullopt if none or too large); `used` gets their count.
std::optional<std::uint64_t> leading_number(std::string_view s, std::size_t& used) {
  used = 0;
  while (used < s.size() && used < 20 && is_digit(s[used])) ++used;
  if (used == 0) return std::nullopt;
  return parse_u64(s.substr(0, used));
}

bool consume(std::string_view& s, std::string_view prefix) {
  if (s.substr(0, prefix.size()) != prefix) return false;
  s.remove_prefix(prefix.size());
  return true;
}

std::string_view trim_eol(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' '))
    s.remove_suffix(1);
  return s;
}

std::optional<PhpShmError> parse_opcache(std::string_view s) {
  if (s.size() < 28 || !is_asctime(s.substr(0, 24))) return std::nullopt;
  s.remove_prefix(24);
  if (!consume(s, " (")) return std::nullopt;
  std::size_t n = 0;
  auto pid = leading_number(s, n);
  if (!pid || *pid == 0 || *pid > 0x7fffffff) return std::nullopt;
  s.remove_prefix(n);
  if (!consume(s, "): Fatal Error Unable to allocate shared memory segment of "))
    return std::nullopt;
  auto bytes = leading_number(s, n);
  if (!bytes) return std::nullopt;
  s.remove_prefix(n);
  if (!consume(s, " bytes: ")) return std::nullopt;
  std::size_t colon = s.find(": ");
  if (colon == std::string_view::npos || colon == 0 || colon > 32) return std::nullopt;
  PhpShmError e;
  e.source = ShmErrorSource::Opcache;
  e.pid = static_cast<int>(*pid);
  e.bytes = *bytes;
  e.model = std::string(s.substr(0, colon));
  e.message = std::string(trim_eol(s.substr(colon + 2)));
  if (e.message.empty() || e.message.back() != ')') return std::nullopt;  // "... (12)"
  return e;
}

std::optional<PhpShmError> parse_apcu(std::string_view s) {
  if (!consume(s, "PHP Fatal error:  apc_mmap: Failed to mmap ")) return std::nullopt;
  std::size_t n = 0;
  auto bytes = leading_number(s, n);
  if (!bytes) return std::nullopt;
  s.remove_prefix(n);
  if (!consume(s, " bytes")) return std::nullopt;
  if (trim_eol(s).size() < 1 || (s[0] != '.' && s[0] != ' ')) return std::nullopt;
  PhpShmError e;
  e.source = ShmErrorSource::Apcu;
  e.bytes = *bytes;
  e.model = "mmap";
  e.message = std::string(trim_eol(s.substr(s[0] == '.' ? 1 : 0)));
  return e;
}

}  // namespace

std::optional<PhpShmError> parse_php_shm_error(std::string_view line) {
  if (line.size() > 4096) return std::nullopt;
  if (!line.empty() && line[0] == 'P') return parse_apcu(line);
  return parse_opcache(line);
}

bool PhpErrorQueue::waiting(int pid) const {
  for (const auto* q : {&workers_, &unknown_})
    for (const Line& l : *q)
      if (l.pid == pid) return true;
  return false;
}

void PhpErrorQueue::offer(const Line& line, const std::function<bool(int)>& is_worker) {
  if (line.pid <= 0 || waiting(line.pid)) return;
  const bool worker = is_worker(line.pid);
  std::deque<Line>& q = worker ? workers_ : unknown_;
  if (q.size() >= (worker ? kMaxWorkerLines : kMaxUnknownLines)) q.pop_front();
  q.push_back(line);
}

std::vector<PhpErrorQueue::Line> PhpErrorQueue::settle(std::int64_t now_ms,
                                                       const std::function<bool(int)>& is_worker,
                                                       const std::function<bool(int)>& exited) {
  for (auto it = unknown_.begin(); it != unknown_.end();) {
    if (is_worker(it->pid)) {
      if (workers_.size() >= kMaxWorkerLines) workers_.pop_front();
      workers_.push_back(*it);
      it = unknown_.erase(it);
    } else if (now_ms - it->seen_ms > kWaitMs || it->seen_ms > now_ms + 1000) {
      it = unknown_.erase(it);
    } else {
      ++it;
    }
  }
  std::vector<Line> out;
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (exited(it->pid)) {
      out.push_back(*it);
      it = workers_.erase(it);
    } else if (now_ms - it->seen_ms > kWaitMs || it->seen_ms > now_ms + 1000) {
      it = workers_.erase(it);  // still alive: not a worker dying of it
    } else {
      ++it;
    }
  }
  return out;
}

bool PhpErrorQueue::all_exited(const std::function<bool(int)>& exited) const {
  for (const Line& l : workers_)
    if (!exited(l.pid)) return false;
  return true;
}

}  // namespace shmguard
