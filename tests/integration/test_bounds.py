"""Bounds on what a process can make the sampler do (issue 20 items 3 and 5), on the real stack.

A local user (here `nobody`) can start processes named php-fpm with tens of thousands of shared
mappings. Two such processes sharing 30 000 1-MiB memfds once gave 30 001 findings, a 4.7 MB
encoding of the sampler's part cut at the shared segment's 2 MiB, and a status page with no
limits, counters or workers. fake_fpm.py makes them (memfd_create + mmap, renamed by prctl and
its argv[0]).
"""

import json
import os
import signal
import subprocess
import time

import harness
from harness import wait_for

FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_fpm.py")
CONF = ("ShmGuardBeancounters ${SHMGUARD_UBC_FILE}\nShmGuardInterval 200ms\n"
        "<Location /shmguard-status>\nSetHandler shmguard-status\nShmGuardStatusPage On\n</Location>\n")


def get_json(s):
    r = s.get("/shmguard-status?json")
    assert r.status == 200, r.text[:300]
    return json.loads(r.text)


class Fake:
    """fake_fpm.py started as `nobody` in its own process group; stop() ends the group."""

    def __init__(self, memfds=0, children=2, socket=None, name="php-fpm: pool x"):
        args = [name, FAKE, "--memfds", str(memfds), "--children", str(children), "--user", "nobody"]
        if socket:
            args += ["--socket", socket]
        self.proc = subprocess.Popen(args, executable="/usr/bin/python3", stdout=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        line = self.proc.stdout.readline().decode()
        assert line.strip(), "fake_fpm.py did not start (rc %r)" % self.proc.poll()
        self.pids = [int(p) for p in line.split()]

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        self.proc.stdout.close()


def test_processes_sharing_thousands_of_memfds_page_still_shows_limits_counters_and_workers(server):
    # The case at about half its scale (16 384 memfds, the master and one child: every
    # segment shared by two processes), in a pool this server proxies to (ShmGuardFpmPool names
    # the socket the fake master listens on). Before the bounds: 16 384 findings (~2.6 MB), no
    # rows fitted, the encoding was cut at 2 MiB and did not decode: no limits, no counters, no
    # workers on the page.
    s = server(shmguard=True, proxy_fcgi=True,
               shmguard_conf=CONF + "ShmGuardFpmPool ${SHMGUARD_ROOT}/run/fake.sock /fpm-status\n",
               start=False)
    fake = Fake(memfds=16384, children=1, socket=os.path.join(s.root, "run", "fake.sock"))
    try:
        s.start()
        assert s.get("/index.php").status == 200
        cgi = s.wait_workers(1)

        def ready(doc):
            pids = {w["pid"] for w in doc.get("workers", [])}
            return set(cgi) <= pids and set(fake.pids) <= pids

        last = {}

        def shown():
            last.clear()
            last.update(get_json(s))
            return ready(last)
        assert wait_for(shown, 30.0, step=0.3), json.dumps(
            {k: last.get(k) for k in ("limits", "workers", "findings", "worker_totals")})[:3000]
        j = last
        # Limits and counters still there.
        assert any(l["name"] == "beancounter:shmpages" for l in j["limits"]), j["limits"]
        assert j["headroom_bytes"] is not None
        assert any(c["name"] == "beancounter:shmpages:failcnt" for c in j["counters"]), j["counters"]
        # The fake processes: at most 64 segments each, the bound said in the row.
        for w in j["workers"]:
            if w["pid"] in fake.pids:
                assert len(w["segments"]) <= 64, len(w["segments"])
                assert "8192 mappings" in w.get("error", ""), w.get("error")
        # Findings bounded, the rest of the sharing summed in one.
        assert len(j["findings"]) <= 32, len(j["findings"])
        assert sum(f["id"] == "fpm-shared-opcache" for f in j["findings"]) <= 4
        # Every format still answers with the limits.
        auto = s.get("/shmguard-status?auto").text
        assert "ShmGuardHeadroomBytes:" in auto, auto[:500]
        html = s.get("/shmguard-status").text
        assert "beancounter:shmpages" in html
    finally:
        fake.stop()


def test_foreign_php_fpm_process_is_not_listed(server):
    # A php-fpm-named process that belongs to no pool or worker of this server (another user's,
    # any local user can start one): not listed as this server's worker. The server's own FPM
    # pool (ShmGuardFpmPool) still is.
    s = server(shmguard=True, fpm=True, fpm_children=2,
               shmguard_conf=CONF + "ShmGuardFpmPool ${SHMGUARD_ROOT}/run/php-fpm.sock /fpm-status\n")
    fake = Fake(memfds=2, children=1)
    try:
        assert s.get("/fpm/index.php").status == 200
        own = set(s._fpm_pids())
        last = {}

        def shown():
            last.clear()
            last.update(get_json(s))
            return own <= {w["pid"] for w in last["workers"]}
        assert wait_for(shown, 20.0, step=0.3), [(w["pid"], w["kind"]) for w in last.get("workers", [])]
        # Another view after a full discovery: still not listed.
        time.sleep(0.5)
        pids = {w["pid"] for w in get_json(s)["workers"]}
        assert not pids & set(fake.pids), (fake.pids, sorted(pids))
        assert own <= pids
    finally:
        fake.stop()


def test_stopped_sampler_is_killed_and_restarted(server):
    # Code running as User can SIGSTOP the sampler (same uid). Before: samples never came again
    # and the guard failed open until the server was restarted. Now the parent's watchdog (its
    # monitor hook, about every 10 s) kills it once no sample came for 10 s, and starts another.
    s = server(shmguard=True, shmguard_conf=CONF)
    first = {}

    def fresh():
        first.clear()
        first.update(get_json(s)["sampler"])
        return first["fresh"] and first["pid"] > 0
    assert wait_for(fresh, 10.0), first
    pid = first["pid"]
    mark = s.log_mark()
    os.kill(pid, signal.SIGSTOP)
    try:
        assert s.wait_log(r"SG0115 the sampler \(pid %d\) published no sample for \d+ ms" % pid,
                          timeout=60.0, since=mark)
        now = {}

        def restarted():
            now.clear()
            now.update(get_json(s)["sampler"])
            return now["fresh"] and now["pid"] not in (0, pid)
        assert wait_for(restarted, 30.0, step=0.2), now
        assert now["starts"] == first["starts"] + 1, (first, now)
        assert s.wait_log(r"SG0111 sampler \(pid %d\) ended" % pid, since=mark)
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def test_full_class_table_is_logged_once_and_shown(server):
    # 256 class slots. Before: the 257th class and every one after failed open silently. Here
    # each directory is its own mod_fcgid class (its FcgidWrapper's command line); with no room
    # and nothing to wait for, the first 256 are refused at once (no php-cgi started), which
    # takes their slots; the next two find the table full.
    n = 258
    dirs = "".join('<Directory "${SHMGUARD_ROOT}/htdocs/c%d">\n'
                   '    FcgidWrapper "${SHMGUARD_ROOT}/bin/php-wrapper-ubc -dshmguard_class=%d" .php\n'
                   '</Directory>\n' % (i, i) for i in range(n))
    s = server(shmguard=True, shmguard_conf=CONF + "ShmGuardWait 0\nShmGuardReclaim Off\n",
               extra_conf=dirs, start=False)
    for i in range(n):
        d = os.path.join(s.htdocs, "c%d" % i)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "index.php"), "w") as f:
            f.write("<?php echo 'ok';\n")
    s.start()
    s.budget.set_external(262144 - 1)  # 4 KiB of headroom: below any worker's reserve
    assert wait_for(lambda: get_json(s).get("headroom_bytes") == 4096, 10.0)
    mark = s.log_mark()
    for i in range(256):
        r = s.get("/c%d/index.php" % i)
        assert r.status == 503, (i, r.status, r.text[:200])
    assert "SG0206" not in s.error_log(mark)
    for i in range(256, n):
        s.get("/c%d/index.php" % i)  # not guarded: whatever mod_fcgid makes of it
    assert s.wait_log(r"SG0206 the class table is full \(256 mod_fcgid classes\): /c256/index\.php",
                      since=mark)
    assert s.error_log(mark).count("SG0206") == 1
    j = get_json(s)
    assert j["sampler"]["class_table_full_requests"] == n - 256, j["sampler"]
    assert "class table is full: 2 requests" in j["state_detail"], j["state_detail"]
    assert "ShmGuardClassTableFullRequests: 2" in s.get("/shmguard-status?auto").text
    assert "shmguard_class_table_full_requests_total 2" in s.get("/shmguard-status?metrics").text
