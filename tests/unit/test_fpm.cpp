// PHP-FPM's pool status over FastCGI (core/fpm.cpp): the request's records, the reply's parser,
// FPM's JSON, and the client against a fake pool on a Unix socket (a thread that answers as FPM
// does, or does not).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

#include "shmguard/fpm.hpp"
#include "shmguard/model.hpp"

using namespace shmguard;

namespace {

// FPM 8.2's `?json` (fpm_status.c), as it writes it.
const char kStatusJson[] =
    "{\"pool\":\"www\",\"process manager\":\"dynamic\",\"start time\":1796000000,\"start "
    "since\":42,\"accepted conn\":17,\"listen queue\":0,\"max listen queue\":3,\"listen queue "
    "len\":4096,\"idle processes\":1,\"active processes\":2,\"total processes\":3,\"max active "
    "processes\":3,\"max children reached\":5,\"slow requests\":1}";

std::string rec(unsigned char type, std::string_view content, std::uint16_t id = 1,
                unsigned char pad = 0) {
  std::string out;
  const unsigned char h[8] = {1,
                              type,
                              static_cast<unsigned char>(id >> 8),
                              static_cast<unsigned char>(id),
                              static_cast<unsigned char>(content.size() >> 8),
                              static_cast<unsigned char>(content.size()),
                              pad,
                              0};
  out.append(reinterpret_cast<const char*>(h), 8);
  out.append(content.data(), content.size());
  out.append(pad, '\0');
  return out;
}
std::string end_request() {
  return rec(3, std::string(8, '\0'));
}
std::string reply(std::string_view cgi) {
  return rec(6, cgi, 1, 3) + rec(6, "") + end_request();
}

// The request's records, parsed back: type and content, for the fake pool's checks.
struct Record {
  unsigned type;
  std::string content;
};
std::vector<Record> records(std::string_view in) {
  std::vector<Record> out;
  while (in.size() >= 8) {
    const auto* h = reinterpret_cast<const unsigned char*>(in.data());
    std::size_t len = static_cast<std::size_t>(h[4] << 8 | h[5]), pad = h[6];
    if (in.size() < 8 + len + pad) break;
    out.push_back({h[1], std::string(in.substr(8, len))});
    in.remove_prefix(8 + len + pad);
  }
  return out;
}

// A fake pool: listens on a Unix socket, reads one request (up to its empty STDIN record), then
// does `answer` with the connection.
class FakePool {
 public:
  explicit FakePool(std::function<void(int fd, const std::string& request)> answer)
      : answer_(std::move(answer)) {
    path_ = "/tmp/shmguard-fpm-test-" + std::to_string(getpid()) + "-" +
            std::to_string(counter_++) + ".sock";
    unlink(path_.c_str());
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, path_.c_str());
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    EXPECT_EQ(listen(fd_, 4), 0);
    thread_ = std::thread([this] {
      const int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string req;
      char buf[4096];
      for (;;) {
        auto rs = records(req);
        if (!rs.empty() && rs.back().type == 5 && rs.back().content.empty()) break;
        ssize_t n = read(c, buf, sizeof(buf));
        if (n <= 0) break;
        req.append(buf, static_cast<std::size_t>(n));
      }
      request = req;
      answer_(c, req);
      close(c);
    });
  }
  ~FakePool() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    if (thread_.joinable()) thread_.join();
    unlink(path_.c_str());
  }
  const std::string& path() const { return path_; }
  std::string request;

 private:
  static inline std::atomic<int> counter_{0};
  std::function<void(int, const std::string&)> answer_;
  std::string path_;
  int fd_ = -1;
  std::thread thread_;
};

void send_all(int fd, const std::string& s) {
  for (std::size_t at = 0; at < s.size();) {
    ssize_t n = send(fd, s.data() + at, s.size() - at, MSG_NOSIGNAL);  // the client may be gone
    if (n <= 0) return;
    at += static_cast<std::size_t>(n);
  }
}

}  // namespace

