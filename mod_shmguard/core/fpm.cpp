// mod_shmguard core: PHP-FPM's pool status over FastCGI (see fpm.hpp). The FastCGI records are
// those of the FastCGI 1.0 specification: an 8-byte header (version 1, type, request id,
// content length, padding length), name-value pairs with 1- or 4-byte lengths.
#include "shmguard/fpm.hpp"
#include "shmguard/model.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

namespace shmguard {

namespace {

constexpr unsigned char kVersion = 1;
constexpr unsigned char kBeginRequest = 1, kEndRequest = 3, kParams = 4, kStdin = 5, kStdout = 6,
                        kStderr = 7;
constexpr std::uint16_t kRequestId = 1;

void record(std::string& out, unsigned char type, std::string_view content) {
  const unsigned char pad = static_cast<unsigned char>((8 - content.size() % 8) % 8);
  const unsigned char h[8] = {kVersion,
                              type,
                              0,
                              kRequestId,
                              static_cast<unsigned char>(content.size() >> 8),
                              static_cast<unsigned char>(content.size() & 0xff),
                              pad,
                              0};
  out.append(reinterpret_cast<const char*>(h), 8);
  out.append(content.data(), content.size());
  out.append(pad, '\0');
}

void nv_length(std::string& out, std::size_t n) {
  if (n < 128) {
    out.push_back(static_cast<char>(n));
    return;
  }
  out.push_back(static_cast<char>(0x80 | ((n >> 24) & 0x7f)));
  out.push_back(static_cast<char>((n >> 16) & 0xff));
  out.push_back(static_cast<char>((n >> 8) & 0xff));
  out.push_back(static_cast<char>(n & 0xff));
}

void nv(std::string& out, std::string_view name, std::string_view value) {
  nv_length(out, name.size());
  nv_length(out, value.size());
  out.append(name.data(), name.size());
  out.append(value.data(), value.size());
}

// The flat JSON object FPM writes: strings and unsigned integers only.
class Flat {
 public:
  explicit Flat(std::string_view s) : s_(s) {}
  bool ws_is(char c) {
    ws();
    if (s_.empty() || s_.front() != c) return false;
    s_.remove_prefix(1);
    return true;
  }
  void ws() {
    while (!s_.empty() &&
           (s_.front() == ' ' || s_.front() == '\t' || s_.front() == '\n' || s_.front() == '\r'))
      s_.remove_prefix(1);
  }
  bool at(char c) {
    ws();
    return !s_.empty() && s_.front() == c;
  }
  bool empty() {
    ws();
    return s_.empty();
  }
  std::optional<std::string> str() {
    if (!ws_is('"')) return std::nullopt;
    std::string out;
    while (!s_.empty()) {
      char c = s_.front();
      s_.remove_prefix(1);
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) return std::nullopt;
      if (c == '\\') {
        if (s_.empty()) return std::nullopt;
        char e = s_.front();
        s_.remove_prefix(1);
        switch (e) {
          case '"':
          case '\\':
          case '/':
            c = e;
            break;
          case 'n':
            c = '\n';
            break;
          case 't':
            c = '\t';
            break;
          case 'r':
            c = '\r';
            break;
          case 'b':
            c = '\b';
            break;
          case 'f':
            c = '\f';
            break;
          case 'u':  // kept as '?': names are shown, never compared with escapes in them
            if (s_.size() < 4) return std::nullopt;
            for (int i = 0; i < 4; ++i)
              if (!std::isxdigit(static_cast<unsigned char>(s_[static_cast<std::size_t>(i)])))
                return std::nullopt;
            s_.remove_prefix(4);
            c = '?';
            break;
          default:
            return std::nullopt;
        }
      }
      if (out.size() >= kFpmNameMax) return std::nullopt;
      out.push_back(c);
    }
    return std::nullopt;
  }
  std::optional<std::uint64_t> num() {
    ws();
    if (s_.empty() || s_.front() < '0' || s_.front() > '9') return std::nullopt;
    std::uint64_t v = 0;
    while (!s_.empty() && s_.front() >= '0' && s_.front() <= '9') {
      const std::uint64_t d = static_cast<std::uint64_t>(s_.front() - '0');
      if (v > (UINT64_MAX - d) / 10) return std::nullopt;
      v = v * 10 + d;
      s_.remove_prefix(1);
    }
    return v;
  }

