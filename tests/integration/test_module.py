"""mod_shmguard on a real Apache with real mod_fcgid and php-cgi (and PHP-FPM where named).

The shared-memory limit is the OpenVZ test double (ubc_double): a beancounter file in the exact
kernel format whose shmpages `held` follows the live php-cgi workers' 64 MiB OPcache segments, and a
wrapper that makes php-cgi fail for real, with PHP's own error, once the budget is exceeded.
"""

import json
import os
import re
import signal
import subprocess
import threading
import time

import pytest

import harness
from harness import wait_for

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEG_PAGES = 64 * 256  # one 64 MiB OPcache segment in 4 KiB pages

GUARD = """
ShmGuardBeancounters ${SHMGUARD_UBC_FILE}
ShmGuardInterval 200ms
ShmGuardReserve 64M
<Location /shmguard-status>
    SetHandler shmguard-status
    ShmGuardStatusPage On
</Location>
"""


status = harness.status_json


def vhost(s):
    return status(s)["vhosts"][0]




def wait_sample(s, headroom_below=None, headroom_at_least=None, timeout=5.0):
    """Waits until the module publishes a headroom in the given range."""
    def ok():
        h = status(s).get("headroom_bytes")  # absent until the sampler's first publication
        if h is None:
            return False
        if headroom_below is not None and h >= headroom_below:
            return False
        if headroom_at_least is not None and h < headroom_at_least:
            return False
        return True
    assert wait_for(ok, timeout), "headroom never reached the expected range: %r" % status(s).get("headroom_bytes")


def exhaust(s, free_pages=1000):
    """Leaves `free_pages` of shmpages headroom (far below one 64 MiB segment)."""
    s.budget.refresh()
    s.budget.set_barrier(s.budget.held() + free_pages)
    wait_sample(s, headroom_below=64 << 20)


def sampler_pids(s):
    return [p for p in harness.descendants(s.parent_pid()) if _comm(p) == "shmguard-smplr"]


def _comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------- 1
def test_loads_configtest_and_shipped_conf(server, tmp_path):
    s = server(start=False, shmguard=True, shmguard_conf_file=os.path.join(REPO, "conf/shmguard.conf"))
    rc, out = s.configtest()
    assert rc == 0, out
    assert "Syntax OK" in out
    r = subprocess.run([harness.APACHE, "-f", s.conf, "-M"], env=s.env(), capture_output=True, text=True)
    assert "shmguard_module (shared)" in r.stdout, r.stdout + r.stderr
    # The shipped .load file names the module; with the path pointed at the build it loads.
    load = open(os.path.join(REPO, "conf/shmguard.load")).read()
    assert re.search(r"^LoadModule shmguard_module /usr/lib/apache2/modules/mod_shmguard.so$", load, re.M)
    s.start()
    # <IfModule mod_shmguard.c> in the shipped conf matched: its <Location> serves the status page.
    r = s.get("/shmguard-status?json")
    assert r.status == 200 and r.headers["Content-Type"].startswith("application/json")
    assert status(s)["vhosts"][0]["guard"] is True


# ---------------------------------------------------------------------------------------- 2
def test_ample_headroom_hundreds_of_concurrent_requests_all_served(server):
    s = server(shmguard=True, shmguard_conf=GUARD, shm_barrier=8 << 20, max_processes_per_class=8,
               spawn_score_uplimit=1000)
    wait_sample(s, headroom_at_least=1 << 30)
    rs = s.get_many(["/index.php"] * 300, timeout=120)
    codes = [r.status for r in rs]
    assert codes.count(200) == 300, {c: codes.count(c) for c in set(codes)}
    v = vhost(s)
    assert v["refused"] == 0 and v["would_refuse"] == 0
    assert v["guarded"] >= 300 and v["passed"] >= 300


