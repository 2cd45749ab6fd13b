"""PHP-FPM behind mod_proxy_fcgi with mod_shmguard loaded (issue 21).

A real Apache, mod_proxy_fcgi and php-fpm8.2 (its own config, socket and pid file under the
server root, pm = static with 3 children sharing the master's one OPcache), mod_fcgid with php-cgi
on the same server, and the OpenVZ beancounter double (ubc_double) with `shmpages` held at
1019.5 MiB of 1 GiB: 4.5 MiB of headroom. An FPM request maps no new shared memory, so the module
must serve it (5 of 5, as without the module), and warn; a mod_fcgid class under the same numbers
keeps its own rule (no worker, no room for one: a diagnosed 503).
"""

import json
import re

import harness
from harness import wait_for

SHM_BARRIER = 262144         # 1 GiB of 4 KiB pages
HEADROOM_PAGES = 1152        # 4.5 MiB
GUARD = """
ShmGuardBeancounters ${SHMGUARD_UBC_FILE}
ShmGuardInterval 200ms
<Location /shmguard-status>
    SetHandler shmguard-status
    ShmGuardStatusPage On
</Location>
"""
# ProxyPass form as well as SetHandler (/fpm/): both are mod_proxy_fcgi to the same pool.
PROXYPASS = ('ProxyPassMatch "^/pp/(.*\\.php)$" '
             '"unix:${SHMGUARD_ROOT}/run/php-fpm.sock|fcgi://localhost${SHMGUARD_ROOT}/htdocs/fpm/$1"')


status = harness.status_json


def low_headroom_server(server):
    """Started, shmpages held at 1019.5 of 1 GiB by others, the module's sample showing it."""
    s = server(shmguard=True, shmguard_conf=GUARD, fpm=True, fpm_children=3, extra_conf=PROXYPASS,
               shm_barrier=SHM_BARRIER)
    s.budget.set_external(SHM_BARRIER - HEADROOM_PAGES)

    def sampled():
        h = status(s).get("headroom_bytes")
        return h is not None and h == HEADROOM_PAGES * 4096
    assert wait_for(sampled, 10.0), "headroom never 4.5 MiB: %r" % status(s).get("headroom_bytes")
    return s


def test_fpm_low_headroom_served(server):
    # FPM served at 4.5 MiB of headroom; the mod_fcgid class on the same server still refused.
    # (Short test names: the server root is in the FPM socket path, which mod_proxy limits.)
    s = low_headroom_server(server)
    fpm_pids = set(s.fpm_workers())
    assert len(fpm_pids) == 3
    mark = s.log_mark()
    # 5 of 5 served by FPM's existing children (before the change: 5 x 503, SG0201 "backend does
    # not spawn per request (reserve alone decides)", the 128 MiB default reserve).
    for i in range(5):
        r = s.get("/fpm/index.php")
        assert r.status == 200, (i, r.status, r.text[:300])
        assert "fpm ok" in r.text and "sapi=fpm-fcgi" in r.text
        assert int(re.search(r"pid=(\d+)", r.text).group(1)) in fpm_pids
    r = s.get("/pp/index.php")
    assert r.status == 200 and "fpm ok" in r.text, (r.status, r.text[:300])

    j = status(s)
    v = j["vhosts"][0]
    assert v["refused"] == 0 and v["would_refuse"] == 0, v
    assert v["fpm"] == 6 and v["fpm_low_headroom"] == 6, v
    assert v["passed"] >= 6
    # Only FPM requests so far: a warning, not "refusing".
    assert j["state"] == "warning", (j["state"], j["state_detail"])
    assert "PHP-FPM requests of" in j["state_detail"], j["state_detail"]
    assert "no reserve applies to PHP-FPM" in v["reserve"]["source"], v["reserve"]
    # The warning: a stable id, once for the burst (at most every 10 s per vhost), no refusal.
    m = s.wait_log(r"SG0220 /fpm/index.php on \S+ served by PHP-FPM with shared-memory headroom "
                   r"4\.5 MiB \(beancounter:shmpages 260992/262144 pages\) below ShmGuardWarnBelow",
                   since=mark)
    assert m
    log = s.error_log(mark)
    assert log.count("SG0220") == 1, log
    assert "SG0201" not in log, log
    metrics = s.get("/shmguard-status?metrics").text
    assert re.search(r'shmguard_vhost_fpm_low_headroom_total\{vhost="[^"]+"\} 6', metrics), metrics

    # The mod_fcgid class on the same server, same numbers: no worker, no room for a 128 MiB
    # (default reserve) worker, nothing to wait for: the diagnosed 503, and no php-cgi started.
    r = s.get("/index.php")
    assert r.status == 503, (r.status, r.text[:300])
    assert r.headers["Retry-After"] == "30"
    assert s.wait_log(r"SG0201 refused /index.php .* shared-memory headroom 4\.5 MiB < reserve "
                      r"128\.0 MiB", since=mark)
    assert s.budget.workers() == {} and s.budget.failcnt() == 0
    v = status(s)["vhosts"][0]
    assert v["refused"] == 1 and v["fpm"] == 6, v
    # FPM still served after the refusal next to it.
    assert s.get("/fpm/index.php").status == 200
    assert s.get("/static.txt").status == 200


