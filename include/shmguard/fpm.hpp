// mod_shmguard core: PHP-FPM's pool status, read over FastCGI from the pool's own socket (what
// `cgi-fcgi` does with SCRIPT_NAME=<pm.status_path> QUERY_STRING=json). No httpd header: the
// sampler calls read_fpm_pool(); the encoder and the parsers are pure and bounded (the reply is
// a pool's, i.e. anything a local process listening on that socket cares to send).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shmguard {

// What FPM's status page says (`?json`; fpm_status.c), the fields the guard and the page use.
struct FpmPoolStatus {
  std::string pool;             // "www"
  std::string process_manager;  // "static", "dynamic", "ondemand"
  std::uint64_t idle = 0, active = 0, total = 0, max_active = 0;
  std::uint64_t listen_queue = 0, max_listen_queue = 0, listen_queue_len = 0;
  std::uint64_t max_children_reached = 0, slow_requests = 0, accepted = 0, start_since = 0;
};

// One pool on the status page: read through ShmGuardFpmPool (configured), or seen only as
// "php-fpm: pool NAME" processes (not configured: the page says how to add its status).
struct FpmPool {
  std::string name;         // the status's pool name, else the processes' pool name
  std::string socket;       // ShmGuardFpmPool's socket ("" when not configured)
  std::string status_path;  // ShmGuardFpmPool's path (pm.status_path)
  std::string log;          // ShmGuardFpmPool's third argument: FPM's error_log ("" none)
  bool configured = false;
  bool ok = false;    // status read and parsed
  std::string error;  // why not, in words
  FpmPoolStatus status;
  std::int64_t read_ms = 0;  // wall clock of the read (0: not yet)
  // From FPM's own error log (`log`): its "fork() failed" lines, the last one's words, and the
  // 503s from mod_proxy_fcgi for this pool turned into the diagnosed 503 (SG0230).
  std::uint64_t fork_failures = 0, translated = 0;
  std::string last_failure;  // "fork() failed: Resource temporarily unavailable (11)"
};

// A reply longer than this is not a status page: the read stops and fails.
constexpr std::size_t kFpmReplyMax = 64 * 1024;
constexpr std::size_t kFpmNameMax = 256;  // pool names, process manager: longer is not FPM's

// The FastCGI request for `status_path` with QUERY_STRING=json (BEGIN_REQUEST, PARAMS, empty
// PARAMS, empty STDIN), request id 1. A status path must start with '/' and be < 1 KiB.
std::string fcgi_status_request(std::string_view status_path);

// The reply's records for request id 1: STDOUT's bytes, and whether END_REQUEST came. nullopt for
// anything that is not FastCGI (version, lengths past the input, another request id, a reply
// over kFpmReplyMax). `complete` false: the input ended before END_REQUEST.
struct FcgiReply {
  std::string out;
  std::size_t err_bytes = 0;
  bool complete = false;
  std::uint32_t app_status = 0;
};
std::optional<FcgiReply> parse_fcgi_reply(std::string_view bytes);

// A CGI response (headers, blank line, body): its Status (200 without a Status header) and body.
struct CgiResponse {
  int status = 200;
  std::string_view body;
};
std::optional<CgiResponse> split_cgi_response(std::string_view out);

// FPM's `?json` status: one flat object of strings and integers. nullopt when it is not that, or
// lacks the pool's name or its process counts.
std::optional<FpmPoolStatus> parse_fpm_status_json(std::string_view body);

// A configured pool whose status was not read (yet), and why: what read_fpm_pool starts from.
FpmPool unread_fpm_pool(const std::string& socket_path, const std::string& status_path,
                        std::string why);

// Reads the status of the pool listening on the Unix socket `socket_path` (a leading "unix:" is
// accepted) at `status_path`, within `timeout_ms` in all. Never throws; the result says why not.
FpmPool read_fpm_pool(const std::string& socket_path, const std::string& status_path,
                      int timeout_ms);

// The pools for the page: those read (in configuration order), then one not-configured entry per
// pool name in `process_pools` (from "php-fpm: pool NAME" processes) that no read pool has.
std::vector<FpmPool> fpm_pools_view(std::vector<FpmPool> read,
                                    const std::vector<std::string>& process_pools);