 private:
  std::string_view s_;
};

}  // namespace

std::string fcgi_status_request(std::string_view status_path) {
  std::string out;
  const unsigned char begin[8] = {0, 1, 0, 0, 0, 0, 0, 0};  // role RESPONDER, no keep-alive
  record(out, kBeginRequest, std::string_view(reinterpret_cast<const char*>(begin), 8));
  std::string params;
  nv(params, "SCRIPT_NAME", status_path);
  nv(params, "SCRIPT_FILENAME", status_path);
  nv(params, "REQUEST_URI", std::string(status_path) + "?json");
  nv(params, "QUERY_STRING", "json");
  nv(params, "REQUEST_METHOD", "GET");
  nv(params, "GATEWAY_INTERFACE", "CGI/1.1");
  nv(params, "SERVER_PROTOCOL", "HTTP/1.1");
  nv(params, "SERVER_SOFTWARE", "mod_shmguard");
  record(out, kParams, params);
  record(out, kParams, {});
  record(out, kStdin, {});
  return out;
}

std::optional<FcgiReply> parse_fcgi_reply(std::string_view in) {
  if (in.size() > kFpmReplyMax) return std::nullopt;
  FcgiReply r;
  while (!in.empty()) {
    if (in.size() < 8) return r;  // a header still coming
    const auto* h = reinterpret_cast<const unsigned char*>(in.data());
    if (h[0] != kVersion) return std::nullopt;
    const std::uint16_t id = static_cast<std::uint16_t>(h[2] << 8 | h[3]);
    const std::size_t len = static_cast<std::size_t>(h[4] << 8 | h[5]), pad = h[6];
    if (in.size() < 8 + len + pad) return r;  // the record still coming
    const std::string_view content = in.substr(8, len);
    in.remove_prefix(8 + len + pad);
    if (id != kRequestId) return std::nullopt;
    switch (h[1]) {
      case kStdout:
        r.out.append(content.data(), content.size());
        break;
      case kStderr:
        r.err_bytes += content.size();
        break;
      case kEndRequest:
        if (len < 8 || !in.empty()) return std::nullopt;  // the last record, 8 bytes
        r.app_status = static_cast<std::uint32_t>(static_cast<unsigned char>(content[0])) << 24 |
                       static_cast<std::uint32_t>(static_cast<unsigned char>(content[1])) << 16 |
                       static_cast<std::uint32_t>(static_cast<unsigned char>(content[2])) << 8 |
                       static_cast<std::uint32_t>(static_cast<unsigned char>(content[3]));
        r.complete = true;
        return r;
      default:
        return std::nullopt;  // a responder sends nothing else for our request
    }
  }
  return r;
}

std::optional<CgiResponse> split_cgi_response(std::string_view out) {
  CgiResponse r;
  for (;;) {
    const std::size_t eol = out.find('\n');
    if (eol == std::string_view::npos) return std::nullopt;  // no blank line: no body
    std::string_view line = out.substr(0, eol);
    out.remove_prefix(eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    std::string name(line.substr(0, colon));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name != "status") continue;
    std::string_view v = line.substr(colon + 1);
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    if (v.size() < 3) return std::nullopt;
    int code = 0;
    for (int i = 0; i < 3; ++i) {
      const char c = v[static_cast<std::size_t>(i)];
      if (c < '0' || c > '9') return std::nullopt;
      code = code * 10 + (c - '0');
    }
    r.status = code;
  }
  r.body = out;
  return r;
}

