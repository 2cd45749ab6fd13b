"""PHP-FPM's fork rule (rule 2.2) with a real pool, and the pool's requests in every form (issue 21).

A real Apache + mod_proxy_fcgi + php-fpm8.2 (its own config, socket and pid file under the server
root) and the OpenVZ beancounter double (ubc_double). Rule 2.2: a request that finds no free child
in a `pm = dynamic` pool makes FPM fork one; a fork charges the child's private pages
(VmData + VmStk) to `privvmpages`. When those do not fit, the module still serves the request
(FPM forks or queues it) and says so: SG0221, never a refusal.
"""

import json
import os
import signal
import threading
import time

import harness
from harness import wait_for

GUARD = """
ShmGuardBeancounters ${SHMGUARD_UBC_FILE}
ShmGuardInterval 200ms
<Location /shmguard-status>
    SetHandler shmguard-status
    ShmGuardStatusPage On
</Location>
ShmGuardFpmPool ${SHMGUARD_ROOT}/run/php-fpm.sock /fpm-status
"""
SLOW_PHP = """<?php
header('Content-Type: text/plain');
usleep(min(10000, (int)($_GET['ms'] ?? 0)) * 1000);
echo "shmguard-it fpm slow ok pid=", getmypid(), "\\n";
"""


status = harness.status_json


def pool(s):
    pools = status(s).get("fpm_pools", [])
    return pools[0] if pools and pools[0].get("configured") else None


def private_pages(pid):
    """VmData + VmStk of a process in 4 KiB pages (what a fork of it charges to privvmpages)."""
    kib = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("VmData:", "VmStk:")):
                kib += int(line.split()[1])
    return kib // 4


def dynamic_pool_server(server, headroom_of_child):
    """A pm = dynamic pool (1 spare child, at most 6) with its status read by the module, and
    privvmpages' headroom set to `headroom_of_child` times one child's private pages (nothing
    else held in privvmpages, so the headroom is the whole barrier: never "low" for SG0220)."""
    s = server(shmguard=True, shmguard_conf=GUARD, fpm=True, fpm_pm="dynamic", fpm_children=6,
               fpm_status_path="/fpm-status")
    with open(os.path.join(s.htdocs, "fpm", "slow.php"), "w") as f:
        f.write(SLOW_PHP)
    kids = s.fpm_workers()
    assert kids, "no FPM child"
    child = max(private_pages(p) for p in kids)
    assert child > 256, child  # a php-fpm child has MiBs of private pages
    s.budget.set_privvm_base(0)
    barrier = max(1, int(child * headroom_of_child))
    s.budget.set_barrier(barrier, "privvmpages")
    assert wait_for(lambda: status(s).get("headroom_bytes") == min(barrier, 262144) * 4096, 10.0), \
        status(s).get("headroom_bytes")
    assert wait_for(lambda: (pool(s) or {}).get("ok"), 15.0, step=0.2), pool(s)
    assert pool(s)["process_manager"] == "dynamic"
    return s


def burst(s, n, ms):
    """n concurrent slow FPM requests; returns their statuses."""
    out = [None] * n

    def one(i):
        r = s.get("/fpm/slow.php?ms=%d" % ms, timeout=30.0)
        out[i] = (r.status, r.text)
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def bursts_until_sg0221(s, mark, deadline_s):
    """Bursts of 3 concurrent requests (their second and third find no free child in a pool with
    one spare: FPM forks for them) until SG0221 is logged or the deadline; every request served."""
    served = 0
    end = time.monotonic() + deadline_s
    while True:
        for st, text in burst(s, 3, 1500):
            assert st == 200 and "fpm slow ok" in text, (st, text[:300])
            served += 1
        if "SG0221" in s.error_log(mark):
            return served, True
        if time.monotonic() > end:
            return served, False


