#!/usr/bin/python3
"""Integration-test harness: a private Apache httpd 2.4 + mod_fcgid + php-cgi server per test.

Every Server gets its own server root (under a world-traversable /tmp/shmguard-it/, because pytest's
tmp_path is inside 0700 directories that www-data cannot traverse), an httpd.conf written from scratch
(LoadModule lines for exactly the modules it needs, nothing from /etc/apache2), a small PHP site, and
mod_fcgid configured with an FcgidWrapper.  By default that wrapper is the OpenVZ beancounter double
(ubc_double/ubc.py): every php-cgi worker's OPcache segment is charged to a `shmpages` budget and a
worker over budget fails for real with PHP's own "Unable to allocate shared memory segment" error.

Typical use (see conftest.py's `server` fixture, which starts, stops and cleans up):

    s = server(max_processes_per_class=4)           # started
    status, headers, body, elapsed = s.get("/index.php")
    s.budget.set_barrier(0)                          # no room for another OPcache segment
    r = s.get("/sleep.php?ms=10")                    # -> 500, error log has PHP's fatal error

mod_fcgid timing to know when writing tests (fcgid_bridge.c / fcgid_spawn_ctl.c, mod_fcgid 2.3.9):
- a request that finds no idle worker while another worker of its class is busy first sleeps 1 s and
  looks again before asking for a spawn: a second concurrent request is ~1 s late, and a request that
  overlaps a slow one by less than 1 s is served by the same worker (use sleeps of >= 2 s);
- spawn score: each spawn adds 1, each exit 2 (decays 1/s); at FcgidSpawnScoreUpLimit (10) spawns are
  refused and the request retries (1 s sleeps) up to ~64 s before a 503. A test that makes more than
  ~3 workers fail in a few seconds should pass spawn_score_uplimit=100;
- a worker that dies at start (the double's over-budget case) gives a 500 in ~50-100 ms.
- graceful restart ends mod_fcgid's process manager and all its php-cgi workers (new PM, new workers).

Run as a script: `harness.py demo --port 8080 [--root DIR] [--shmguard-so SO --shmguard-conf CONF]`
writes a demo server root and prints ROOT=/CONF=/UBC= lines (scripts/run-demo.sh uses it);
`harness.py cleanup --root DIR` stops whatever of that root still runs.
"""

import collections
import http.client
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from ubc_double import ubc  # noqa: E402

APACHE = "/usr/sbin/apache2"
MODULES = "/usr/lib/apache2/modules"
PHP_CGI = "/usr/bin/php-cgi"
PHP_FPM = "/usr/sbin/php-fpm8.2"
PYTHON = "/usr/bin/python3"
RUN_USER = "www-data"
BASE = "/tmp/shmguard-it"
MARKER = "SHMGUARD_IT_ROOT"  # environment variable naming the root, in every process of a server

Response = collections.namedtuple("Response", "status headers body elapsed")
Response.text = property(lambda r: r.body.decode("utf-8", "replace"))