TEST(Fpm, RequestIsTheStatusPathWithJson) {
  auto rs = records(fcgi_status_request("/fpm-status"));
  ASSERT_EQ(rs.size(), 4u);
  EXPECT_EQ(rs[0].type, 1u);  // BEGIN_REQUEST, role 1 (responder)
  EXPECT_EQ(rs[0].content, std::string("\0\1\0\0\0\0\0\0", 8));
  EXPECT_EQ(rs[1].type, 4u);
  EXPECT_NE(rs[1].content.find(std::string("\x0b\x0bSCRIPT_NAME/fpm-status")), std::string::npos);
  EXPECT_NE(rs[1].content.find(std::string("\x0c\x04QUERY_STRINGjson")), std::string::npos);
  EXPECT_NE(rs[1].content.find(std::string("\x0e\x03REQUEST_METHODGET")), std::string::npos);
  EXPECT_EQ(rs[2].type, 4u);
  EXPECT_TRUE(rs[2].content.empty());
  EXPECT_EQ(rs[3].type, 5u);
  EXPECT_TRUE(rs[3].content.empty());
  // A long value takes a 4-byte length.
  const std::string long_path = "/" + std::string(300, 'a');
  EXPECT_NE(fcgi_status_request(long_path).find(std::string("\x0b\x80\x00\x01\x2d", 5)),
            std::string::npos);
}

TEST(Fpm, ReplyRecords) {
  auto r = parse_fcgi_reply(rec(7, "warn") + reply("Content-type: application/json\r\n\r\n{}"));
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->complete);
  EXPECT_EQ(r->err_bytes, 4u);
  EXPECT_EQ(r->out, "Content-type: application/json\r\n\r\n{}");
  // Cut anywhere: incomplete, never wrong.
  const std::string whole = reply("Status: 404 Not Found\r\n\r\nFile not found.\n");
  for (std::size_t n = 0; n < whole.size(); ++n) {
    auto part = parse_fcgi_reply(whole.substr(0, n));
    ASSERT_TRUE(part) << n;
    EXPECT_FALSE(part->complete) << n;
  }
  EXPECT_FALSE(parse_fcgi_reply(std::string("\2") + whole.substr(1)));  // version 2
  EXPECT_FALSE(parse_fcgi_reply(rec(6, "x", 2) + end_request()));       // another request
  EXPECT_FALSE(parse_fcgi_reply(rec(9, "x")));                          // unknown type
  EXPECT_FALSE(parse_fcgi_reply(end_request() + rec(6, "more")));       // after the end
  EXPECT_FALSE(parse_fcgi_reply(std::string(kFpmReplyMax + 1, '\1')));  // too long
  EXPECT_FALSE(parse_fcgi_reply(rec(3, "short")));                      // END_REQUEST < 8
}

TEST(Fpm, CgiResponse) {
  auto r = split_cgi_response("X-Powered-By: PHP/8.2\r\nContent-type: text/plain\r\n\r\nbody");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "body");
  r = split_cgi_response("Status: 404 Not Found\nContent-type: text/html\n\nFile not found.\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_FALSE(split_cgi_response("no blank line"));
  EXPECT_FALSE(split_cgi_response("Status: 4x4\r\n\r\n"));
  EXPECT_FALSE(split_cgi_response("garbage line\r\n\r\n"));
}

TEST(Fpm, StatusJson) {
  auto st = parse_fpm_status_json(kStatusJson);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->pool, "www");
  EXPECT_EQ(st->process_manager, "dynamic");
  EXPECT_EQ(st->idle, 1u);
  EXPECT_EQ(st->active, 2u);
  EXPECT_EQ(st->total, 3u);
  EXPECT_EQ(st->max_active, 3u);
  EXPECT_EQ(st->listen_queue, 0u);
  EXPECT_EQ(st->max_listen_queue, 3u);
  EXPECT_EQ(st->listen_queue_len, 4096u);
  EXPECT_EQ(st->max_children_reached, 5u);
  EXPECT_EQ(st->slow_requests, 1u);
  EXPECT_EQ(st->accepted, 17u);
  EXPECT_EQ(st->start_since, 42u);
  // Whitespace and unknown keys (newer FPMs add some) are fine.
  EXPECT_TRUE(parse_fpm_status_json(
      " { \"pool\" : \"a\\\"b\" , \"idle processes\":0,\"active processes\":0,\"total "
      "processes\":0, \"memory peak\": 123 }\n"));
  EXPECT_FALSE(parse_fpm_status_json(""));
  EXPECT_FALSE(parse_fpm_status_json("{}"));  // no pool, no counts
  EXPECT_FALSE(parse_fpm_status_json("{\"pool\":\"www\"}"));
  EXPECT_FALSE(parse_fpm_status_json(std::string(kStatusJson) + "x"));
  EXPECT_FALSE(parse_fpm_status_json("{\"pool\":\"www\",\"idle processes\":-1}"));
  EXPECT_FALSE(parse_fpm_status_json(
      "{\"pool\":\"w\",\"idle processes\":99999999999999999999,\"active processes\":0,"
      "\"total processes\":0}"));  // over 64 bits
  EXPECT_FALSE(parse_fpm_status_json("{\"pool\":\"" + std::string(kFpmNameMax + 1, 'p') +
                                     "\",\"idle processes\":0,\"active processes\":0,"
                                     "\"total processes\":0}"));
  EXPECT_FALSE(parse_fpm_status_json("{\"processes\":[{\"pid\":1}]}"));  // ?full: not asked for
}

