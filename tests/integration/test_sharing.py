"""Several sites on one budget (issue 18): an idle worker of a quiet site is reclaimed for a site
that has none, the way mod_fcgid retires an idle worker (off its idle list onto its error list,
under its own table lock; its process manager ends it). Real apache2 + mod_fcgid + php-cgi, two
name-based vhosts (two mod_fcgid classes), the OpenVZ beancounter double holding 3 workers in all.
The reclaim and the hand-over run twice: both sites as the server's User, and each site its own user
through suEXEC, as hosting panels run them (the module never signals a worker: mod_fcgid's process
manager, which becomes root to signal another user's process, ends it).
"""

import re
import threading
import time

import pytest

import harness
from harness import WorkerWatch as Watch, wait_for
from test_module import GUARD, SEG_PAGES, status, wait_sample

A, B = "a.test", "b.test"
# A generous wait (a loaded machine), and mod_fcgid's error scan every second: a reclaimed worker
# is ended within about two seconds (the scan's test is `<=`).
SHARING = GUARD + "ShmGuardWait 20s\n"


def vhosts(a_extra="", suexec=None):
    """Two sites, two mod_fcgid classes: a vhost with a mod_fcgid directive of its own has its own
    mod_fcgid vhost id (one without shares the main server's, and with the same wrapper would be
    the same class). `a_extra`: more directives in A's <VirtualHost>. `suexec`: {site: (user,
    wrapper)}, each site run as its own user with its own FcgidWrapper."""
    out = []
    for n in (A, B):
        own = ""
        if suexec:
            user, wrapper = suexec[n]
            own = '  SuexecUserGroup %s %s\n  FcgidWrapper "%s" .php\n' % (user, user, wrapper)
        out.append('<VirtualHost 127.0.0.1:*>\n  ServerName %s\n  FcgidIdleTimeout 300\n%s%s'
                   '</VirtualHost>\n' % (n, own, a_extra if n == A else ""))
    return "".join(out)


@pytest.fixture(params=["one-user", "suexec"])
def users(request):
    """None (both sites as the server's User), or harness.SuexecSites: sites A and B as users of
    their own. Ask for it before `server`, so the accounts outlive the server's processes."""
    if request.param == "one-user":
        yield None
    else:
        with harness.SuexecSites("ab") as sites:
            yield sites


def uid_of(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1))


def start(server, extra="", a_extra="", users=None):
    kw = dict(shmguard=True, shmguard_conf=SHARING + extra, fcgid_extra="FcgidErrorScanInterval 1",
              spawn_score_uplimit=100)
    if users is None:
        s = server(extra_conf=vhosts(a_extra), **kw)
    else:
        s = server(start=False, wrapper=None, **kw)
        own = {n: (u, users.wrapper(u, s)) for n, u in zip((A, B), users.users)}
        s.opts["extra_conf"] = ("LoadModule suexec_module %s/mod_suexec.so\n" % harness.MODULES
                                + vhosts(a_extra, own))
        s.write()
        s.budget.share_with_all_users()
        s.start()
    s.budget.refresh()
    s.budget.set_barrier(s.budget.held() + 3 * SEG_PAGES + 1000)  # 3 workers in all
    wait_sample(s, headroom_below=4 * (64 << 20), headroom_at_least=3 * (64 << 20))
    return s


def get(s, host, path="/sleep.php", timeout=60):
    return s.get(path, headers={"Host": host}, timeout=timeout)


def vh(s, name):
    (v,) = [v for v in status(s)["vhosts"] if v["server_name"] == name]
    return v


def hammer_a(s, n=6):
    """Site A takes the three workers the budget holds; all its requests are served."""
    rs = s.get_many(["/sleep.php?ms=2000"] * n, headers={"Host": A}, timeout=60)
    assert [r.status for r in rs] == [200] * n, [(r.status, r.text[:200]) for r in rs]
    workers = s.wait_workers(3)
    wait_sample(s, headroom_below=64 << 20)
    return workers