def missing_stack():
    """What the integration tests need and this machine lacks (empty list: all there)."""
    missing = []
    for path, pkg in ((APACHE, "apache2"), (PHP_CGI, "php-cgi"), (PYTHON, "python3"),
                      (os.path.join(MODULES, "mod_fcgid.so"), "libapache2-mod-fcgid"),
                      (os.path.join(MODULES, "mod_mpm_event.so"), "apache2")):
        if not os.path.exists(path):
            missing.append("%s (Debian package %s)" % (path, pkg))
    st = os.stat(SUEXEC_BIN) if os.path.exists(SUEXEC_BIN) else None
    if not (st and st.st_uid == 0 and st.st_mode & 0o4000 and os.path.isfile(SUEXEC_CONF)):
        missing.append("%s, setuid root, and %s (Debian package apache2-suexec-custom)"
                       % (SUEXEC_BIN, SUEXEC_CONF))
    try:
        pwd.getpwnam(RUN_USER)
    except KeyError:
        missing.append("user %s" % RUN_USER)
    if os.geteuid() != 0:
        missing.append("root (the tests start Apache with User %s)" % RUN_USER)
    return missing


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------ /proc
def _proc_table():
    """{pid: (ppid, state, comm)} of every process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                data = f.read()
        except OSError:
            continue
        comm = data[data.index("(") + 1:data.rindex(")")]
        rest = data[data.rindex(")") + 2:].split()
        table[int(name)] = (int(rest[1]), rest[0], comm)
    return table


def descendants(pid, table=None):
    table = table if table is not None else _proc_table()
    children = collections.defaultdict(list)
    for p, (pp, _, _) in table.items():
        children[pp].append(p)
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), ()):
            out.append(c)
            todo.append(c)
    return out


def _threads(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _starttime(pid):
    st = ubc.proc_starttime(pid)
    return st[1] if st else 0


def _exe(pid):
    try:
        return os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return ""


def marked_pids(root):
    """Pids whose environment has SHMGUARD_IT_ROOT=<root> (Apache, its children, the fcgid process
    manager, php-cgi via FcgidInitialEnv, php-fpm)."""
    want = ("%s=%s" % (MARKER, root)).encode()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % name, "rb") as f:
                env = f.read()
        except OSError:
            continue
        if want in env.split(b"\0"):
            out.append(int(name))
    return out


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rindex(")") + 2:].split()[0] not in ("Z", "X")


def _wait_gone(pids, timeout):
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in pids if _alive(p)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def _free_uid(first=64100, last=64999):
    """A uid no account and no process has (for a process limit that counts only its own)."""
    used = set()
    for name in os.listdir("/proc"):
        try:
            used.add(os.stat("/proc/" + name).st_uid)
        except OSError:
            pass
    for uid in range(first, last):
        try:
            pwd.getpwuid(uid)
            continue
        except KeyError:
            pass
        if uid not in used:
            return uid
    raise RuntimeError("no free uid in %d..%d" % (first, last))


def wait_for(pred, timeout=5.0, step=0.05):
    """Polls pred until it returns something true (returned) or timeout passes (pred's last value)."""
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def status_json(s):
    """Server s's /shmguard-status?json (a status page configured at that path), decoded; a
    status other than 200 fails the test with the start of the answer."""
    r = s.get("/shmguard-status?json")
    assert r.status == 200, (r.status, r.text[:300])
    return json.loads(r.text)


# A FastCGI app under /crash/ that a test writes with install_crash_app(): pass CRASH_APP_CONF as
# (part of) extra_conf.
CRASH_APP_CONF = ('<Directory "${SHMGUARD_ROOT}/htdocs/crash">\n'
                  '    AddHandler fcgid-script .fcgi\n</Directory>')


def install_crash_app(s, script):
    """Writes `script` as the executable <htdocs>/crash/die.fcgi of server s (not started yet)."""
    os.makedirs(os.path.join(s.htdocs, "crash"), exist_ok=True)
    app = os.path.join(s.htdocs, "crash", "die.fcgi")
    with open(app, "w") as f:
        f.write(script)
    os.chmod(app, 0o755)
    return app


def kill_root_processes(root, timeout=5.0):
    """SIGTERM then SIGKILL every process marked with this root. Returns the pids that were found."""
    pids = marked_pids(root)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        if not _wait_gone(pids, timeout):
            break
    return pids


def _traversable_by_others(path):
    p = os.path.abspath(path)
    while True:
        st = os.stat(p)
        if not (st.st_mode & 0o001):
            return False
        if p == "/":
            return True
        p = os.path.dirname(p)


# ------------------------------------------------------------------------------------------ the site
SITE = {
    "index.php": r"""<?php
header('Content-Type: text/plain');
$st = function_exists('opcache_get_status') ? @opcache_get_status(false) : false;
echo "shmguard-it php ok\n";
echo "pid=", getmypid(), "\n";
echo "sapi=", PHP_SAPI, "\n";
echo "opcache=", ($st && $st['opcache_enabled']) ? 'on' : 'off', "\n";
echo "memory_consumption=", ini_get('opcache.memory_consumption'), "\n";
""",
    "sleep.php": r"""<?php
header('Content-Type: text/plain');
$ms = isset($_GET['ms']) ? (int)$_GET['ms'] : 0;
if ($ms > 0) usleep($ms * 1000);
echo getmypid();
""",
    "whoami.php": r"""<?php
header('Content-Type: text/plain');
echo getmypid(), " ", posix_geteuid();
""",
    "opcache.php": r"""<?php
header('Content-Type: application/json');
$st = function_exists('opcache_get_status') ? @opcache_get_status(false) : false;
echo json_encode(array(
    'pid' => getmypid(),
    'sapi' => PHP_SAPI,
    'enable' => ini_get('opcache.enable'),
    'memory_consumption' => ini_get('opcache.memory_consumption'),
    'status' => $st,
)), "\n";
""",
    "static.txt": "static ok\n",
    "index.html": "<!doctype html><title>shmguard-it</title><p>static html ok</p>\n",
    "fpm/index.php": r"""<?php
header('Content-Type: text/plain');
echo "shmguard-it fpm ok\n";
echo "pid=", getmypid(), "\n";
echo "sapi=", PHP_SAPI, "\n";
""",
}

MIME_TYPES = """text/html html htm
text/plain txt
text/css css
application/javascript js
application/json json
image/png png
image/jpeg jpg jpeg
"""


# ------------------------------------------------------------------------------------------ Server
class Server:
    """One private Apache server. Options (all keyword):

    mpm                 "event", "prefork" or "worker" (default: $SHMGUARD_IT_MPM, else "event")
    log_level           LogLevel value, default "warn" (e.g. "info fcgid:debug")
    shmguard            LoadModule mod_shmguard (from shmguard_so, else $SHMGUARD_BUILD/mod_shmguard.so,
                        else <repo>/build/mod_shmguard.so; missing -> FileNotFoundError)
    shmguard_conf       text placed right after that LoadModule (extra_conf also works)
    shmguard_conf_file  a file Include-d right after that LoadModule (e.g. <repo>/conf/shmguard.conf)
    wrapper             "ubc" (default: the beancounter double), "plain" (php-cgi with the same OPcache
                        options, no accounting), "shmguard" (build/shmguard-php-wrapper, staged
                        into <root>/bin, in front of the double, for ShmGuardAction degrade), "starter" (a hosting panel's slow
                        starter script, below, in front of the double) or None (no FcgidWrapper)
    starter_delay       seconds the "starter" wrapper (a /bin/sh script like a panel's
                        .php-fcgi-starter) spends before its exec, default 0.7; the worker keeps its
                        pid and start time across the exec (sh -> the double -> php-cgi)
    starter_gate        True: the starter also waits (at most 60 s) until open_starter_gate() is
                        called, so a test can look at the worker before its exec
    starter_segment_mib the starter holds a shared anonymous segment of this size (MAP_SHARED, as
                        /dev/zero in maps) while it waits, then execs (the segment goes); 0: none
    segment_mib         OPcache segment per php-cgi worker (opcache.memory_consumption), default 64
    apcu_mib            APCu segment per worker (apc.shm_size), default 0: APCu off (-d apc.enabled=0)
    fail_with           "apcu": a worker over budget dies of APCu's own error instead of OPcache's
    lean_mib            with wrapper="shmguard": shmguard-php-wrapper's --lean (default 48)
    shm_barrier         shmpages barrier (= limit) in pages, default 262144 (1 GiB)
    privvm_barrier      privvmpages barrier in pages, default 1048576
    ubc_layout, ubc_id  "ovz6" (default, "   101:  kmemsize") or "vz7" ("       101: kmemsize"); "101"
    bc_resources        also write ubc/bc/<id>/resources (VZ7 per-container file)
    refresh_interval    seconds between background budget refreshes (dead workers dropped), default
                        0.2; None: none (call budget.refresh() yourself)
    max_processes_per_class, min_processes_per_class, max_processes, idle_timeout, idle_scan_interval,
    spawn_score_uplimit, max_requests_per_process, process_life_time
                        mod_fcgid directives (None: mod_fcgid's default)
    fcgid_extra         more text in the fcgid section (server scope)
    status              load mod_status with /server-status (default True)
    proxy_fcgi          load mod_proxy + mod_proxy_fcgi (default: True when fpm)
    fpm                 also run a private php-fpm (pool "www", static, fpm_children) on
                        <root>/run/php-fpm.sock; /fpm/*.php is proxied to it
    fpm_status_path     the pool's pm.status_path (e.g. "/fpm-status"); None: none
    fpm_pm              the pool's pm ("static", "dynamic" or "ondemand"), default "static"
    fpm_nproc           None, or RLIMIT_NPROC for the FPM master, which then runs as an unprivileged
                        uid of its own that no other process has (the limit counts every process of
                        the uid and does not apply to root): with pm = ondemand and fpm_nproc=1 its
                        every fork fails for real (EAGAIN). Its socket, pid file and error log are
                        then in <root>/fpmu/ (fpm_sock, fpm_log_path), owned by that uid
    extra_conf          text appended at the end of httpd.conf
    cgroup_dir          a cgroup directory (e.g. a v1 memory cgroup the test made): every apache2
                        command joins it first (writes its own pid to cgroup.procs, then execs), so
                        the server, mod_fcgid's process manager, php-cgi and the sampler run in it
    port                default: a free port
    root                default: a new directory under /tmp/shmguard-it

    The conf defines ${SHMGUARD_ROOT} and ${SHMGUARD_UBC_FILE} (the double's beancounter file) for
    extra_conf/shmguard_conf. With start=False a test may change self.opts and call write() again
    (the budget's state is kept).

    Attributes: root, conf, htdocs, logs, error_log_path, access_log_path, pid_file, port, base_url,
    ubc_dir, budget (ubc.Budget), leftovers (pids stop() had to SIGKILL).
    """

    def __init__(self, name="server", root=None, artifacts=None, mpm=None, log_level="warn",
                 shmguard=False, shmguard_so=None, shmguard_conf="", shmguard_conf_file=None,
                 wrapper="ubc", segment_mib=64, apcu_mib=0, fail_with=None, lean_mib=48,
                 shm_barrier=262144, privvm_barrier=1048576,
                 ubc_layout="ovz6", ubc_id="101", bc_resources=False, refresh_interval=0.2,
                 max_processes_per_class=None, min_processes_per_class=None, max_processes=None,
                 idle_timeout=None, idle_scan_interval=None, spawn_score_uplimit=None,
                 max_requests_per_process=None, process_life_time=None, fcgid_extra="",
                 status=True, proxy_fcgi=None, fpm=False, fpm_children=2, fpm_status_path=None,
                 fpm_pm="static", fpm_nproc=None, extra_conf="", port=None,
                 starter_delay=0.7, starter_gate=False, starter_segment_mib=0, cgroup_dir=None):
        self.name = name
        self.artifacts = artifacts
        mpm = mpm or os.environ.get("SHMGUARD_IT_MPM", "event")  # `make test` runs all three
        self.opts = dict(mpm=mpm, log_level=log_level, wrapper=wrapper, segment_mib=segment_mib,
                         apcu_mib=apcu_mib, fail_with=fail_with, lean_mib=lean_mib,
                         shm_barrier=shm_barrier, privvm_barrier=privvm_barrier, ubc_layout=ubc_layout,
                         ubc_id=ubc_id, bc_resources=bc_resources,
                         max_processes_per_class=max_processes_per_class,
                         min_processes_per_class=min_processes_per_class, max_processes=max_processes,
                         idle_timeout=idle_timeout, idle_scan_interval=idle_scan_interval,
                         spawn_score_uplimit=spawn_score_uplimit,
                         max_requests_per_process=max_requests_per_process,
                         process_life_time=process_life_time, fcgid_extra=fcgid_extra, status=status,
                         proxy_fcgi=fpm if proxy_fcgi is None else proxy_fcgi, fpm=fpm,
                         fpm_children=fpm_children, fpm_status_path=fpm_status_path,
                         fpm_pm=fpm_pm, fpm_nproc=fpm_nproc,
                         extra_conf=extra_conf, shmguard_conf=shmguard_conf,
                         shmguard_conf_file=shmguard_conf_file, starter_delay=starter_delay,
                         starter_gate=starter_gate, starter_segment_mib=starter_segment_mib,
                         cgroup_dir=cgroup_dir)
        self.shmguard_so = None
        if shmguard:
            so = shmguard_so or os.path.join(os.environ.get("SHMGUARD_BUILD", os.path.join(REPO, "build")),
                                             "mod_shmguard.so")
            if not os.path.isfile(so):
                raise FileNotFoundError("mod_shmguard.so not found at %s (build it with `make`, or set "
                                        "SHMGUARD_BUILD)" % so)
            self.shmguard_so = os.path.abspath(so)
        self.refresh_interval = refresh_interval
        self.port = port or free_port()
        self.own_root = root is None
        if root is None:
            os.makedirs(BASE, exist_ok=True)
            st = os.lstat(BASE)
            if not os.path.isdir(BASE) or os.path.islink(BASE) or st.st_uid != os.geteuid():
                raise RuntimeError("%s is not a directory owned by us" % BASE)
            os.chmod(BASE, 0o755)
            root = tempfile.mkdtemp(prefix="%s-" % re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:60], dir=BASE)
        self.root = os.path.abspath(root)
        self.conf = os.path.join(self.root, "httpd.conf")
        self.htdocs = os.path.join(self.root, "htdocs")
        self.logs = os.path.join(self.root, "logs")
        self.error_log_path = os.path.join(self.logs, "error.log")
        self.access_log_path = os.path.join(self.logs, "access.log")
        self.pid_file = os.path.join(self.root, "run", "httpd.pid")
        self.ubc_dir = os.path.join(self.root, "ubc")
        self.starter_gate_path = os.path.join(self.root, "run", "starter-gate")
        fpm_dir = os.path.join(self.root, "fpmu" if fpm_nproc is not None else "run")
        self.fpm_sock = os.path.join(fpm_dir, "php-fpm.sock")
        self.fpm_log_path = os.path.join(self.root, "fpmu" if fpm_nproc is not None else "logs",
                                         "php-fpm.log")
        self.fpm_uid = None
        self.budget = None
        self.running = False
        self.fpm_proc = None
        self.leftovers = []  # pids stop() had to SIGKILL (should stay empty)
        self._refresher = None
        self._refresher_stop = threading.Event()
        self._known = set()  # every pid ever seen belonging to this server
        self.write()

    # -------------------------------------------------------------------------------- files
    def stage(self, src):
        """Copies a file that the server's user executes or reads (a helper, a wrapper binary) into
        <root>/bin, mode 0755, and returns its new path: the one place where such files come from.
        The checkout may be unreadable to that user (a clone in root's 0700 home, a `mktemp -d`), so
        nothing the server's children or its php-cgi use may point into it (check_no_checkout_paths
        refuses a server root that does). A missing source is a clear error."""
        if not os.path.isfile(src):
            raise RuntimeError("harness: cannot stage %s into the server root: no such file "
                               "(is the project built?)" % src)
        dst = os.path.join(self.root, "bin", os.path.basename(src))
        if os.path.abspath(src) != dst:
            shutil.copyfile(src, dst)
        os.chmod(dst, 0o755)
        return dst

    # Directives httpd's parent reads as root while it parses the configuration: their paths may
    # name the checkout (the module under test, a conf file); nothing else may.
    ROOT_READ_DIRECTIVES = ("loadmodule", "include", "includeoptional")
    # Under the root, what the server writes (logs, runtime files, the double's state), not
    # configuration it is given.
    UNCHECKED_DIRS = ("logs", "run", "ubc", "fcgid", "opcache-files")

    def checkout_paths(self):
        """Every place in the server root's configuration, wrappers, helpers and documents that
        names a path inside the checkout (REPO), as "file:line: text" (empty: none). Lines of
        ROOT_READ_DIRECTIVES in httpd.conf are allowed."""
        repos = {os.path.abspath(REPO), os.path.realpath(REPO)}
        rx = re.compile("|".join(re.escape(r.rstrip("/")) + r"(?:/|\b)" for r in sorted(repos)))
        found = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel = os.path.relpath(dirpath, self.root)
            if rel.split(os.sep)[0] in self.UNCHECKED_DIRS:
                dirnames[:] = []
                continue
            for fn in filenames:
                p = os.path.join(dirpath, fn)
                try:
                    if not os.path.isfile(p) or os.path.islink(p) or os.path.getsize(p) > (1 << 20):
                        continue
                    with open(p, "rb") as f:
                        data = f.read()
                except OSError:
                    continue
                if b"\0" in data:  # a binary (a staged program): it names no path to read
                    continue
                for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
                    # The root itself may lie in the checkout (make run's build/demo, when others
                    # can traverse it): its own paths are what the server is meant to use.
                    if not rx.search(line.replace(self.root, "")):
                        continue
                    words = line.split()
                    if p == self.conf and words and words[0].lower() in self.ROOT_READ_DIRECTIVES:
                        continue
                    found.append("%s:%d: %s" % (p, n, line.strip()))
        return found

    def check_no_checkout_paths(self):
        """Raises RuntimeError naming each path into the checkout that the server's user would have
        to read (see checkout_paths). Called before every start."""
        found = self.checkout_paths()
        if found:
            raise RuntimeError(
                "harness: the server root refers into the checkout %s, which the server's user (%s) "
                "may not be able to read; stage the file into the root instead (Server.stage):\n  %s"
                % (REPO, RUN_USER, "\n  ".join(found)))

    @staticmethod
    def php_wrapper_binary():
        return os.path.join(os.environ.get("SHMGUARD_BUILD", os.path.join(REPO, "build")),
                            "shmguard-php-wrapper")

    def env(self, sanitizers=True):
        e = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C",
             MARKER: self.root}
        # `make test-asan-module`: httpd with the ASan runtime preloaded (the module is built with
        # it); reports go to files the make target checks.
        for k in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS"):
            v = os.environ.get("SHMGUARD_IT_" + k)
            if v and sanitizers:
                e[k] = v
        return e

    def write(self):
        """(Re)writes the whole server root: dirs, site, wrapper, budget, httpd.conf."""
        pw = pwd.getpwnam(RUN_USER)
        uid, gid = pw.pw_uid, pw.pw_gid
        os.chmod(self.root, 0o755)
        for d in ("htdocs", "htdocs/fpm", "logs", "run", "bin"):
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
            os.chmod(os.path.join(self.root, d), 0o755)
        ipc = os.path.join(self.root, "fcgid")
        os.makedirs(ipc, exist_ok=True)
        os.chown(ipc, uid, gid)
        os.chmod(ipc, 0o700)
        with open(os.path.join(self.root, ".owner"), "w") as f:
            f.write("%d\n" % os.getpid())
        for rel, text in SITE.items():
            p = os.path.join(self.htdocs, rel)
            with open(p, "w") as f:
                f.write(text)
            os.chmod(p, 0o644)
        with open(os.path.join(self.root, "mime.types"), "w") as f:
            f.write(MIME_TYPES)
        o = self.opts
        self.stage(os.path.join(HERE, "ubc_double", "ubc.py"))
        fail_kib = calibrated_fail_as_kib(o["segment_mib"])
        if not os.path.exists(os.path.join(self.ubc_dir, "state.json")):
            self.budget = ubc.Budget.create(
                self.ubc_dir, php_cgi=PHP_CGI, segment_mib=o["segment_mib"], shm_barrier=o["shm_barrier"],
                privvm_barrier=o["privvm_barrier"], fail_as_kib=fail_kib, ubc_id=o["ubc_id"],
                layout=o["ubc_layout"], bc_resources=o["bc_resources"], owner=(uid, gid),
                apcu_mib=o["apcu_mib"], fail_with=o["fail_with"])
        else:
            self.budget = ubc.Budget(self.ubc_dir)
        self.stage(os.path.join(HERE, "starter_hold.py"))
        double = "%s -I -S %s/bin/ubc.py wrap %s \"$@\"" % (PYTHON, self.root, self.ubc_dir)
        wrappers = {
            "ubc": "#!/bin/sh\n# FcgidWrapper: the OpenVZ shmpages double (accounts, then execs php-cgi)\n"
                   "exec %s\n" % double,
            "plain": "#!/bin/sh\nunset LD_PRELOAD\nexec %s -d opcache.enable=1 -d opcache.memory_consumption=%d %s \"$@\"\n"
                     % (PHP_CGI, o["segment_mib"],
                        ("-d apc.enabled=1 -d apc.shm_size=%dM" % o["apcu_mib"]) if o["apcu_mib"]
                        else "-d apc.enabled=0"),
            "shmguard": "#!/bin/sh\n# FcgidWrapper: shmguard-php-wrapper (degrade) in front of the double\n"
                        "exec %s --state %s/run/shmguard/headroom --opcache %dM --apcu %dM --lean %dM "
                        "--file-cache %s/opcache-files -- %s/bin/php-wrapper-ubc \"$@\"\n"
                        % (self.stage(self.php_wrapper_binary()), self.root, o["segment_mib"], o["apcu_mib"],
                           o["lean_mib"], self.root, self.root),
            "starter": self._starter_text(double),
        }
        cache = os.path.join(self.root, "opcache-files")
        os.makedirs(cache, exist_ok=True)
        os.chown(cache, uid, gid)
        for kind, text in wrappers.items():
            p = os.path.join(self.root, "bin", "php-wrapper-%s" % kind)
            with open(p, "w") as f:
                f.write(text)
            os.chmod(p, 0o755)
        if o["fpm"]:
            self._write_fpm_conf()
        with open(self.conf, "w") as f:
            f.write(self.config_text())

    def _starter_text(self, double):
        """The "starter" wrapper: a /bin/sh script like a hosting panel's .php-fcgi-starter (it sets
        the environment, takes its time, then execs php-cgi; here the double, which execs php-cgi)."""
        o = self.opts
        gate = self.starter_gate_path if o["starter_gate"] else "-"
        lines = ["#!/bin/sh",
                 "# FcgidWrapper like a hosting panel's .php-fcgi-starter: environment (panels set PHPRC",
                 "# and friends here), a slow start, then exec. Generated by tests/integration/harness.py.",
                 "SHMGUARD_IT_STARTER=1",
                 "export SHMGUARD_IT_STARTER"]
        if o["starter_segment_mib"]:
            # the waiting happens in a stage that holds a shared segment until its own exec
            lines.append("exec %s -I -S %s/bin/starter_hold.py %d %s %s -- %s"
                         % (PYTHON, self.root, o["starter_segment_mib"], o["starter_delay"], gate, double))
            return "\n".join(lines) + "\n"
        if o["starter_delay"]:
            lines.append("/bin/sleep %s" % o["starter_delay"])
        if o["starter_gate"]:
            lines.append("n=0")
            lines.append("while [ ! -e %s ] && [ $n -lt 1200 ]; do /bin/sleep 0.05; n=$((n + 1)); done" % gate)
        lines.append("exec %s" % double)
        return "\n".join(lines) + "\n"

    def open_starter_gate(self):
        """Lets every "starter" wrapper waiting at its gate (starter_gate=True) go on to its exec."""
        with open(self.starter_gate_path, "w"):
            pass

    def _write_fpm_conf(self):
        o = self.opts
        own = o["fpm_nproc"] is None  # run as root, children as www-data
        if not own:
            self.fpm_uid = self.fpm_uid or _free_uid()
            d = os.path.dirname(self.fpm_sock)
            os.makedirs(d, exist_ok=True)
            os.chown(d, self.fpm_uid, self.fpm_uid)
            os.chmod(d, 0o755)
        text = """[global]
pid = {run}/php-fpm.pid
error_log = {log}
daemonize = no

[www]
listen = {sock}
pm = {pm}
pm.max_children = {n}
catch_workers_output = yes
""".format(run=os.path.dirname(self.fpm_sock), log=self.fpm_log_path, sock=self.fpm_sock,
           pm=o["fpm_pm"], n=o["fpm_children"])
        if own:
            text += ("user = {u}\ngroup = {u}\nlisten.owner = {u}\nlisten.group = {u}\n"
                     "listen.mode = 0660\n").format(u=RUN_USER)
        else:  # not root: the socket is its uid's; www-data (Apache's children) must connect
            text += "listen.mode = 0666\n"
        if o["fpm_pm"] == "dynamic":
            text += "pm.start_servers = 1\npm.min_spare_servers = 1\npm.max_spare_servers = 1\n"
        if o["fpm_status_path"]:
            text += "pm.status_path = %s\n" % o["fpm_status_path"]
        with open(os.path.join(self.root, "php-fpm.conf"), "w") as f:
            f.write(text)

    def config_text(self):
        o, r = self.opts, self.root
        mods = ["mpm_%s" % o["mpm"], "authz_core", "authz_host", "mime", "dir", "alias", "headers",
                "env", "setenvif"]
        if o["status"]:
            mods.append("status")
        mods.append("fcgid")
        if o["proxy_fcgi"]:
            mods += ["proxy", "proxy_fcgi"]
        L = []
        add = L.append
        add("# Generated by tests/integration/harness.py; self-contained (nothing from /etc/apache2).")
        add('ServerRoot "%s"' % r)
        add('Define SHMGUARD_ROOT "%s"' % r)
        add('Define SHMGUARD_UBC_FILE "%s"' % self.budget.path)
        add("ServerName 127.0.0.1")
        add("Listen 127.0.0.1:%d" % self.port)
        add('PidFile "%s"' % self.pid_file)
        add('DefaultRuntimeDir "%s/run"' % r)
        add('ErrorLog "%s"' % self.error_log_path)
        add("LogLevel %s" % o["log_level"])
        add('LogFormat "%h %l %u %t \\"%r\\" %>s %b %D" timed')
        add('CustomLog "%s" timed' % self.access_log_path)
        add("User %s" % RUN_USER)
        add("Group %s" % RUN_USER)
        add("Timeout 60")
        add("KeepAlive On")
        add("ServerTokens Prod")
        add("")
        for m in mods:
            add("LoadModule %s_module %s/mod_%s.so" % (m, MODULES, m))
        if self.shmguard_so:
            add("")
            add("# ---- mod_shmguard ----")
            add("LoadModule shmguard_module %s" % self.shmguard_so)
            if o["shmguard_conf_file"]:
                add('Include "%s"' % o["shmguard_conf_file"])
            if o["shmguard_conf"]:
                add(o["shmguard_conf"])
        add("")
        if o["mpm"] == "prefork":
            add("StartServers 6\nMinSpareServers 4\nMaxSpareServers 16\nServerLimit 32\nMaxRequestWorkers 32")
        else:
            add("StartServers 2\nServerLimit 4\nThreadsPerChild 25\nMaxRequestWorkers 100\n"
                "MinSpareThreads 25\nMaxSpareThreads 75")
        add("")
        add('TypesConfig "%s/mime.types"' % r)
        add("DirectoryIndex index.php index.html")
        add('DocumentRoot "%s"' % self.htdocs)
        add("<Directory />\n    AllowOverride None\n    Require all denied\n</Directory>")
        add('<Directory "%s">' % self.htdocs)
        add("    Options +ExecCGI -Indexes +FollowSymLinks")
        add("    AllowOverride None")
        add("    Require all granted")
        add("    AddHandler fcgid-script .php")
        if o["wrapper"]:
            add('    FcgidWrapper "%s/bin/php-wrapper-%s" .php' % (r, o["wrapper"]))
        add("</Directory>")
        if o["fpm"]:
            add('<Directory "%s/fpm">' % self.htdocs)
            add('    <FilesMatch "\\.php$">')
            add('        SetHandler "proxy:unix:%s|fcgi://localhost"' % self.fpm_sock)
            add("    </FilesMatch>")
            add("</Directory>")
        if o["status"]:
            add("<Location /server-status>\n    SetHandler server-status\n    Require ip 127.0.0.1\n</Location>")
        add("")
        add("# ---- mod_fcgid ----")
        add('FcgidIPCDir "%s/fcgid"' % r)
        add('FcgidProcessTableFile "%s/run/fcgid_shm"' % r)
        add("FcgidInitialEnv %s %s" % (MARKER, r))
        for key, directive in (("max_processes_per_class", "FcgidMaxProcessesPerClass"),
                               ("min_processes_per_class", "FcgidMinProcessesPerClass"),
                               ("max_processes", "FcgidMaxProcesses"),
                               ("idle_timeout", "FcgidIdleTimeout"),
                               ("spawn_score_uplimit", "FcgidSpawnScoreUpLimit"),
                               ("max_requests_per_process", "FcgidMaxRequestsPerProcess"),
                               ("process_life_time", "FcgidProcessLifeTime")):
            if o[key] is not None:
                add("%s %s" % (directive, o[key]))
        scan = o["idle_scan_interval"]
        if scan is None and (o["idle_timeout"] is not None or o["process_life_time"] is not None):
            scan = 1
        if scan is not None:
            add("FcgidIdleScanInterval %s" % scan)
        if o["fcgid_extra"]:
            add(o["fcgid_extra"])
        if o["extra_conf"]:
            add("")
            add("# ---- extra ----")
            add(o["extra_conf"])
        return "\n".join(L) + "\n"

    # -------------------------------------------------------------------------------- control
    def _apache(self, *args, timeout=30):
        cmd = [APACHE, "-f", self.conf] + list(args)
        if self.opts["cgroup_dir"]:  # join the cgroup, then exec apache2 (its daemon inherits it)
            cmd = ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"',
                   self.opts["cgroup_dir"]] + cmd
        return subprocess.run(cmd, env=self.env(),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout, cwd=self.root)

    def configtest(self):
        """(rc, output) of `apache2 -t` on this conf."""
        p = self._apache("-t")
        return p.returncode, p.stdout.decode("utf-8", "replace")

    def parent_pid(self):
        try:
            with open(self.pid_file) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def _port_answers(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def _generations(self):
        return self.error_log().count("resuming normal operations")

    def start(self, timeout=15.0):
        """`apache2 -k start`; returns when the parent is up, the port answers and Apache logged
        "resuming normal operations". Retries on a lost port race. Raises RuntimeError with the log."""
        self.check_no_checkout_paths()
        if self.opts["fpm"]:
            self._start_fpm()
        for attempt in range(3):
            gens = self._generations()
            mark = self.log_mark()
            p = self._apache("-k", "start")
            if p.returncode != 0:
                out = p.stdout.decode("utf-8", "replace")
                log = self.error_log(mark)
                if "Address already in use" in out + log and attempt < 2:
                    self._reset_port()
                    continue
                self._kill_leftovers()
                raise RuntimeError("apache2 -k start failed (rc %d):\n%s\n--- error log:\n%s"
                                   % (p.returncode, out, log))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                pid = self.parent_pid()
                if pid and self._generations() > gens and self._port_answers():
                    self.running = True
                    self._remember()
                    self._start_refresher()
                    return self
                log = self.error_log(mark)
                if "Address already in use" in log or "could not bind" in log:
                    break
                if not pid and os.path.exists(self.pid_file) and "AH00016" in log:
                    break
                time.sleep(0.05)
            log = self.error_log(mark)
            self._kill_leftovers()
            if ("Address already in use" in log or "could not bind" in log) and attempt < 2:
                self._reset_port()
                continue
            raise RuntimeError("apache2 did not come up on port %d within %.0f s\n--- error log:\n%s"
                               % (self.port, timeout, log))

    def _reset_port(self):
        self.port = free_port()
        with open(self.conf, "w") as f:
            f.write(self.config_text())

    def graceful(self, timeout=15.0):
        """`apache2 -k graceful`; returns when the new generation logged "resuming normal operations"."""
        gens = self._generations()
        self._remember()
        p = self._apache("-k", "graceful")
        if p.returncode != 0:
            raise RuntimeError("apache2 -k graceful failed: %s" % p.stdout.decode("utf-8", "replace"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._generations() > gens and self.parent_pid() and self._port_answers():
                self._remember()
                return self
            time.sleep(0.05)
        raise RuntimeError("graceful restart did not finish within %.0f s\n%s" % (timeout, self.error_log()))

    def _remember(self):
        pid = self.parent_pid()
        if pid:
            self._known.add(pid)
            self._known.update(descendants(pid))
        self._known.update(marked_pids(self.root))

    def processes(self):
        """Live pids of this server: the Apache parent, its descendants (children, fcgid PM, php-cgi)
        and anything else carrying this root's marker (php-fpm)."""
        pids = set(marked_pids(self.root))
        pid = self.parent_pid()
        if pid:
            pids.add(pid)
            pids.update(descendants(pid))
        if self.fpm_proc and self.fpm_proc.poll() is None:
            pids.add(self.fpm_proc.pid)
            pids.update(descendants(self.fpm_proc.pid))
        return sorted(p for p in pids if _alive(p))

    def fcgid_pm_pid(self):
        """The mod_fcgid process manager (the Apache parent's child that spawns php-cgi): the parent
        of the php-cgi workers, else (no worker yet) the parent's oldest single-threaded child."""
        parent = self.parent_pid()
        if not parent:
            return None
        table = _proc_table()
        for w in self.php_workers():
            if w in table and table[w][0] != parent:
                return table[w][0]
        kids = [p for p, v in table.items() if v[0] == parent and v[1] not in ("Z", "X")]
        if self.opts["mpm"] == "prefork":
            return None  # every prefork child is single-threaded: ambiguous without a worker
        single = [p for p in kids if _threads(p) == 1]
        return min(single, key=_starttime) if single else None

    def php_workers(self):
        """Pids of live php-cgi processes of this server (descendants of the Apache parent, i.e. of
        mod_fcgid's process manager), sorted. Zombies excluded."""
        parent = self.parent_pid()
        if not parent:
            return []
        table = _proc_table()
        out = []
        for p in descendants(parent, table):
            ppid, state, comm = table[p]
            if state in ("Z", "X"):
                continue
            if comm.startswith("php-cgi") or "php-cgi" in _exe(p):
                out.append(p)
        return sorted(out)

    def wait_workers(self, n, timeout=10.0):
        """Waits until exactly n php-cgi workers run; returns their pids (raises on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            w = self.php_workers()
            if len(w) == n:
                return w
            if time.monotonic() > deadline:
                raise TimeoutError("expected %d php-cgi workers, have %s" % (n, w))
            time.sleep(0.05)

    def stop(self, timeout=15.0):
        """`apache2 -k stop`; waits until the parent and every process of this server (php-cgi
        included) are gone. Stragglers after timeout are SIGKILLed and listed in self.leftovers."""
        self._remember()
        if self.parent_pid():
            self._apache("-k", "stop")
        fpm = set(self._fpm_pids())
        pids = sorted((self._known | set(self.processes())) - fpm)
        left = _wait_gone(pids, timeout)
        self._stop_fpm()
        left += [p for p in marked_pids(self.root) if p not in left]
        if left:
            self.leftovers += left
            self._kill_leftovers(extra=left)
        self._stop_refresher()
        if self.budget:
            try:
                self.budget.refresh()
            except OSError:
                pass
        self.running = False
        self._known.clear()
        return self.leftovers

    def _kill_leftovers(self, extra=()):
        pids = set(extra) | set(marked_pids(self.root))
        pid = self.parent_pid()
        if pid:
            pids.add(pid)
            pids.update(descendants(pid))
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for p in pids:
                try:
                    os.kill(p, sig)
                except ProcessLookupError:
                    pass
            if not _wait_gone(list(pids), 3.0):
                break

    # -------------------------------------------------------------------------------- php-fpm
    def _start_fpm(self, timeout=10.0):
        if self.fpm_proc and self.fpm_proc.poll() is None:
            return
        if not os.path.exists(PHP_FPM):
            raise RuntimeError("%s missing (Debian package php-fpm)" % PHP_FPM)
        sock = self.fpm_sock
        nproc, uid = self.opts["fpm_nproc"], self.fpm_uid

        def limited():  # the master as its own uid, RLIMIT_NPROC as asked (fpm_nproc)
            import resource
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        log = open(os.path.join(self.logs, "php-fpm.out"), "ab")
        self.fpm_proc = subprocess.Popen(
            [PHP_FPM, "-F", "-y", os.path.join(self.root, "php-fpm.conf"), "-d", "opcache.enable=1",
             "-d", "opcache.memory_consumption=%d" % self.opts["segment_mib"]],
            env=self.env(sanitizers=False), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=self.root, preexec_fn=limited if nproc is not None else None)
        log.close()
        # ondemand starts no child; dynamic pm.start_servers (1)
        want = {"static": self.opts["fpm_children"], "dynamic": 1}.get(self.opts["fpm_pm"], 0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(sock) and len(descendants(self.fpm_proc.pid)) >= want:
                return
            if self.fpm_proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("php-fpm did not start:\n%s" % self._read(self.fpm_log_path))

    def _stop_fpm(self, timeout=10.0):
        if not self.fpm_proc:
            return
        kids = descendants(self.fpm_proc.pid)
        if self.fpm_proc.poll() is None:
            self.fpm_proc.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.fpm_proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.fpm_proc.kill()
                self.fpm_proc.wait()
        left = _wait_gone(kids, timeout)
        for p in left:
            os.kill(p, signal.SIGKILL)
        self.leftovers += left
        self.fpm_proc = None

    def _fpm_pids(self):
        if not self.fpm_proc or self.fpm_proc.poll() is not None:
            return []
        return [self.fpm_proc.pid] + descendants(self.fpm_proc.pid)

    def fpm_workers(self):
        if not self.fpm_proc or self.fpm_proc.poll() is not None:
            return []
        return sorted(descendants(self.fpm_proc.pid))

    # -------------------------------------------------------------------------------- budget refresher
    def _start_refresher(self):
        if self.refresh_interval is None or self.budget is None or self._refresher:
            return
        self._refresher_stop.clear()

        def loop():
            while not self._refresher_stop.wait(self.refresh_interval):
                try:
                    self.budget.refresh(force=False)
                except Exception:  # a test rewriting the state dir must not kill the thread
                    pass

        self._refresher = threading.Thread(target=loop, name="ubc-refresher-%s" % self.name, daemon=True)
        self._refresher.start()

    def _stop_refresher(self):
        if self._refresher:
            self._refresher_stop.set()
            self._refresher.join(5)
            self._refresher = None

    def pause_refresher(self):
        """Stops the background refresher (e.g. before budget.write_raw())."""
        self._stop_refresher()

    # -------------------------------------------------------------------------------- logs
    @staticmethod
    def _read(path, since=0):
        try:
            with open(path, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_mark(self):
        """Current size of the error log: pass to error_log(since=...) to read only what follows."""
        try:
            return os.path.getsize(self.error_log_path)
        except OSError:
            return 0

    def error_log(self, since=0):
        return self._read(self.error_log_path, since)

    def access_log(self):
        return self._read(self.access_log_path)

    def wait_log(self, pattern, timeout=10.0, since=0):
        """Waits until the error log (from byte `since`) matches regex `pattern`; returns the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.error_log(since))
            if m:
                return m
            if time.monotonic() > deadline:
                raise TimeoutError("error log never matched %r; it has:\n%s" % (pattern, self.error_log(since)))
            time.sleep(0.05)

    # -------------------------------------------------------------------------------- HTTP
    @property
    def base_url(self):
        return "http://127.0.0.1:%d" % self.port

    def url(self, path="/"):
        return self.base_url + path

    def get(self, path="/", headers=None, method="GET", body=None, timeout=30.0):
        """One request on a fresh connection: Response(status, headers, body, elapsed seconds).
        headers is an http.client.HTTPMessage (case-insensitive .get())."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        t0 = time.monotonic()
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return Response(resp.status, resp.headers, data, time.monotonic() - t0)
        finally:
            conn.close()

    def get_many(self, paths, timeout=30.0, delays=None, headers=None):
        """Concurrent requests (one thread each, released together by a barrier; delays[i] seconds
        later for request i). Returns Responses in order; a request that raised has status 0,
        headers None and the exception's repr as body."""
        paths = list(paths)
        delays = list(delays) if delays is not None else [0.0] * len(paths)
        results = [None] * len(paths)
        barrier = threading.Barrier(len(paths))

        def one(i):
            barrier.wait()
            if delays[i]:
                time.sleep(delays[i])
            t0 = time.monotonic()
            try:
                results[i] = self.get(paths[i], headers=headers, timeout=timeout)
            except Exception as e:  # noqa: BLE001 - reported in the result
                results[i] = Response(0, None, repr(e).encode(), time.monotonic() - t0)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(paths))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout + max(delays) + 5)
        return results

    # -------------------------------------------------------------------------------- teardown
    def save_artifacts(self):
        """Copies conf, logs and the double's state into self.artifacts (pytest's tmp_path)."""
        if not self.artifacts:
            return
        os.makedirs(self.artifacts, exist_ok=True)
        for rel in ("httpd.conf", "php-fpm.conf", "logs", "ubc"):
            src = os.path.join(self.root, rel)
            dst = os.path.join(self.artifacts, rel)
            try:
                if os.path.isdir(src):
                    shutil.copytree(src, dst, dirs_exist_ok=True)
                elif os.path.exists(src):
                    shutil.copyfile(src, dst)
            except OSError:
                pass

    def close(self, remove=True):
        """Stops everything (never leaves a process), saves artifacts, removes the root.
        Returns the pids that had to be SIGKILLed."""
        try:
            left = self.stop()
        finally:
            self._kill_leftovers()
            self._stop_refresher()
            self.save_artifacts()
            if remove and self.own_root:
                shutil.rmtree(self.root, ignore_errors=True)
        return left

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
        return False


