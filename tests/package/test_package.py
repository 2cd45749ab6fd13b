"""The Debian packages (`make deb`) installed on this machine, tried, and purged.

Run by `make test-package` (after `make deb`), as root. The tests run in file order and share one
installation (the `installed` fixture): install both packages with apt-get, check what Debian's
own module packages give (the module enabled through apache2-maintscript-helper, a2enmod,
apache2ctl -t, apache2ctl -M), the status page served by the installed module from the installed
shmguard.load/shmguard.conf (a private Apache on a free 127.0.0.1 port: the system apache2 service is
never started, reloaded or stopped, and its own configuration is only configtested), the installed
probe, check plugin and man pages; then purge and check that every file the packages installed is
gone, that /etc/apache2 and /var/lib/apache2 are exactly as before and that the packages left no
state behind. If a test fails half-way, the fixture purges anyway.

Other sessions on the machine could run this at the same time: a lock file serialises them. A
machine where the packages are already installed is refused (they are not ours to remove).
"""

import fcntl
import hashlib
import json
import os
import signal
import socket
import stat
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEB_DIR = Path(os.environ.get("SHMGUARD_DEB_DIR", REPO / "build" / "deb" / "src"))
PACKAGES = ["libapache2-mod-shmguard", "shmguard-probe"]
FIELD = REPO / "tests" / "fixtures" / "beancounters" / "openvz6-container.txt"
WATCHED = [Path("/etc/apache2"), Path("/var/lib/apache2")]  # must be as before after the purge
POLICY = Path("/usr/sbin/policy-rc.d")
HELPER_DIRS = {"/var/lib/apache2/module/%s_by_%s" % (what, who)
               for what in ("enabled", "disabled") for who in ("admin", "maint")}
LOCK = "/run/lock/shmguard-package-test.lock"
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C",
       "DEBIAN_FRONTEND": "noninteractive"}
APT = ["apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=600", "-o", "Dpkg::Use-Pty=0"]


def sh(*cmd, check=True, timeout=600, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, env=ENV, **kw)
    if check:
        assert r.returncode == 0, "%s: exit %d\n%s\n%s" % (" ".join(map(str, cmd)), r.returncode, r.stdout, r.stderr)
    return r


