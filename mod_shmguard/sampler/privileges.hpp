// mod_shmguard sampler: what the sampler does with its privileges before it samples. It opens the
// root-only files it reads (while it is still root), closes every descriptor it inherited from
// httpd but those, and becomes the server's User with no capability (or CAP_SYS_PTRACE alone),
// then checks that this is what it has. No httpd header: the glue passes the uid, gid and the
// reason to keep CAP_SYS_PTRACE; unit-tested (tests/unit/test_privileges.cpp).
#pragma once

#include <string>
#include <sys/types.h>
#include <vector>

#include "shmguard/model.hpp"

namespace shmguard::sampler {

// The sampler's exit status when it could not drop its privileges (EX_NOPERM): the parent does
// not restart it (the same failure would repeat every second). Above every signal number: the
// MPM hands the other-child callback the exit code, or the signal that ended the process.
constexpr int kExitPrivileges = 77;

// What the sampler opens while it is still root, and reads through afterwards (-1: not opened).
struct Kept {
  int beancounters = -1, bc_resources = -1, error_log = -1, error_log_watch = -1;
};

// Opens a file read-only, close-on-exec (-1 on failure): for what must be opened while still root.
int open_ro(const std::string& path);

// /proc/user_beancounters (0400 root; the OpenVZ kernel's open also checks CAP_DAC_OVERRIDE and
// CAP_DAC_READ_SEARCH, its reads check nothing: kernel/bc/proc.c ub_open/res_open), VZ7's
// /proc/bc/<id>/resources (its lookup checks both capabilities), the error log (root:adm 0640),
// and an inotify watch on it (inotify_add_watch needs read permission). All O_CLOEXEC.
Kept open_kept(const ProbeConfig& probe, const std::string& error_log);

// Closes every descriptor but stdin/stdout (pointed at /dev/null), stderr and `keep` (httpd's
// listening sockets, access logs, pipes, mutexes), and syslog's socket.
void close_inherited(const std::vector<int>& keep);

// Switches to uid/gid (when running as root; otherwise stays who it is) and keeps no capability,
// or CAP_SYS_PTRACE alone when `keep_ptrace` (and the process has it); as root it also empties
// the bounding set of all else, so nothing dropped comes back through an exec. Then checks that
// this is what the process now has. Returns "" on success and fills `held` ("uid 33, gid 33, no
// capabilities"); else what failed (the process must then exit). Refuses uid 0 as root.
std::string drop_privileges(uid_t uid, gid_t gid, bool keep_ptrace, std::string& held);

}  // namespace shmguard::sampler
