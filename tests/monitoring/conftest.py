"""Fixtures for the monitoring tests (Prometheus rules, Grafana dashboard, Icinga 2 / Nagios).

`exported` is what ?metrics really exports: the status page of a real Apache with the module
(tests/integration/harness.py: mod_fcgid + php-cgi through the beancounter double, PHP-FPM behind
mod_proxy_fcgi, a worker of each running), read once per session, plus the same renderer
(core render_prometheus, the sampler's first part of ?metrics) run through shmguard-probe on the
fixture trees for the sources this machine has not got (cgroup v1/v2 with events, strict
overcommit, a hardware node). {metric: {label: {values}}}.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests" / "integration"))
import harness  # noqa: E402
import promql  # noqa: E402

BUILD = Path(os.environ.get("SHMGUARD_BUILD", REPO / "build"))
PROBE = BUILD / "shmguard-probe"
FIXTURES = REPO / "tests" / "fixtures"
CONF = ("ShmGuardBeancounters ${SHMGUARD_UBC_FILE}\nShmGuardInterval 200ms\n"
        "<Location /shmguard-status>\nSetHandler shmguard-status\nShmGuardStatusPage On\n</Location>")

# Metrics another change is adding to ?metrics, with the labels the rules and panels may use on
# them. While the module does not export one, it may be missing; once it does, it is checked like
# every other (and this entry should go).
PENDING = {}  # none now: shmguard_workers_degraded is exported since the degrade change

# The probe on fixture trees: the sources the build machine lacks.
PROBE_CASES = [
    ["--procfs", FIXTURES / "trees/cgroup2-limited/proc", "--sysfs", FIXTURES / "trees/cgroup2-limited/sys"],
    ["--procfs", FIXTURES / "trees/cgroup1-limited/proc", "--sysfs", FIXTURES / "trees/cgroup1-limited/sys"],
    ["--procfs", FIXTURES / "trees/strict-overcommit/proc", "--sysfs", FIXTURES / "trees/strict-overcommit/sys"],
    ["--procfs", FIXTURES / "trees/mixed-beancounter-binds/proc",
     "--sysfs", FIXTURES / "trees/mixed-beancounter-binds/sys"],
    ["--beancounters", FIXTURES / "beancounters/hardware-node.txt", "--cgroup", "off"],
]


def _status_metrics():
    missing = harness.missing_stack()
    if missing:
        pytest.fail("the monitoring tests read a real server's ?metrics and need: %s (`make test` "
                    "installs them)" % "; ".join(missing), pytrace=False)
    s = harness.Server(name="monitoring", shmguard=True, shmguard_so=str(BUILD / "mod_shmguard.so"),
                       shmguard_conf=CONF, fpm=True, fpm_children=2)
    try:
        s.start()
        for path in ("/index.php", "/fpm/index.php"):
            r = s.get(path)
            assert r.status == 200, (path, r)
        # Until the sampler has seen a worker of each backend.
        deadline = time.monotonic() + 15
        while True:
            r = s.get("/shmguard-status?metrics")
            assert r.status == 200, r
            text = r.text
            seen = promql.parse_exposition(text)
            workers = {}
            for line in text.splitlines():
                if line.startswith("shmguard_fastcgi_workers{"):
                    workers[line.split('"')[1]] = float(line.split()[-1])
            if workers.get("mod_fcgid", 0) >= 1 and workers.get("php-fpm", 0) >= 1 \
                    and "shmguard_beancounter_failcnt_total" in seen:
                return text
            if time.monotonic() > deadline:
                raise AssertionError("the status page never showed both workers:\n" + text)
            time.sleep(0.2)
    finally:
        s.close()


@pytest.fixture(scope="session")
def status_metrics_text():
    return _status_metrics()


@pytest.fixture(scope="session")
def exported(status_metrics_text):
    if not (PROBE.is_file() and os.access(PROBE, os.X_OK)):
        pytest.fail("probe not built: %s" % PROBE, pytrace=False)
    out = promql.parse_exposition(status_metrics_text)
    for args in PROBE_CASES:
        p = subprocess.run([str(PROBE), *map(str, args), "--devshm", "off", "--format", "prometheus"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        promql.parse_exposition(p.stdout, out)
    return out


@pytest.fixture(scope="session")
def pending():
    return PENDING