# ------------------------------------------------------------------------------------------ DokuWiki
DOKUWIKI = "/usr/share/dokuwiki"
WIKI_PAGE = """====== mod_shmguard test wiki ======

A real PHP application (Debian's DokuWiki package) for the benchmarks and the soak.

===== Headings, lists, tables =====
  * one **bold** item with //italic// text and ''code''
  * two [[wiki:syntax|a link]] and a footnote((the footnote))
    * nested
^ head ^ value ^
| a    | 1     |
| b    | 2     |
<code php>
<?php echo "highlighted by GeSHi";
</code>
"""


def install_dokuwiki(server, path="wiki"):
    """Copies Debian's DokuWiki into the server's htdocs/<path> with its own conf and data under
    <root>/wiki-home (nothing of /etc or /var/lib is written). Returns the URL path of the start
    page."""
    if not os.path.isdir(DOKUWIKI):
        raise RuntimeError("%s missing (Debian package dokuwiki)" % DOKUWIKI)
    pw = pwd.getpwnam(RUN_USER)
    dst = os.path.join(server.htdocs, path)
    home = os.path.join(server.root, "wiki-home")
    for d in (dst, home):
        shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(DOKUWIKI, dst, symlinks=False, ignore_dangling_symlinks=True,
                    ignore=shutil.ignore_patterns(".htaccess"))
    shutil.copytree("/etc/dokuwiki", os.path.join(home, "conf"), ignore_dangling_symlinks=True)
    shutil.copytree("/var/lib/dokuwiki/data", os.path.join(home, "data"), ignore_dangling_symlinks=True)
    for sub in ("pages", "attic", "meta", "media", "media_attic", "media_meta", "cache", "index",
                "locks", "tmp"):
        os.makedirs(os.path.join(home, "data", sub), exist_ok=True)
    with open(os.path.join(dst, "inc", "preload.php"), "w") as f:
        f.write("<?php\nif(!defined('DOKU_CONF')) define('DOKU_CONF', '%s/conf/');\n" % home)
    with open(os.path.join(home, "conf", "local.php"), "w") as f:
        f.write("<?php\n$conf['savedir'] = '%s/data';\n$conf['userewrite'] = 0;\n"
                "$conf['useacl'] = 0;\n" % home)
    with open(os.path.join(home, "data", "pages", "start.txt"), "w") as f:
        f.write(WIKI_PAGE)
    for top in (home, dst):
        for d, dirs, files in os.walk(top):
            os.chown(d, pw.pw_uid, pw.pw_gid)
            for n in files:
                os.chown(os.path.join(d, n), pw.pw_uid, pw.pw_gid)
    return "/%s/doku.php?id=start" % path


