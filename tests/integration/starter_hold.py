#!/usr/bin/python3
"""A starter stage that holds shared memory before its exec (harness.py's "starter" wrapper with
starter_segment_mib): maps MIB MiB of shared anonymous memory (MAP_SHARED|MAP_ANONYMOUS, listed in
/proc/PID/maps as "/dev/zero (deleted)", as OPcache's segment is), touches its first page, waits
DELAY seconds and, unless GATE is "-", until the file GATE exists (at most 60 s), then execs the
command after "--". The exec keeps the pid and the start time; the segment goes with it.

usage: starter_hold.py MIB DELAY GATE -- COMMAND [ARG...]
"""

import mmap
import os
import sys
import time


def main(argv):
    if len(argv) < 5 or argv[3] != "--":
        sys.stderr.write(__doc__)
        return 2
    mib, delay, gate, command = int(argv[0]), float(argv[1]), argv[2], argv[4:]
    segment = mmap.mmap(-1, mib << 20, flags=mmap.MAP_SHARED)
    segment[0] = 1
    time.sleep(delay)
    deadline = time.monotonic() + 60
    while gate != "-" and not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.execv(command[0], command)
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