# ---------------------------------------------------------------------------------------- 3
def test_exhausted_budget_cold_start_refuses_fast_without_spawning(server):
    s = server(shmguard=True, shmguard_conf=GUARD + "ShmGuardWarnBelow 16M\n")
    exhaust(s)
    failcnt_before = s.budget.failcnt("shmpages")
    for _ in range(5):
        r = s.get("/index.php")
        assert r.status == 503, r.text
        assert r.headers["Retry-After"] == "30"
        assert "shared memory" in r.text and "try again" in r.text
        assert "MiB" not in r.text  # numbers only with ShmGuardDetail On
        assert r.elapsed < 0.5
    r = s.get("/index.php", headers={"Accept": "application/json"})
    assert r.status == 503 and r.headers["Content-Type"].startswith("application/json")
    body = json.loads(r.text)
    assert body["status"] == 503 and body["retry_after"] == 30
    assert s.php_workers() == []
    assert s.budget.failcnt("shmpages") == failcnt_before  # nothing even tried to allocate
    assert s.get("/static.txt").status == 200
    assert vhost(s)["refused"] == 6
    log = s.error_log()
    assert re.search(r"SG0201 refused /index.php on \S+: shared-memory headroom 3\.9 MiB < reserve "
                     r"64\.0 MiB \(beancounter:shmpages \d+/\d+ pages\); 0 workers", log), log
    # One line per burst, not one per refusal.
    assert len(re.findall("SG0201", log)) == 1
    # The sampler warned once when headroom fell below ShmGuardWarnBelow.
    assert len(re.findall(r"SG0301 shared-memory headroom 3\.9 MiB fell below ShmGuardWarnBelow \(16\.0 MiB\)", log)) == 1


def test_exhausted_budget_warm_workers_keep_serving_and_do_not_grow(server):
    # ShmGuardWait 0: refuse at once when no worker is free (the behaviour before waiting).
    s = server(shmguard=True, shmguard_conf=GUARD + "ShmGuardWait 0\n", spawn_score_uplimit=100)
    # Two warm workers: two overlapping slow requests (mod_fcgid spawns the second after 1 s).
    rs = s.get_many(["/sleep.php?ms=2500"] * 2, delays=[0, 0.1])
    assert [r.status for r in rs] == [200, 200]
    assert len(s.wait_workers(2)) == 2
    exhaust(s)
    rs = s.get_many(["/sleep.php?ms=1500"] * 5, delays=[0, 0, 0, 0, 0])
    codes = sorted(r.status for r in rs)
    assert codes == [200, 200, 503, 503, 503], codes
    for r in rs:
        if r.status == 503:
            assert r.headers["Retry-After"] == "30"
            assert r.elapsed < 0.5
    assert len(s.php_workers()) == 2
    assert s.get("/static.txt").status == 200
    # Sequential requests are served by the idle workers.
    for _ in range(3):
        assert s.get("/index.php").status == 200
    # Freed budget: served again without a restart, and new workers may start.
    s.budget.set_barrier(262144)
    wait_sample(s, headroom_at_least=64 << 20)
    rs = s.get_many(["/sleep.php?ms=1500"] * 3, delays=[0, 0, 0])
    assert [r.status for r in rs] == [200, 200, 200]


# ---------------------------------------------------------------------------------------- 4
CRASH_APP = "#!/bin/sh\n# a FastCGI app that dies at once: a 500 with no shared-memory evidence\nexit 3\n"


def test_translation_backend_death_from_shm_becomes_503_unrelated_500_stays(server):
    # The reserve is small, so the guard lets the request through; the worker then really fails to
    # map its 64 MiB OPcache (PHP's own error) and mod_fcgid answers 500.
    conf = GUARD.replace("ShmGuardReserve 64M", "ShmGuardReserve 1M")
    s = server(start=False, shmguard=True, shmguard_conf=conf, spawn_score_uplimit=100,
               extra_conf=harness.CRASH_APP_CONF)
    harness.install_crash_app(s, CRASH_APP)
    s.start()
    exhaust(s)
    r = s.get("/index.php")
    assert r.status == 503, (r.status, r.text[:300])
    assert r.headers["Retry-After"] == "30"
    assert "shared memory" in r.text
    assert s.wait_log(r"SG0202")
    log = s.error_log()
    assert re.search(r"SG0202 backend for /index.php on \S+ died of a shared-memory allocation "
                     r"failure: PHP: \"Unable to allocate shared memory segment of 67108864 bytes\"",
                     log), log
    assert "Unable to allocate shared memory segment of 67108864 bytes: mmap: Cannot allocate memory (12)" in log
    assert vhost(s)["translated"] == 1
    assert s.wait_log(r"SG0303 beancounter:shmpages:failcnt rose by 1 \(now 1")
    # Later, an unrelated 500 (an app that dies without any shared-memory evidence) stays a 500.
    time.sleep(1.0)
    mark = s.log_mark()
    r = s.get("/crash/die.fcgi")
    assert r.status == 500, (r.status, r.text[:300])
    assert "Retry-After" not in r.headers
    assert "SG0202" not in s.error_log(since=mark)
    assert vhost(s)["translated"] == 1


