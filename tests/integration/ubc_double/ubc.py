#!/usr/bin/python3
"""OpenVZ `shmpages` beancounter test double for php-cgi under mod_fcgid.

A real OpenVZ kernel charges every shared anonymous mapping (OPcache's segment) to the container's
`shmpages` and `privvmpages` beancounters; when held + new > barrier the mmap fails with ENOMEM and the
resource's failcnt rises.  This file models that for the integration tests, with no special kernel:

* ``ubc.py wrap STATE_DIR`` is the FcgidWrapper.  It runs as the `User` (www-data) in mod_fcgid's process
  manager, with the FastCGI listening socket on fd 0 (left alone).  Under an exclusive flock of
  STATE_DIR/lock it drops dead workers, computes held = sum of the live workers' pages and

    - if held + segment > barrier (shmpages, then privvmpages): failcnt += 1, rewrite the beancounter
      file, then exec php-cgi with RLIMIT_AS small enough that OPcache's own mmap of the segment fails:
      php-cgi prints ``Fatal Error Unable to allocate shared memory segment of N bytes: mmap: Cannot
      allocate memory (12)`` to stderr (= Apache's error log) and exits 254, for real;
    - else: registers its own pid (exec keeps the pid, so it is php-cgi's pid) with the segment's pages
      and its start time, rewrites the file, and execs php-cgi with
      ``-d opcache.enable=1 -d opcache.memory_consumption=<segment MiB>``.

* ``ubc.py refresh STATE_DIR [--loop SECONDS]`` drops dead workers and rewrites the file (once, or in a
  loop until killed) - what makes `held` fall when workers exit.
* ``ubc.py set-barrier STATE_DIR PAGES [RESOURCE]`` sets a barrier (= limit), default shmpages.
* ``ubc.py show STATE_DIR`` prints the beancounter file.
* ``Budget(STATE_DIR)`` is the Python API the tests use (set_barrier, held, failcnt, refresh, ...).

Files in STATE_DIR (config.json and state.json rewritten atomically: a temporary file, then a
rename; the beancounter files as the kernel's, in place, see rewrite_in_place):

  config.json        written once by the harness, read by the wrapper:
                     {"php_cgi": "/usr/bin/php-cgi", "php_args": [], "segment_mib": 64,
                      "page_size": 4096, "fail_as_kib": 100352 | null, "ubc_id": "101",
                      "layout": "ovz6" | "vz7", "bc_resources": false}
  state.json         the budget and the live workers:
                     {"rows": {"kmemsize": [held, maxheld, barrier, limit, failcnt], ...},   (file order)
                      "shm_base": 0,          shmpages held by others (other sites, SysV users)
                      "privvm_base": 20000,   privvmpages held by everything but shared memory
                      "workers": {"<pid>": {"pages": 16384, "start": <starttime ticks>}}}
                     shmpages held = shm_base + sum(pages of live workers);
                     privvmpages held = privvm_base + shmpages held.
  lock               flock(2) target guarding state.json and the rendered files.
  user_beancounters  the file in the exact /proc/user_beancounters format (see render()), one inode,
                     readable by root alone (mode 0200, owned by the wrapper's user).
  bc/<id>/resources  (only with "bc_resources": true) the VZ7 per-container file: no header, no uid,
                     no dummy rows.
  events.log         one line per event, <time> = Unix time, H/N/B in pages:
                       "<time> <pid> start shmpages held=H need=N barrier=B"   worker registered
                       "<time> <pid> fail <resource> held=H need=N barrier=B"  over budget (failcnt+1)
                       "<time> <pid> drop shmpages pages=N"                     dead worker dropped
"""

import fcntl
import json
import os
import resource
import sys
import threading
import time

PAGE_SIZE = 4096
LONG_MAX = 9223372036854775807

