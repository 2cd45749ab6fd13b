"""Memory cgroups (issue 17): the module judges a memory cgroup as the kernel does.

A REAL cgroup v1 memory cgroup (the memory controller is on v1 on the build machines): the test makes
a child group of 768 MiB under its own process's memory cgroup, starts the test Apache inside it
(harness.Server(cgroup_dir=...): the server, mod_fcgid, php-cgi and the sampler all run in it), fills
the group's page cache from inside (a 1.2 GB file written and synced, as logs, backups and uploads do
on any real server), and checks that the kernel's clean file cache counts as room: PHP is served, a
class with no worker yet is served, the status page does not refuse, and its headroom is
limit - (usage - reclaimable) (README "Memory cgroups"). The group is removed at teardown, even after
a failure (its processes are killed first). Skipped only where this process has no v1 memory
controller.
"""

import json
import re
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

import harness
from harness import wait_for

MIB = 1 << 20
LIMIT = 768 * MIB
V1 = "/sys/fs/cgroup/memory"
CONF = ("ShmGuardBeancounters off\nShmGuardInterval 200ms\n"
        "<Location /shmguard-status>\nSetHandler shmguard-status\nShmGuardStatusPage On\n</Location>")
# Two name-based virtual hosts; the second has its own starter (as hosting panels give each site),
# so its php-cgi is a mod_fcgid class of its own, with no worker until its first request.
VHOSTS = ("<VirtualHost *:*>\n  ServerName 127.0.0.1\n</VirtualHost>\n"
          "<VirtualHost *:*>\n  ServerName cold.example\n  <Directory \"{htdocs}\">\n"
          "    FcgidWrapper \"{cold}\" .php\n  </Directory>\n</VirtualHost>\n")
JOIN = 'echo $$ > "$0/cgroup.procs" && exec "$@"'  # sh -c JOIN DIR argv...: run argv inside DIR


def own_memory_cgroup():
    """This process's v1 memory cgroup directory, or None."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            parts = line.rstrip("\n").split(":", 2)
            if len(parts) == 3 and "memory" in parts[1].split(","):
                return os.path.normpath(V1 + "/" + parts[2].strip("/"))
    return None


def read_int(d, name):
    with open(os.path.join(d, name)) as f:
        return int(f.read().split()[0])


def keyed(d, name):
    with open(os.path.join(d, name)) as f:
        return {k: int(v) for k, v in (line.split() for line in f if line.strip())}


def procs(d):
    with open(os.path.join(d, "cgroup.procs")) as f:
        return [int(p) for p in f.read().split()]


def in_group(d, argv, **kw):
    return subprocess.run(["/bin/sh", "-c", JOIN, d] + list(argv), **kw)


def counted(d):
    """(limit, usage - reclaimable, reclaimable) of a v1 level by README's rule, from the kernel."""
    st = keyed(d, "memory.stat")
    usage = read_int(d, "memory.usage_in_bytes")
    rec = max(0, st["total_inactive_file"] + st["total_active_file"] - st["total_dirty"]
              - st["total_writeback"])
    rec = min(rec, usage)
    return read_int(d, "memory.limit_in_bytes"), usage - rec, rec


def remove_cgroup(d, parent, timeout=30.0):
    """Kills whatever still runs in the group (only what this test started can be there), then
    removes it; retries while the kernel still counts exiting tasks."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            left = procs(d)
        except FileNotFoundError:
            return
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.rmdir(d)
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("could not remove memory cgroup %s (tasks: %s)" % (d, left))
            time.sleep(0.1)


@pytest.fixture
def memcg():
    """A fresh v1 memory cgroup of 768 MiB under this process's own; removed at teardown."""
    parent = own_memory_cgroup()
    if parent is None or not os.path.isfile(os.path.join(parent, "memory.limit_in_bytes")):
        pytest.skip("no cgroup v1 memory controller for this process (%s)"
                    % (parent or "no memory line in /proc/self/cgroup"))
    d = os.path.join(parent, "shmguard-it-%d-%s" % (os.getpid(), uuid.uuid4().hex[:8]))
    os.mkdir(d)
    try:
        with open(os.path.join(d, "memory.limit_in_bytes"), "w") as f:
            f.write(str(LIMIT))
        yield d
    finally:
        remove_cgroup(d, parent)