def test_fpm_fork_short_warned_not_refused(server):
    # privvmpages' headroom is half a child's private pages: a request FPM must fork for is
    # served (200, FPM forks for real: the double limits no fork) and SG0221 says the fork may
    # fail. (Before: the pool's free children were taken from its status alone, which counts the
    # child serving the status read and shows a listen queue of 0 on a Unix socket: never 0 free
    # children, so rule 2.2 never applied.)
    s = dynamic_pool_server(server, 0.5)
    mark = s.log_mark()
    served, warned = bursts_until_sg0221(s, mark, 40.0)
    assert warned, "no SG0221 after %d requests:\n%s" % (served, s.error_log(mark))
    log = s.error_log(mark)
    m = s.wait_log(r"SG0221 /fpm/slow\.php on \S+ served by PHP-FPM: pool \S+/run/php-fpm\.sock "
                   r"has no idle child and FPM would fork one, whose private pages \([\d.]+ "
                   r"[KM]iB, the largest of its children\) do not fit the headroom for private "
                   r"memory \([\d.]+ [KM]iB\): not refused", since=mark)
    assert m, log
    assert "SG0201" not in log and "SG0230" not in log, log
    v = status(s)["vhosts"][0]
    assert v["refused"] == 0 and v["would_refuse"] == 0, v
    assert v["fpm_low_headroom"] >= 1, v  # the status page counts it (fpm_low_headroom)


def test_fpm_fork_ample_no_warning(server):
    # The same pool and the same bursts with privvmpages' headroom 4 children: no SG0221.
    s = dynamic_pool_server(server, 4.0)
    mark = s.log_mark()
    for _ in range(3):
        for st, text in burst(s, 3, 1500):
            assert st == 200 and "fpm slow ok" in text, (st, text[:300])
    log = s.error_log(mark)
    assert "SG0221" not in log and "SG0220" not in log, log
    v = status(s)["vhosts"][0]
    assert v["fpm"] >= 9 and v["fpm_low_headroom"] == 0 and v["refused"] == 0, v


# ------------------------------------------------------------------ ProxyPass to a pool's socket
# mod_proxy takes the socket out of a ProxyPass URL ("unix:SOCK|fcgi://localhost/..."): the
# request's r->filename is "proxy:fcgi://localhost/...", the socket is in mod_proxy's worker. The
# module finds the worker as mod_proxy does and so the pool: its rules and its translation apply.
PP_CONF = ('ProxyPass "/pp/" "unix:${SHMGUARD_ROOT}/fpmu/php-fpm.sock|fcgi://localhost'
           '${SHMGUARD_ROOT}/htdocs/fpm/"\n'
           'ProxyPassMatch "^/pm/(.*\\.php)$" "unix:${SHMGUARD_ROOT}/fpmu/php-fpm.sock|'
           'fcgi://localhost${SHMGUARD_ROOT}/htdocs/fpm/$1"\n')
FORK_CONF = (GUARD.replace("ShmGuardFpmPool ${SHMGUARD_ROOT}/run/php-fpm.sock /fpm-status\n", "")
             + "ProxyTimeout 3\nShmGuardDetail On\n"
             "ShmGuardFpmPool ${SHMGUARD_ROOT}/fpmu/php-fpm.sock /fpm-status "
             "${SHMGUARD_ROOT}/fpmu/php-fpm.log\n")