# OpenVZ 6 resource order (include/bc/beancounter.h, ub_rnames[]) with plausible values for a small VPS.
# [held, maxheld, barrier, limit, failcnt]; privvmpages and shmpages held are computed.
DEFAULT_ROWS = [
    ("kmemsize", [16595303, 21577728, 67108864, 75497472, 0]),
    ("lockedpages", [0, 0, 64, 64, 0]),
    ("privvmpages", [0, 0, 1048576, 1153434, 0]),
    ("shmpages", [0, 0, 262144, 262144, 0]),
    ("dummy", [0, 0, 0, 0, 0]),
    ("numproc", [89, 120, 800, 800, 0]),
    ("physpages", [96664, 216508, 0, LONG_MAX, 0]),
    ("vmguarpages", [0, 0, 33792, LONG_MAX, 0]),
    ("oomguarpages", [96664, 216508, 26112, LONG_MAX, 0]),
    ("numtcpsock", [12, 40, 80, 80, 0]),
    ("numflock", [4, 12, 100, 110, 0]),
    ("numpty", [1, 2, 16, 16, 0]),
    ("numsiginfo", [0, 12, 256, 256, 0]),
    ("tcpsndbuf", [215872, 1138336, 319488, 524288, 0]),
    ("tcprcvbuf", [196608, 1064304, 319488, 524288, 0]),
    ("othersockbuf", [13872, 119128, 132096, 336896, 0]),
    ("dgramrcvbuf", [0, 8464, 132096, 132096, 0]),
    ("numothersock", [20, 58, 80, 80, 0]),
    ("dcachesize", [0, 0, LONG_MAX, LONG_MAX, 0]),
    ("numfile", [1234, 2048, 2048, 2048, 0]),
    ("dummy", [0, 0, 0, 0, 0]),
    ("dummy", [0, 0, 0, 0, 0]),
    ("dummy", [0, 0, 0, 0, 0]),
    ("numiptent", [24, 24, 128, 128, 0]),
]
DEFAULT_PRIVVM_BASE = 20000

HEAD_FMT = "%10s  %-12s %20s %20s %20s %20s %20s\n"
ROW_FMT_OVZ6 = "%10s  %-12s %20d %20d %20d %20d %20d\n"  # OpenVZ 6: "   852638:  kmemsize ..."
ROW_FMT_VZ7 = "%10s%c %-12s %20d %20d %20d %20d %20d\n"  # VZ7: "       101: kmemsize ..."


# ------------------------------------------------------------------------------------------ rendering
def render(rows, ubc_id="101", layout="ovz6"):
    """The /proc/user_beancounters text for one container.

    rows: list of (name, [held, maxheld, barrier, limit, failcnt]) in file order. Duplicate names
    (dummy) are allowed. Formats as in the OpenVZ kernels' kernel/bc/proc.c (64-bit: 20-wide columns).
    """
    out = ["Version: 2.5\n", HEAD_FMT % ("uid", "resource", "held", "maxheld", "barrier", "limit", "failcnt")]
    for i, (name, v) in enumerate(rows):
        if layout == "vz7":
            uid, sep = (str(ubc_id), ":") if i == 0 else ("", " ")
            out.append(ROW_FMT_VZ7 % (uid, sep, name, v[0], v[1], v[2], v[3], v[4]))
        else:
            uid = "%s:" % ubc_id if i == 0 else ""
            out.append(ROW_FMT_OVZ6 % (uid, name, v[0], v[1], v[2], v[3], v[4]))
    return "".join(out)


def render_bc_resources(rows):
    """VZ7 /proc/bc/<id>/resources: no header, no uid, no dummy rows."""
    return "".join(ROW_FMT_OVZ6 % ("", name, v[0], v[1], v[2], v[3], v[4])
                   for name, v in rows if name != "dummy")


def parse(text):
    """Parses a user_beancounters text into {uid: {resource: (held, maxheld, barrier, limit, failcnt)}}
    (the first row of a name wins; used by the tests to check the file)."""
    out, uid = {}, None
    for line in text.splitlines():
        toks = line.split()
        if not toks or toks[0] == "Version:" or toks[0] == "uid":
            continue
        if ":" in toks[0]:
            uid, rest = toks[0].split(":", 1)
            toks = ([rest] if rest else []) + toks[1:]
        if len(toks) != 6 or uid is None:
            continue
        out.setdefault(uid, {}).setdefault(toks[0], tuple(int(x) for x in toks[1:]))
    return out


# ------------------------------------------------------------------------------------------ helpers
# The beancounter files are the kernel's: /proc/user_beancounters is root-only (0400) and one inode
# for the machine's life. Here: write-only for the owner (the wrapper's user, which writes them) and
# readable by root alone, so the sampler, running as User, reads them only through the descriptor it
# opened as root and kept, as on a real host.
KERNEL_FILE_MODE = 0o200


