#!/usr/bin/python3
"""P8: two real applications on one budget (issue 18). Site A is Debian's DokuWiki (as in P6),
site B Debian's WordPress on a real MariaDB server that this script starts itself (Debian's
mariadb-server: `mariadb-install-db` + `mariadbd` as the `mysql` user, a private datadir and
socket under its own root in /tmp/shmguard-it, no TCP; stopped and removed at the end). Both run
under mod_fcgid + php-cgi with OPcache 256 MiB + APCu 32 MiB per worker, two name-based vhosts
(two mod_fcgid classes), and the OpenVZ shmpages double holds 3 such workers in all.

Per config, one server:
  main    A (16 keep-alive connections) warms up 3 s, then runs alone for S s ("A alone"), then
          S s more while B gets 2 requests/s (a fresh connection each, open loop: a request is
          sent every 0.5 s whether or not the last one was answered); then A goes quiet and B
          goes on at 2/s for 10 s ("after A quiet": the first B request sent after A's last
          answer, and the first B request served after it).
  reclaim Apache restarted (no worker left); A at 16 connections for 5 s takes the workers, goes
          quiet, and B's first request ever is sent (A's idle workers hold the whole budget:
          the field report's case).
Configs: module (defaults: ShmGuardAction refuse, ShmGuardWait 5s, ShmGuardReclaim on),
mod_fcgid alone untuned (its defaults), mod_fcgid alone tuned (FcgidMaxProcesses 3). Every config
has P6's mod_fcgid TUNING (PHP_FCGI_MAX_REQUESTS agreeing with mod_fcgid, FcgidErrorScanInterval 1).
Goals: B served >= 99 %, B's p99 <= 3 s, A's served in the mixed span >= 0.6 x A alone, B's first
request after A goes quiet served within 5 s.

Usage: bench/sharing.py [--seconds S] [--configs module,untuned,tuned]   (prints a table; a
benchmark, not a test; needs Debian's wordpress, wordpress-theme-twentytwentythree, php-mysql and
mariadb-server: `sh scripts/deps.sh bench`)
"""

import argparse
import http.client
import json
import math
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import serving  # noqa: E402
from serving import harness  # noqa: E402

WORDPRESS = "/usr/share/wordpress"
MARIADB_INSTALL_DB = "/usr/bin/mariadb-install-db"
MARIADBD = "/usr/sbin/mariadbd"
MARIADB = "/usr/bin/mariadb"
PHP_CLI = "/usr/bin/php"
DB_USER = "mysql"  # the unprivileged user Debian's mariadb-server creates
A, B = "a.test", "b.test"
# A vhost with a mod_fcgid directive of its own has its own mod_fcgid vhost id, hence its own
# process class (tests/integration/test_sharing.py does the same).
VHOSTS = "".join('<VirtualHost 127.0.0.1:*>\n  ServerName %s\n  FcgidIdleTimeout 300\n'
                 '</VirtualHost>\n' % n for n in (A, B))
STATUS = "<Location /shmguard-status>\n    SetHandler shmguard-status\n    ShmGuardStatusPage On\n</Location>\n"
B_MARK = b"P8 bench blog"  # the blog's title: a 200 without it is not WordPress's page
B_RATE = 2.0
B_AFTER = 10.0  # seconds B goes on after A is quiet
B_TIMEOUT = 90.0  # longer than mod_fcgid's own ~64 s wait for a process slot
ARTIFACTS = os.environ.get("SHMGUARD_BENCH_ARTIFACTS_P8", "/tmp/shmguard-bench-p8")


def missing():
    return ["%s (Debian package %s)" % (p, pkg) for p, pkg in (
        (WORDPRESS + "/wp-settings.php", "wordpress"),
        (WORDPRESS + "/wp-content/themes/twentytwentythree", "wordpress-theme-twentytwentythree"),
        (MARIADBD, "mariadb-server"), (MARIADB_INSTALL_DB, "mariadb-server"), (MARIADB, "mariadb-client"),
        (PHP_CLI, "php-cli"), (harness.DOKUWIKI, "dokuwiki")) if not os.path.exists(p)]