def check_users(users, s, a_workers=(), b_response=None):
    """Under suEXEC, each site's workers run as the site's user: A's live workers by their /proc
    entry, B's by what its worker said (whoami.php: pid and euid; the worker may be gone since).
    The sampler, running as User, still reads another user's worker (it keeps CAP_SYS_PTRACE
    under suEXEC): the status page shows each of A's workers with its 64 MiB OPcache segment."""
    if users is None:
        return
    ua, ub = (users.ids(u)[0] for u in users.users)
    assert [uid_of(p) for p in a_workers] == [ua] * len(a_workers)
    if b_response is not None:
        assert int(b_response.text.split()[1]) == ub, b_response.text

    def measured():
        seen = {w["pid"]: sum(g["size_bytes"] for g in w.get("segments", []))
                for w in status(s).get("workers", [])}
        return all(seen.get(p) == SEG_PAGES * 4096 for p in a_workers)
    assert wait_for(measured, 10), status(s).get("workers")


def test_quiet_sites_idle_worker_is_reclaimed_for_the_other_site(users, server):
    s = start(server, users=users)
    watch = Watch(s)
    a_workers = hammer_a(s)
    check_users(users, s, a_workers)
    # A is quiet now; its idle workers hold the whole budget. B's first request is served within
    # ShmGuardWait by a worker of its own, in room one of A's idle workers gave back.
    mark = s.log_mark()
    r = get(s, B)
    assert r.status == 200, (r.status, r.text[:300])
    assert int(r.text) not in a_workers
    log = s.wait_log(r"SG0210 reclaimed idle worker pid (\d+) of a\.test \(idle \d+ ms\) for "
                     r"/sleep\.php on b\.test", since=mark)
    victim = int(log.group(1))
    assert victim in a_workers
    check_users(users, s, b_response=get(s, B, "/whoami.php"))
    assert wait_for(lambda: victim not in s.php_workers(), 10), "the reclaimed worker never ended"
    assert len(re.findall(r"SG0210", s.error_log())) == 1, "one request, one reclaim"
    # No over-spawn: never more php-cgi than the budget holds, and no start over budget.
    assert watch.stop() <= 3
    assert s.budget.failcnt() == 0, s.budget.events()
    # A's other two workers still serve A; B's worker serves B.
    assert get(s, A).status == 200
    assert get(s, B).status == 200
    # Counted per vhost, in every format.
    assert vh(s, A)["reclaims_given"] == 1 and vh(s, A)["reclaims_taken"] == 0
    assert vh(s, B)["reclaims_taken"] == 1 and vh(s, B)["reclaims_given"] == 0
    assert vh(s, B)["refused"] == 0
    m = s.get("/shmguard-status?metrics").text
    assert re.search(r'^shmguard_vhost_reclaims_total\{vhost="b\.test(:\d+)?",direction="taken"\} 1$', m, re.M), m
    assert re.search(r'^shmguard_vhost_reclaims_total\{vhost="a\.test(:\d+)?",direction="given"\} 1$', m, re.M), m
    auto = s.get("/shmguard-status?auto").text
    assert re.search(r"^ShmGuardVhostReclaimsTaken\[b\.test(:\d+)?\]: 1$", auto, re.M), auto
    assert re.search(r"^ShmGuardVhostReclaimsGiven\[a\.test(:\d+)?\]: 1$", auto, re.M), auto
    html = s.get("/shmguard-status").text
    assert "idle workers reclaimed (given / taken)" in html and "FcgidErrorScanInterval" in html


