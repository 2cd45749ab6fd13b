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
  bool configured = false;
  bool ok = false;    // status read and parsed
  std::string error;  // why not, in words
  FpmPoolStatus status;
  std::int64_t read_ms = 0;  // wall clock of the read (0: not yet)
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

// How to give a pool a status the module can read, in words (the page's hint).
std::string fpm_status_hint(const FpmPool& p);

}  // namespace shmguard