class MariaDB:
    """A private MariaDB server for the benchmark: datadir, socket, logs under its own root
    (a directory in harness.BASE with an .owner file and the harness's marker in mariadbd's
    environment, so a stale root is cleaned up like a test server's); no TCP; mariadbd drops to
    the `mysql` user. stop() ends it and removes the root."""

    def __init__(self):
        os.makedirs(harness.BASE, exist_ok=True)
        self.root = tempfile.mkdtemp(prefix="bench-p8-mariadb-", dir=harness.BASE)
        os.chmod(self.root, 0o755)
        with open(os.path.join(self.root, ".owner"), "w") as f:
            f.write("%d\n" % os.getpid())
        self.datadir = os.path.join(self.root, "data")
        self.run = os.path.join(self.root, "run")
        self.socket = os.path.join(self.run, "mysqld.sock")
        self.log = os.path.join(self.root, "mariadbd.log")
        self.proc = None
        self.wordpress_installed = False

    def _env(self):
        return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", harness.MARKER: self.root}

    def start(self, timeout=60.0):
        pw = pwd.getpwnam(DB_USER)
        os.makedirs(self.run)
        os.chown(self.run, pw.pw_uid, pw.pw_gid)
        os.chmod(self.run, 0o755)  # php-cgi (www-data) reaches the socket through it
        out = subprocess.run([MARIADB_INSTALL_DB, "--no-defaults", "--user=" + DB_USER,
                              "--datadir=" + self.datadir, "--auth-root-authentication-method=socket",
                              "--skip-test-db"], env=self._env(), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        if out.returncode != 0:
            raise RuntimeError("mariadb-install-db failed:\n" + out.stdout.decode("utf-8", "replace"))
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [MARIADBD, "--no-defaults", "--user=" + DB_USER, "--datadir=" + self.datadir,
                 "--socket=" + self.socket, "--pid-file=" + os.path.join(self.run, "mysqld.pid"),
                 "--skip-networking", "--log-error=" + self.log, "--skip-log-bin",
                 "--innodb-buffer-pool-size=64M", "--max-connections=300"],
                env=self._env(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("mariadbd exited (%s):\n%s" % (self.proc.returncode, self._log()))
            if os.path.exists(self.socket) and self.sql("SELECT 1", check=False).returncode == 0:
                return self
            time.sleep(0.2)
        raise RuntimeError("mariadbd did not answer within %.0f s:\n%s" % (timeout, self._log()))

    def _log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def sql(self, text, check=True):
        p = subprocess.run([MARIADB, "--no-defaults", "--socket=" + self.socket, "-u", "root", "-e", text],
                           env=self._env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        if check and p.returncode != 0:
            raise RuntimeError("mariadb: %s: %s" % (text, p.stdout.decode("utf-8", "replace")))
        return p

    def stop(self):
        try:
            if self.proc and self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(60)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
        finally:
            harness.kill_root_processes(self.root)
            shutil.rmtree(self.root, ignore_errors=True)


WP_CONFIG = """<?php
/* Written by bench/sharing.py: the private MariaDB on its socket, nothing fetched from outside. */
define('DB_NAME', 'wordpress');
define('DB_USER', 'wp');
define('DB_PASSWORD', 'p8-bench');
define('DB_HOST', 'localhost:{socket}');
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
define('WP_HOME', 'http://{host}/{path}');
define('WP_SITEURL', 'http://{host}/{path}');
define('DISABLE_WP_CRON', true);
define('WP_HTTP_BLOCK_EXTERNAL', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
define('WP_AUTO_UPDATE_CORE', false);
define('AUTH_KEY', 'p8'); define('SECURE_AUTH_KEY', 'p8'); define('LOGGED_IN_KEY', 'p8');
define('NONCE_KEY', 'p8'); define('AUTH_SALT', 'p8'); define('SECURE_AUTH_SALT', 'p8');
define('LOGGED_IN_SALT', 'p8'); define('NONCE_SALT', 'p8');
$table_prefix = 'wp_';
if (!defined('ABSPATH')) define('ABSPATH', __DIR__ . '/');
require_once ABSPATH . 'wp-settings.php';
"""

# WordPress's own installer (wp-admin/includes/upgrade.php wp_install: schema, options, admin
# user, the first post), run once with PHP's CLI against the private database.
WP_INSTALL = r"""<?php
define('WP_INSTALLING', true);
$_SERVER['HTTP_HOST'] = $argv[2];
$_SERVER['REQUEST_URI'] = '/';
require $argv[1] . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
$r = wp_install('P8 bench blog', 'admin', 'admin@b.test', false, '', 'p8-bench-admin');
echo "installed user ", $r['user_id'], "\n";
"""


def install_wordpress(server, db, host=B, path="blog"):
    """Copies Debian's WordPress (files, the twentytwentythree theme) into the server's
    htdocs/<path> with a wp-config.php of its own for `db`'s socket (Debian's config lookup in
    /etc/wordpress is not used); the first call creates the database and runs WordPress's
    installer. Returns the URL path of the blog's front page."""
    pw = pwd.getpwnam(harness.RUN_USER)
    dst = os.path.join(server.htdocs, path)
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(WORDPRESS, dst, symlinks=False, ignore_dangling_symlinks=True,
                    ignore=shutil.ignore_patterns(".htaccess"))
    with open(os.path.join(dst, "wp-config.php"), "w") as f:
        f.write(WP_CONFIG.format(socket=db.socket, host=host, path=path))
    if not db.wordpress_installed:
        db.sql("CREATE DATABASE wordpress; CREATE USER 'wp'@'localhost' IDENTIFIED BY 'p8-bench'; "
               "GRANT ALL ON wordpress.* TO 'wp'@'localhost';")
        script = os.path.join(db.root, "wp-install.php")
        with open(script, "w") as f:
            f.write(WP_INSTALL)
        p = subprocess.run([PHP_CLI, script, dst, host], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=120, cwd=db.root)
        if p.returncode != 0 or b"installed user" not in p.stdout:
            raise RuntimeError("WordPress install failed:\n" + p.stdout.decode("utf-8", "replace"))
        db.wordpress_installed = True
    for d, dirs, files in os.walk(dst):
        os.chown(d, pw.pw_uid, pw.pw_gid)
        for n in files:
            os.chown(os.path.join(d, n), pw.pw_uid, pw.pw_gid)
    return "/%s/" % path


def _one(port, host, url, t_sent, out, lock):
    """One B request on a fresh connection: (seconds after start it was sent, status, latency,
    Retry-After present). A 200 without the blog's title counts as status 0 (not served)."""
    t0 = time.monotonic()
    status, ra = None, False
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=B_TIMEOUT)
        c.request("GET", url, headers={"Host": host})
        r = c.getresponse()
        body = r.read()
        status = r.status if (r.status != 200 or B_MARK in body) else 0
        ra = bool(r.getheader("Retry-After"))
        c.close()
    except Exception as e:  # noqa: BLE001 - counted as not served
        status = "error: %s" % type(e).__name__
    with lock:
        out.append({"sent": t_sent, "status": status, "latency": time.monotonic() - t0, "retry_after": ra})


def paced(s, host, url, rate, seconds, t_origin):
    """Open loop: a request every 1/rate s for `seconds`, each on its own thread and connection.
    Returns (threads, results list filled as they answer); `sent` is relative to t_origin."""
    out, lock, threads = [], threading.Lock(), []

    def run():
        start = time.monotonic()
        n = int(round(seconds * rate))
        for i in range(n):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            t = threading.Thread(target=_one, args=(s.port, host, url, time.monotonic() - t_origin, out, lock),
                                 daemon=True)
            t.start()
            threads.append(t)

    pacer = threading.Thread(target=run, daemon=True)
    pacer.start()
    return pacer, threads, out


def _join(pacer, threads):
    pacer.join()
    for t in threads:
        t.join(B_TIMEOUT + 30)


def p99(values):
    if not values:
        return None
    v = sorted(values)
    return v[max(0, math.ceil(0.99 * len(v)) - 1)]  # nearest rank


CONFIGS = {
    # name: (module, Server options)
    "module": (True, {}),
    "untuned": (False, {}),
    "tuned": (False, {"max_processes": 3}),
}


def run_config(name, db, seconds, clients=16):
    module, opts = CONFIGS[name]
    guard = ("ShmGuardBeancounters ${SHMGUARD_UBC_FILE}\n" + STATUS) if module else ""
    s = harness.Server(name="bench-p8-" + name, artifacts=os.path.join(ARTIFACTS, name), shmguard=module,
                       shmguard_conf=guard, segment_mib=serving.SEG, apcu_mib=serving.APCU,
                       privvm_barrier=4 << 20, log_level="warn", shm_barrier=262144 * 4,
                       max_requests_per_process=10000, fcgid_extra=serving.TUNING, extra_conf=VHOSTS,
                       **opts)
    st = {"config": name}
    try:
        a_url = harness.install_dokuwiki(s)
        b_url = install_wordpress(s, db)
        s.start()
        serving._set_budget(s, 3, module)
        watch = harness.WorkerWatch(s, every=0.1)
        # --- main: A warms up, A alone, A + B, then A quiet and B goes on.
        serving.load(s, a_url, clients, 3, host=A)
        alone = serving.load(s, a_url, clients, seconds, host=A)
        # A's clients start 1 s before B's first request: B arrives while A's workers are busy.
        res = {}
        a_thread = threading.Thread(target=lambda: res.update(
            mixed=serving.load(s, a_url, clients, seconds + 1, host=A), end=time.monotonic()))
        a_thread.start()
        time.sleep(1.0)
        t0 = time.monotonic()
        pacer, threads, b = paced(s, B, b_url, B_RATE, seconds + B_AFTER, t0)
        a_thread.join()
        mixed, t_quiet = res["mixed"], res["end"] - t0
        _join(pacer, threads)
        b_mixed = [r for r in b if r["sent"] < seconds]
        b_after = sorted((r for r in b if r["sent"] >= t_quiet), key=lambda r: r["sent"])
        served = [r for r in b_mixed if r["status"] == 200]
        first_served = next((r for r in b_after if r["status"] == 200), None)
        st.update(a_alone=alone, a_mixed=mixed, a_ratio=(mixed["200"] / (seconds + 1)) / ((alone["200"] or 1) / seconds), b_mixed=b_mixed, b_after=b_after, t_quiet=t_quiet,
                  b_sent=len(b_mixed), b_served=len(served),
                  b_p99=p99([r["latency"] for r in served]),
                  b_statuses=_count(r["status"] for r in b_mixed),
                  after_first=b_after[0] if b_after else None,
                  after_first_served_s=(first_served["sent"] + first_served["latency"] - t_quiet)
                  if first_served else None)
        # --- reclaim: a fresh generation, A takes the workers and goes quiet, B's first request.
        s.stop()
        s.start()
        serving._set_budget(s, 3, module)
        serving.load(s, a_url, clients, 5, host=A)
        time.sleep(0.5)
        out, lock = [], threading.Lock()
        _one(s.port, B, b_url, 0.0, out, lock)
        st["reclaim_first"] = out[0]
        st["php_cgi_most"] = watch.stop()
        st["failcnt"] = s.budget.failcnt()
        st["crashes"] = serving.crashes(s)
        log = s.error_log()
        st["reclaims_logged"] = log.count("SG0210")
        if module:
            js = json.loads(s.get("/shmguard-status?json").text)
            st["vhosts"] = {v["server_name"]: {k: v.get(k) for k in ("reclaims_given", "reclaims_taken",
                                                                        "refused", "passed")}
                            for v in js.get("vhosts", []) if v.get("server_name") in (A, B)}
    finally:
        s.close()
    return st


def _count(items):
    out = {}
    for i in items:
        out[str(i)] = out.get(str(i), 0) + 1
    return out


def _fmt_s(x):
    return "-" if x is None else "%.2f s" % x


def report(rows, seconds):
    print("P8 two sites, one budget of 3 workers (A DokuWiki at 16 connections, B WordPress + MariaDB at "
          "%g req/s; OPcache %d MiB + APCu %d MiB per php-cgi; A alone %g s, then A + B %g s, then B alone %g s)"
          % (B_RATE, serving.SEG, serving.APCU, seconds, seconds, B_AFTER))
    head = ("config", "B served", "B p99", "A ÷ alone", "B after quiet", "B first (reclaim)", "B statuses",
            "php-cgi", "failcnt")
    print("%-8s %10s %8s %10s %18s %22s  %-26s %7s %7s" % head)
    verdicts = {}
    for st in rows:
        a_ratio = st["a_ratio"]  # per second: the mixed span is 1 s longer (A starts before B)
        served = st["b_served"] / (st["b_sent"] or 1)
        rf = st["reclaim_first"]
        rf_text = "%s in %.2f s" % (rf["status"], rf["latency"])
        af = st["after_first_served_s"]
        print("%-8s %9.1f%% %8s %10.2f %18s %22s  %-26s %7d %7d" % (
            st["config"], served * 100, _fmt_s(st["b_p99"]), a_ratio,
            _fmt_s(af) if af is not None else "none in %g s" % B_AFTER, rf_text,
            ",".join("%s:%d" % kv for kv in sorted(st["b_statuses"].items())), st["php_cgi_most"], st["failcnt"]))
        verdicts[st["config"]] = [
            ("B served >= 99 %", served >= 0.99),
            ("B p99 <= 3 s", st["b_p99"] is not None and st["b_p99"] <= 3.0 and served >= 0.99),
            ("A >= 0.6 x alone", a_ratio >= 0.6),
            ("B served within 5 s after A quiet (after the mixed span)", af is not None and af <= 5.0),
            ("B's first request served within 5 s (A's idle workers hold the budget)",
             rf["status"] == 200 and rf["latency"] <= 5.0),
        ]
    for name, vs in verdicts.items():
        print("  %-8s %s" % (name, "; ".join("%s: %s" % (g, "met" if ok else "MISSED") for g, ok in vs)))
    for st in rows:
        print("  %-8s A alone %d x 200 (500: %d, 503: %d), A + B %d x 200 (500: %d, 503: %d); A p99 alone %s ms, "
              "with B %s ms; B after quiet: first sent %s; crashes %d; SG0210 reclaims %d%s" % (
                  st["config"], st["a_alone"]["200"], st["a_alone"]["500"], st["a_alone"]["503"],
                  st["a_mixed"]["200"], st["a_mixed"]["500"], st["a_mixed"]["503"], st["a_alone"]["p99_ms"],
                  st["a_mixed"]["p99_ms"],
                  ("%s in %.2f s" % (st["after_first"]["status"], st["after_first"]["latency"]))
                  if st["after_first"] else "-", st["crashes"], st["reclaims_logged"],
                  ("; vhosts %s" % json.dumps(st["vhosts"], sort_keys=True)) if st.get("vhosts") else ""))


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--configs", default="module,untuned,tuned")
    ap.add_argument("--json", help="also write every request's result here")
    a = ap.parse_args(argv)
    gone = missing()
    if gone:
        print("P8: missing %s; install with `sh scripts/deps.sh bench`" % ", ".join(gone), file=sys.stderr)
        return 2
    db = MariaDB()
    rows = []
    old = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        db.start()
        for name in a.configs.split(","):
            rows.append(run_config(name, db, a.seconds))
    finally:
        db.stop()
        signal.signal(signal.SIGTERM, old)
    report(rows, a.seconds)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