def test_translation_without_guard_page_numbers_with_detail(server):
    conf = GUARD.replace("ShmGuardReserve 64M", "ShmGuardReserve 1M") + "ShmGuardDetail On\n"
    s = server(shmguard=True, shmguard_conf=conf, spawn_score_uplimit=100)
    exhaust(s)
    r = s.get("/index.php")
    assert r.status == 503
    assert "MiB" in r.text and "beancounter:shmpages" in r.text


# ---------------------------------------------------------------------------------------- 5
def test_action_log_never_refuses_but_logs(server):
    conf = GUARD + "ShmGuardAction log\n"
    s = server(shmguard=True, shmguard_conf=conf, spawn_score_uplimit=100)
    exhaust(s)
    r = s.get("/index.php")
    # The request reaches mod_fcgid; the worker dies of the exhausted budget: left as httpd makes it.
    assert r.status == 500
    v = vhost(s)
    assert v["refused"] == 0 and v["would_refuse"] == 1
    assert s.wait_log(r"SG0201 would refuse \(ShmGuardAction log\) /index.php")
    assert s.wait_log(r"SG0203 500 for /index.php .* ShmGuardAction log: left as 500")


# ---------------------------------------------------------------------------------------- 6
# PHP-FPM (SetHandler proxy:unix:...|fcgi:// and ProxyPass to fcgi://): tests/integration/test_fpm.py
# (never refused for shared memory; issue 21 replaced "guarded by the reserve alone").


# ---------------------------------------------------------------------------------------- 7
def _shm_state(s):
    """What this server holds: SysV segments its processes created, named POSIX segments the parent
    maps (mod_fcgid's process table), and anonymous shared segments the parent maps (ours)."""
    pids = set([s.parent_pid()] + harness.descendants(s.parent_pid()))
    sysv = []
    with open("/proc/sysvipc/shm") as f:
        next(f)
        for line in f:
            cols = line.split()
            if int(cols[4]) in pids:
                sysv.append(cols[1])
    with open("/proc/%d/maps" % s.parent_pid()) as f:
        maps = f.read().splitlines()
    named = sorted(set(l.split()[-1] for l in maps if "/dev/shm/" in l))
    anon = sum(1 for l in maps if "/dev/zero (deleted)" in l and " rw-s " in l)
    return sysv, named, anon


def test_twenty_graceful_restarts_under_load_leak_nothing(server):
    s = server(shmguard=True, shmguard_conf=GUARD)
    wait_sample(s, headroom_at_least=64 << 20)
    assert s.get("/index.php").status == 200
    sysv_before, named_before, anon_before = _shm_state(s)
    stop = threading.Event()
    codes = []

    def load():
        while not stop.is_set():
            try:
                codes.append(s.get("/static.txt", timeout=10).status)
            except Exception as e:  # a connection reset during a restart is not a failure here
                codes.append(repr(e))
            time.sleep(0.02)

    t = threading.Thread(target=load)
    t.start()
    try:
        for _ in range(20):
            s.graceful()
    finally:
        stop.set()
        t.join()
    assert codes.count(200) > 20
    wait_sample(s, headroom_at_least=64 << 20)
    assert wait_for(lambda: len(sampler_pids(s)) == 1, 5), sampler_pids(s)
    sysv_after, named_after, anon_after = _shm_state(s)
    assert sysv_after == sysv_before == []
    assert len(named_after) == len(named_before) == 1  # mod_fcgid's table, recreated in place
    # Our segment is anonymous: one per generation, the old ones unmapped (no growth).
    assert anon_after == anon_before
    # No file of ours was left anywhere in /dev/shm by 20 generations.
    assert not [n for n in os.listdir("/dev/shm") if "shmguard" in n.lower()]
    # Still guarding.
    exhaust(s)
    assert s.get("/index.php").status in (200, 503)  # an idle worker may still serve
    s.budget.refresh()
    rs = s.get_many(["/sleep.php?ms=1200"] * 4, delays=[0, 0, 0, 0])
    assert 503 in [r.status for r in rs]


