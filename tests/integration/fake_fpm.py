"""A process that looks like a PHP-FPM pool, for the bounds tests (issue 20 items 3 and 5): what
any local user can start.

    python3 fake_fpm.py [--socket PATH] [--memfds N] [--children N] [--user NAME]

Exec it with argv[0] = "php-fpm: pool x" (its command line); it renames itself (comm "php-fpm")
as php-fpm's processes are named, optionally listens on a Unix socket (bound while still root,
mode 0666, so a server can name it in ShmGuardFpmPool: the socket's SO_PEERCRED is this process),
switches to `--user`, maps N memfds of 1 MiB each shared (never touched: no memory used), then
forks `--children` children that keep the mappings: every process maps the same N segments.
Prints the pids (this one first) on one line when all are up, then waits; with a socket it
accepts and closes connections. Stop it by killing its process group.
"""

import argparse
import ctypes
import mmap
import os
import pwd
import signal
import socket
import sys

PR_SET_NAME = 15


def rename(comm):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_NAME, ctypes.c_char_p(comm.encode()), 0, 0, 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket")
    ap.add_argument("--memfds", type=int, default=0)
    ap.add_argument("--children", type=int, default=2)
    ap.add_argument("--user", default="nobody")
    a = ap.parse_args()
    rename("php-fpm")
    listener = None
    if a.socket:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(a.socket)
        os.chmod(a.socket, 0o666)
        listener.listen(64)
    if os.geteuid() == 0:
        pw = pwd.getpwnam(a.user)
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    maps = []
    for _ in range(a.memfds):
        fd = os.memfd_create("fake-opcache")
        os.ftruncate(fd, 1 << 20)
        maps.append(mmap.mmap(fd, 1 << 20, mmap.MAP_SHARED, mmap.PROT_READ))
        os.close(fd)
    pids = [os.getpid()]
    for _ in range(a.children):
        pid = os.fork()
        if pid == 0:  # keeps the mappings (no exec) and the name
            while True:
                signal.pause()
        pids.append(pid)
    print(" ".join(map(str, pids)), flush=True)
    while True:
        if listener is None:
            signal.pause()
            continue
        c, _ = listener.accept()
        c.close()


if __name__ == "__main__":
    sys.exit(main())