TEST(Fpm, ReadsAPoolOverItsSocket) {
  FakePool pool([](int fd, const std::string&) {
    send_all(fd, rec(6, "X-Powered-By: PHP/8.2.36\r\nContent-type: application/json\r\n\r\n") +
                     rec(6, kStatusJson, 1, 5) + end_request());
  });
  FpmPool p = read_fpm_pool("unix:" + pool.path(), "/fpm-status", 2000);
  ASSERT_TRUE(p.ok) << p.error;
  EXPECT_TRUE(p.configured);
  EXPECT_EQ(p.name, "www");
  EXPECT_EQ(p.status.total, 3u);
  EXPECT_EQ(p.status.max_children_reached, 5u);
  EXPECT_GT(p.read_ms, 0);
  auto rs = records(pool.request);
  ASSERT_EQ(rs.size(), 4u);
  EXPECT_NE(rs[1].content.find("/fpm-status"), std::string::npos);
}

TEST(Fpm, PoolWithoutThatStatusPathSaysSo) {
  FakePool pool([](int fd, const std::string&) {  // what FPM answers for an unknown script
    send_all(fd, rec(7, "Primary script unknown") +
                     reply("Status: 404 Not Found\r\nContent-type: text/html\r\n\r\nFile not "
                           "found.\n"));
  });
  FpmPool p = read_fpm_pool(pool.path(), "/fpm-status", 2000);
  EXPECT_FALSE(p.ok);
  EXPECT_EQ(p.error,
            "status 404 for /fpm-status (is pm.status_path = /fpm-status set in the pool?)");
  EXPECT_NE(fpm_status_hint(p).find("could not be read: status 404"), std::string::npos);
}

TEST(Fpm, SilentPoolTimesOut) {
  FakePool pool([](int fd, const std::string&) {  // never answers: waits for the client to leave
    char b[64];
    while (read(fd, b, sizeof(b)) > 0) {
    }
  });
  FpmPool p = read_fpm_pool(pool.path(), "/fpm-status", 100);
  EXPECT_FALSE(p.ok);
  EXPECT_EQ(p.error, "no answer within 100 ms");
}

TEST(Fpm, GarbageAndFloodsAreRefused) {
  {
    FakePool pool([](int fd, const std::string&) { send_all(fd, "HTTP/1.1 200 OK\r\n\r\n"); });
    FpmPool p = read_fpm_pool(pool.path(), "/s", 2000);
    EXPECT_EQ(p.error, "not a FastCGI reply");
  }
  {
    FakePool pool([](int fd, const std::string&) {
      const std::string chunk = rec(6, std::string(60000, 'x'));
      for (int i = 0; i < 4; ++i) send_all(fd, chunk);
    });
    FpmPool p = read_fpm_pool(pool.path(), "/s", 2000);
    EXPECT_EQ(p.error, "the reply is longer than 65536 bytes");
  }
  {
    FakePool pool(
        [](int fd, const std::string&) { send_all(fd, rec(6, "Content-type: x\r\n\r\n")); });
    FpmPool p = read_fpm_pool(pool.path(), "/s", 2000);  // closed before END_REQUEST
    EXPECT_EQ(p.error, "the reply ended before FastCGI's END_REQUEST");
  }
  {
    FakePool pool([](int fd, const std::string&) { send_all(fd, reply("\r\n<html>no</html>")); });
    FpmPool p = read_fpm_pool(pool.path(), "/s", 2000);
    EXPECT_EQ(p.error, "not PHP-FPM's JSON status");
  }
}