def get_json(s):
    r = s.get("/shmguard-status?json")
    assert r.status == 200, r
    return json.loads(r.body)


def wait_json(s, pred, what, timeout=20.0):
    last = {}

    def ok():
        last["doc"] = get_json(s)
        return pred(last["doc"])

    if not wait_for(ok, timeout=timeout):
        raise AssertionError("status never showed %s; last ?json:\n%s"
                             % (what, json.dumps(last.get("doc"), indent=1)))
    return last["doc"]


def cgroup_source(doc):
    return next(x for x in doc["sources"] if x["source"] == "cgroup")


def headroom_from_fields(src):
    """README's rule applied to the raw fields the status page shows: the tightest level's
    limit - (usage - reclaimable), reclaimable = inactive_file + active_file - dirty - writeback."""
    best = None
    for lv in src["levels"]:
        if lv["limit_bytes"] is None or lv["usage_bytes"] is None:
            continue
        rec = 0
        if lv["inactive_file_bytes"] is not None or lv["active_file_bytes"] is not None:
            rec = max(0, (lv["inactive_file_bytes"] or 0) + (lv["active_file_bytes"] or 0)
                      - (lv["dirty_bytes"] or 0) - (lv["writeback_bytes"] or 0))
            assert lv["reclaimable_bytes"] == min(rec, lv["usage_bytes"]), lv
        rec = min(rec, lv["usage_bytes"])
        h = max(0, lv["limit_bytes"] - (lv["usage_bytes"] - rec))
        best = h if best is None else min(best, h)
    return best


