"""The harness and the OpenVZ beancounter double against the real stack, without mod_shmguard."""

import json
import os
import re
import threading
import time

import pytest

import harness
from ubc_double import ubc

FATAL_RX = re.compile(r"^\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4} \((\d+)\): Fatal Error Unable to allocate shared "
                      r"memory segment of (\d+) bytes: mmap: Cannot allocate memory \(12\)$", re.M)


def php_pid(resp):
    assert resp.status == 200, resp
    return int(resp.body)


# ------------------------------------------------------------------------------------------ (a)
@pytest.mark.parametrize("mpm", ["event", "prefork"])
def test_php_and_static_served(server, mpm):
    s = server(mpm=mpm)
    status, headers, body, elapsed = s.get("/index.php")
    assert status == 200, body
    assert b"shmguard-it php ok" in body
    assert b"sapi=cgi-fcgi" in body
    assert b"opcache=on" in body and b"memory_consumption=64" in body
    assert headers.get("Content-Type", "").startswith("text/plain")
    assert elapsed < 5

    r = s.get("/static.txt")
    assert (r.status, r.body) == (200, b"static ok\n")
    assert r.headers["Content-Type"].startswith("text/plain")
    assert s.get("/").status == 200                      # DirectoryIndex index.php
    assert s.get("/nope.html").status == 404

    pid = php_pid(s.get("/sleep.php?ms=10"))
    assert s.php_workers() == [pid]
    assert s.fcgid_pm_pid() == harness._proc_table()[pid][0]
    # the worker is registered with the double: exactly one 64 MiB segment (16384 pages) held
    assert s.budget.workers() == {pid: 16384}
    assert s.budget.held() == 16384
    assert s.budget.parsed()["shmpages"][0] == 16384

    st = json.loads(s.get("/opcache.php").body)
    assert st["memory_consumption"] == "64M" or st["memory_consumption"] == "64"
    assert st["status"]["opcache_enabled"] is True

    assert s.get("/server-status?auto").status == 200
    rc, out = s.configtest()
    assert rc == 0 and "Syntax OK" in out


def test_the_budget_double_is_one_root_only_inode_rewritten_in_place(server):
    """As /proc/user_beancounters: the sampler (User, privileges dropped) holds the descriptor it
    opened as root; a file replaced by a rename would leave it reading a dead inode (and a double
    that User can read hides a sampler that lost its descriptor)."""
    s = server()
    path = s.budget.path
    st0 = os.stat(path)
    assert st0.st_mode & 0o777 == ubc.KERNEL_FILE_MODE
    pw = harness.pwd.getpwnam(harness.RUN_USER)
    def user_can_read():
        pid = os.fork()
        if pid == 0:
            try:
                os.setgroups([])
                os.setgid(pw.pw_gid)
                os.setuid(pw.pw_uid)
                os.open(path, os.O_RDONLY)
                os._exit(0)
            except PermissionError:
                os._exit(1)
            except BaseException:
                os._exit(2)
        return os.waitpid(pid, 0)[1] >> 8
    assert user_can_read() == 1, "the server's user can read the double's beancounter file"
    with open(path, "rb") as held:  # a reader holding it open, as the sampler does
        before = held.read()
        pid = php_pid(s.get("/sleep.php?ms=10"))   # the wrapper (User) registers a worker: a save
        s.budget.set_barrier(200000)                # the harness (root): a save
        held.seek(0)
        after = held.read().decode()
    assert os.stat(path).st_ino == st0.st_ino, "the file was replaced, not rewritten in place"
    assert after != before.decode()
    rows = ubc.parse(after)[str(s.budget.config()["ubc_id"])]
    assert rows["shmpages"][0] == 16384 and rows["shmpages"][2] == 200000, after
    assert s.budget.workers() == {pid: 16384}