# ------------------------------------------------------------------------------------------ helpers
_calibrated = {}


def calibrated_fail_as_kib(segment_mib):
    """RLIMIT_AS (KiB) that makes php-cgi's OPcache mmap of segment_mib fail (cached per process)."""
    if segment_mib not in _calibrated:
        _calibrated[segment_mib] = ubc.calibrate_fail_as_kib(PHP_CGI, segment_mib)
    return _calibrated[segment_mib]


# ------------------------------------------------------------------------------------------ suEXEC
SUEXEC_BIN = "/usr/lib/apache2/suexec"
# apache2-suexec-custom reads its document root from line 1 of this file (the package's /var/www);
# suexec runs a wrapper only from below it.
SUEXEC_CONF = "/etc/apache2/suexec/" + RUN_USER
SUEXEC_ACCOUNT = re.compile(r"^sgit(\d+)([a-z])$")  # test accounts: sgit<harness pid><site letter>


def suexec_docroot():
    with open(SUEXEC_CONF) as f:
        return f.readline().strip()


def _suexec_dir(pid):
    return os.path.join(suexec_docroot(), "shmguard-it-%d" % pid)


class SuexecSites:
    """Accounts for suEXEC sites, as a hosting panel makes them (one user and group per site), and
    each site's FcgidWrapper where suexec accepts it: in <suexec docroot>/shmguard-it-<pid>/<user>/,
    owned by the site's user, writable by nobody else (suexec refuses anything else, and only from
    below its compiled-in document root, so this one directory lies outside the server root).
    Created for one test and removed after it; cleanup_stale_suexec() removes what a killed run
    left. Use as a context manager."""

    def __init__(self, letters="ab"):
        self.users = ["sgit%d%s" % (os.getpid(), c) for c in letters]
        self.dir = _suexec_dir(os.getpid())

    def __enter__(self):
        cleanup_stale_suexec()
        for u in self.users:
            try:
                pwd.getpwnam(u)
            except KeyError:
                subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                                "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", u],
                               check=True, capture_output=True)
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.dir, ignore_errors=True)
        for u in self.users:
            subprocess.run(["userdel", u], capture_output=True)
        return False

    @staticmethod
    def ids(user):
        pw = pwd.getpwnam(user)
        return pw.pw_uid, pw.pw_gid

    def wrapper(self, user, server):
        """The site's FcgidWrapper: the beancounter double (as the server's own "ubc" wrapper) run
        as `user`. suexec passes only its safe variables, so the wrapper sets the marker that finds
        a server's processes again. Returns its path."""
        uid, gid = self.ids(user)
        d = os.path.join(self.dir, user)
        os.makedirs(d, exist_ok=True)
        os.chown(d, uid, gid)
        os.chmod(d, 0o755)
        p = os.path.join(d, "php-wrapper")
        with open(p, "w") as f:
            f.write("#!/bin/sh\n# FcgidWrapper of a suEXEC site (generated by tests/integration/harness.py)\n"
                    "%s=%s\nexport %s\nexec %s -I -S %s/bin/ubc.py wrap %s \"$@\"\n"
                    % (MARKER, server.root, MARKER, PYTHON, server.root, server.ubc_dir))
        os.chown(p, uid, gid)
        os.chmod(p, 0o755)
        return p