def status_of(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", pkg], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else ""


def snapshot(roots):
    """{path: (type, content hash or link target, mode, uid, gid)} of every entry under roots."""
    out = {}
    for root in roots:
        if not root.exists():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                p = Path(dirpath) / name
                st = p.lstat()
                if stat.S_ISLNK(st.st_mode):
                    what = ("link", os.readlink(p))
                elif stat.S_ISREG(st.st_mode):
                    what = ("file", hashlib.sha256(p.read_bytes()).hexdigest())
                else:
                    what = ("dir" if stat.S_ISDIR(st.st_mode) else "other", "")
                out[str(p)] = what + (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    return out


def debs():
    out = []
    for pkg in PACKAGES:
        found = sorted(DEB_DIR.glob("%s_*.deb" % pkg))
        assert found, "no %s_*.deb in %s: run `make deb` (or `make test-package`)" % (pkg, DEB_DIR)
        out.append(found[-1])
    return out


def purge():
    present = [p for p in PACKAGES if status_of(p)[:2] not in ("", "un", "pn")]
    if present:
        sh(*APT, "purge", *present)


class State:
    """What the tests share: the machine before the install, the packages' file lists."""
    before = {}  # snapshot(WATCHED) before the install
    files = {}   # package: dpkg-query -L


@pytest.fixture(scope="module")
def installed():
    if os.geteuid() != 0:
        pytest.fail("the package test installs packages: run it as root", pytrace=False)
    lock = open(LOCK, "w")
    fcntl.flock(lock, fcntl.LOCK_EX)  # another session's package test finishes first
    made_policy = False
    try:
        for pkg in PACKAGES:
            st = status_of(pkg)
            if st[:2] not in ("", "un", "pn"):
                pytest.fail("%s is already on this machine (dpkg status %r): the test installs and purges "
                            "it, so purge it first" % (pkg, st), pytrace=False)
        files = debs()
        State.before = snapshot(WATCHED)
        # policy-rc.d keeps the maintainer scripts from (re)starting the system apache2 service.
        if not POLICY.exists():
            POLICY.write_text("#!/bin/sh\nexit 101\n")
            POLICY.chmod(0o755)
            made_policy = True
        sh(*APT, "install", "--no-install-recommends", *["./" + f.name for f in files], cwd=DEB_DIR)
        for pkg in PACKAGES:
            State.files[pkg] = sh("dpkg-query", "-L", pkg).stdout.split("\n")
            State.files[pkg] = [f for f in State.files[pkg] if f and f != "/."]
        yield State
    finally:
        try:
            purge()
            for d in HELPER_DIRS:  # made by a2enmod/a2dismod during this test: empty, not there before
                if d not in State.before and os.path.isdir(d) and not os.listdir(d):
                    os.rmdir(d)
        finally:
            if made_policy:
                POLICY.unlink()
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()


# ------------------------------------------------------------------------------------------ install
def test_both_packages_are_installed(installed):
    for pkg in PACKAGES:
        assert status_of(pkg) == "ii", pkg


def test_files_are_where_debian_puts_them(installed):
    mod = installed.files["libapache2-mod-shmguard"]
    probe = installed.files["shmguard-probe"]
    for path in ("/usr/lib/apache2/modules/mod_shmguard.so", "/etc/apache2/mods-available/shmguard.load",
                 "/etc/apache2/mods-available/shmguard.conf", "/usr/share/man/man5/shmguard.conf.5.gz",
                 "/usr/share/shmguard/prometheus/shmguard.rules.yml", "/usr/share/shmguard/grafana/shmguard.json"):
        assert path in mod and os.path.isfile(path), path
    for path in ("/usr/sbin/shmguard-probe", "/usr/lib/nagios/plugins/check_shmguard",
                 "/usr/share/man/man8/shmguard-probe.8.gz", "/usr/share/shmguard/icinga2/shmguard.conf",
                 "/usr/share/shmguard/nagios/shmguard.cfg", "/usr/share/shmguard/nagios/nrpe_shmguard.cfg"):
        assert path in probe and os.path.isfile(path), path
    assert os.access("/usr/sbin/shmguard-probe", os.X_OK) and os.access("/usr/lib/nagios/plugins/check_shmguard", os.X_OK)
    conffiles = sh("dpkg-query", "-W", "-f=${Conffiles}", "libapache2-mod-shmguard").stdout
    assert "/etc/apache2/mods-available/shmguard.load" in conffiles
    assert "/etc/apache2/mods-available/shmguard.conf" in conffiles
    # The shipped files are the repository's.
    for shipped, repo in (("/usr/share/shmguard/prometheus/shmguard.rules.yml", "monitoring/prometheus/shmguard.rules.yml"),
                          ("/etc/apache2/mods-available/shmguard.conf", "conf/shmguard.conf"),
                          ("/usr/lib/nagios/plugins/check_shmguard", "monitoring/nagios/check_shmguard")):
        assert Path(shipped).read_bytes() == (REPO / repo).read_bytes(), shipped


def test_postinst_enabled_the_module_through_the_maintscript_helper(installed):
    link = Path("/etc/apache2/mods-enabled/shmguard.load")
    assert link.is_symlink() and os.readlink(link) == "../mods-available/shmguard.load"
    assert Path("/etc/apache2/mods-enabled/shmguard.conf").is_symlink()
    # apache2-maintscript-helper records that the package, not the admin, enabled it.
    assert Path("/var/lib/apache2/module/enabled_by_maint/shmguard").exists()


def test_a2enmod_configtest_and_loaded_modules(installed):
    r = sh("a2enmod", "shmguard")
    assert "already enabled" in r.stdout, r.stdout
    r = sh("apache2ctl", "-t")
    assert "Syntax OK" in r.stdout + r.stderr
    r = sh("apache2ctl", "-M")
    assert any(l.split()[:1] == ["shmguard_module"] for l in r.stdout.splitlines()), r.stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.headers, r.read().decode()


def test_status_page_from_the_installed_module(installed):
    """A private Apache (its own server root and port, nothing from /etc/apache2 but the
    package's shmguard.load and shmguard.conf through mods-enabled) serves /shmguard-status."""
    root = Path(tempfile.mkdtemp(prefix="shmguard-pkg-", dir="/tmp"))
    root.chmod(0o755)
    pid = None
    try:
        (root / "run").mkdir()
        bc = root / "user_beancounters"
        bc.write_bytes(FIELD.read_bytes())
        bc.chmod(0o644)
        port = free_port()
        conf = root / "httpd.conf"
        conf.write_text("\n".join([
            'ServerRoot "%s"' % root, "ServerName 127.0.0.1", "Listen 127.0.0.1:%d" % port,
            'PidFile "%s/httpd.pid"' % root, 'DefaultRuntimeDir "%s/run"' % root,
            'ErrorLog "%s/error.log"' % root, "LogLevel warn", "User www-data", "Group www-data",
            "LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so",
            "LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so",
            "LoadModule authz_host_module /usr/lib/apache2/modules/mod_authz_host.so",
            "Include /etc/apache2/mods-enabled/shmguard.load",
            "Include /etc/apache2/mods-enabled/shmguard.conf",
            'ShmGuardBeancounters "%s"' % bc, "ShmGuardCgroup off", ""]))
        sh("/usr/sbin/apache2", "-f", conf, "-t")
        sh("/usr/sbin/apache2", "-f", conf, "-k", "start")
        deadline = time.monotonic() + 15
        doc = None
        while time.monotonic() < deadline:
            try:
                pid = pid or int((root / "httpd.pid").read_text())
                code, headers, body = http_get("http://127.0.0.1:%d/shmguard-status?json" % port)
                doc = json.loads(body)
                if doc.get("sources"):
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        assert doc and doc.get("sources"), "no status page with sources:\n%s" % (root / "error.log").read_text()
        want = json.loads(sh("/usr/sbin/shmguard-probe", "--beancounters", bc, "--cgroup", "off",
                             "--format", "json").stdout)
        # The module and the probe read the same file (and this machine's /proc/meminfo).
        assert doc["headroom_bytes"] == want["headroom_bytes"] is not None, (doc, want)
        assert doc["binding"] == want["binding"]
        code, headers, body = http_get("http://127.0.0.1:%d/shmguard-status?metrics" % port)
        assert code == 200 and headers["Content-Type"].startswith("text/plain")
        lines = body.splitlines()
        assert "shmguard_sampler_up 1" in lines
        assert "shmguard_headroom_bytes %d" % want["headroom_bytes"] in lines
        code, _, body = http_get("http://127.0.0.1:%d/shmguard-status" % port)
        assert code == 200 and "<html" in body.lower()
    finally:
        if pid:
            subprocess.run(["/usr/sbin/apache2", "-f", str(conf), "-k", "stop"], env=ENV, capture_output=True,
                           timeout=60)
            deadline = time.monotonic() + 15
            while Path("/proc/%d" % pid).exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            if Path("/proc/%d" % pid).exists():
                os.kill(pid, signal.SIGKILL)
        log = (root / "error.log").read_text() if (root / "error.log").exists() else ""
        subprocess.run(["rm", "-rf", str(root)])
    assert "SG0901" not in log and "SG0119" not in log, log


def test_installed_probe_and_check_plugin(installed):
    doc = json.loads(sh("/usr/sbin/shmguard-probe", "--beancounters", FIELD, "--cgroup", "off", "--devshm", "off",
                        "--format", "json").stdout)
    assert doc["binding"] == "beancounter:shmpages"
    r = sh("/usr/lib/nagios/plugins/check_shmguard", "-n", "package-test", check=False)
    assert r.returncode in (0, 1, 2, 3) and r.stdout.startswith("SHMGUARD "), r
    # The state directory of the package holds the state file now: the purge must remove it.
    assert Path("/var/lib/shmguard-probe/package-test.state").is_file(), r.stdout


def test_installed_man_pages_render_without_warnings(installed):
    for page in ("/usr/share/man/man8/shmguard-probe.8.gz", "/usr/share/man/man5/shmguard.conf.5.gz"):
        env = dict(ENV, LC_ALL="C.UTF-8", MANROFFSEQ="", MANWIDTH="80")
        r = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", page], capture_output=True,
                           text=True, env=env, timeout=60)
        assert r.returncode == 0 and r.stderr == "", (page, r.stderr)
    assert sh("man", "-w", "shmguard-probe").stdout.strip() == "/usr/share/man/man8/shmguard-probe.8.gz"


# ------------------------------------------------------------------------------------------ purge
def test_purge_leaves_nothing_behind(installed):
    listed = sorted({p for files in installed.files.values() for p in files})
    assert "/usr/sbin/shmguard-probe" in listed
    sh(*APT, "purge", *PACKAGES)
    for pkg in PACKAGES:
        assert status_of(pkg)[:2] in ("", "un", "pn"), (pkg, status_of(pkg))
    # Every file and directory the packages listed is gone, but for directories another installed
    # package owns too (/usr, /usr/share/doc, /etc/apache2/mods-available, ...).
    left = [p for p in listed
            if os.path.lexists(p) and not (os.path.isdir(p) and not os.path.islink(p) and shared_dir(p))]
    assert left == [], "left after the purge: %s" % left
    assert not Path("/var/lib/shmguard-probe").exists()  # with the state file made at run time
    assert not Path("/usr/share/shmguard").exists()
    after = snapshot(WATCHED)
    # a2dismod, run by apache2-maintscript-helper at the purge, makes its (empty) bookkeeping
    # directories on first use, for every module package: they are the only new thing allowed, and
    # the fixture removes them again.
    made = {p for p in set(after) - set(installed.before) if p in HELPER_DIRS and not os.listdir(p)}
    changed = sorted((set(after.items()) ^ set(installed.before.items())) - {(p, after[p]) for p in made})
    assert changed == [], "changed under %s: %s" % (", ".join(map(str, WATCHED)), changed[:20])
    r = sh("apache2ctl", "-M")
    assert "shmguard_module" not in r.stdout


def shared_dir(path):
    """A directory another installed package also owns (dpkg -S lists it)."""
    r = subprocess.run(["dpkg-query", "-S", path], capture_output=True, text=True)
    return r.returncode == 0
