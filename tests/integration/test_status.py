"""/shmguard-status (issue 4) on the real stack: Apache + mod_fcgid + php-cgi (+ PHP-FPM behind
mod_proxy_fcgi), the OpenVZ beancounter double, mod_status.

Each format: status code, content type, parse, and values that agree with shmguard-probe run on the
same beancounter file. Workers and the advisor on real processes. Escaping. Require local with the
shipped conf (a client in its own network namespace, i.e. a real non-loopback peer), 405 for POST.
"""

import html.parser
import json
import os
import re
import subprocess
import threading
import time

import pytest

import harness

PROBE = os.path.join(os.environ.get("SHMGUARD_BUILD", os.path.join(harness.REPO, "build")),
                     "shmguard-probe")
SHIPPED_CONF = os.path.join(harness.REPO, "conf", "shmguard.conf")
CONF = ("ShmGuardBeancounters ${SHMGUARD_UBC_FILE}\nShmGuardInterval 200ms\n"
        "<Location /shmguard-status>\nSetHandler shmguard-status\nShmGuardStatusPage On\n</Location>")
MIB = 1 << 20
AUTO_LINE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(\[[^\]\n]+\])?: \S.*$")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
# The starter tests read whole command lines (the page shows program names unless this is on).
FULL_COMMANDS = "\nShmGuardStatusCommands full\n"


# ------------------------------------------------------------------------------------------ helpers
def status(s, query="", method="GET", headers=None, body=None):
    return s.get("/shmguard-status" + ("?" + query if query else ""), method=method, headers=headers, body=body)


def get_json(s):
    r = status(s, "json")
    assert r.status == 200, r
    assert r.headers["Content-Type"].startswith("application/json")
    return json.loads(r.body)


def wait_json(s, pred, timeout=10.0, what="condition"):
    """Polls ?json until pred(doc) is true; returns doc."""
    deadline = time.monotonic() + timeout
    while True:
        doc = get_json(s)
        if pred(doc):
            return doc
        if time.monotonic() > deadline:
            raise AssertionError("status never showed %s; last ?json:\n%s" % (what, json.dumps(doc, indent=1)))
        time.sleep(0.1)