TEST(Fpm, NoSocketOrBadPaths) {
  FpmPool p = read_fpm_pool("/nonexistent/shmguard-test.sock", "/fpm-status", 500);
  EXPECT_FALSE(p.ok);
  EXPECT_EQ(p.error, "connect /nonexistent/shmguard-test.sock: No such file or directory");
  p = read_fpm_pool("/" + std::string(200, 's'), "/fpm-status", 500);
  EXPECT_NE(p.error.find("not a Unix socket path that fits"), std::string::npos);
  p = read_fpm_pool("/tmp/x.sock", "fpm-status", 500);
  EXPECT_NE(p.error.find("must start with '/'"), std::string::npos);
}

TEST(Fpm, PoolsViewAddsPoolsWithoutStatus) {
  FpmPool www;
  www.configured = www.ok = true;
  www.name = "www";
  FpmPool broken;
  broken.configured = true;
  broken.socket = "/run/b.sock";
  broken.error = "connect /run/b.sock: Connection refused";
  auto v = fpm_pools_view({www, broken}, {"www", "shop", "shop"});
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0].name, "www");
  EXPECT_EQ(v[1].socket, "/run/b.sock");
  EXPECT_EQ(v[2].name, "shop");
  EXPECT_FALSE(v[2].configured);
  EXPECT_EQ(fpm_status_hint(v[0]), "");
  EXPECT_NE(fpm_status_hint(v[2]).find("add \"pm.status_path = /fpm-status\""), std::string::npos);
}

// ---------------------------------------------------------------- FPM's own failures (issue 21
// item 3)

TEST(FpmLog, ForkFailureInFpmsOwnFormat) {
  // As php-fpm8.2 wrote it here, its master under RLIMIT_NPROC 1
  // (test_fpm_fork_failure_translated).
  auto e = parse_fpm_log_line(
      "[07-Dec-2026 12:36:05] ERROR: fork() failed: Resource temporarily unavailable (11)");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind, FpmLogEvent::Kind::ForkFailed);
  EXPECT_EQ(e->err, 11);
  EXPECT_EQ(fpm_fork_failure_words(11), "fork() failed: Resource temporarily unavailable (11)");
  // log_level = debug: microseconds, then "pid N, function(), line N: ".
  e = parse_fpm_log_line(
      "[07-Dec-2026 12:36:05.123456] ERROR: pid 1888, fpm_children_make(), line 420: fork() "
      "failed: Cannot allocate memory (12)\n");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->err, 12);
}

TEST(FpmLog, MaxChildrenNamesThePool) {
  auto e = parse_fpm_log_line(
      "[07-Dec-2026 12:36:05] WARNING: [pool www] server reached pm.max_children setting (5), "
      "consider raising it");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind, FpmLogEvent::Kind::MaxChildren);
  EXPECT_EQ(e->pool, "www");
  EXPECT_EQ(e->max_children, 5u);
  e = parse_fpm_log_line(  // ondemand's wording
      "[07-Dec-2026 12:36:05] WARNING: [pool site-b] server reached max_children setting (3), "
      "consider raising it");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->pool, "site-b");
  EXPECT_EQ(e->max_children, 3u);
}

TEST(FpmLog, OnlyFpmsLinesFromTheirStart) {
  for (const char* line : {
           // a child's stderr, as FPM decorates it (catch_workers_output = yes)
           "[07-Dec-2026 12:36:05] WARNING: [pool www] child 12 said into stderr: \"[07-Dec-2026 "
           "12:36:05] ERROR: fork() failed: Resource temporarily unavailable (11)\"",
           // not from the line's start
           "x[07-Dec-2026 12:36:05] ERROR: fork() failed: Resource temporarily unavailable (11)",
           "PHP message: [07-Dec-2026 12:36:05] ERROR: fork() failed: Cannot allocate memory (12)",
           // other levels and lines
           "[07-Dec-2026 12:36:05] NOTICE: fork() failed: Resource temporarily unavailable (11)",
           "[07-Dec-2026 12:36:05] ERROR: fork() failed: Resource temporarily unavailable (11) x",
           "[07-Dec-2026 12:36:05] ERROR: fork() failed: Resource temporarily unavailable (0)",
           "[07-Dec-2026 12:36:05] ERROR: fork() failed: Resource temporarily unavailable (99999)",
           "[07-Dec-2026 12:36:05] ERROR: fork() failed: (11)",
           "[07-Dec-2026 12:36:05] ERROR: failed to ptrace(ATTACH) child 12: Operation not "
           "permitted (1)",
           "[7-Dec-2026 12:36:05] ERROR: fork() failed: Resource temporarily unavailable (11)",
           "[07-Dec-2026 12:36:05]ERROR: fork() failed: Resource temporarily unavailable (11)",
           "[07-Dec-2026 12:36:05] WARNING: [pool www] server reached pm.max_children setting "
           "(5), consider raising it!",
           "[07-Dec-2026 12:36:05] WARNING: [pool ] server reached pm.max_children setting (5), "
           "consider raising it",
           "",
       })
    EXPECT_FALSE(parse_fpm_log_line(line)) << line;
  EXPECT_FALSE(parse_fpm_log_line(
      "[07-Dec-2026 12:36:05] ERROR: fork() failed: " + std::string(5000, 'x') + " (11)"));
}

