"""A limit source that stops reading (issue 20 item 4): one failed read is not "no limit".

The kernel's /proc/user_beancounters is a seq file; a double or a VZ7 emulation rewritten in place can
be read empty or torn. Within the staleness bound the sampler keeps the last good reading (the guard
goes on deciding on it, SG0310); past the bound it drops it and the guard fails open on that source
(SG0311); readable again, SG0312. Real apache2 + mod_fcgid + php-cgi, a root-only beancounter file
with the field report's numbers (headroom 58.7 MiB against a 64M reserve: a class with no worker is
refused), emptied and restored in place (one inode, as the kernel's file).
"""

import os
import shutil

import harness
from harness import wait_for
from ubc_double import ubc

FIELD = os.path.join(harness.REPO, "tests/fixtures/beancounters/openvz6-container.txt")
FIELD_HEADROOM = (262144 - 247122) * 4096

# Samples every 2 s: the staleness bound is 6 s (three intervals), so the test sees the held
# reading for seconds after the first failed read, without depending on a tight schedule.
CONF = """ShmGuardBeancounters %s
ShmGuardInterval 2s
ShmGuardReserve 64M
ShmGuardCgroup off
<Location /shmguard-status>
    SetHandler shmguard-status
    ShmGuardStatusPage On
</Location>
"""


status = harness.status_json


def unavailable(st, source):
    return [u for u in st.get("unavailable", []) if u.get("source") == source]


def test_an_emptied_beancounter_file_keeps_its_limit_until_the_bound_then_fails_open(server):
    bc = os.path.join(harness.BASE, "ubc-emptied-%d.txt" % os.getpid())
    shutil.copyfile(FIELD, bc)
    os.chown(bc, 0, 0)
    os.chmod(bc, 0o400)
    with open(FIELD, "rb") as f:
        good = f.read()
    inode = os.stat(bc).st_ino
    try:
        s = server(shmguard=True, shmguard_conf=CONF % bc, log_level="info")
        assert wait_for(lambda: status(s).get("headroom_bytes") == FIELD_HEADROOM, 10), status(s)
        # No worker and 58.7 MiB < 64M: refused at once (nothing to wait for).
        r = s.get("/index.php")
        assert r.status == 503, (r.status, r.text[:300])
        assert s.php_workers() == []

        mark = s.log_mark()
        ubc.rewrite_in_place(bc, b"")
        # The first sample that read it empty: still bounded by the held reading, listed as
        # unavailable with why, and the guard still refuses the spawn it has no room for.
        st = wait_for(lambda: (lambda x: x if unavailable(x, "beancounter") else None)(status(s)), 10)
        assert st, status(s)
        assert st.get("headroom_bytes") == FIELD_HEADROOM, st
        assert st.get("binding") == "beancounter:shmpages", st
        reason = unavailable(st, "beancounter")[0]["reason"]
        assert "last good reading" in reason, reason
        r = s.get("/index.php")
        assert r.status == 503, ("an empty read was taken for 'no limit'", r.status, r.text[:300])
        assert s.php_workers() == []
        assert s.wait_log(r"SG0310 the beancounter limit could not be read .*last good reading", 5,
                          since=mark)

        # Past the bound (6 s): the reading is dropped, logged once, and the guard fails open.
        assert s.wait_log(r"SG0311 the beancounter limit still cannot be read", 20, since=mark)
        st = status(s)
        assert st.get("headroom_bytes") is None, st
        assert "too old" in unavailable(st, "beancounter")[0]["reason"], st
        r = s.get("/index.php")
        assert r.status == 200, (r.status, r.text[:300])
        assert s.error_log(mark).count("SG0310") == 1 and s.error_log(mark).count("SG0311") == 1

        # Readable again (in place): SG0312 and the limit is back.
        ubc.rewrite_in_place(bc, good)
        assert os.stat(bc).st_ino == inode
        assert s.wait_log(r"SG0312 the beancounter limit is readable again", 20, since=mark)
        assert wait_for(lambda: status(s).get("headroom_bytes") == FIELD_HEADROOM, 10), status(s)
        assert unavailable(status(s), "beancounter") == []
    finally:
        os.unlink(bc)