def test_a_busy_worker_is_never_reclaimed_and_its_request_completes(server):
    s = start(server)
    watch = Watch(s)
    a_workers = hammer_a(s)
    # A long request of A in flight (its worker on mod_fcgid's busy list) while B needs a worker.
    long_result = []
    t = threading.Thread(target=lambda: long_result.append(get(s, A, "/sleep.php?ms=6000")))
    t.start()
    # Admitted: from here its worker is either on mod_fcgid's busy list or still idle but counted
    # by the request's claim; neither may be reclaimed, whichever B's request meets.
    assert wait_for(lambda: vh(s, A)["passed"] >= 7, 10)
    mark = s.log_mark()
    r = get(s, B)
    t.join(30)
    assert r.status == 200, (r.status, r.text[:300])
    assert long_result and long_result[0].status == 200, long_result and long_result[0].text[:300]
    busy = int(long_result[0].text)
    log = s.wait_log(r"SG0210 reclaimed idle worker pid (\d+) of a\.test", since=mark)
    victim = int(log.group(1))
    assert victim in a_workers and victim != busy, "the busy worker was chosen"
    assert busy in s.php_workers(), "the busy worker was ended"
    assert watch.stop() <= 3
    assert s.budget.failcnt() == 0, s.budget.events()


def test_reclaim_off_refuses_as_before(server):
    s = start(server, "ShmGuardReclaim Off\n")
    a_workers = hammer_a(s)
    r = get(s, B)
    assert r.status == 503, (r.status, r.text[:300])
    assert r.headers["Retry-After"] == "30"
    assert r.elapsed < 5, "nothing to wait for: refused at once"
    assert sorted(s.php_workers()) == sorted(a_workers), "A's workers untouched"
    assert "SG0210" not in s.error_log()
    assert vh(s, B)["reclaims_taken"] == 0 and vh(s, A)["reclaims_given"] == 0


def test_under_log_a_reclaim_is_only_logged(server):
    s = start(server, "ShmGuardAction log\n")
    a_workers = hammer_a(s, 3)  # a dry run leaves mod_fcgid's spawning as it is: one per request
    mark = s.log_mark()
    r = get(s, B)  # served anyway (a dry run), by a worker mod_fcgid starts over budget
    assert r.status in (200, 500), (r.status, r.text[:300])
    assert s.wait_log(r"SG0211 would reclaim idle worker pid \d+ of a\.test \(idle \d+ ms\) for "
                      r"/sleep\.php on b\.test \(ShmGuardAction log: nothing retired\)", since=mark)
    assert "SG0210" not in s.error_log()
    assert all(p in s.php_workers() for p in a_workers), "A's workers untouched"
    assert vh(s, A)["reclaims_given"] == 0


def test_reclaim_is_a_server_wide_switch(server):
    s = server(start=False, shmguard=True, shmguard_conf=GUARD,
               extra_conf="<VirtualHost 127.0.0.1:*>\n  ShmGuardReclaim Off\n</VirtualHost>\n")
    rc, out = s.configtest()
    assert rc != 0 and "ShmGuardReclaim" in out and "VirtualHost" in out, out
    s.opts["shmguard_conf"] = GUARD + "ShmGuardReclaim maybe\n"
    s.write()
    rc, out = s.configtest()
    assert rc != 0 and "ShmGuardReclaim" in out, out


