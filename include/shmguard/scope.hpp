// mod_shmguard core: which processes a server's status page lists and its sampler reads. Not
// every process named php-fpm on the machine (any local user can start one, with tens of
// thousands of mappings): the server's own mod_fcgid workers and their children, and the PHP-FPM
// pools its configuration proxies to — the processes listening on those pools' Unix sockets and
// their children.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "shmguard/workers.hpp"

namespace shmguard {

// The Unix sockets of mod_proxy_fcgi targets in one directive's arguments, as written in the
// server configuration: "proxy:unix:/run/php/fpm.sock|fcgi://localhost" (SetHandler, AddHandler),
// "unix:/run/php/fpm.sock|fcgi://localhost/var/www/" (ProxyPass, ProxyPassMatch, <Proxy>). Only
// absolute paths followed by "|fcgi://"; at most 107 bytes each (sun_path); in order, distinct.
std::vector<std::string> fpm_sockets_in(std::string_view args);

// The process listening on the Unix stream socket `path` (SO_PEERCRED of a connection to it: the
// process that called listen(), PHP-FPM's master), or 0 when it cannot be told (no such socket,
// not accepting, backlog full: never blocks). The connection is closed at once, nothing sent.
int unix_listener_pid(const std::string& path);

// The processes of the PHP-FPM pools whose listeners are `masters`, as indices into `stats`: each
// master whose name (comm) starts with "php" (a socket handed over by systemd names pid 1, not a
// pool), and its descendants named "php*" (at most 8 levels), in the order found, distinct, at
// most kMaxFpmScope.
constexpr std::size_t kMaxFpmScope = 4096;
std::vector<std::size_t> fpm_scope(const std::vector<ProcStat>& stats,
                                   const std::vector<int>& masters);

}  // namespace shmguard