std::optional<FpmPoolStatus> parse_fpm_status_json(std::string_view body) {
  Flat f(body);
  FpmPoolStatus st;
  bool pool = false, idle = false, active = false, total = false;
  if (!f.ws_is('{')) return std::nullopt;
  if (!f.at('}')) {
    for (int fields = 0;; ++fields) {
      if (fields >= 64) return std::nullopt;  // FPM writes about 15
      auto key = f.str();
      if (!key || !f.ws_is(':')) return std::nullopt;
      if (f.at('"')) {
        auto v = f.str();
        if (!v) return std::nullopt;
        if (*key == "pool") {
          st.pool = std::move(*v);
          pool = true;
        } else if (*key == "process manager") {
          st.process_manager = std::move(*v);
        }
      } else {
        auto v = f.num();
        if (!v) return std::nullopt;
        const std::pair<const char*, std::uint64_t*> ints[] = {
            {"idle processes", &st.idle},
            {"active processes", &st.active},
            {"total processes", &st.total},
            {"max active processes", &st.max_active},
            {"listen queue", &st.listen_queue},
            {"max listen queue", &st.max_listen_queue},
            {"listen queue len", &st.listen_queue_len},
            {"max children reached", &st.max_children_reached},
            {"slow requests", &st.slow_requests},
            {"accepted conn", &st.accepted},
            {"start since", &st.start_since}};
        for (const auto& [name, to] : ints)
          if (*key == name) *to = *v;
        if (*key == "idle processes") idle = true;
        if (*key == "active processes") active = true;
        if (*key == "total processes") total = true;
      }
      if (f.ws_is(',')) continue;
      break;
    }
  }
  if (!f.ws_is('}') || !f.empty()) return std::nullopt;
  if (!pool || st.pool.empty() || !idle || !active || !total) return std::nullopt;
  return st;
}

FpmPool unread_fpm_pool(const std::string& socket_path, const std::string& status_path,
                        std::string why) {
  FpmPool p;
  p.configured = true;
  p.socket = socket_path;
  p.status_path = status_path;
  p.error = std::move(why);
  return p;
}

FpmPool read_fpm_pool(const std::string& socket_path, const std::string& status_path,
                      int timeout_ms) {
  FpmPool p = unread_fpm_pool(socket_path, status_path, "");
  p.read_ms = now_ms();
  std::string path = socket_path.rfind("unix:", 0) == 0 ? socket_path.substr(5) : socket_path;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    p.error = "not a Unix socket path that fits (at most " +
              std::to_string(sizeof(addr.sun_path) - 1) + " bytes)";
    return p;
  }
  if (status_path.empty() || status_path[0] != '/' || status_path.size() >= 1024) {
    p.error = "the status path must start with '/' (pm.status_path)";
    return p;
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  const std::int64_t deadline = mono_ms() + timeout_ms;
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    p.error = std::string("socket: ") + std::strerror(errno);
    return p;
  }
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  auto wait_for = [&](short events) {
    for (;;) {
      const std::int64_t left = deadline - mono_ms();
      if (left <= 0) return false;
      pollfd pfd{fd, events, 0};
      const int n = poll(&pfd, 1, static_cast<int>(left));
      if (n > 0) return true;
      if (n < 0 && errno != EINTR) return false;
    }
  };
  const std::string timed_out = "no answer within " + std::to_string(timeout_ms) + " ms";
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) {
      p.error = "connect " + path + ": " + std::strerror(errno);
      return p;
    }
    if (!wait_for(POLLOUT)) {
      p.error = timed_out;
      return p;
    }
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      p.error = "connect " + path + ": " + std::strerror(err ? err : errno);
      return p;
    }
  }
  const std::string req = fcgi_status_request(status_path);
  for (std::size_t sent = 0; sent < req.size();) {
    const ssize_t n = send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!wait_for(POLLOUT)) {
        p.error = timed_out;
        return p;
      }
    } else {
      p.error = std::string("send: ") + std::strerror(errno);
      return p;
    }
  }
  std::string in;
  std::optional<FcgiReply> reply;
  char buf[8192];
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      if (in.size() + static_cast<std::size_t>(n) > kFpmReplyMax) {
        p.error = "the reply is longer than " + std::to_string(kFpmReplyMax) + " bytes";
        return p;
      }
      in.append(buf, static_cast<std::size_t>(n));
      reply = parse_fcgi_reply(in);
      if (!reply) {
        p.error = "not a FastCGI reply";
        return p;
      }
      if (reply->complete) break;
    } else if (n == 0) {
      break;
    } else if (errno == EAGAIN || errno == EINTR) {
      if (!wait_for(POLLIN)) {
        p.error = timed_out;
        return p;
      }
    } else {
      p.error = std::string("recv: ") + std::strerror(errno);
      return p;
    }
  }
  if (!reply || !reply->complete) {
    p.error = "the reply ended before FastCGI's END_REQUEST";
    return p;
  }
  const auto cgi = split_cgi_response(reply->out);
  if (!cgi) {
    p.error = "not a CGI response";
    return p;
  }
  if (cgi->status != 200) {
    p.error = "status " + std::to_string(cgi->status) + " for " + status_path +
              " (is pm.status_path = " + status_path + " set in the pool?)";
    return p;
  }
  auto st = parse_fpm_status_json(cgi->body);
  if (!st) {
    p.error = "not PHP-FPM's JSON status";
    return p;
  }
  p.status = std::move(*st);
  p.name = p.status.pool;
  p.ok = true;
  return p;
}

