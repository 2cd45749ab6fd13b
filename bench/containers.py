#!/usr/bin/python3
"""P7: PHP in a memory cgroup (issue 17), on REAL cgroup v1 memory groups this script makes under its
own memory cgroup (and removes, even on failure), as tests/integration/test_containers.py does.

  cache   a 768 MiB group whose page cache was filled first (a 1.2 GB file written and synced
          from inside it); php-cgi with OPcache 128 MiB + APCu 32 MiB; 8 keep-alive connections to
          a 20 ms PHP page for S seconds, without and with the module: served 200s with ÷ without
          (target >= 0.98), after a 3 s warm-up load that is not counted (the class grows to its
          workers in it, with and without)
  tight   a group whose limit is its usage after start + 160 MiB; every request touches 40 MiB
          (a PHP script, memory_limit -1): 8 connections need far more than the group holds, the
          kernel OOM-kills php-cgi under load. Bare 500s (no Retry-After) without and with the
          module (target: 0 with it: each OOM-killed request answered with the diagnosed 503)

Usage: bench/containers.py [--seconds S] [--clients N]   (a benchmark, not a test; prints a table)
"""

import argparse
import os
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
sys.path.insert(0, HERE)
import harness  # noqa: E402
import test_containers as tc  # noqa: E402  (the cgroup helpers)
from serving import load  # noqa: E402

MIB = 1 << 20
ARTIFACTS = os.environ.get("SHMGUARD_BENCH_ARTIFACTS", "/tmp/shmguard-bench-p7")
WARMUP_S = 3  # cache: load before the measured run, for both (the class's workers start in it)
TUNING = "FcgidInitialEnv PHP_FCGI_MAX_REQUESTS 10000\nFcgidErrorScanInterval 1\n"
TOUCH_PHP = r"""<?php
ini_set('memory_limit', '-1');
$s = str_repeat('x', 40 << 20);
usleep(20000);
header('Content-Type: text/plain');
echo strlen($s), "\n";
"""


def group(limit):
    parent = tc.own_memory_cgroup()
    d = os.path.join(parent, "shmguard-bench-%d-%s" % (os.getpid(), uuid.uuid4().hex[:8]))
    os.mkdir(d)
    with open(os.path.join(d, "memory.limit_in_bytes"), "w") as f:
        f.write(str(limit))
    return d, parent


def server(name, module, d):
    s = harness.Server(name="bench-p7-" + name, artifacts=os.path.join(ARTIFACTS, name),
                       shmguard=module, shmguard_conf=tc.CONF if module else "", wrapper="plain",
                       segment_mib=128, apcu_mib=32, spawn_score_uplimit=100,
                       max_requests_per_process=10000, fcgid_extra=TUNING, log_level="warn",
                       cgroup_dir=d)
    s.write()
    with open(os.path.join(s.htdocs, "touch.php"), "w") as f:
        f.write(TOUCH_PHP)
    return s


def cache(module, clients, seconds):
    d, parent = group(768 * MIB)
    s = None
    try:
        s = server("cache-" + ("module" if module else "alone"), module, d)
        s.start()
        fill = os.path.join(s.root, "cache-fill.bin")
        r = tc.in_group(d, ["dd", "if=/dev/zero", "of=" + fill, "bs=1M", "count=1200",
                            "conv=fsync", "status=none"], timeout=600)
        assert r.returncode == 0
        assert s.get("/sleep.php?ms=20").status == 200
        time.sleep(1.0)  # the sampler's samples of the full cache
        load(s, "/sleep.php?ms=20", clients, WARMUP_S)  # the class grows to its workers: not counted
        oom0 = tc.keyed(d, "memory.oom_control")["oom_kill"]
        st = load(s, "/sleep.php?ms=20", clients, seconds)
        st["workers"] = len(s.php_workers())
        st["oom_kill"] = tc.keyed(d, "memory.oom_control")["oom_kill"] - oom0
        os.unlink(fill)
        return st
    finally:
        if s:
            s.close()
        tc.remove_cgroup(d, parent)


def tight(module, clients, seconds):
    d, parent = group(768 * MIB)
    s = None
    try:
        s = server("tight-" + ("module" if module else "alone"), module, d)
        s.start()
        assert s.get("/sleep.php").status == 200
        _, used, _ = tc.counted(d)
        with open(os.path.join(d, "memory.limit_in_bytes"), "w") as f:
            f.write(str(used + 160 * MIB))
        time.sleep(1.0)
        oom0 = tc.keyed(d, "memory.oom_control")["oom_kill"]
        st = load(s, "/touch.php", clients, seconds)
        st["workers"] = len(s.php_workers())
        st["oom_kill"] = tc.keyed(d, "memory.oom_control")["oom_kill"] - oom0
        return st
    finally:
        if s:
            s.close()
        tc.remove_cgroup(d, parent)


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--smoke", action="store_true", help="2 s each: the script runs")
    a, _ = ap.parse_known_args(argv)  # bench/run.sh passes P6's options too
    if a.smoke:
        a.seconds = 2
    parent = tc.own_memory_cgroup()
    if parent is None or not os.path.isfile(os.path.join(parent, "memory.limit_in_bytes")):
        print("P7 skipped: no cgroup v1 memory controller for this process")
        return 0
    rows = []
    for name, fn in (("cache", cache), ("tight", tight)):
        for module in (False, True):
            rows.append((name, module, fn(module, a.clients, a.seconds)))
    print("P7 memory cgroup (v1; OPcache 128 MiB + APCu 32 MiB per php-cgi; %d connections x %g s)"
          % (a.clients, a.seconds))
    print("%-6s %-7s %7s %6s %6s %8s %6s %8s %8s" % ("group", "module", "200", "500", "503",
                                                    "503-noRA", "other", "oom_kill", "workers"))
    by = {}
    for name, module, st in rows:
        by[(name, module)] = st
        print("%-6s %-7s %7d %6d %6d %8d %6d %8d %8d" % (
            name, "with" if module else "without", st["200"], st["500"], st["503"],
            st["503_no_retry"], st["other"], st["oom_kill"], st["workers"]))
    ratio = by[("cache", True)]["200"] / max(1, by[("cache", False)]["200"])
    print("cache: served with / without = %.3f (target >= 0.98): %s"
          % (ratio, "met" if ratio >= 0.98 else "MISSED"))
    print("tight: bare 500s without %d, with %d (target 0 with): %s"
          % (by[("tight", False)]["500"], by[("tight", True)]["500"],
             "met" if by[("tight", True)]["500"] == 0 else "MISSED"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