def test_pp_pool_found(server):
    # The fork-failing pool of test_fpm.py (an ondemand master as its own uid under RLIMIT_NPROC
    # 1: every fork fails, EAGAIN) reached through ProxyPass and ProxyPassMatch: FPM's failure is
    # the diagnosed 503 with FPM's own words (before: the pool was not found for these forms and
    # mod_proxy_fcgi's bare 504 after ProxyTimeout was left, nothing said).
    s = server(shmguard=True, shmguard_conf=FORK_CONF, extra_conf=PP_CONF, fpm=True,
               fpm_pm="ondemand", fpm_children=4, fpm_nproc=1, fpm_status_path="/fpm-status")
    assert wait_for(lambda: status(s).get("headroom_bytes") is not None, 10.0)
    for path in ("/pp/index.php", "/pm/index.php"):
        mark = s.log_mark()
        r = s.get(path, headers={"Accept": "application/json"})
        assert r.status == 503 and r.headers.get("Retry-After") == "30", (path, r.status, r.text[:300])
        body = json.loads(r.text)
        assert body["error"] == "PHP-FPM pool unavailable", body
        assert "fork() failed: Resource temporarily unavailable (11)" in body["cause"], body
        if path == "/pp/index.php":  # SG0230: at most one line per 10 s per pool
            assert s.wait_log(r"SG0230 PHP-FPM pool \S*fpmu/php-fpm\.sock could not serve "
                              r"/pp/index\.php ", since=mark), s.error_log(mark)
    v = status(s)["vhosts"][0]
    assert v["fpm"] == 2 and v["refused"] == 0, v
    assert wait_for(lambda: (pool(s) or {}).get("translated") == 2, 10.0), pool(s)


# ------------------------------------------------------------------ FPM's log rotated
# The fork-failing pool again, FPM's log named by ShmGuardFpmPool. The sampler opened that log
# while root (FPM writes it 0600); after a rotation FPM's failures go to the new file.



def fork_failing(server):
    s = server(shmguard=True, shmguard_conf=FORK_CONF, fpm=True, fpm_pm="ondemand",
               fpm_children=4, fpm_nproc=1, fpm_status_path="/fpm-status")
    assert wait_for(lambda: status(s).get("headroom_bytes") is not None, 10.0)
    # The module's own status reads make FPM try forks: failures counted from the log before.
    assert wait_for(lambda: (pool(s) or {}).get("fork_failures", 0) >= 1, 15.0, step=0.2), pool(s)
    return s


def translated_after(s, before):
    """Once the module counts fork failures again (it follows the log), a request is the
    diagnosed 503 with FPM's words."""
    assert wait_for(lambda: (pool(s) or {}).get("fork_failures", 0) > before, 20.0, step=0.2), \
        "fork failures not followed after the rotation: %r\n%s" % (pool(s), s.error_log())
    r = s.get("/fpm/index.php", headers={"Accept": "application/json"})
    assert r.status == 503 and r.headers.get("Retry-After") == "30", (r.status, r.text[:300])
    assert "fork() failed" in json.loads(r.text)["cause"], r.text


def test_fpm_log_renamed(server):
    # logrotate's way for php-fpm (Debian's /etc/logrotate.d/php8.2-fpm): rename, then SIGUSR1
    # makes FPM reopen its error_log, a new file. (Before: the sampler kept following the
    # renamed file; FPM's failures in the new one were never seen: mod_proxy_fcgi's bare 504.)
    s = fork_failing(server)
    os.rename(s.fpm_log_path, s.fpm_log_path + ".1")
    mark = s.log_mark()
    s.fpm_proc.send_signal(signal.SIGUSR1)
    assert wait_for(lambda: os.path.exists(s.fpm_log_path), 10.0), "FPM did not reopen its log"
    assert s.wait_log(r"SG0117 .*php-fpm\.log", since=mark, timeout=20.0)
    assert s.wait_log(r"SG0118 sampler \(pid \d+\) ended to reopen a rotated log", since=mark)
    assert "SG0111" not in s.error_log(mark)  # a rotation is not a sampler's death
    before = pool(s)["fork_failures"]
    translated_after(s, before)


def test_fpm_log_copytruncate(server):
    # logrotate's copytruncate: copied, then cut to 0 in place (the same file).
    s = fork_failing(server)
    with open(s.fpm_log_path, "rb") as src, open(s.fpm_log_path + ".1", "wb") as dst:
        dst.write(src.read())
    os.truncate(s.fpm_log_path, 0)
    before = pool(s)["fork_failures"]
    translated_after(s, before)