def rewrite_in_place(path, text, mode=KERNEL_FILE_MODE):
    """Rewrites a beancounter file (text or bytes) as the kernel's file changes: the same inode
    (never a rename), so a reader holding it open reads each new text; one write of the whole text
    at offset 0 (the columns are fixed-width, so its length stays and no reader sees it emptied),
    then cut to its length."""
    data = text.encode() if isinstance(text, str) else text
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, mode)
    try:
        done = 0
        while done < len(data):
            done += os.pwrite(fd, data[done:], done)
        if os.fstat(fd).st_size > len(data):
            os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def _write_atomic(path, text, mode=0o644):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def proc_starttime(pid):
    """(state, starttime) of a process from /proc/PID/stat, or None if it does not exist."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = data.rsplit(")", 1)[1].split()
    # rest[0] is field 3 (state); starttime is field 22.
    return rest[0], int(rest[19])


def worker_alive(pid, start):
    st = proc_starttime(pid)
    return st is not None and st[0] not in ("Z", "X", "x") and st[1] == start


# Held by a thread of this process while it holds the flock. A process forked meanwhile (e.g. a
# benchmark's client processes) would keep a copy of the locked descriptor, and with it the
# lock, until it exits: every wrapper would block on it. Fork under `forking()` instead.
_IN_PROCESS = threading.Lock()


def forking():
    """Context manager: no thread of this process holds the budget's lock while it is held."""
    return _IN_PROCESS


class _Locked:
    """Exclusive flock on STATE_DIR/lock for the duration of a with-block; loads and saves state."""

    def __init__(self, state_dir):
        self.dir = state_dir

    def __enter__(self):
        _IN_PROCESS.acquire()
        self.fd = -1
        try:
            self.fd = os.open(os.path.join(self.dir, "lock"), os.O_RDWR | os.O_CREAT, 0o666)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            with open(os.path.join(self.dir, "config.json")) as f:
                self.config = json.load(f)
            with open(os.path.join(self.dir, "state.json")) as f:
                self.state = json.load(f)
        except BaseException:
            if self.fd >= 0:
                os.close(self.fd)
            _IN_PROCESS.release()
            raise
        self.events = []
        return self

    def rows(self):
        return self.state["rows"]

    def row(self, name):
        for n, v in self.state["rows"]:
            if n == name:
                return v
        raise KeyError(name)

    def event(self, pid, what, res, held, need, barrier):
        self.events.append("%.3f %d %s %s held=%d need=%d barrier=%d\n"
                           % (time.time(), pid, what, res, held, need, barrier))

    def drop_dead(self):
        workers = self.state["workers"]
        changed = False
        for pid in list(workers):
            if not worker_alive(int(pid), workers[pid]["start"]):
                w = workers.pop(pid)
                self.events.append("%.3f %s drop shmpages pages=%d\n" % (time.time(), pid, w["pages"]))
                changed = True
        return changed

    def recompute(self):
        held = self.state.get("shm_base", 0) + sum(w["pages"] for w in self.state["workers"].values())
        shm = self.row("shmpages")
        shm[0] = held
        shm[1] = max(shm[1], held)
        priv = self.row("privvmpages")
        priv[0] = self.state.get("privvm_base", DEFAULT_PRIVVM_BASE) + held
        priv[1] = max(priv[1], priv[0])

    def flush_events(self):
        if self.events:
            with open(os.path.join(self.dir, "events.log"), "a") as f:
                f.write("".join(self.events))
            self.events = []

    def save(self):
        # Events first: a reader that sees the new numbers also sees why they changed (the test
        # of a dropped worker read held 0 before the "drop" line was written).
        self.flush_events()
        self.recompute()
        _write_atomic(os.path.join(self.dir, "state.json"), json.dumps(self.state) + "\n", 0o666)
        cfg = self.config
        rows = self.state["rows"]
        rewrite_in_place(os.path.join(self.dir, "user_beancounters"),
                          render(rows, cfg.get("ubc_id", "101"), cfg.get("layout", "ovz6")))
        if cfg.get("bc_resources"):
            d = os.path.join(self.dir, "bc", str(cfg.get("ubc_id", "101")))
            os.makedirs(d, exist_ok=True)
            rewrite_in_place(os.path.join(d, "resources"), render_bc_resources(rows))

    def __exit__(self, *exc):
        try:
            self.flush_events()
        finally:
            try:
                os.close(self.fd)
            finally:
                _IN_PROCESS.release()
        return False


# ------------------------------------------------------------------------------------------ the wrapper
def segment_pages(config):
    return config["segment_mib"] * 1024 * 1024 // config.get("page_size", PAGE_SIZE)