# ---------------------------------------------------------------------------------------- 8
def test_sampler_killed_is_replaced_and_guard_fails_open_meanwhile(server):
    s = server(shmguard=True, shmguard_conf=GUARD, spawn_score_uplimit=100, log_level="warn")
    exhaust(s)
    assert s.get("/index.php").status == 503
    (pid,) = sampler_pids(s)
    assert status(s)["sampler"]["pid"] == pid
    # A stopped sampler publishes nothing: after a few intervals the guard must fail open.
    os.kill(pid, signal.SIGSTOP)
    try:
        assert wait_for(lambda: status(s)["sampler"]["failing_open"], 5)
        r = s.get("/index.php")
        assert r.status != 503 or "Retry-After" not in r.headers or vhost(s)["failed_open"] >= 1
        assert vhost(s)["failed_open"] >= 1
        assert s.wait_log("SG0204")
    finally:
        os.kill(pid, signal.SIGCONT)
    # SIGKILL: the parent starts a new sampler, which publishes again.
    os.kill(pid, signal.SIGKILL)
    new = wait_for(lambda: [p for p in sampler_pids(s) if p != pid], 5)
    assert new, "no new sampler"
    assert s.wait_log("SG0111")
    assert wait_for(lambda: not status(s)["sampler"]["failing_open"], 5)
    assert status(s)["sampler"]["pid"] == new[0]
    s.budget.refresh()
    assert wait_for(lambda: s.get("/index.php").status == 503, 5)


# ---------------------------------------------------------------------------------------- 9
BAD_DIRECTIVES = [
    ("ShmGuard maybe", "ShmGuard"),
    ("ShmGuardReserve 64X", "'64X'"),
    ("ShmGuardReserve 0", "'0'"),
    ("ShmGuardReserve 99999999999999999999999", "'99999999999999999999999'"),
    ("ShmGuardReserve 17179869184G", "'17179869184G'"),
    ("ShmGuardAction deny", "'deny'"),
    ("ShmGuardRetryAfter -1", "'-1'"),
    ("ShmGuardRetryAfter soon", "'soon'"),
    ("ShmGuardRetryAfter 99999999999999999999", "'99999999999999999999'"),
    ("ShmGuardDetail yes", "ShmGuardDetail"),
    ("ShmGuardErrorDocument /nonexistent/page.html", "/nonexistent/page.html"),
    ("ShmGuardWarnBelow lots", "'lots'"),
    ("ShmGuardWarnBelow 150%", "'150%'"),
    ("ShmGuardInterval 0", "'0'"),
    ("ShmGuardInterval 1h", "'1h'"),
    ("ShmGuardInterval -5ms", "'-5ms'"),
    ("ShmGuardProcfs relative/dir", "'relative/dir'"),
    ("ShmGuardProcfs /nonexistent-dir", "'/nonexistent-dir'"),
    ("ShmGuardSysfs /nonexistent-dir", "'/nonexistent-dir'"),
    ("ShmGuardBeancounters relative.txt", "'relative.txt'"),
    ("ShmGuardContainer a:b", "'a:b'"),
    ("ShmGuardCgroup sometimes", "'sometimes'"),
    ("<VirtualHost 127.0.0.1:1>\n  ShmGuardInterval 1s\n</VirtualHost>", "VirtualHost"),
    ("<VirtualHost 127.0.0.1:1>\n  ShmGuardBeancounters off\n</VirtualHost>", "VirtualHost"),
]


@pytest.mark.parametrize("line,named", BAD_DIRECTIVES, ids=[b[0].split("\n")[0] for b in BAD_DIRECTIVES])
def test_bad_directive_values_fail_configtest(server, line, named):
    s = server(start=False, shmguard=True, shmguard_conf=line)
    rc, out = s.configtest()
    assert rc != 0, out
    directive = re.search(r"(ShmGuard\w*)", line).group(1)
    assert directive in out, out
    assert named in out, out


def test_good_directives_pass_configtest_and_vhosts_inherit(server, tmp_path):
    page = tmp_path / "busy.html"
    page.write_text("<html><body>Busy, come back soon</body></html>\n")
    os.chmod(str(tmp_path), 0o755)
    conf = (GUARD + "ShmGuardRetryAfter 7\nShmGuardWarnBelow 256M\nShmGuardContainer 101\n"
            "ShmGuardCgroup off\nShmGuardHandlers fcgid-script proxy-fcgi\n"
            "ShmGuardErrorDocument %s\n" % page)
    s = server(shmguard=True, shmguard_conf=conf)
    rc, out = s.configtest()
    assert rc == 0, out
    exhaust(s)
    r = s.get("/index.php")
    assert r.status == 503 and r.headers["Retry-After"] == "7"
    assert "Busy, come back soon" in r.text