def probe_json(ubc_file):
    p = subprocess.run([PROBE, "--beancounters", ubc_file, "--format", "json"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    assert p.returncode in (0, 1, 2), p.stderr
    return json.loads(p.stdout)


def bc_rows(doc):
    return sorted((x["resource"], x["held"], x["maxheld"], x["barrier"], x["limit"], x["failcnt"])
                  for x in doc["sources"] if x["source"] == "beancounter")


class StrictHtml(html.parser.HTMLParser):
    """Checks that every non-void element is closed in order; collects start tags and text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.tags, self.text = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append("</%s> closes <%s>" % (tag, self.stack[-1] if self.stack else "nothing"))
            if tag in self.stack:
                while self.stack and self.stack.pop() != tag:
                    pass
            return
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def check_html(body):
    text = body.decode("utf-8")
    assert text.startswith("<!DOCTYPE html>")
    p = StrictHtml()
    p.feed(text)
    p.close()
    assert not p.errors, p.errors
    assert p.stack == [], "unclosed: %s" % p.stack
    assert "script" not in p.tags  # no JavaScript, and nothing injected
    return p


def metric_families(text):
    """{name: type} from # TYPE lines; asserts HELP/TYPE once each and samples under their family."""
    types, helps, current = {}, set(), None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in helps, "HELP repeated for %s" % name
            helps.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, typ = line.split()
            assert name not in types, "TYPE repeated for %s" % name
            types[name] = typ
            current = name
        elif line.strip():
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            assert name == current, "sample %s outside its family (%s)" % (name, current)
            assert name.startswith("shmguard_")
    assert set(types) == helps
    return types


def promtool(text):
    p = subprocess.run(["/usr/bin/promtool", "check", "metrics"], input=text.encode(), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    return p.returncode, p.stdout.decode()


# ------------------------------------------------------------------------------------------ formats
def test_formats_parse_and_agree_with_probe(server):
    s = server(shmguard=True, shmguard_conf=CONF, status=True)
    assert s.get("/index.php").status == 200                  # one php-cgi worker: 64 MiB held
    s.wait_workers(1)
    ubc_file = s.budget.path

    # ?json agrees with the probe on the same beancounter file, and the auto reserve is the worker's
    # segment. Both wait (with a deadline) for the sampler: the double rewrites the beancounter
    # file before its exec, so the headroom can agree before the sampler has read php-cgi's maps.
    deadline = time.monotonic() + 10
    while True:
        j, p = get_json(s), probe_json(ubc_file)
        same = (j["headroom_bytes"], j["binding"], bc_rows(j)) == (p["headroom_bytes"], p["binding"], bc_rows(p))
        reserve = [v["reserve"]["bytes"] for v in j["vhosts"]]
        if (same and reserve == [64 * MIB]) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert j["headroom_bytes"] == p["headroom_bytes"]
    assert j["binding"] == p["binding"] == "beancounter:shmpages"
    assert bc_rows(j) == bc_rows(p)
    assert ("shmpages", 16384) in [(r[0], r[1]) for r in bc_rows(j)]
    assert sorted(x["source"] for x in j["sources"]) == sorted(x["source"] for x in p["sources"])
    assert sorted(u["source"] for u in j["unavailable"]) == sorted(u["source"] for u in p["unavailable"])
    for key in ("vhosts", "workers", "findings", "sampler", "limits", "counters"):
        assert key in j, key
    assert j["sampler"]["fresh"] is True and j["sampler"]["failing_open"] is False
    assert j["sampler"]["interval_ms"] == 200 and j["sampler"]["pid"] > 0
    assert j["state"] == "ok"
    (vh,) = j["vhosts"]
    assert vh["guard"] is True and vh["action"] == "refuse" and vh["guarded"] >= 1 and vh["passed"] >= 1
    assert vh["reserve"]["mode"] == "auto" and vh["reserve"]["bytes"] == 64 * MIB
    assert "private shared segments" in vh["reserve"]["source"]
    assert all(isinstance(f["text"], str) and f["text"] for f in j["findings"])
    headroom = j["headroom_bytes"]

    # ?auto: every line "Key: value"; the headline numbers are the probe's
    r = status(s, "auto")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
    lines = r.text.splitlines()
    bad = [l for l in lines if not AUTO_LINE.match(l)]
    assert not bad, bad
    kv = dict(l.split(": ", 1) for l in lines)
    assert kv["ShmGuardHeadroomBytes"] == str(headroom)
    assert kv["ShmGuardBinding"] == "beancounter:shmpages"
    assert kv["ShmGuardLimitBytes[beancounter:shmpages]"] == str(262144 * 4096)
    assert kv["ShmGuardState"] == "OK" and kv["ShmGuardFailingOpen"] == "0"
    assert kv["ShmGuardVhostGuarded[127.0.0.1]"] == str(vh["guarded"]) or int(kv["ShmGuardVhostGuarded[127.0.0.1]"]) >= 1

    # ?metrics: content type, promtool, families once, counters are counters
    r = status(s, "metrics")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    rc, out = promtool(r.text)
    assert rc == 0, out + "\n" + r.text
    types = metric_families(r.text)
    for name, typ in types.items():
        assert (typ == "counter") == name.endswith("_total"), (name, typ)
    assert re.search(r"^shmguard_headroom_bytes %d$" % headroom, r.text, re.M)
    assert re.search(r'^shmguard_vhost_requests_total\{vhost="127\.0\.0\.1",verdict="passed"\} [1-9]', r.text, re.M)
    assert re.search(r'^shmguard_beancounter_held\{container="101",resource="shmpages",unit="pages"\} 16384$',
                     r.text, re.M)

    # HTML (default): valid, no script, the headline in words, every section
    r = status(s)
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
    p = check_html(r.body)
    text = " ".join(p.text)
    for words in ("OK", "Findings", "Limits", "Virtual hosts", "FastCGI workers", "Sources", "Sampler",
                  "beancounter:shmpages", "shmpages"):
        assert words in text, words
    assert "Refresh" not in r.headers

    # ?refresh=N like mod_status; HEAD: headers only
    r = status(s, "refresh=7")
    assert r.status == 200 and r.headers["Refresh"] == "7"
    check_html(r.body)
    r = status(s, "auto&refresh=3")
    assert r.headers["Refresh"] == "3" and r.text.startswith("ShmGuardState: ")
    r = status(s, "json", method="HEAD")
    assert r.status == 200 and r.body == b"" and r.headers["Content-Type"].startswith("application/json")
    assert int(r.headers["Content-Length"]) > 0

    # mod_status: a section in /server-status and ShmGuard lines in its ?auto
    r = s.get("/server-status?auto")
    assert r.status == 200
    sg = [l for l in r.text.splitlines() if l.startswith("ShmGuard")]
    assert sg and all(AUTO_LINE.match(l) for l in sg), sg
    kv = dict(l.split(": ", 1) for l in sg)
    assert kv["ShmGuardState"] == "OK"
    assert kv["ShmGuardHeadroomBytes"] == str(headroom)
    assert kv["ShmGuardBinding"] == "beancounter:shmpages"
    r = s.get("/server-status")
    assert r.status == 200 and "<h2>mod_shmguard</h2>" in r.text


# ------------------------------------------------------------------------------------------ workers
def test_php_cgi_workers_each_own_segment_and_fpm_finding(server):
    s = server(shmguard=True, shmguard_conf=CONF, max_processes_per_class=8)
    rs = s.get_many(["/sleep.php?ms=3500"] * 3, delays=[0, 0, 0])
    assert [r.status for r in rs] == [200] * 3, rs
    pids = s.wait_workers(3)

    def ready(doc):
        # Everything asserted below that the sampler fills in over time: each worker listed as
        # php-cgi (not the double's wrapper it was before its exec), its segment, its resident
        # shared memory, and the finding over all three.
        rows = [w for w in doc["workers"] if w["backend"] == "mod_fcgid"]
        return ({w["pid"] for w in rows} == set(pids)
                and all("php-cgi" in w["command"] and w["rss_shmem_bytes"] > 0
                        and any(x["size_bytes"] == 64 * MIB for x in w["segments"]) for w in rows)
                and any(f["id"] == "fcgid-private-opcache" and f["numbers"]["workers"] == 3
                        for f in doc["findings"]))

    j = wait_json(s, ready, what="3 php-cgi workers and the PHP-FPM finding")
    rows = [w for w in j["workers"] if w["pid"] in pids]
    segs = []
    for w in rows:
        assert w["kind"] == "php-cgi" and w["vhost"] == "127.0.0.1" and w["state"] in ("idle", "busy")
        assert "php-cgi" in w["command"] and w["class"].endswith("php-wrapper-ubc")
        assert w["uptime_s"] >= 0 and w["rss_shmem_bytes"] > 0
        big = max(w["segments"], key=lambda x: x["size_bytes"])
        assert big["size_bytes"] == 64 * MIB and big["shared"] is False and big["mapped_by"] == 1
        segs.append((big["dev"], big["inode"]))
    assert len(set(segs)) == 3                                   # three distinct segments
    (f,) = [f for f in j["findings"] if f["id"] == "fcgid-private-opcache"]
    assert f["numbers"]["workers"] == 3 and f["numbers"]["total_bytes"] == 192 * MIB
    assert f["numbers"]["saving_bytes"] == 128 * MIB
    assert ("3 php-cgi workers hold 3 separate OPcache segments of 64 MiB (192 MiB); under PHP-FPM they "
            "would share one: 128 MiB less") in f["text"]
    # the double charged exactly these three segments: headroom 1 GiB - 192 MiB allows 13 more
    (h,) = [f for f in j["findings"] if f["id"] == "headroom-workers"]
    assert j["headroom_bytes"] == (262144 - 3 * 16384) * 4096
    assert h["numbers"]["more_workers"] == 13 and "allows 13 more php-cgi workers of 64 MiB" in h["text"]
    assert j["worker_totals"]["private_segments"] >= 3

    # the HTML table lists each worker with its own segment, and the sentence
    r = status(s)
    p = check_html(r.body)
    text = " ".join(p.text)
    for (dev, inode), pid in zip(segs, [w["pid"] for w in rows]):
        assert re.search(r"<tr><td>%d</td>" % pid, r.text)
        assert "%s inode %d" % (dev, inode) in text
    assert "3 php-cgi workers hold 3 separate OPcache segments of 64 MiB (192 MiB)" in text
    assert r.text.count('class="private">private') >= 3


def test_fpm_segment_shared_and_no_fcgid_finding(server):
    s = server(shmguard=True, shmguard_conf=CONF, fpm=True, fpm_children=3)
    r = s.get("/fpm/index.php")
    assert r.status == 200 and b"sapi=fpm-fcgi" in r.body
    fpm = set(s._fpm_pids())
    assert len(fpm) == 4

    def ready(doc):
        return {w["pid"] for w in doc["workers"] if w["backend"] == "php-fpm"} >= fpm

    j = wait_json(s, ready, what="the php-fpm master and its 3 workers")
    rows = [w for w in j["workers"] if w["pid"] in fpm]
    kinds = sorted(w["kind"] for w in rows)
    assert kinds == ["php-fpm master"] + ["php-fpm pool www"] * 3
    opcache = set()
    for w in rows:
        big = max(w["segments"], key=lambda x: x["size_bytes"])
        assert big["size_bytes"] == 64 * MIB and big["shared"] is True and big["mapped_by"] >= 4
        opcache.add((big["dev"], big["inode"]))
    assert len(opcache) == 1                                     # one segment for all of them
    assert not [f for f in j["findings"] if f["id"] == "fcgid-private-opcache"]
    (f,) = [f for f in j["findings"] if f["id"] == "fpm-shared-opcache"
            and f["numbers"]["segment_bytes"] == 64 * MIB and f["numbers"]["processes"] >= 4]
    # The saving measured after the move (issue 21 item 4): its 3 children as php-cgi workers
    # would map 3 segments; shared, one.
    assert f["numbers"]["children"] == 3 and f["numbers"]["saving_bytes"] == 128 * MIB, f
    said = ("Measured: as php-cgi workers under mod_fcgid its 3 children would map 192 MiB; "
            "shared, 64 MiB: 128 MiB saved.")
    assert said in f["text"], f
    assert j["vhosts"][0]["guarded"] >= 1                         # the proxied request was guarded
    r = status(s)
    check_html(r.body)
    assert said in " ".join(check_html(r.body).text)
    assert "shared by" in r.text


# ------------------------------------------------------------------------------------------ starter scripts
# Hosting panels start php-cgi through a starter script (FcgidWrapper .php-fcgi-starter: sets PHPRC
# and friends, then `exec php-cgi`). The worker keeps its pid and start time across the exec; what
# the sampler read of it before must be read again (issue 12). harness.Server(wrapper="starter").
STARTER = "php-wrapper-starter"


def is_php_cgi(command):
    return command.startswith(harness.PHP_CGI + " ")


def fcgid_rows(doc):
    return [w for w in doc["workers"] if w["backend"] == "mod_fcgid"]


def html_commands(text):
    """{pid: command} from the HTML workers table (pid, backend, vhost, class, state, command...)."""
    row = re.compile(r'<tr><td>(\d+)</td><td>[^<]*<br><small>[^<]*</small></td><td>.*?</td>'
                     r'<td class="cmd">[^<]*</td><td>[^<]*</td><td class="cmd">([^<]*)</td>')
    return {int(pid): html.unescape(cmd) for pid, cmd in row.findall(text)}


def in_background(fn):
    """Runs fn() in a thread; returns a function that waits for it (60 s) and returns its result."""
    out = {}

    def run():
        try:
            out["result"] = fn()
        except Exception as e:  # noqa: BLE001 - re-raised by the waiter
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()

    def wait():
        t.join(60)
        assert not t.is_alive(), "the background call never finished"
        if "error" in out:
            raise out["error"]
        return out["result"]
    return wait


def on_php_cgi(n):
    """A ?json predicate: n mod_fcgid workers, each php-cgi (not its starter) with its 64 MiB
    OPcache segment as its largest, the class's auto reserve at 64 MiB and the advisor's finding
    over the n workers."""
    def ready(doc):
        rows = fcgid_rows(doc)
        found = [f for f in doc["findings"] if f["id"] == "fcgid-private-opcache"]
        return (len(rows) == n
                and all(is_php_cgi(w["command"]) and w["segments"]
                        and max(x["size_bytes"] for x in w["segments"]) == 64 * MIB for w in rows)
                and [v["reserve"]["bytes"] for v in doc["vhosts"]] == [64 * MIB]
                and len(found) == 1 and found[0]["numbers"]["workers"] == n)
    return ready


def test_slow_starter_status_page_lists_php_cgi_not_the_script(server):
    """The worker is on the page while its starter script still runs (gated: the test lets it exec);
    after the exec the same pid is listed with php-cgi's command line and segment, in ?json and
    HTML. Before issue 12 the script's command line stayed for the worker's whole life."""
    s = server(shmguard=True, shmguard_conf=CONF + FULL_COMMANDS, wrapper="starter", starter_gate=True)
    done = in_background(lambda: s.get("/index.php"))
    doc = wait_json(s, lambda d: any(STARTER in w["command"] for w in fcgid_rows(d)), timeout=20,
                    what="the worker while its starter script runs")
    (before,) = fcgid_rows(doc)
    pid = before["pid"]
    assert before["command"].startswith("/bin/sh ") and before["class"].endswith("/bin/" + STARTER)
    assert s.php_workers() == []                       # not php-cgi yet: the row is the script's
    assert STARTER in html_commands(status(s).text)[pid]

    s.open_starter_gate()
    r = done()
    assert r.status == 200 and b"sapi=cgi-fcgi" in r.body, r
    assert s.wait_workers(1) == [pid]                  # the same process, now php-cgi

    def ready(d):
        return [(w["pid"], is_php_cgi(w["command"]), any(x["size_bytes"] == 64 * MIB for x in w["segments"]))
                for w in fcgid_rows(d)] == [(pid, True, True)]

    j = wait_json(s, ready, timeout=20, what="the worker as php-cgi")
    (w,) = fcgid_rows(j)
    assert w["class"] == before["class"] and w["kind"] == "php-cgi" and w["vhost"] == "127.0.0.1"
    assert "opcache.memory_consumption=64" in w["command"] and STARTER not in w["command"]
    assert w["uptime_s"] >= 0 and not w.get("error")
    r = status(s)
    check_html(r.body)
    cmd = html_commands(r.text)[pid]
    assert is_php_cgi(cmd) and STARTER not in cmd, cmd


def test_slow_starter_holding_memory_advisor_and_auto_reserve_count_php_cgi(server):
    """Starter scripts that hold shared memory of their own until their exec (8 MiB): the sampler
    reads them with it (gated); after the exec the advisor's findings and the auto reserve count
    php-cgi's 64 MiB OPcache segments, never the scripts' 8 MiB."""
    s = server(shmguard=True, shmguard_conf=CONF + FULL_COMMANDS, wrapper="starter", starter_gate=True,
               starter_segment_mib=8, max_processes_per_class=8)
    done = in_background(lambda: s.get_many(["/index.php"] * 3))

    def starters(d):
        rows = fcgid_rows(d)
        return len(rows) == 3 and all(not is_php_cgi(w["command"]) and
                                      [x["size_bytes"] for x in w["segments"]] == [8 * MIB] for w in rows)

    doc = wait_json(s, starters, timeout=30, what="3 workers holding their starters' 8 MiB")
    pids = sorted(w["pid"] for w in fcgid_rows(doc))
    assert s.php_workers() == []

    s.open_starter_gate()
    assert [r.status for r in done()] == [200] * 3
    assert s.wait_workers(3) == pids                   # the same three processes, now php-cgi
    j = wait_json(s, on_php_cgi(3), timeout=20, what="3 php-cgi workers, reserve and finding")
    assert not [x for w in fcgid_rows(j) for x in w["segments"] if x["size_bytes"] == 8 * MIB]
    (vh,) = j["vhosts"]
    assert vh["reserve"]["mode"] == "auto" and "private shared segments" in vh["reserve"]["source"]
    (f,) = [f for f in j["findings"] if f["id"] == "fcgid-private-opcache"]
    assert f["numbers"]["total_bytes"] == 192 * MIB and f["numbers"]["saving_bytes"] == 128 * MIB
    assert "3 php-cgi workers hold 3 separate OPcache segments of 64 MiB (192 MiB)" in f["text"]
    (h,) = [f for f in j["findings"] if f["id"] == "headroom-workers"]
    assert j["headroom_bytes"] == (262144 - 3 * 16384) * 4096
    assert h["numbers"]["more_workers"] == 13 and "allows 13 more php-cgi workers of 64 MiB" in h["text"]


def test_starter_sleeping_before_exec_page_advisor_and_reserve(server):
    """The issue's case: a starter that sleeps 0.7 s before its exec (the sampler, every 200 ms,
    reads each worker while the script runs), three workers at once. The page, the advisor and
    the auto reserve end up describing php-cgi."""
    s = server(shmguard=True, shmguard_conf=CONF + FULL_COMMANDS, wrapper="starter", starter_delay=0.7,
               max_processes_per_class=8)
    rs = s.get_many(["/sleep.php?ms=3500"] * 3)
    assert [r.status for r in rs] == [200] * 3, rs
    pids = s.wait_workers(3)
    j = wait_json(s, on_php_cgi(3), timeout=20, what="3 php-cgi workers, reserve and finding")
    assert sorted(w["pid"] for w in fcgid_rows(j)) == pids
    assert all(w["class"].endswith("/bin/" + STARTER) for w in fcgid_rows(j))
    r = status(s)
    check_html(r.body)
    commands = html_commands(r.text)
    assert sorted(commands) == pids
    assert all(is_php_cgi(c) and STARTER not in c for c in commands.values()), commands
    assert "3 php-cgi workers hold 3 separate OPcache segments of 64 MiB (192 MiB)" in r.text


# ------------------------------------------------------------------------------------------ escaping
EVIL_HOST = "evil<script>alert(2)</script>.example"


def test_vhost_name_and_command_escaped(server):
    s = server(start=False, shmguard=True, shmguard_conf=CONF, wrapper=None)
    # a wrapper whose path (the mod_fcgid class, and php-cgi's command line) contains <script>
    d = os.path.join(s.root, "bin", "<script>alert(1)<", "script>")
    os.makedirs(d)
    for p in (os.path.join(s.root, "bin", "<script>alert(1)<"), d):
        os.chmod(p, 0o755)
    wrap = os.path.join(d, "wrap")
    with open(wrap, "w") as f:
        f.write("#!/bin/sh\nexec %s -d opcache.enable=1 -d opcache.memory_consumption=16 \"$@\"\n" % harness.PHP_CGI)
    os.chmod(wrap, 0o755)
    s.opts["extra_conf"] = ('<VirtualHost 127.0.0.1:%d>\n  ServerName "%s"\n  FcgidWrapper "%s" .php\n'
                            '</VirtualHost>' % (s.port, EVIL_HOST, wrap))
    s.write()
    s.start()
    assert s.get("/index.php").status == 200

    j = wait_json(s, lambda d: any("<script>" in w["class"] for w in d["workers"]), what="the evil worker")
    (w,) = [w for w in j["workers"] if "<script>" in w["class"]]
    assert w["vhost"] == "%s:%d" % (EVIL_HOST, s.port)
    assert any(v["server_name"] == EVIL_HOST for v in j["vhosts"])
    raw = status(s, "json").body
    assert b"<script" not in raw                                 # JSON escapes < and >

    r = status(s)
    p = check_html(r.body)                                       # no <script> element at all
    assert "<script" not in r.text
    assert "evil&lt;script&gt;alert(2)&lt;/script&gt;.example" in r.text       # vhost table + worker row
    assert r.text.count("evil&lt;script&gt;alert(2)") >= 2
    assert "&lt;script&gt;alert(1)&lt;/script&gt;/wrap" in r.text              # class and command
    assert EVIL_HOST in " ".join(p.text)                          # shown as text

    # our section of /server-status (mod_fcgid's own section there prints the wrapper path raw:
    # not ours to fix, so only our two paragraphs are checked)
    r = s.get("/server-status")
    ours = r.text.split("<h2>mod_shmguard</h2>", 1)[1]
    ours = ours[:ours.index("</p>", ours.index("</p>") + 4)]
    assert "<script" not in ours
    r = status(s, "metrics")
    assert promtool(r.text)[0] == 0
    assert 'vhost="%s:%d"' % (EVIL_HOST, s.port) in r.text


# ------------------------------------------------------------------------------------------ access
@pytest.fixture
def netns():
    """A network namespace joined to this one by a veth pair: a client in it connects from a real
    non-loopback address (10.231.X.2) to 10.231.X.1 here."""
    tag = os.getpid() % 100000
    name, host_if, ns_if = "sgst%d" % tag, "sgv%da" % tag, "sgv%db" % tag
    x = tag % 250 + 1
    host_ip, ns_ip = "10.231.%d.1" % x, "10.231.%d.2" % x

    def ip(*args, ns=None):
        cmd = (["ip", "netns", "exec", ns] if ns else []) + ["ip"] + list(args)
        subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)

    subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL, timeout=30)
    ip("netns", "add", name)
    try:
        ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", name)
        ip("addr", "add", host_ip + "/30", "dev", host_if)
        ip("link", "set", host_if, "up")
        ip("addr", "add", ns_ip + "/30", "dev", ns_if, ns=name)
        ip("link", "set", ns_if, "up", ns=name)
        ip("link", "set", "lo", "up", ns=name)
        yield name, host_ip, ns_ip
    finally:
        subprocess.run(["ip", "netns", "del", name], timeout=30)  # takes the veth pair with it


def request_from(ns, host, port, path, method="GET"):
    code = ("import http.client,sys\nc=http.client.HTTPConnection(%r,%d,timeout=10)\nc.request(%r,%r)\n"
            "r=c.getresponse();r.read();print(r.status)" % (host, port, method, path))
    p = subprocess.run(["ip", "netns", "exec", ns, harness.PYTHON, "-c", code], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    assert p.returncode == 0, p.stdout
    return int(p.stdout.split()[-1])


def test_shipped_conf_require_local_and_methods(server, netns):
    name, host_ip, ns_ip = netns
    port2 = harness.free_port()
    s = server(shmguard=True, shmguard_conf_file=SHIPPED_CONF, extra_conf="Listen %s:%d" % (host_ip, port2))
    # local (127.0.0.1): served
    assert status(s).status == 200
    assert status(s, "json").status == 200
    # a real peer at 10.231.x.2: the network works (static file 200) but Require local refuses
    assert request_from(name, host_ip, port2, "/static.txt") == 200
    for q in ("", "?auto", "?json", "?metrics"):
        assert request_from(name, host_ip, port2, "/shmguard-status" + q) == 403
    assert " 403 " in s.access_log() and ns_ip in s.access_log()

    # methods: GET and HEAD only
    for m in ("POST", "PUT", "DELETE"):
        r = status(s, method=m, body=b"x" if m != "DELETE" else None)
        assert r.status == 405, (m, r)
        allow = {a.strip() for a in r.headers.get("Allow", "").split(",")}
        assert {"GET", "HEAD"} <= allow and "POST" not in allow, r.headers.get("Allow")
    r = status(s, method="HEAD")
    assert r.status == 200 and r.body == b""


# ------------------------------------------------------------------------------------------ PSI
V2_FIXTURE = os.path.join(harness.REPO, "tests/fixtures/trees/cgroup2-cache-full/sys/fs/cgroup/system.slice/"
                          "apache2.service")


def test_memory_pressure_shown_in_every_format_and_warned_not_refused(server):
    """cgroup v2's memory.pressure (PSI) on the status page (issue 17 item 4). This machine has no v2
    memory controller, so the module reads a copy of a v2 fixture directory (ShmGuardCgroup DIR) whose
    memory.pressure says the cgroup is thrashing: every format shows it, the advisor warns, and PHP is
    still served (pressure is never a reason to refuse)."""
    s = server(start=False, shmguard=True, status=True)
    cg = os.path.join(s.root, "cg", "apache2.service")
    os.makedirs(os.path.dirname(cg), mode=0o755)
    subprocess.run(["cp", "-r", V2_FIXTURE, cg], check=True, timeout=30)
    with open(os.path.join(cg, "memory.pressure"), "w") as f:
        f.write("some avg10=61.25 avg60=40.10 avg300=12.00 total=912345678\n"
                "full avg10=35.50 avg60=20.05 avg300=6.00 total=401234567\n")
    subprocess.run(["chmod", "-R", "a+rX", os.path.join(s.root, "cg")], check=True, timeout=30)
    s.opts["shmguard_conf"] = CONF.replace("ShmGuardBeancounters ${SHMGUARD_UBC_FILE}\n", "") + \
        "\nShmGuardCgroup %s\n" % cg
    s.write()
    s.start()

    doc = wait_json(s, lambda d: any(x["source"] == "cgroup" and x.get("pressure") for x in d["sources"]),
                    what="the cgroup's pressure")
    cgs = [x for x in doc["sources"] if x["source"] == "cgroup"][0]
    assert cgs["pressure"] == {"some": {"avg10": 61.25, "avg60": 40.1, "avg300": 12, "total_us": 912345678},
                               "full": {"avg10": 35.5, "avg60": 20.05, "avg300": 6, "total_us": 401234567}}
    assert doc["binding"] == "cgroup:memory"
    warn = [f for f in doc["findings"] if f["id"] == "memory-pressure"]
    assert len(warn) == 1 and warn[0]["severity"] == "warning", doc["findings"]
    assert "is thrashing" in warn[0]["text"] and "35.50 %" in warn[0]["text"]

    r = status(s, "auto")
    assert r.status == 200
    assert "ShmGuardMemoryPressure[full_avg10]: 35.50\n" in r.text
    assert "ShmGuardMemoryPressureStalledUs[some]: 912345678\n" in r.text
    assert "ShmGuardFinding[memory-pressure]: The memory cgroup" in r.text

    r = status(s, "metrics")
    assert promtool(r.text)[0] == 0, promtool(r.text)[1]
    types = metric_families(r.text)
    assert types["shmguard_cgroup_memory_pressure_percent"] == "gauge"
    assert types["shmguard_cgroup_memory_pressure_stalled_seconds_total"] == "counter"
    assert 'kind="full",window="avg10"} 35.50\n' in r.text
    assert 'kind="some"} 912.345678\n' in r.text

    page = check_html(status(s).body)
    text = " ".join(page.text)
    assert "memory pressure (PSI)" in text and "full avg10 35.50 %" in text

    # warned, not refused: PHP is served and nothing is refusing
    assert s.get("/index.php").status == 200
    assert get_json(s)["state"] != "refusing"