def _ini(args, key):
    """The last `-d key=value` in args (PHP's rule: the last one wins), or None."""
    val = None
    for i, a in enumerate(args):
        if a == "-d" and i + 1 < len(args):
            a = args[i + 1]
        elif a.startswith("-d"):
            a = a[2:]
        else:
            continue
        if a.startswith(key + "="):
            val = a[len(key) + 1:]
    return val


def _mib(v):
    v = v.strip().upper()
    mult = {"K": 1.0 / 1024, "M": 1, "G": 1024}.get(v[-1:], None)
    return int(float(v[:-1]) * mult) if mult is not None else int(v) // (1024 * 1024)


def need_pages(config, extra_args):
    """What this worker maps: OPcache (unless off or file-cache-only) + APCu (when enabled),
    after the -d settings a front wrapper (shmguard-php-wrapper) added."""
    args = php_argv(config, config["segment_mib"]) + list(extra_args)
    mib = 0
    if _ini(args, "opcache.enable") != "0" and _ini(args, "opcache.file_cache_only") != "1":
        mib += int(_ini(args, "opcache.memory_consumption") or config["segment_mib"])
    if _ini(args, "apc.enabled") != "0":
        mib += _mib(_ini(args, "apc.shm_size") or "32M")
    return mib * 1024 * 1024 // config.get("page_size", PAGE_SIZE)


def php_argv(config, segment_mib):
    php = config.get("php_cgi", "/usr/bin/php-cgi")
    apcu = config.get("apcu_mib", 0)
    apc = ["-d", "apc.enabled=1", "-d", "apc.shm_size=%dM" % apcu] if apcu else ["-d", "apc.enabled=0"]
    return [php, "-d", "opcache.enable=1", "-d", "opcache.memory_consumption=%d" % segment_mib] + apc + \
        list(config.get("php_args", []))


def wrap(state_dir, extra_args):
    pid = os.getpid()
    with _Locked(state_dir) as st:
        cfg = st.config
        need = need_pages(cfg, extra_args)
        st.drop_dead()
        st.recompute()
        failed = None
        for res in ("shmpages", "privvmpages"):
            held, _, barrier, _, _ = st.row(res)
            if held + need > barrier:
                failed = res
                st.row(res)[4] += 1
                st.event(pid, "fail", res, held, need, barrier)
                break
        if failed is None:
            st.state["workers"][str(pid)] = {"pages": need, "start": proc_starttime(pid)[1]}
            shm = st.row("shmpages")
            st.event(pid, "start", "shmpages", shm[0], need, shm[2])
        st.save()
    argv = php_argv(cfg, cfg["segment_mib"]) + list(extra_args)
    if failed is not None and cfg.get("fail_with") == "apcu":
        # APCu's own failure: its mmap (at module start, before OPcache's) cannot fit.
        argv = php_argv(cfg, cfg["segment_mib"]) + ["-d", "opcache.enable=0", "-d", "apc.enabled=1",
                                                    "-d", "apc.shm_size=1024M"]
        resource.setrlimit(resource.RLIMIT_AS, (400000 * 1024, 400000 * 1024))
    elif failed is not None:
        fail_kib = cfg.get("fail_as_kib")
        if fail_kib:
            limit = fail_kib * 1024
        else:  # FIELD-NOTES §1: a 1 GiB segment never fits in 400000 KiB
            limit = 400000 * 1024
            argv = php_argv(cfg, 1024) + list(extra_args)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.environ.pop("LD_PRELOAD", None)  # `make test-asan-module` preloads ASan into httpd, not PHP
    os.execv(argv[0], argv)


# ------------------------------------------------------------------------------------------ calibration
def _probe(php_cgi, segment_mib, php_args, limit_kib, script):
    import subprocess

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (limit_kib * 1024, limit_kib * 1024))

    argv = php_argv({"php_cgi": php_cgi, "php_args": list(php_args)}, segment_mib) + [script]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       preexec_fn=limit, timeout=30, env={"PATH": "/usr/bin:/bin"})
    needle = b"Unable to allocate shared memory segment of %d bytes" % (segment_mib * 1024 * 1024)
    if p.returncode == 254 and needle in p.stdout:
        return "opcache"
    return "ok" if p.returncode == 0 else "early"