def test_fpm_ample_no_warning(server):
    # The same server with the headroom ample: FPM served, nothing counted as low, no SG0220.
    s = server(shmguard=True, shmguard_conf=GUARD, fpm=True, fpm_children=2)
    assert wait_for(lambda: status(s).get("headroom_bytes") is not None, 10.0)
    mark = s.log_mark()
    for _ in range(3):
        assert s.get("/fpm/index.php").status == 200
    v = status(s)["vhosts"][0]
    assert v["fpm"] == 3 and v["fpm_low_headroom"] == 0, v
    assert "SG0220" not in s.error_log(mark)


# ------------------------------------------------------------------------- the pools' status
POOL_CONF = GUARD + "ShmGuardFpmPool ${SHMGUARD_ROOT}/run/php-fpm.sock /fpm-status\n"


def wait_pools(s, pred, what):
    """Polls ?json (each view makes the sampler read the pools for the next) until pred(pools)."""
    last = []

    def ok():
        last[:] = status(s).get("fpm_pools", [])
        return pred(last)
    assert wait_for(ok, 15.0, step=0.2), "%s: %r" % (what, last)
    return last


def test_fpm_pool_status_shown(server):
    # pm.status_path set in the pool, ShmGuardFpmPool names its socket: the page shows the pool.
    s = server(shmguard=True, shmguard_conf=POOL_CONF, fpm=True, fpm_children=3,
               fpm_status_path="/fpm-status")
    assert s.get("/fpm/index.php").status == 200
    pools = wait_pools(s, lambda p: p and p[0]["ok"], "the pool's status")
    p = pools[0]
    assert p["name"] == "www" and p["configured"] and p["status_path"] == "/fpm-status", p
    assert p["process_manager"] == "static", p
    assert p["total"] == 3 and p["idle"] + p["active"] == 3, p
    assert p["accepted"] >= 1 and p["max_children_reached"] == 0 and p["listen_queue"] == 0, p
    assert [q["name"] for q in pools].count("www") == 1, pools  # not listed twice
    # Every format, from the one model.
    metrics = s.get("/shmguard-status?metrics").text
    assert 'shmguard_fpm_pool_up{pool="www"} 1' in metrics, metrics
    assert re.search(r'shmguard_fpm_pool_processes\{pool="www",state="idle"\} \d', metrics)
    assert 'shmguard_fpm_pool_max_children_reached_total{pool="www"} 0' in metrics
    auto = s.get("/shmguard-status?auto").text
    assert "ShmGuardFpmPoolTotal[www]: 3" in auto, auto
    html = s.get("/shmguard-status").text
    assert "PHP-FPM pools" in html and "/fpm-status" in html