TEST(FpmFailure, NothingSeenNothingSaid) {
  FpmFailureInput in;
  in.pool = "/run/php/www.sock";
  EXPECT_FALSE(fpm_failure(in));
  in.connect_errno = 0;  // the socket accepts
  EXPECT_FALSE(fpm_failure(in));
  in.connect_errno = EACCES;  // not a pool's failure
  EXPECT_FALSE(fpm_failure(in));
  // A status read during the request with idle children: nothing explains an error.
  in.status_fresh = true;
  in.status.idle = 2;
  in.status.total = 2;
  EXPECT_FALSE(fpm_failure(in));
  // Busy children but nothing queued: not saturated.
  in.status.idle = 0;
  in.status.active = 2;
  EXPECT_FALSE(fpm_failure(in));
  // A queue in a status read before the request: not this request's evidence.
  in.status.listen_queue = 3;
  in.status_fresh = false;
  EXPECT_FALSE(fpm_failure(in));
}

TEST(FpmFailure, ForkFailuresNameTheLimit) {
  FpmFailureInput in;
  in.pool = "/run/php/www.sock";
  in.fork_failures = 1;
  in.fork_errno = EAGAIN;
  auto f = fpm_failure(in);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->cause,
            "the pool could not start a child: fork() failed: Resource temporarily unavailable "
            "(11), 1 time during the request");
  EXPECT_EQ(f->bound.rfind("a process limit (RLIMIT_NPROC", 0), 0u) << f->bound;
  in.fork_failures = 3;
  in.fork_errno = ENOMEM;
  in.memory_limit = "beancounter:privvmpages 262000/262144 pages";
  in.status_fresh = true;
  in.status.pool = "www";
  in.status.total = 4;
  in.status.active = 4;
  in.status.listen_queue = 2;
  in.status.max_children_reached = 7;
  f = fpm_failure(in);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->cause,
            "the pool could not start a child: fork() failed: Cannot allocate memory (12), 3 "
            "times during the request; all 4 children were busy with 2 requests in the listen "
            "queue (pool www: 4 children, 0 idle, 4 active, listen queue 2, max children "
            "reached 7)");
  EXPECT_EQ(f->bound,
            "memory for the new child's private pages (beancounter:privvmpages 262000/262144 "
            "pages)");
}

TEST(FpmFailure, SaturatedRefusedOrBacklogFull) {
  FpmFailureInput in;
  in.pool = "/run/php/www.sock";
  in.max_children_lines = 1;
  in.max_children = 5;
  auto f = fpm_failure(in);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->cause, "the pool reached pm.max_children (5)");
  EXPECT_EQ(f->bound, "pm.max_children 5");
  in = FpmFailureInput{};
  in.pool = "/run/php/www.sock";
  in.connect_errno = ECONNREFUSED;
  f = fpm_failure(in);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->cause, "its socket refuses connections (connect: Connection refused)");
  EXPECT_EQ(f->bound, "none: the pool is not running");
  in.connect_errno = ENOENT;
  ASSERT_TRUE(fpm_failure(in));
  in.connect_errno = EAGAIN;
  f = fpm_failure(in);
  ASSERT_TRUE(f);
  EXPECT_NE(f->cause.find("listen backlog is full"), std::string::npos) << f->cause;
  // Status alone: all busy with a queue, read during the request.
  in = FpmFailureInput{};
  in.pool = "/run/php/www.sock";
  in.status_fresh = true;
  in.status.total = in.status.active = 3;
  in.status.listen_queue = 1;
  f = fpm_failure(in);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->cause.rfind("all 3 children were busy with 1 requests in the listen queue", 0), 0u);
  EXPECT_EQ(f->bound, "the pool's children (pm.max_children)");
}