# ---------------------------------------------------------------------------------------- sampler
def test_sampler_runs_as_user_with_only_read_capabilities(server, tmp_path):
    # A root-only beancounter file (0400 root, like /proc/user_beancounters) is still read.
    src = os.path.join(REPO, "tests/fixtures/beancounters/openvz6-container.txt")
    root_only = "/tmp/shmguard-it/ubc-root-only-%d.txt" % os.getpid()
    with open(src) as f, open(root_only, "w") as g:
        g.write(f.read())
    os.chmod(root_only, 0o400)
    try:
        conf = GUARD.replace("${SHMGUARD_UBC_FILE}", root_only)
        s = server(shmguard=True, shmguard_conf=conf, log_level="info")
        (pid,) = wait_for(lambda: sampler_pids(s), 5)
        st = open("/proc/%d/status" % pid).read()
        uid = re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)", st, re.M).groups()
        www = subprocess.run(["id", "-u", "www-data"], capture_output=True, text=True).stdout.strip()
        assert uid == (www, www, www)
        caps = int(re.search(r"^CapEff:\s+([0-9a-f]+)", st, re.M).group(1), 16)
        # The file was opened before the drop: no capability is kept (more in test_trust.py).
        assert caps == 0, hex(caps)
        assert "NoNewPrivs:\t1" in st
        assert s.wait_log(r"SG0110 sampler started .* uid %s, gid \d+, no capabilities" % www)
        # The field report's container: shmpages 247122 held of 262144.
        wait_sample(s, headroom_below=64 << 20)
        assert status(s)["headroom_bytes"] == (262144 - 247122) * 4096
    finally:
        os.unlink(root_only)


def test_make_install_puts_module_and_conf_in_place(tmp_path):
    dest = tmp_path / "root"
    r = subprocess.run(["make", "-C", REPO, "install", "DESTDIR=%s" % dest,
                        "BUILD=%s" % os.environ.get("SHMGUARD_BUILD", os.path.join(REPO, "build"))],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    libexec = subprocess.run(["apxs", "-q", "LIBEXECDIR"], capture_output=True, text=True).stdout.strip()
    assert (dest / libexec.lstrip("/") / "mod_shmguard.so").is_file()
    for name in ("shmguard.load", "shmguard.conf"):
        assert (dest / "etc/apache2/mods-available" / name).read_text() == \
            open(os.path.join(REPO, "conf", name)).read()
    assert os.access(str(dest / "usr/local/sbin/shmguard-probe"), os.X_OK)


def test_auto_reserve_is_the_largest_segment_of_the_class_else_128m(server):
    conf = GUARD.replace("ShmGuardReserve 64M", "ShmGuardReserve auto")
    s = server(shmguard=True, shmguard_conf=conf, segment_mib=32, spawn_score_uplimit=100)
    wait_sample(s, headroom_at_least=1 << 30)
    v = vhost(s)
    assert v["reserve"]["mode"] == "auto" and v["reserve"]["bytes"] == 128 << 20  # no worker yet
    # Headroom of 100 MiB: below the 128 MiB default, so a cold class is refused...
    s.budget.set_barrier(100 * 256)
    wait_sample(s, headroom_below=128 << 20)
    r = s.get("/index.php")
    assert r.status == 503
    assert re.search(r"SG0201 refused /index.php .* < reserve 128\.0 MiB", s.error_log())
    # ...then, with one 32 MiB worker seen, auto means 32 MiB: 68 MiB of headroom lets a new one start.
    s.budget.set_barrier(262144)
    wait_sample(s, headroom_at_least=128 << 20)
    assert s.get("/index.php").status == 200
    assert wait_for(lambda: vhost(s)["reserve"]["bytes"] == 32 << 20, 5), vhost(s)["reserve"]
    s.budget.refresh()
    s.budget.set_barrier(s.budget.held() + 68 * 256)
    wait_sample(s, headroom_below=128 << 20, headroom_at_least=64 << 20)
    rs = s.get_many(["/sleep.php?ms=1500"] * 2, delays=[0, 0.1])
    assert [r.status for r in rs] == [200, 200], [r.status for r in rs]
    assert len(s.php_workers()) == 2