std::vector<FpmPool> fpm_pools_view(std::vector<FpmPool> read,
                                    const std::vector<std::string>& process_pools) {
  for (const std::string& name : process_pools) {
    bool known = false;
    for (const FpmPool& p : read) known = known || ((p.ok || !p.configured) && p.name == name);
    if (known) continue;
    FpmPool p;
    p.name = name.substr(0, kFpmNameMax);
    read.push_back(std::move(p));
  }
  return read;
}

std::vector<std::string> fpm_pool_keys(const std::vector<FpmPool>& pools) {
  std::vector<std::string> keys;
  auto taken = [&](const std::string& k) {
    return k.empty() || std::find(keys.begin(), keys.end(), k) != keys.end();
  };
  for (std::size_t i = 0; i < pools.size(); ++i) {
    std::string k = pools[i].name;
    if (taken(k)) k = pools[i].socket;
    if (taken(k)) k = pools[i].name + "#" + std::to_string(i + 1);
    keys.push_back(std::move(k));
  }
  return keys;
}

std::string fpm_status_hint(const FpmPool& p) {
  if (p.ok) return "";
  if (!p.configured)
    return "No status read for pool " + p.name +
           ": add \"pm.status_path = /fpm-status\" to the pool's configuration and "
           "\"ShmGuardFpmPool /path/to/the/pool.sock /fpm-status\" to Apache's (server "
           "configuration).";
  return "Its status could not be read: " + p.error + ".";
}

// ---------------------------------------------------------------- FPM's own failures