def test_page_cache_full_cgroup_serves_php_and_cold_class(memcg, server):
    s = server(start=False, shmguard=True, shmguard_conf=CONF, wrapper="plain", segment_mib=128,
               spawn_score_uplimit=100, cgroup_dir=memcg)
    cold = os.path.join(s.root, "bin", "php-starter-cold")
    shutil.copyfile(os.path.join(s.root, "bin", "php-wrapper-plain"), cold)
    os.chmod(cold, 0o755)
    s.opts["extra_conf"] = VHOSTS.format(htdocs=s.htdocs, cold=cold)
    s.write()
    s.start()
    assert s.parent_pid() in procs(memcg)
    fill = os.path.join(s.root, "cache-fill.bin")
    try:
        # Fill the group's page cache from inside it, clean (synced), as any real server's does.
        failcnt0 = read_int(memcg, "memory.failcnt")
        r = in_group(memcg, ["dd", "if=/dev/zero", "of=" + fill, "bs=1M", "count=1200", "conv=fsync",
                             "status=none"], timeout=600)
        assert r.returncode == 0
        limit, used, rec = counted(memcg)
        usage = used + rec
        assert limit == LIMIT
        assert LIMIT - usage < 32 * MIB, "the page cache did not fill the group"
        assert rec > 600 * MIB
        assert read_int(memcg, "memory.failcnt") > failcnt0  # the kernel reclaimed at the limit

        # The status page once the sampler saw the full cache: limit - usage is a few MiB, yet the
        # headroom is limit - (usage - reclaimable) and the module is not refusing.
        doc = wait_json(s, lambda d: d.get("sources") and any(
            x["source"] == "cgroup" and (x["usage_bytes"] or 0) > LIMIT - 64 * MIB for x in d["sources"]),
            "the full page cache")
        src = cgroup_source(doc)
        assert src["version"] == 1 and src["dir"] == memcg
        assert doc["binding"] == "cgroup:memory"
        assert doc["state"] != "refusing", (doc["state_text"], doc["headroom_bytes"])
        assert doc["headroom_bytes"] > 500 * MIB, doc["headroom_bytes"]
        assert doc["headroom_bytes"] == headroom_from_fields(src)
        (lim,) = [x for x in doc["limits"] if x["name"] == "cgroup:memory"]
        assert lim["reclaimable_bytes"] > 600 * MIB
        assert lim["used_bytes"] + lim["reclaimable_bytes"] > LIMIT - 64 * MIB  # raw usage shown
        # The sampler's figure agrees with the kernel's files read now (the group is quiet: the
        # sample is at most a few hundred ms old).
        limit, used, rec = counted(memcg)
        assert abs(doc["headroom_bytes"] - (limit - used)) <= 16 * MIB, (doc["headroom_bytes"], limit - used)

        # PHP served, several requests, php-cgi with a 128 MiB OPcache, inside the group.
        for _ in range(6):
            r = s.get("/index.php")
            assert r.status == 200, (r.status, r.body[:300])
            assert b"opcache=on" in r.body and b"memory_consumption=128" in r.body
        # A class with no worker yet (the second vhost): served at once, not a 503.
        r = s.get("/index.php", headers={"Host": "cold.example"})
        assert r.status == 200, (r.status, r.body[:300])
        workers = s.wait_workers(2, timeout=20)
        in_cg = set(procs(memcg))
        assert all(w in in_cg for w in workers), (workers, in_cg)

        doc = wait_json(s, lambda d: len(d.get("workers", [])) >= 2, "both workers")
        assert doc["state"] != "refusing", doc["state_text"]
        assert doc["headroom_bytes"] == headroom_from_fields(cgroup_source(doc))
        assert doc["headroom_bytes"] > 400 * MIB

        # The headroom is real: the kernel lets the group charge it (less the stated 32 MiB error)
        # without an OOM kill, by reclaiming the cache.
        oom0 = keyed(memcg, "memory.oom_control")["oom_kill"]
        n = (doc["headroom_bytes"] - 32 * MIB) // MIB
        code = ("import sys; n = int(sys.argv[1]) << 20; b = bytearray(n)\n"
                "for i in range(0, n, 4096): b[i] = 1\n"
                "print('charged', flush=True); sys.stdin.read()")
        hog = subprocess.Popen(["/bin/sh", "-c", JOIN, memcg, sys.executable, "-c", code, str(n)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            line = hog.stdout.readline()
            assert line == b"charged\n", "a charge of %d MiB inside the headroom failed" % n
            assert keyed(memcg, "memory.oom_control")["oom_kill"] == oom0
            assert hog.poll() is None
        finally:
            hog.kill()
            hog.wait()
        r = s.get("/index.php")
        assert r.status == 200, (r.status, r.body[:300])

        # Reclaim at the limit is no failure: no SG0303 for cgroup:failcnt, no OOM kill as evidence.
        log = s.error_log()
        assert "SG0303 cgroup:failcnt" not in log
        assert "SG0303" not in log, log[-2000:]
        doc = get_json(s)
        cg = cgroup_source(doc)
        assert cg["failcnt"] > failcnt0
        assert cg["events"]["oom_kill"] == oom0
        assert not [f for f in doc.get("findings", []) if f["id"].startswith("failcnt-rose")]
    finally:
        try:
            os.unlink(fill)
        except FileNotFoundError:
            pass


def touched_of(pid):
    """RssShmem + RssAnon of a process (/proc/PID/status), bytes: what a memory cgroup charged for
    its shared-memory pages and its private anon (README "Memory cgroups": a worker's need)."""
    out = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("RssShmem:", "RssAnon:")):
                out += int(line.split()[1]) << 10
    return out


GROW_CONF = CONF.replace("ShmGuardInterval 200ms", "ShmGuardInterval 200ms\nShmGuardWait 60s")


def test_class_grows_on_touched_need_under_memory_cgroup(memcg, server):
    """Issue 17 item 2: under a memory cgroup a worker needs what it charges (its touched pages),
    not its mapped size. OPcache 128 MiB + APCu 32 MiB map 160 MiB per worker, a fresh worker
    touches a few tens of MiB (t). The group gets a headroom H = 160 MiB + 2.5 t: on the mapped
    need a spawn needs H - (k - 1) t >= 160 MiB with k workers, so the class stops at 4 workers;
    on the touched need it holds H / t >= 7 workers: 8 concurrent slow requests get at least 6
    workers, and nothing fails (no 503, no OOM kill)."""
    s = server(start=False, shmguard=True, shmguard_conf=GROW_CONF, wrapper="plain",
               segment_mib=128, apcu_mib=32, spawn_score_uplimit=100, max_processes_per_class=16,
               cgroup_dir=memcg)
    s.start()
    r = s.get("/sleep.php")
    assert r.status == 200, (r.status, r.body[:300])
    (first,) = s.wait_workers(1, timeout=20)
    mapped = 160 * MIB
    touched = touched_of(first)
    # Precondition: the touched need is far below the mapped one (else the test proves nothing).
    assert 0 < touched <= 32 * MIB, touched
    headroom = mapped + 5 * touched // 2
    limit, used, rec = counted(memcg)
    with open(os.path.join(memcg, "memory.limit_in_bytes"), "w") as f:
        f.write(str(used + headroom))
    doc = wait_json(s, lambda d: d.get("binding") == "cgroup:memory" and d.get("vhosts") and
                    d["vhosts"][0]["reserve"].get("need_basis") == "touched" and
                    d["vhosts"][0]["reserve"]["mapped_bytes"] >= mapped and
                    d["vhosts"][0]["reserve"]["bytes"] < mapped and
                    d["headroom_bytes"] < mapped + 3 * touched,
                    "the touched need under the lowered limit")
    res = doc["vhosts"][0]["reserve"]
    assert res["need_basis_text"].startswith("touched"), res
    assert res["mapped_bytes"] >= mapped, res
    assert doc["headroom_bytes"] < mapped + 3 * touched, (doc["headroom_bytes"], touched)
    oom0 = keyed(memcg, "memory.oom_control")["oom_kill"]

    rs = s.get_many(["/sleep.php?ms=2500"] * 8, timeout=120)
    assert [x.status for x in rs] == [200] * 8, [(x.status, x.body[:200]) for x in rs]
    pids = {int(x.body) for x in rs}
    # More workers than the mapped size would have allowed (4).
    assert len(pids) >= 6, (pids, touched)
    assert len(s.php_workers()) >= 6, (s.php_workers(), touched)
    assert all(p in set(procs(memcg)) for p in s.php_workers())
    assert keyed(memcg, "memory.oom_control")["oom_kill"] == oom0
    assert "SG0201" not in s.error_log()


HOG_PHP = r"""<?php
// Touches ?mib MiB of private memory (more than the memory cgroup can charge: the OOM killer).
ini_set('memory_limit', '-1');
$n = (int)($_GET['mib'] ?? 64) << 20;
$s = str_repeat('x', $n);
header('Content-Type: text/plain');
echo "touched ", strlen($s), "\n";
"""
OWN_500_PHP = r"""<?php
http_response_code(500);
header('Content-Type: text/plain');
echo "this application's own error\n";
"""
CRASH_APP = "#!/bin/sh\n# a FastCGI app that dies at once: a 500 with no shared-memory evidence\nexit 3\n"
# A sampling interval of 20 s: the 500 of an OOM-killed request (the kernel reclaims for a few
# seconds before it kills) comes before the next sample, which alone reads the kill.
DETAIL_CONF = CONF.replace("ShmGuardInterval 200ms", "ShmGuardInterval 20s") + "\nShmGuardDetail On"


def test_oom_killed_php_cgi_becomes_diagnosed_503(memcg, server):
    """Issue 17 item 3: a PHP script touches more than the memory cgroup can charge; the kernel's
    OOM killer kills its php-cgi during the request. mod_fcgid alone answers a bare 500; with the
    module the client gets the diagnosed 503 (Retry-After, binding cgroup:memory) and the log
    names the cgroup's oom_kill as the evidence. The group keeps 400 MiB of room, so after the kill
    (its victim's memory freed) the headroom is ample again for the class's touched need: the 500
    must still wait for the sampler, which alone reads the kill."""
    s = server(start=False, shmguard=True, shmguard_conf=DETAIL_CONF, wrapper="plain",
               segment_mib=128, spawn_score_uplimit=100, cgroup_dir=memcg,
               extra_conf=harness.CRASH_APP_CONF)
    s.write()
    with open(os.path.join(s.htdocs, "hog.php"), "w") as f:
        f.write(HOG_PHP)
    s.start()
    r = s.get("/hog.php?mib=8")
    assert r.status == 200, (r.status, r.body[:300])
    s.wait_workers(1, timeout=20)
    # The group may charge 400 MiB more (limit = counted usage + 400 MiB); the script touches 1000.
    limit, used, rec = counted(memcg)
    with open(os.path.join(memcg, "memory.limit_in_bytes"), "w") as f:
        f.write(str(used + 400 * MIB))
    doc = wait_json(s, lambda d: d.get("binding") == "cgroup:memory" and
                    d["headroom_bytes"] < 460 * MIB and
                    d["vhosts"][0]["reserve"]["need_basis"] == "touched", "the lowered limit",
                    timeout=90)
    # Ample room for the touched need (16 workers): the case where a 500 skipped the sampler.
    assert doc["headroom_bytes"] // 16 >= doc["vhosts"][0]["reserve"]["bytes"], doc["vhosts"][0]
    oom0 = keyed(memcg, "memory.oom_control")["oom_kill"]
    mark = s.log_mark()
    r = s.get("/hog.php?mib=1000", headers={"Accept": "application/json"})
    assert keyed(memcg, "memory.oom_control")["oom_kill"] > oom0, "the kernel killed nothing"
    assert r.status == 503, (r.status, r.body[:500])
    assert r.headers.get("Retry-After"), dict(r.headers)
    body = json.loads(r.body)
    assert body["translated"] is True and body["binding"] == "cgroup:memory", body
    assert s.wait_log(r"SG0202 backend for /hog.php", since=mark)
    log = s.error_log(since=mark)
    assert re.search(r"SG0202 backend for /hog\.php on \S+ died of a shared-memory allocation "
                     r"failure: cgroup oom_kill \+\d+", log), log
    # The class serves again (a new worker starts in the group).
    r = s.get("/index.php")
    assert r.status == 200, (r.status, r.body[:300])


def test_unrelated_500_during_reclaim_churn_stays_500(memcg, server):
    """Issue 17 item 3: with the group's page cache full and the kernel reclaiming at the limit
    all the time (memory.failcnt rising, no OOM kill), an unrelated 500 (an application that dies
    without output; a PHP script that answers 500 itself) stays a 500: failcnt is no evidence."""
    s = server(start=False, shmguard=True, shmguard_conf=CONF, wrapper="plain", segment_mib=128,
               spawn_score_uplimit=100, cgroup_dir=memcg, extra_conf=harness.CRASH_APP_CONF)
    harness.install_crash_app(s, CRASH_APP)
    with open(os.path.join(s.htdocs, "own500.php"), "w") as f:
        f.write(OWN_500_PHP)
    s.start()
    fill = os.path.join(s.root, "cache-fill.bin")
    churn = None
    try:
        r = in_group(memcg, ["dd", "if=/dev/zero", "of=" + fill, "bs=1M", "count=1200",
                             "conv=fsync", "status=none"], timeout=600)
        assert r.returncode == 0
        # Churn: reading the file again and again from inside the group keeps the cache at the
        # limit, so the kernel reclaims (and counts failcnt) while the requests run.
        churn = subprocess.Popen(["/bin/sh", "-c", JOIN, memcg, "/bin/sh", "-c",
                                  'while :; do cat "$0" > /dev/null; done', fill])
        failcnt0 = read_int(memcg, "memory.failcnt")
        oom0 = keyed(memcg, "memory.oom_control")["oom_kill"]
        assert wait_for(lambda: read_int(memcg, "memory.failcnt") > failcnt0, timeout=60)
        mark = s.log_mark()
        for _ in range(3):
            f0 = read_int(memcg, "memory.failcnt")
            r = s.get("/crash/die.fcgi")
            assert r.status == 500, (r.status, r.body[:300])
            assert "Retry-After" not in r.headers
            r = s.get("/own500.php")
            assert r.status == 500 and b"own error" in r.body, (r.status, r.body[:300])
            assert "Retry-After" not in r.headers
            assert wait_for(lambda: read_int(memcg, "memory.failcnt") > f0, timeout=60)
        assert read_int(memcg, "memory.failcnt") > failcnt0
        assert keyed(memcg, "memory.oom_control")["oom_kill"] == oom0
        log = s.error_log(since=mark)
        assert "SG0202" not in log and "SG0303" not in log, log[-2000:]
        assert get_json(s)["vhosts"][0]["translated"] == 0
    finally:
        if churn:
            churn.kill()
            churn.wait()
        try:
            os.unlink(fill)
        except FileNotFoundError:
            pass