TEST(FpmPoolKeys, NoTwoPoolsShareASeries) {
  FpmPool a, b, c, d, e;
  a.name = "www";
  a.socket = "/run/php/php8.2-fpm.sock";
  b.name = "www";  // another master's www (Debian's php8.1 and php8.2)
  b.socket = "/run/php/php8.1-fpm.sock";
  c.socket = "/run/php/c.sock";  // configured, not read yet: no name
  d.name = "www";                // seen as processes only: no socket
  e.name = "site";
  const auto keys = fpm_pool_keys({a, b, c, d, e});
  ASSERT_EQ(keys.size(), 5u);
  EXPECT_EQ(keys[0], "www");  // the common case keeps its key
  EXPECT_EQ(keys[1], "/run/php/php8.1-fpm.sock");
  EXPECT_EQ(keys[2], "/run/php/c.sock");
  EXPECT_EQ(keys[3], "www#4");
  EXPECT_EQ(keys[4], "site");
}

TEST(FpmForks, OnlyDynamicOrOndemandBelowMaxChildren) {
  FpmPoolStatus st;
  st.process_manager = "static";
  EXPECT_FALSE(fpm_forks(st, std::nullopt));
  st.process_manager = "ondemand";
  EXPECT_TRUE(fpm_forks(st, std::nullopt));
  st.process_manager = "dynamic";
  st.max_children_reached = 3;
  EXPECT_TRUE(fpm_forks(st, 3));   // did not rise since the read before
  EXPECT_FALSE(fpm_forks(st, 2));  // rose: at pm.max_children, FPM queues instead of forking
}

TEST(FpmForks, PrivateHeadroomIgnoresShmpages) {
  // A fork charges private writable pages: privvmpages, a memory cgroup, strict overcommit.
  std::vector<Limit> limits = {{"beancounter:shmpages", 1000, 990},
                               {"beancounter:privvmpages", 5000, 3000}};
  EXPECT_EQ(private_headroom(limits), std::optional<std::uint64_t>(2000));
  limits.push_back({"cgroup:memory", 10000, 9500});
  EXPECT_EQ(private_headroom(limits), std::optional<std::uint64_t>(500));
  limits.push_back({"overcommit", 100, 400});  // over: 0 left
  EXPECT_EQ(private_headroom(limits), std::optional<std::uint64_t>(0));
  EXPECT_FALSE(private_headroom({{"beancounter:shmpages", 1000, 10}}));
  EXPECT_FALSE(private_headroom({}));
}

TEST(FpmForks, TheStatusReadsOwnChildIsFreeAfterIt) {
  FpmPoolStatus st;  // one child, serving the status request: FPM says 0 idle, 1 active
  st.total = st.active = 1;
  EXPECT_EQ(fpm_free_children(st), 1u);
  st.listen_queue = 1;  // a request waits: it takes that child
  EXPECT_EQ(fpm_free_children(st), 0u);
  st = FpmPoolStatus{};
  st.total = 3;
  st.idle = 2;
  st.active = 1;
  EXPECT_EQ(fpm_free_children(st), 3u);
  st = FpmPoolStatus{};  // no child at all (ondemand): the status read found none
  EXPECT_EQ(fpm_free_children(st), 0u);
}

TEST(FpmForks, RequestsSentSinceTheReadTakeTheFreeChildren) {
  // The read found its own child free (a pool of 1 busy + the status child): 1 free, 1 in flight.
  EXPECT_EQ(fpm_free_now(1, 2, 1, 1), 1u);  // nothing new since: the next request has a child
  EXPECT_EQ(fpm_free_now(1, 2, 1, 2), 0u);  // one more request since the read took it: FPM forks
  EXPECT_EQ(fpm_free_now(1, 2, 1, 5), 0u);  // never below 0
  EXPECT_EQ(fpm_free_now(1, 2, 1, 0), 2u);  // the busy one ended: both free
  EXPECT_EQ(fpm_free_now(1, 2, 3, 0), 2u);  // never more than the children counted
  EXPECT_EQ(fpm_free_now(3, 3, 0, 2), 1u);
  EXPECT_EQ(fpm_free_now(0, 0, 0, 0), 0u);  // no child (the read failed): none free
}