def test_while_a_is_busy_b_gets_its_fair_share(users, server):
    """Issue 18 item 2: site A hammered with slow requests holds every worker the budget has and
    keeps 4 of its requests waiting; a request of site B is served while A is still busy, by a
    worker of its own in the room of one of A's workers, handed over as it freed (A's share is 2
    of 3, B's 1). On the old code B is refused at once (nothing idle to reclaim, nothing coming)."""
    s = start(server, users=users)
    watch = Watch(s)
    a_results = []
    n = 7
    hammer = threading.Thread(target=lambda: a_results.extend(
        s.get_many(["/sleep.php?ms=2500"] * n, headers={"Host": A}, timeout=60)))
    hammer.start()
    # A holds the three workers, and more of its requests wait than it has workers.
    assert wait_for(lambda: len(s.php_workers()) == 3 and vh(s, A)["waited"] >= 3, 20), \
        (s.php_workers(), vh(s, A))
    a_workers = set(s.php_workers())
    check_users(users, s, sorted(a_workers))
    mark = s.log_mark()
    # The status page while B waits: why its request waits, and the shares (every format has
    # them from the one status model: test_status's unit test checks the writers).
    seen, done = [], threading.Event()

    def poll():
        while not done.is_set():
            v = status(s)["vhosts"]
            seen.append({x["server_name"]: (x["fair_share"], x["waiting_now"]) for x in v
                         if x["server_name"] in (A, B)})
            time.sleep(0.05)
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    r = get(s, B, "/whoami.php")  # its worker's pid and euid
    a_busy_when_b_served = hammer.is_alive()
    done.set()
    poller.join(10)
    hammer.join(60)
    assert r.status == 200, (r.status, r.text[:300])
    assert a_busy_when_b_served, "B was served only after A's load ended"
    assert int(r.text.split()[0]) not in a_workers, "B is served by a worker of its own"
    check_users(users, s, b_response=r)
    log = s.wait_log(r"SG0212 handed worker pid (\d+) of a\.test \(idle \d+ ms\) over to b\.test "
                     r"as it freed: a\.test holds 3 workers, its fair share is 2; b\.test holds 0, "
                     r"its share 1", since=mark)
    assert int(log.group(1)) in a_workers
    # Every request of A served too (its other two workers kept serving it), none a bare 500.
    assert [x.status for x in a_results] == [200] * n, [(x.status, x.text[:200]) for x in a_results]
    # No over-spawn: never more php-cgi than the budget holds, and no start over budget.
    assert watch.stop() <= 3
    assert s.budget.failcnt() == 0, s.budget.events()
    assert vh(s, B)["refused"] == 0 and vh(s, A)["refused"] == 0
    assert vh(s, A)["reclaims_given"] == 1 and vh(s, B)["reclaims_taken"] == 1
    # B keeps its worker while A's load goes on: A's waiters did not take the room B was given.
    assert get(s, B).status == 200
    # B waited for its share of 1 (A's was 2 of the 3), then for the room handed over; never for
    # "a worker of its class" (it had none). A's requests waited for workers of their class.
    b_reasons = {k for snap in seen if B in snap for k, n in snap[B][1].items() if n}
    assert "share" in b_reasons and "worker" not in b_reasons, seen
    assert any(snap[B][0] == 1 and snap[A][0] == 2 for snap in seen if A in snap and B in snap), seen
    assert any(snap[A][1]["worker"] > 0 for snap in seen if A in snap), seen
    # Nobody waits now: the counts of waiting requests went back to 0.
    assert all(n == 0 for n in vh(s, A)["waiting_now"].values()), vh(s, A)
    assert all(n == 0 for n in vh(s, B)["waiting_now"].values()), vh(s, B)


def test_a_sites_floor_is_never_reclaimed(server):
    """ShmGuardMinWorkers 3 on A: A's three idle workers are its floor; B's request finds nothing
    to reclaim and is refused at once, as with reclaim off (issue 18 item 3)."""
    s = start(server, a_extra="  ShmGuardMinWorkers 3\n")
    a_workers = hammer_a(s)
    r = get(s, B)
    assert r.status == 503, (r.status, r.text[:300])
    assert r.elapsed < 5, "nothing to wait for: refused at once"
    assert sorted(s.php_workers()) == sorted(a_workers), "A's workers untouched"
    assert "SG0210" not in s.error_log() and "SG0212" not in s.error_log()
    assert vh(s, A)["reclaims_given"] == 0


def test_min_workers_bad_values_are_config_errors(server):
    s = server(start=False, shmguard=True, shmguard_conf=GUARD,
               extra_conf="<VirtualHost 127.0.0.1:*>\n  ShmGuardMinWorkers -1\n</VirtualHost>\n")
    for bad in ("-1", "lots", "10001", "2.5"):
        s.opts["extra_conf"] = "<VirtualHost 127.0.0.1:*>\n  ShmGuardMinWorkers %s\n</VirtualHost>\n" % bad
        s.write()
        rc, out = s.configtest()
        assert rc != 0 and "ShmGuardMinWorkers" in out and "0 to 10000" in out, (bad, out)
    s.opts["extra_conf"] = "<VirtualHost 127.0.0.1:*>\n  ShmGuardMinWorkers 2\n</VirtualHost>\n"
    s.write()
    rc, out = s.configtest()
    assert rc == 0, out