def test_fpm_pool_without_status_says_how(server):
    # No pm.status_path, no ShmGuardFpmPool: the pool (seen as processes) is listed with the hint.
    s = server(shmguard=True, shmguard_conf=GUARD, fpm=True, fpm_children=2)
    pools = wait_pools(s, lambda p: any(q["name"] == "www" for q in p), "the pool www")
    p = [q for q in pools if q["name"] == "www"][0]
    assert not p["configured"] and not p["ok"], p
    assert 'add "pm.status_path = /fpm-status"' in p["hint"] and "ShmGuardFpmPool" in p["hint"], p
    assert "shmguard_fpm_pool_up{pool=\"www\"} 0" in s.get("/shmguard-status?metrics").text


def test_fpm_pool_configured_but_no_status_path(server):
    # ShmGuardFpmPool given, the pool has no pm.status_path: FPM's 404 is named.
    s = server(shmguard=True, shmguard_conf=POOL_CONF, fpm=True, fpm_children=2)
    pools = wait_pools(s, lambda p: p and p[0]["configured"] and p[0]["read_ms"] > 0
                       and "not read yet" not in p[0]["error"], "the pool's read")
    assert not pools[0]["ok"]
    assert pools[0]["error"] == ("status 404 for /fpm-status (is pm.status_path = /fpm-status set "
                                 "in the pool?)"), pools[0]


def test_fpm_pool_directive_checked(server):
    for conf, said in (("ShmGuardFpmPool run/php.sock /fpm-status", "invalid socket 'run/php.sock'"),
                       ("ShmGuardFpmPool /run/php.sock fpm-status", "invalid status path 'fpm-status'"),
                       ("ShmGuardFpmPool /run/php.sock /s fpm.log", "invalid error log 'fpm.log'"),
                       ("ShmGuardFpmPool /run/php.sock /s /l extra", "takes two or three arguments"),
                       ("<VirtualHost 127.0.0.1:1>\nShmGuardFpmPool /run/php.sock /s\n</VirtualHost>",
                        "ShmGuardFpmPool cannot occur within")):
        s = server(start=False, shmguard=True, shmguard_conf=GUARD + conf + "\n")
        rc, out = s.configtest()
        assert rc != 0 and said in out, (conf, out)


# ------------------------------------------------------------------------- FPM's own failures
# The FPM master runs as a uid of its own under RLIMIT_NPROC 1 (root is exempt from the limit):
# with pm = ondemand every fork it tries for a request fails for real, EAGAIN, and FPM logs
# "ERROR: fork() failed: Resource temporarily unavailable (11)" in its own error log. The request
# waits in the pool's listen queue until mod_proxy_fcgi gives up (ProxyTimeout 3).
FORK_CONF = (GUARD + "ProxyTimeout 3\nShmGuardDetail On\n"
             "ShmGuardFpmPool ${SHMGUARD_ROOT}/fpmu/php-fpm.sock /fpm-status "
             "${SHMGUARD_ROOT}/fpmu/php-fpm.log\n")


def fork_failing_server(server, conf=FORK_CONF):
    return server(shmguard=True, shmguard_conf=conf, fpm=True, fpm_pm="ondemand", fpm_children=4,
                  fpm_nproc=1, fpm_status_path="/fpm-status")