namespace {

bool digits(std::string_view s, std::size_t from, std::size_t n) {
  if (s.size() < from + n) return false;
  for (std::size_t i = from; i < from + n; ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

// "[07-Dec-2026 12:36:05] " or, at log_level = debug, "[07-Dec-2026 12:36:05.123456] ".
bool strip_zlog_time(std::string_view& s) {
  if (s.size() < 23 || s[0] != '[' || !digits(s, 1, 2) || s[3] != '-' || s[7] != '-' ||
      !digits(s, 8, 4) || s[12] != ' ' || !digits(s, 13, 2) || s[15] != ':' || !digits(s, 16, 2) ||
      s[18] != ':' || !digits(s, 19, 2))
    return false;
  for (std::size_t i = 4; i < 7; ++i)
    if (!std::isalpha(static_cast<unsigned char>(s[i]))) return false;
  std::size_t at = 21;
  if (s[at] == '.') {
    if (!digits(s, at + 1, 6)) return false;
    at += 7;
  }
  if (s.size() < at + 2 || s[at] != ']' || s[at + 1] != ' ') return false;
  s.remove_prefix(at + 2);
  return true;
}

bool strip(std::string_view& s, std::string_view prefix) {
  if (s.substr(0, prefix.size()) != prefix) return false;
  s.remove_prefix(prefix.size());
  return true;
}

// The debug prefix after the level: "pid 1888, fpm_children_make(), line 420: ".
void strip_debug_origin(std::string_view& s) {
  std::string_view t = s;
  if (!strip(t, "pid ")) return;
  std::size_t n = 0;
  while (n < t.size() && n < 10 && t[n] >= '0' && t[n] <= '9') ++n;
  if (n == 0) return;
  t.remove_prefix(n);
  if (!strip(t, ", ")) return;
  const std::size_t fn = t.find("(), line ");
  if (fn == std::string_view::npos || fn == 0 || fn > 64) return;
  t.remove_prefix(fn + 9);
  n = 0;
  while (n < t.size() && n < 10 && t[n] >= '0' && t[n] <= '9') ++n;
  if (n == 0) return;
  t.remove_prefix(n);
  if (!strip(t, ": ")) return;
  s = t;
}

std::optional<std::uint64_t> small_number(std::string_view s) {
  if (s.empty() || s.size() > 9) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v;
}

}  // namespace

std::optional<FpmLogEvent> parse_fpm_log_line(std::string_view s) {
  if (s.size() > 4096) return std::nullopt;
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
  if (!strip_zlog_time(s)) return std::nullopt;
  if (strip(s, "ERROR: ")) {
    strip_debug_origin(s);
    // "fork() failed: <strerror> (<errno>)", the whole rest of the line.
    if (!strip(s, "fork() failed: ") || s.empty() || s.back() != ')') return std::nullopt;
    const std::size_t open = s.rfind(" (");
    if (open == std::string_view::npos || open == 0) return std::nullopt;
    const auto err = small_number(s.substr(open + 2, s.size() - open - 3));
    if (!err || *err == 0 || *err > 4095) return std::nullopt;
    FpmLogEvent e;
    e.kind = FpmLogEvent::Kind::ForkFailed;
    e.err = static_cast<int>(*err);
    return e;
  }
  if (strip(s, "WARNING: ")) {
    strip_debug_origin(s);
    // "[pool www] server reached pm.max_children setting (5), consider raising it" (dynamic;
    // ondemand says "max_children setting").
    if (!strip(s, "[pool ")) return std::nullopt;
    const std::size_t close = s.find("] server reached ");
    if (close == std::string_view::npos || close == 0 || close > kFpmNameMax) return std::nullopt;
    FpmLogEvent e;
    e.kind = FpmLogEvent::Kind::MaxChildren;
    e.pool = std::string(s.substr(0, close));
    s.remove_prefix(close + 17);
    if (!strip(s, "pm.max_children setting (") && !strip(s, "max_children setting ("))
      return std::nullopt;
    const std::size_t end = s.find(')');
    if (end == std::string_view::npos) return std::nullopt;
    const auto n = small_number(s.substr(0, end));
    if (!n || s.substr(end) != "), consider raising it") return std::nullopt;
    e.max_children = *n;
    return e;
  }
  return std::nullopt;
}

std::string fpm_fork_failure_words(int err) {
  return "fork() failed: " + std::string(std::strerror(err)) + " (" + std::to_string(err) + ")";
}

std::optional<FpmFailure> fpm_failure(const FpmFailureInput& in) {
  FpmFailure f;
  std::vector<std::string> bounds;
  auto add = [](std::string& to, const std::string& what) {
    if (!to.empty()) to += "; ";
    to += what;
  };
  if (in.fork_failures > 0) {
    add(f.cause, "the pool could not start a child: " + fpm_fork_failure_words(in.fork_errno) +
                     ", " + std::to_string(in.fork_failures) +
                     (in.fork_failures == 1 ? " time" : " times") + " during the request");
    if (in.fork_errno == EAGAIN)
      bounds.push_back(
          "a process limit (RLIMIT_NPROC of FPM's user, a pids cgroup, or the numproc "
          "beancounter)");
    else if (in.fork_errno == ENOMEM)
      bounds.push_back("memory for the new child's private pages" +
                       (in.memory_limit.empty() ? std::string() : " (" + in.memory_limit + ")"));
    else
      bounds.push_back("what made fork() fail (" + std::string(std::strerror(in.fork_errno)) + ")");
  }
  if (in.max_children_lines > 0) {
    add(f.cause, "the pool reached pm.max_children (" + std::to_string(in.max_children) + ")");
    bounds.push_back("pm.max_children " + std::to_string(in.max_children));
  }
  const FpmPoolStatus& st = in.status;
  if (in.status_fresh && st.idle == 0 && st.listen_queue > 0 && in.max_children_lines == 0) {
    add(f.cause, "all " + std::to_string(st.total) + " children were busy with " +
                     std::to_string(st.listen_queue) + " requests in the listen queue");
    if (in.fork_failures == 0) bounds.push_back("the pool's children (pm.max_children)");
  }
  if (in.connect_errno == ECONNREFUSED || in.connect_errno == ENOENT) {
    add(f.cause, "its socket refuses connections (connect: " +
                     std::string(std::strerror(in.connect_errno)) + ")");
    bounds.push_back("none: the pool is not running");
  } else if (in.connect_errno == EAGAIN) {
    add(f.cause, "its socket's listen backlog is full (connect: " +
                     std::string(std::strerror(in.connect_errno)) + ")");
    bounds.push_back("the pool's listen backlog (listen.backlog)");
  }
  if (f.cause.empty()) return std::nullopt;
  if (in.status_fresh)
    f.cause += " (pool " + (st.pool.empty() ? in.pool : st.pool) + ": " + std::to_string(st.total) +
               " children, " + std::to_string(st.idle) + " idle, " + std::to_string(st.active) +
               " active, listen queue " + std::to_string(st.listen_queue) +
               ", max children reached " + std::to_string(st.max_children_reached) + ")";
  for (const std::string& b : bounds) add(f.bound, b);
  return f;
}

std::optional<std::uint64_t> private_headroom(const std::vector<Limit>& limits) {
  std::optional<std::uint64_t> out;
  for (const Limit& l : limits) {
    const BindingLimit b = binding_limit(l.name);
    if (b != BindingLimit::Privvmpages && b != BindingLimit::Cgroup &&
        b != BindingLimit::Overcommit)
      continue;
    if (!out || l.headroom_bytes() < *out) out = l.headroom_bytes();
  }
  return out;
}

std::uint64_t fpm_free_children(const FpmPoolStatus& st) {
  const std::uint64_t free = st.idle + (st.active > 0 ? 1 : 0);
  return free > st.listen_queue ? free - st.listen_queue : 0;
}

std::uint64_t fpm_free_now(std::uint64_t free_at_read, std::uint64_t total,
                           std::int64_t inflight_at_read, std::int64_t inflight_now) {
  const std::int64_t taken = inflight_now - inflight_at_read;  // < 0: requests ended since
  const std::uint64_t free = std::min(free_at_read, total);
  if (taken >= 0)
    return static_cast<std::uint64_t>(taken) >= free ? 0 : free - static_cast<std::uint64_t>(taken);
  return std::min(total, free + static_cast<std::uint64_t>(-taken));
}

bool fpm_forks(const FpmPoolStatus& now, std::optional<std::uint64_t> previous_reached) {
  if (now.process_manager != "dynamic" && now.process_manager != "ondemand") return false;
  return !previous_reached || now.max_children_reached <= *previous_reached;
}

}  // namespace shmguard