def calibrate_fail_as_kib(php_cgi="/usr/bin/php-cgi", segment_mib=64, php_args=(), workdir="/tmp"):
    """An RLIMIT_AS (KiB) under which php-cgi starts but OPcache's mmap of a segment_mib segment fails:
    the middle of the window [lowest limit reaching OPcache's error, lowest limit that works).
    Returns None if there is no such window (then the wrapper falls back to FIELD-NOTES §1's values)."""
    import tempfile
    fd, script = tempfile.mkstemp(suffix=".php", dir=workdir)
    try:
        os.write(fd, b"<?php echo 'ok';\n")
        os.close(fd)

        def first(lo, hi, pred):  # lowest x in (lo, hi] with pred(x), pred monotone, pred(hi) true
            while hi - lo > 512:
                mid = (lo + hi) // 2
                if pred(mid):
                    hi = mid
                else:
                    lo = mid
            return hi

        top = 8 * 1024 * 1024  # 8 GiB
        if _probe(php_cgi, segment_mib, php_args, top, script) != "ok":
            return None
        ok_from = first(0, top, lambda k: _probe(php_cgi, segment_mib, php_args, k, script) == "ok")
        err_from = first(0, ok_from,
                         lambda k: _probe(php_cgi, segment_mib, php_args, k, script) != "early")
        if err_from >= ok_from:
            return None
        mid = (err_from + ok_from) // 2
        if _probe(php_cgi, segment_mib, php_args, mid, script) != "opcache":
            return None
        return mid
    finally:
        os.unlink(script)