# ------------------------------------------------------------------------------------------ (b)
def test_outage_reproduced_when_budget_exhausted(server):
    s = server()
    seg = s.budget.segment_pages
    assert seg == 64 * 256
    # the field report's numbers: barrier 262144 pages (1 GiB); others hold all but half a segment
    assert s.budget.barrier() == 262144
    s.budget.set_external(262144 - seg // 2)
    failcnt0 = s.budget.failcnt()
    mark = s.log_mark()

    status, headers, body, elapsed = s.get("/sleep.php?ms=0")
    assert status == 500
    assert b"Internal Server Error" in body
    assert elapsed < 5

    log = s.error_log(mark)
    s.wait_log(r"Unable to allocate shared memory segment of", since=mark)
    log = s.error_log(mark)
    assert "Unable to allocate shared memory segment of 67108864 bytes" in log
    assert "mmap: Cannot allocate memory (12)" in log
    m = FATAL_RX.search(log)
    assert m, log                         # php-cgi's unformatted stderr line, as in the field report
    assert "End of script output before headers: sleep.php" in log

    assert s.budget.failcnt() == failcnt0 + 1
    row = s.budget.parsed()["shmpages"]   # the file, as the module will read it
    assert row == (262144 - seg // 2, 262144 - seg // 2, 262144, 262144, failcnt0 + 1)
    assert s.budget.workers() == {}
    assert any(" fail shmpages held=253952 need=16384 barrier=262144" in e for e in s.budget.events())

    # a second request fails the same way (no worker could start)
    assert s.get("/index.php").status == 500
    assert s.budget.failcnt() == failcnt0 + 2

    # room again: the next request works and is charged
    s.budget.set_external(0)
    pid = php_pid(s.get("/sleep.php?ms=0"))
    assert s.budget.workers() == {pid: seg}
    assert s.budget.held() == seg


def test_failing_worker_exits_254(server):
    """The over-budget php-cgi dies with PHP's own exit status (exit(-2) after ACCEL_LOG_FATAL)."""
    with open(os.path.join(server(start=False).ubc_dir, "config.json")) as f:
        cfg = json.load(f)
    assert cfg["fail_as_kib"], "no RLIMIT_AS window found for a 64 MiB segment"
    import resource
    import subprocess

    def lim():
        resource.setrlimit(resource.RLIMIT_AS, (cfg["fail_as_kib"] * 1024,) * 2)

    p = subprocess.run(ubc.php_argv(cfg, 64) + ["-v"], preexec_fn=lim, capture_output=True, timeout=20)
    assert p.returncode == 254
    assert b"Unable to allocate shared memory segment of 67108864 bytes: mmap: Cannot allocate memory (12)" \
        in p.stdout + p.stderr


# ------------------------------------------------------------------------------------------ (c)
def test_budget_for_two_workers(server):
    s = server(spawn_score_uplimit=100)
    seg = s.budget.segment_pages
    s.budget.set_barrier(2 * seg)

    # two slow requests at once: two workers, both fit
    rs = s.get_many(["/sleep.php?ms=2500", "/sleep.php?ms=2500", "/sleep.php?ms=10"], delays=[0, 0, 0.6])
    a, b, c = rs
    assert a.status == 200 and b.status == 200, rs
    assert int(a.body) != int(b.body)
    # the third one, while both are busy, needs a third segment: the double makes it fail for real
    assert c.status == 500, rs
    assert c.elapsed < a.elapsed
    assert s.budget.failcnt() == 1
    assert s.budget.maxheld() == 2 * seg
    assert "Unable to allocate shared memory segment of 67108864 bytes" in s.error_log()

    live = s.php_workers()
    assert sorted(live) == sorted([int(a.body), int(b.body)])
    assert s.budget.workers() == {p: seg for p in live}
    assert s.budget.held() == 2 * seg
    assert s.budget.parsed()["shmpages"] == (2 * seg, 2 * seg, 2 * seg, 2 * seg, 1)
    assert s.budget.parsed()["privvmpages"][0] == ubc.DEFAULT_PRIVVM_BASE + 2 * seg

    # the two idle workers keep serving within the budget
    rs = s.get_many(["/sleep.php?ms=300"] * 2)
    assert [r.status for r in rs] == [200, 200]
    assert {int(r.body) for r in rs} <= set(live)
    assert s.budget.failcnt() == 1


def test_held_drops_when_workers_exit(server):
    s = server(idle_timeout=1, min_processes_per_class=0)
    pid = php_pid(s.get("/sleep.php?ms=0"))
    assert s.budget.held() == 16384
    deadline = time.monotonic() + 12
    while pid in s.php_workers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pid not in s.php_workers(), "FcgidIdleTimeout 1 did not end the worker"
    deadline = time.monotonic() + 2
    while s.budget.parsed()["shmpages"][0] and time.monotonic() < deadline:  # background refresher
        time.sleep(0.05)
    assert s.budget.parsed()["shmpages"][:2] == (0, 16384)
    assert any(e.split()[1:3] == [str(pid), "drop"] for e in s.budget.events())


def test_privvmpages_barrier_also_enforced(server):
    """The kernel charges a shared mapping to privvmpages too: whichever barrier is hit fails it."""
    s = server()
    seg = s.budget.segment_pages
    base = ubc.DEFAULT_PRIVVM_BASE
    s.budget.set_barrier(base + seg, resource="privvmpages")
    pid = php_pid(s.get("/sleep.php?ms=0"))          # exactly fits
    assert s.budget.held("privvmpages") == base + seg
    rs = s.get_many(["/sleep.php?ms=2000", "/sleep.php?ms=0"], delays=[0, 0.3])
    assert rs[0].status == 200 and int(rs[0].body) == pid
    assert rs[1].status == 500, rs
    assert s.budget.failcnt("privvmpages") == 1
    assert s.budget.failcnt("shmpages") == 0
    assert s.budget.parsed()["privvmpages"][4] == 1


# ------------------------------------------------------------------------------------------ (d)
def test_graceful_restart_and_clean_stop(server):
    s = server()
    parent = s.parent_pid()
    old = php_pid(s.get("/sleep.php?ms=0"))
    mark = s.log_mark()
    s.graceful()
    assert s.parent_pid() == parent
    # event/worker say "SIGUSR1 received", prefork "Graceful restart requested" (AH00171)
    assert re.search(r"SIGUSR1 received.  Doing graceful restart|AH00171: Graceful restart requested",
                     s.error_log(mark))
    # mod_fcgid's process manager is restarted with the generation and ends its php-cgi workers
    assert harness._wait_gone([old], 5) == []
    deadline = time.monotonic() + 3
    while s.budget.parsed()["shmpages"][0] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert s.budget.parsed()["shmpages"][0] == 0
    new = php_pid(s.get("/sleep.php?ms=0"))
    assert s.get("/static.txt").status == 200
    workers = s.php_workers()
    assert new in workers

    procs = s.processes()
    assert parent in procs and new in procs
    assert harness.marked_pids(s.root)          # the marker reaches the server's processes
    left = s.stop()
    assert left == []
    for p in procs + [old]:
        assert not harness._alive(p), p
    assert harness.marked_pids(s.root) == []
    assert s.processes() == []
    assert s.budget.held() == 0                 # every segment released
    assert s.parent_pid() is None


def test_configtest_reports_errors(server):
    s = server(start=False, extra_conf="NoSuchDirective on")
    rc, out = s.configtest()
    assert rc != 0
    assert "NoSuchDirective" in out
    with pytest.raises(RuntimeError, match="NoSuchDirective"):
        s.start()
    assert s.processes() == []


# ------------------------------------------------------------------------------------------ the file
def test_beancounter_file_is_in_kernel_format(server):
    s = server(start=False, shm_barrier=1000, bc_resources=True)
    text = s.budget.read_file()
    lines = text.splitlines()
    assert lines[0] == "Version: 2.5"
    assert lines[1] == ("       uid  resource                     held              maxheld"
                        "              barrier                limit              failcnt")
    assert lines[2].startswith("      101:  kmemsize ")
    assert all(len(line) == 10 + 2 + 12 + 5 * 21 for line in lines[1:])
    names = [line[12:24].strip() for line in lines[2:]]
    assert names[:6] == ["kmemsize", "lockedpages", "privvmpages", "shmpages", "dummy", "numproc"]
    assert "            shmpages                        0                    0                 1000" \
           "                 1000                    0" in lines
    # the VZ7 per-container file: no header, no uid, no dummy rows
    res = open(os.path.join(s.ubc_dir, "bc", "101", "resources")).read().splitlines()
    assert len(res) == len(lines) - 2 - names.count("dummy")
    assert res[0].startswith("            kmemsize ")

    s.budget.set_row("shmpages", failcnt=7)
    s.budget.set_barrier(2000, limit=2500)
    assert s.budget.parsed()["shmpages"] == (0, 0, 2000, 2500, 7)


def test_vz7_layout_and_parse():
    rows = [(n, list(v)) for n, v in ubc.DEFAULT_ROWS]
    text = ubc.render(rows, ubc_id="101", layout="vz7")
    assert text.splitlines()[2] == "       101: kmemsize                 16595303             21577728" \
                                   "             67108864             75497472                    0"
    assert text.splitlines()[3].startswith("            lockedpages ")
    assert ubc.parse(text)["101"]["shmpages"] == (0, 0, 262144, 262144, 0)
    long_id = ubc.render(rows, ubc_id="1a2b3c4d-0000-0000-0000-000000000001", layout="vz7")
    assert long_id.splitlines()[2].startswith("1a2b3c4d-0000-0000-0000-000000000001: kmemsize ")
    assert ubc.parse(long_id)["1a2b3c4d-0000-0000-0000-000000000001"]["numiptent"][2] == 128


# ------------------------------------------------------------------------------------------ php-fpm
def test_php_fpm_through_proxy_fcgi(server):
    s = server(fpm=True)
    r = s.get("/fpm/index.php")
    assert r.status == 200, r.text + s.error_log()
    assert "sapi=fpm-fcgi" in r.text
    assert int(re.search(r"pid=(\d+)", r.text).group(1)) in s.fpm_workers()
    assert s.get("/index.php").status == 200           # php-cgi beside it
    fpm = s.fpm_workers()
    assert s.stop() == []
    assert not any(harness._alive(p) for p in fpm)


# ------------------------------------------------------------------------------------------ starter
def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def _shared_anon_sizes(pid):
    sizes = []
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            fields = line.split()
            if fields[1].endswith("s") and line.rstrip().endswith("/dev/zero (deleted)"):
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                sizes.append(hi - lo)
    return sorted(sizes)


def test_starter_wrapper_execs_php_cgi_in_the_same_process(server):
    """wrapper="starter": the worker is the starter first (gated here, holding a 4 MiB shared
    segment), then, in the same process (pid and start time), the double and php-cgi."""
    s = server(wrapper="starter", starter_gate=True, starter_segment_mib=4)
    done = {}
    t = threading.Thread(target=lambda: done.update(r=s.get("/sleep.php?ms=10")), daemon=True)
    t.start()
    deadline = time.monotonic() + 20
    while True:
        starters = [p for p in harness.descendants(s.parent_pid()) if "starter_hold.py" in _cmdline(p)]
        if starters and _shared_anon_sizes(starters[0]) == [4 << 20]:
            break
        assert time.monotonic() < deadline, "no starter holding its 4 MiB segment"
        time.sleep(0.05)
    (pid,) = starters
    start = harness._starttime(pid)
    assert s.php_workers() == [] and s.budget.workers() == {}      # not php-cgi yet
    s.open_starter_gate()
    t.join(30)
    assert php_pid(done["r"]) == pid                              # php-cgi answered, same pid
    assert harness._starttime(pid) == start and s.php_workers() == [pid]
    assert s.budget.workers() == {pid: 16384}                     # accounted by the double
    assert (4 << 20) not in _shared_anon_sizes(pid)               # the starter's segment went


def test_starter_wrapper_sleeps_before_its_exec(server):
    s = server(wrapper="starter", starter_delay=0.8)
    r = s.get("/sleep.php?ms=10")
    pid = php_pid(r)
    assert r.elapsed >= 0.8                                       # the first request waited for it
    assert s.php_workers() == [pid] and s.budget.workers() == {pid: 16384}
    with open(os.path.join(s.root, "bin", "php-wrapper-starter")) as f:
        text = f.read()
    assert text.startswith("#!/bin/sh\n") and "/bin/sleep 0.8\n" in text and "\nexec " in text


# ------------------------------------------------------------------ a checkout the server cannot read
# Everything the server's user executes or reads comes from the server's own root (Server.stage): a
# clone under root's 0700 home, or under `mktemp -d`, is unreadable to www-data.
def test_degrade_wrapper_runs_a_staged_binary_not_the_checkout(server):
    s = server(start=False, shmguard=True, wrapper="shmguard")
    with open(os.path.join(s.root, "bin", "php-wrapper-shmguard")) as f:
        text = f.read()
    staged = os.path.join(s.root, "bin", "shmguard-php-wrapper")
    assert "exec %s " % staged in text, text
    assert os.path.isfile(staged) and os.access(staged, os.X_OK)
    assert s.checkout_paths() == []


def test_a_server_root_that_refers_into_the_checkout_is_refused(server):
    inside = os.path.join(harness.REPO, "tests", "integration", "starter_hold.py")
    s = server(start=False, extra_conf='Alias /x "%s"\n' % inside)
    s.write()
    with pytest.raises(RuntimeError) as e:
        s.start()
    assert inside in str(e.value) and "httpd.conf" in str(e.value)
    assert not s.running and s.parent_pid() is None
    # A wrapper script naming the checkout is refused too; LoadModule/Include of the module under
    # test (read by httpd's parent, as root) are not.
    s.opts["extra_conf"] = "Include %s/conf/shmguard.conf\n" % harness.REPO
    s.write()
    assert s.checkout_paths() == []
    with open(os.path.join(s.root, "bin", "php-wrapper-extra"), "w") as f:
        f.write("#!/bin/sh\nexec %s/build/shmguard-php-wrapper \"$@\"\n" % harness.REPO)
    found = s.checkout_paths()
    assert len(found) == 1 and "php-wrapper-extra:2:" in found[0], found