def test_fpm_fork_failure_translated(server):
    s = fork_failing_server(server)
    assert wait_for(lambda: status(s).get("headroom_bytes") is not None, 10.0)
    mark = s.log_mark()
    r = s.get("/fpm/index.php", headers={"Accept": "application/json"})
    fpm_log = open(s.fpm_log_path).read()
    assert "ERROR: fork() failed: Resource temporarily unavailable (11)" in fpm_log, fpm_log
    # The diagnosed 503: Retry-After, FPM's own words and the numbers (before: mod_proxy_fcgi's
    # bare 504 Gateway Timeout after ProxyTimeout, no Retry-After, nothing said).
    assert r.status == 503, (r.status, r.text[:300])
    assert r.headers.get("Retry-After") == "30", r.headers
    body = json.loads(r.text)
    assert body["error"] == "PHP-FPM pool unavailable", body
    assert "could not start a child: fork() failed: Resource temporarily unavailable (11)" in \
        body["cause"], body
    m = s.wait_log(r"SG0230 PHP-FPM pool \S*fpmu/php-fpm\.sock could not serve /fpm/index\.php "
                   r"on \S+: the pool could not start a child: fork\(\) failed: Resource "
                   r"temporarily unavailable \(11\), \d+ times? during the request; the bound: a "
                   r"process limit", since=mark)
    assert m, s.error_log(mark)
    # The status page shows it: the pool's fork failures (FPM's log) and the 503s it explains.
    pools = wait_pools(s, lambda p: p and p[0]["fork_failures"] >= 1, "the fork failures")
    p = pools[0]
    assert p["log"].endswith("fpmu/php-fpm.log") and p["translated"] == 1, p
    assert p["last_failure"] == "fork() failed: Resource temporarily unavailable (11)", p
    metrics = s.get("/shmguard-status?metrics").text
    assert re.search(r'shmguard_fpm_pool_fork_failures_total\{pool="[^"]+"\} [1-9]', metrics), metrics
    assert re.search(r'shmguard_fpm_pool_translated_total\{pool="[^"]+"\} 1', metrics), metrics
    assert "fork() failed" in s.get("/shmguard-status").text


def test_fpm_failure_without_evidence_left_alone(server):
    # The same pool's failure, but FPM's log not named: nothing says why (the module read no
    # line, the socket accepts): mod_proxy_fcgi's answer is left exactly as it is.
    conf = GUARD + "ProxyTimeout 3\nShmGuardFpmPool ${SHMGUARD_ROOT}/fpmu/php-fpm.sock /fpm-status\n"
    s = fork_failing_server(server, conf)
    mark = s.log_mark()
    r = s.get("/fpm/index.php")
    assert r.status != 200 and "Retry-After" not in r.headers, (r.status, r.headers)
    assert "SG0230" not in s.error_log(mark)


def test_fpm_socket_refused_translated(server):
    # The pool is down (its socket refuses): the module's own connect to it at the 503 says so.
    s = server(shmguard=True, shmguard_conf=POOL_CONF, fpm=True, fpm_children=2)
    s._stop_fpm()
    mark = s.log_mark()
    r = s.get("/fpm/index.php")
    assert r.status == 503 and r.headers.get("Retry-After") == "30", (r.status, r.headers)
    assert s.wait_log(r"SG0230 PHP-FPM pool \S+ could not serve /fpm/index\.php on \S+: its socket "
                      r"refuses connections \(connect: (Connection refused|No such file or "
                      r"directory)\)", since=mark), s.error_log(mark)


def test_fpm_idle_child_served_without_check(server):
    # Rule 2.1: with the pool's status read (ShmGuardFpmPool) and idle children in it, an FPM
    # request is served with nothing checked: no low-headroom warning even at 4.5 MiB of
    # headroom (before: every request counted and warned, SG0220, whatever the pool had free).
    s = server(shmguard=True, shmguard_conf=POOL_CONF, fpm=True, fpm_children=3,
               fpm_status_path="/fpm-status", shm_barrier=SHM_BARRIER)
    s.budget.set_external(SHM_BARRIER - HEADROOM_PAGES)
    assert wait_for(lambda: status(s).get("headroom_bytes") == HEADROOM_PAGES * 4096, 10.0)
    wait_pools(s, lambda p: p and p[0]["ok"] and p[0]["total"] == 3, "the pool's status")
    mark = s.log_mark()
    for i in range(5):
        r = s.get("/fpm/index.php")
        assert r.status == 200 and "fpm ok" in r.text, (i, r.status, r.text[:300])
    v = status(s)["vhosts"][0]
    assert v["fpm"] == 5 and v["fpm_low_headroom"] == 0 and v["refused"] == 0, v
    log = s.error_log(mark)
    assert "SG0220" not in log and "SG0221" not in log, log