# ------------------------------------------------------------------------------------------ the API
class Budget:
    """Python API over a state directory (used by the harness and the tests; run as root)."""

    def __init__(self, state_dir):
        self.dir = os.path.abspath(state_dir)
        self.path = os.path.join(self.dir, "user_beancounters")

    # -- set-up
    @classmethod
    def create(cls, state_dir, php_cgi="/usr/bin/php-cgi", php_args=(), segment_mib=64,
               shm_barrier=262144, shm_limit=None, privvm_barrier=1048576, privvm_limit=None,
               privvm_base=DEFAULT_PRIVVM_BASE, fail_as_kib=None, ubc_id="101", layout="ovz6",
               bc_resources=False, owner=None, apcu_mib=0, fail_with=None):
        """Writes config.json, state.json and the beancounter file. owner: (uid, gid) that must be
        able to write the state (the wrapper's user)."""
        os.makedirs(state_dir, exist_ok=True)
        config = {"php_cgi": php_cgi, "php_args": list(php_args), "segment_mib": int(segment_mib),
                  "page_size": PAGE_SIZE, "fail_as_kib": fail_as_kib, "ubc_id": str(ubc_id),
                  "layout": layout, "bc_resources": bool(bc_resources), "apcu_mib": int(apcu_mib),
                  "fail_with": fail_with}
        rows = [[n, list(v)] for n, v in DEFAULT_ROWS]
        state = {"rows": rows, "shm_base": 0, "privvm_base": privvm_base, "workers": {}}
        for n, v in rows:
            if n == "shmpages":
                v[2], v[3] = shm_barrier, shm_limit if shm_limit is not None else shm_barrier
            elif n == "privvmpages":
                v[2] = privvm_barrier
                v[3] = privvm_limit if privvm_limit is not None else privvm_barrier + privvm_barrier // 10
        _write_atomic(os.path.join(state_dir, "config.json"), json.dumps(config, indent=1) + "\n", 0o644)
        _write_atomic(os.path.join(state_dir, "state.json"), json.dumps(state) + "\n", 0o666)
        open(os.path.join(state_dir, "lock"), "a").close()
        open(os.path.join(state_dir, "events.log"), "a").close()
        b = cls(state_dir)
        with _Locked(b.dir) as st:
            st.save()
        if owner is not None:
            for top, dirs, files in os.walk(state_dir):
                for name in [top] + [os.path.join(top, f) for f in files]:
                    os.chown(name, *owner)
        return b

    def share_with_all_users(self):
        """Lets wrappers of any user account (suEXEC sites, one user each) charge this budget, as
        one container's beancounters count every user in it: the state and lock writable by all,
        the beancounter files still readable by root alone (write-only for all)."""
        with _Locked(self.dir):
            os.chmod(self.dir, 0o777)
            for top, dirs, files in os.walk(self.dir):
                for name in dirs:
                    os.chmod(os.path.join(top, name), 0o777)
                for name in files:
                    p = os.path.join(top, name)
                    kernel = name in ("user_beancounters", "resources")
                    os.chmod(p, 0o222 if kernel else (0o644 if name == "config.json" else 0o666))

    def config(self):
        with open(os.path.join(self.dir, "config.json")) as f:
            return json.load(f)

    @property
    def segment_pages(self):
        """Pages one php-cgi worker's OPcache segment is charged."""
        return segment_pages(self.config())

    @property
    def segment_bytes(self):
        return self.config()["segment_mib"] * 1024 * 1024

    # -- changes
    def set_barrier(self, pages, resource="shmpages", limit=None):
        """Sets a resource's barrier (and limit: = barrier unless given) and rewrites the file."""
        with _Locked(self.dir) as st:
            v = st.row(resource)
            v[2] = int(pages)
            v[3] = int(limit) if limit is not None else int(pages)
            st.drop_dead()
            st.save()

    def set_row(self, resource, held=None, maxheld=None, barrier=None, limit=None, failcnt=None):
        """Sets fields of any row (held of shmpages/privvmpages is always recomputed)."""
        with _Locked(self.dir) as st:
            v = st.row(resource)
            for i, x in enumerate((held, maxheld, barrier, limit, failcnt)):
                if x is not None:
                    v[i] = int(x)
            st.save()

    def set_external(self, pages):
        """shmpages held by others than this server's php-cgi workers (other sites, SysV users):
        added to shmpages held (and so to privvmpages held)."""
        with _Locked(self.dir) as st:
            st.state["shm_base"] = int(pages)
            st.drop_dead()
            st.save()

    def set_privvm_base(self, pages):
        with _Locked(self.dir) as st:
            st.state["privvm_base"] = int(pages)
            st.save()

    def refresh(self, force=True):
        """Drops dead workers and rewrites the file (only if something changed unless force).
        Returns True if a worker was dropped."""
        with _Locked(self.dir) as st:
            changed = st.drop_dead()
            if changed or force:
                st.save()
            return changed

    def write_raw(self, text):
        """Replaces the beancounter file's text as is, in place (the next save rewrites it: stop
        refreshers)."""
        rewrite_in_place(self.path, text)

    # -- reads
    def _state(self):
        with _Locked(self.dir) as st:
            return st.state

    def row(self, resource="shmpages"):
        """(held, maxheld, barrier, limit, failcnt) as in state.json (live workers as of the last save)."""
        for n, v in self._state()["rows"]:
            if n == resource:
                return tuple(v)
        raise KeyError(resource)

    def held(self, resource="shmpages", refresh=True):
        if refresh:
            self.refresh(force=False)
        return self.row(resource)[0]

    def maxheld(self, resource="shmpages"):
        return self.row(resource)[1]

    def barrier(self, resource="shmpages"):
        return self.row(resource)[2]

    def failcnt(self, resource="shmpages"):
        return self.row(resource)[4]

    def workers(self, refresh=True):
        """{pid: pages} of the live registered workers."""
        if refresh:
            self.refresh(force=False)
        return {int(p): w["pages"] for p, w in self._state()["workers"].items()}

    def read_file(self):
        with open(self.path) as f:
            return f.read()

    def parsed(self):
        """The file parsed back: {resource: (held, maxheld, barrier, limit, failcnt)} of our id."""
        return parse(self.read_file())[str(self.config()["ubc_id"])]

    def events(self):
        with open(os.path.join(self.dir, "events.log")) as f:
            return f.read().splitlines()


# ------------------------------------------------------------------------------------------ CLI
def main(argv):
    if len(argv) >= 2 and argv[0] == "wrap":
        return wrap(argv[1], argv[2:])
    if len(argv) >= 2 and argv[0] == "refresh":
        b = Budget(argv[1])
        if len(argv) >= 4 and argv[2] == "--loop":
            interval = float(argv[3])
            while True:
                b.refresh(force=False)
                time.sleep(interval)
        b.refresh()
        return 0
    if len(argv) in (3, 4) and argv[0] == "set-barrier":
        b = Budget(argv[1])
        b.set_barrier(int(argv[2]), resource=argv[3] if len(argv) == 4 else "shmpages")
        sys.stdout.write(b.read_file())
        return 0
    if len(argv) >= 2 and argv[0] == "show":
        sys.stdout.write(Budget(argv[1]).read_file())
        return 0
    sys.stderr.write("usage: ubc.py wrap STATE_DIR [php-cgi args]\n"
                     "       ubc.py refresh STATE_DIR [--loop SECONDS]\n"
                     "       ubc.py set-barrier STATE_DIR PAGES [RESOURCE]\n"
                     "       ubc.py show STATE_DIR\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