// Each pool's key for ?metrics' `pool` label and ?auto's [pool]: its name; a pool without a name
// yet (configured, not read) or whose name an earlier pool has (two masters' `www`) is keyed
// by its socket instead, and by "name#N" (N its position from 1) if that is taken too, so no two
// pools give the same series.
std::vector<std::string> fpm_pool_keys(const std::vector<FpmPool>& pools);

// How to give a pool a status the module can read, in words (the page's hint).
std::string fpm_status_hint(const FpmPool& p);

// ---------------------------------------------------------------- FPM's own failures

// A line of FPM's own error log (the master's zlog: "[07-Dec-2026 12:36:05] ERROR: fork() failed:
// Resource temporarily unavailable (11)"; at log_level = debug the time has microseconds and the
// level is followed by "pid N, function(), line N: "). Only FPM's exact format from the line's
// start counts: a child's stderr reaches that log (catch_workers_output) only behind FPM's own
// "[pool www] child 12 said into stderr: " prefix (decorate_workers_output, on by default).
struct FpmLogEvent {
  enum class Kind : std::uint8_t { ForkFailed, MaxChildren };
  Kind kind = Kind::ForkFailed;
  int err = 0;                     // ForkFailed: the errno FPM printed
  std::string pool;                // MaxChildren: the pool it names (a fork failure names none)
  std::uint64_t max_children = 0;  // MaxChildren: pm.max_children as FPM printed it
};
std::optional<FpmLogEvent> parse_fpm_log_line(std::string_view line);

// FPM's words for a failed fork with this errno (what its log line says after the time).
std::string fpm_fork_failure_words(int err);

// What is known about a pool when mod_proxy_fcgi answers a request for it with an error, to say
// why: only what the module itself saw. Lines from FPM's log counted since the request started,
// the pool's status as the sampler last read it, the module's own connect to the pool's socket.
struct FpmFailureInput {
  std::string pool;                      // the pool's status name, else its socket
  std::uint64_t fork_failures = 0;       // FPM's "fork() failed" lines during the request
  int fork_errno = 0;                    // the last one's errno
  std::uint64_t max_children_lines = 0;  // "server reached pm.max_children" lines during it
  std::uint64_t max_children = 0;        // the setting the last one named
  bool status_fresh = false;             // the pool's status, read while the request ran
  FpmPoolStatus status;
  int connect_errno = -1;    // the module's connect to the socket at the error: 0 accepted, else
                             // errno; -1 not tried
  std::string memory_limit;  // the binding limit in words, for a fork that failed with ENOMEM
};
struct FpmFailure {
  std::string cause;  // what FPM could not do, with the numbers
  std::string bound;  // the limit that bound, in words
};
// nullopt: nothing the module saw explains the error (it is then left as it is).
std::optional<FpmFailure> fpm_failure(const FpmFailureInput& in);

// The headroom a fork meets (rule 2.2): the smallest among the limits that charge private
// writable memory (beancounter:privvmpages, cgroup:memory, overcommit; not shmpages, which only
// shared memory charges). nullopt: none of them is finite.
struct Limit;
std::optional<std::uint64_t> private_headroom(const std::vector<Limit>& limits);

// Children free for a request right after a status read: FPM counts the child that serves the
// status request itself as active, and it is free again once the read ends (unless a queued
// request takes it): idle + 1 when a child was active, less what waits in the listen queue.
std::uint64_t fpm_free_children(const FpmPoolStatus& st);

// Children free for a request now (rule 2.1/2.2): the status alone cannot say it (its read is up
// to 2 s old, always finds its own child free, and FPM reports a listen queue only for TCP
// sockets), so the requests this server sent to the pool since the read and still in flight
// take theirs: `free_at_read` (fpm_free_children) + `inflight_at_read` - `inflight_now`, at
// most `total` (requests that ended since give theirs back), at least 0. `inflight_now` does not
// count the request being decided.
std::uint64_t fpm_free_now(std::uint64_t free_at_read, std::uint64_t total,
                           std::int64_t inflight_at_read, std::int64_t inflight_now);

// Does FPM fork for a request that finds no idle child? pm dynamic or ondemand, and its "max
// children reached" counter did not rise since the read before (it is at pm.max_children then:
// no fork, the request waits for a child). `previous_reached` nullopt: no read before.
bool fpm_forks(const FpmPoolStatus& now, std::optional<std::uint64_t> previous_reached);

}  // namespace shmguard