def cleanup_stale_suexec():
    """Removes test accounts and wrapper directories of harness processes that no longer exist."""
    for pw in pwd.getpwall():
        m = SUEXEC_ACCOUNT.match(pw.pw_name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            subprocess.run(["userdel", pw.pw_name], capture_output=True)
    if os.path.isfile(SUEXEC_CONF):
        top = suexec_docroot()
        for name in os.listdir(top) if os.path.isdir(top) else ():
            m = re.match(r"^shmguard-it-(\d+)$", name)
            if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
                shutil.rmtree(os.path.join(top, name), ignore_errors=True)


def cleanup_stale_roots():
    """Removes roots under BASE left by harness processes that no longer exist (killing their
    processes first). Roots of live test sessions are left alone."""
    if not os.path.isdir(BASE):
        return
    for name in os.listdir(BASE):
        root = os.path.join(BASE, name)
        try:
            with open(os.path.join(root, ".owner")) as f:
                owner = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if owner != os.getpid() and _alive(owner):
            continue
        kill_root_processes(root)
        shutil.rmtree(root, ignore_errors=True)


def _demo(argv):
    import argparse
    ap = argparse.ArgumentParser(prog="harness.py demo")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--root")
    ap.add_argument("--shmguard-so")
    ap.add_argument("--shmguard-conf")
    ap.add_argument("--segment-mib", type=int, default=64)
    ap.add_argument("--shm-barrier", type=int, default=262144)
    ap.add_argument("--log-level", default="info")
    a = ap.parse_args(argv)
    root = a.root
    if root is None:
        cand = os.path.join(REPO, "build", "demo")
        os.makedirs(cand, exist_ok=True)
        root = cand if _traversable_by_others(cand) else "/tmp/shmguard-demo-%d" % a.port
    if os.path.isdir(root):
        kill_root_processes(os.path.abspath(root))
        shutil.rmtree(root)
    os.makedirs(root)
    s = Server(name="demo", root=root, port=a.port, log_level=a.log_level, segment_mib=a.segment_mib,
               shm_barrier=a.shm_barrier, shmguard=bool(a.shmguard_so), shmguard_so=a.shmguard_so,
               shmguard_conf_file=os.path.abspath(a.shmguard_conf) if a.shmguard_conf else None,
               # The demo's module reads the double's beancounter file, so shrinking the budget
               # (ubc.py set-barrier) shows the guard at work; numbers on the 503 page.
               shmguard_conf=("ShmGuardBeancounters ${SHMGUARD_UBC_FILE}\nShmGuardDetail On"
                              if a.shmguard_so else ""),
               refresh_interval=None)
    if not _traversable_by_others(s.root):
        sys.stderr.write("warning: %s is not traversable by %s\n" % (s.root, RUN_USER))
    try:
        s.check_no_checkout_paths()
    except RuntimeError as e:
        sys.stderr.write("run-demo: %s\n" % e)
        return 1
    print("ROOT=%s" % s.root)
    print("CONF=%s" % s.conf)
    print("UBC=%s" % s.ubc_dir)
    print("ENV_MARKER=%s=%s" % (MARKER, s.root))
    return 0


def main(argv):
    if argv and argv[0] == "demo":
        return _demo(argv[1:])
    if len(argv) == 3 and argv[0] == "cleanup" and argv[1] == "--root":
        pids = kill_root_processes(os.path.abspath(argv[2]))
        if pids:
            print("stopped leftover processes: %s" % " ".join(map(str, pids)))
        return 0
    sys.stderr.write("usage: harness.py demo --port PORT [--root DIR] [--shmguard-so SO --shmguard-conf CONF]\n"
                     "       harness.py cleanup --root DIR\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


class WorkerWatch:
    """The most php-cgi workers of server `s` seen at once, polled every `every` seconds from a
    thread until stop() (which returns it). A process gone between two reads is not an error."""

    def __init__(self, s, every=0.02):
        self.s, self.every, self.most, self.stop_ = s, every, 0, threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop_.is_set():
            try:
                self.most = max(self.most, len(self.s.php_workers()))
            except Exception:  # noqa: BLE001 - a process gone between two reads
                pass
            self.stop_.wait(self.every)

    def stop(self):
        self.stop_.set()
        self.t.join()
        return self.most
