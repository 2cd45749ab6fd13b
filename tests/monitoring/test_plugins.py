"""The monitoring-plugin side: monitoring/nagios/check_shmguard (the wrapper the Icinga 2 and Nagios
definitions run), monitoring/icinga2/shmguard.conf validated and run by a real Icinga 2, and
monitoring/nagios/*.cfg validated by a real Nagios 4.

The wrapper is tested on a copy whose fixed paths (the probe, the state directory) point into the
test's tmp_path: with a fake probe that records the arguments it was given, and with the real probe
(build/shmguard-probe) writing a real state file. Icinga 2 runs in its own session with every
directory in tmp_path and a fake check_shmguard that records its arguments, so the macros of the
command definitions are resolved by Icinga itself; it is killed (its process group) at the end.
"""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MON = REPO / "monitoring"
WRAPPER = MON / "nagios" / "check_shmguard"
BUILD = Path(os.environ.get("SHMGUARD_BUILD", REPO / "build"))
ICINGA2 = "/usr/sbin/icinga2"
NAGIOS4 = "/usr/sbin/nagios4"

RECORDER = """#!/bin/sh
# records its arguments, one per line, then answers like a plugin
printf '%s\\n' "$@" > "{out}.$$.tmp" && mv "{out}.$$.tmp" "{out}.$$"
echo "SHMGUARD OK - recorded"
"""


def wrapper_copy(tmp_path, probe, state_dir):
    text = WRAPPER.read_text()
    assert "\nPROBE=/usr/sbin/shmguard-probe\n" in text and "\nSTATE_DIR=/var/lib/shmguard-probe\n" in text
    text = text.replace("\nPROBE=/usr/sbin/shmguard-probe\n", "\nPROBE=%s\n" % probe)
    text = text.replace("\nSTATE_DIR=/var/lib/shmguard-probe\n", "\nSTATE_DIR=%s\n" % state_dir)
    p = tmp_path / "check_shmguard"
    p.write_text(text)
    p.chmod(0o755)
    return p


@pytest.fixture
def fake(tmp_path):
    """(wrapper, argv_of_last_probe_call) with a recording fake probe."""
    out = tmp_path / "probe-argv"
    probe = tmp_path / "fake-probe"
    probe.write_text(RECORDER.format(out=out))
    probe.chmod(0o755)
    state = tmp_path / "state"
    state.mkdir()
    w = wrapper_copy(tmp_path, probe, state)

    def last():
        files = sorted(tmp_path.glob("probe-argv.*"), key=lambda f: f.stat().st_mtime_ns)
        if not files:
            return None
        argv = files[-1].read_text().splitlines()
        for f in files:
            f.unlink()
        return argv
    return w, last, state


def run_wrapper(w, *args, user=None):
    cmd = [str(w), *args]
    if user:
        cmd = ["setpriv", "--reuid=%s" % user, "--regid=%s" % user, "--clear-groups", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})


# ---------------------------------------------------------------------------------------- wrapper
def test_wrapper_defaults(fake):
    w, last, state = fake
    r = run_wrapper(w)
    assert r.returncode == 0 and r.stdout == "SHMGUARD OK - recorded\n", r
    assert last() == ["--check", "--warning", "75%", "--critical", "90%", "--state", "%s/default.state" % state]


def test_wrapper_passes_checked_options(fake):
    w, last, state = fake
    r = run_wrapper(w, "-w", "128M", "-c", "64M", "-C", "a1b2c3d4-e5f6", "-n", "web1-shmguard headroom")
    assert r.returncode == 0, r
    assert last() == ["--check", "--warning", "128M", "--critical", "64M",
                      "--state", "%s/web1-shmguard_headroom.state" % state, "--container", "a1b2c3d4-e5f6"]


@pytest.mark.parametrize("name,file", [("../../etc/passwd", "_._.._etc_passwd"), (".hidden", "_hidden"),
                                       ("", "default"), ("a/b c$d", "a_b_c_d")])
def test_wrapper_state_name_stays_in_the_state_dir(fake, name, file):
    w, last, state = fake
    assert run_wrapper(w, "-n", name).returncode == 0
    assert last()[-1] == "%s/%s.state" % (state, file)


@pytest.mark.parametrize("args,message", [
    (["-w", "90%; rm -rf /"], "-w takes a size such as 64M or a percent such as 90%"),
    (["-c", ""], "-c takes a size"),
    (["-c", "1" * 30], "-c: '%s' is too long" % ("1" * 30)),
    (["-C", "101 --beancounters /etc/shadow"], "-C takes a container id"),
    (["-C", "--procfs"], "-C takes a container id"),
    (["-x"], "unknown option -x"),
    (["-w"], "-w needs a value"),
    (["extra"], "unexpected argument 'extra'"),
    (["-d", "/tmp"], "-d is refused when run as root"),
])
def test_wrapper_refuses_bad_options_as_unknown(fake, args, message):
    w, last, _ = fake
    r = run_wrapper(w, *args)
    assert r.returncode == 3, r
    assert r.stdout.startswith("SHMGUARD UNKNOWN - ") and message in r.stdout, r.stdout
    assert last() is None, "the probe ran"


def test_wrapper_state_dir_option_for_a_non_root_user():
    # pytest's tmp_path is inside a 0700 directory: nobody needs one it can reach.
    base = Path(tempfile.mkdtemp(prefix="shmguard-plugin-", dir="/tmp"))
    try:
        base.chmod(0o755)
        out = base / "out"
        out.mkdir()
        own = base / "nobody-state"
        own.mkdir()
        for d in (out, own):
            os.chown(d, 65534, 65534)
        probe = base / "fake-probe"
        probe.write_text(RECORDER.format(out=out / "argv"))
        probe.chmod(0o755)
        w = wrapper_copy(base, probe, "/nonexistent")
        w.chmod(0o755)
        r = run_wrapper(w, "-d", str(own), user="65534")
        assert r.returncode == 0, r
        (rec,) = out.glob("argv.*[0-9]")
        assert rec.read_text().splitlines()[-1] == "%s/default.state" % own
        r = run_wrapper(w, "-d", "relative/dir", user="65534")
        assert r.returncode == 3 and "-d takes an absolute directory" in r.stdout
        r = run_wrapper(w, user="65534")  # no -d: the default directory, missing here
        assert r.returncode == 3 and "no state directory /nonexistent" in r.stdout
    finally:
        shutil.rmtree(base)


def test_wrapper_says_when_the_probe_or_the_state_dir_is_missing(tmp_path):
    w = wrapper_copy(tmp_path, tmp_path / "no-probe", tmp_path)
    r = run_wrapper(w)
    assert r.returncode == 3 and "is not installed (Debian package shmguard-probe)" in r.stdout, r
    probe = BUILD / "shmguard-probe"
    w = wrapper_copy(tmp_path, probe, tmp_path / "no-such-dir")
    r = run_wrapper(w)
    assert r.returncode == 3 and "no state directory %s/no-such-dir" % tmp_path in r.stdout, r


def test_wrapper_with_the_real_probe_keeps_state(tmp_path):
    probe = BUILD / "shmguard-probe"
    assert probe.is_file(), "build the probe first"
    state = tmp_path / "state"
    state.mkdir()
    w = wrapper_copy(tmp_path, probe, state)
    r = run_wrapper(w, "-n", "web1")
    assert r.returncode in (0, 1, 2, 3), r
    assert re.match(r"SHMGUARD (OK|WARNING|CRITICAL|UNKNOWN) - ", r.stdout), r.stdout
    direct = subprocess.run([str(probe), "--check"], capture_output=True, text=True, timeout=30)
    assert r.stdout.split(" - ")[0] == direct.stdout.split(" - ")[0]
    f = state / "web1.state"
    assert f.is_file()
    for line in f.read_text().splitlines():
        assert re.fullmatch(r"\S+ \d+", line), line


# ---------------------------------------------------------------------------------------- Icinga 2
ICINGA_TEST_CONF = """
const PluginDir = "{plugins}"
include <itl>
include "{conf}"
object CheckerComponent "checker" {{ }}
object Host "web1" {{
  check_command = "dummy"
  enable_active_checks = false
  vars.shmguard = true
}}
object Service "shmguard headroom" {{
  host_name = "web1"
  import "shmguard-service"
  check_command = "shmguard"
  check_interval = 1s
  vars.shmguard_container = "101"
  vars.shmguard_critical = "64M"
}}
{extra}
"""


def icinga_dirs(tmp_path):
    d = tmp_path / "icinga2"
    defs = []
    for sub, const in (("data", "DataDir"), ("log", "LogDir"), ("cache", "CacheDir"), ("spool", "SpoolDir"),
                       ("run", "InitRunDir")):
        (d / sub).mkdir(parents=True)
        defs += ["-D", "%s=%s" % (const, d / sub)]
    return d, defs + ["-D", "RunAsUser=root", "-D", "RunAsGroup=root"]


def icinga_conf(tmp_path, extra=""):
    d, defs = icinga_dirs(tmp_path)
    plugins = d / "plugins"
    plugins.mkdir()
    rec = plugins / "check_shmguard"
    rec.write_text(RECORDER.format(out=d / "argv"))
    rec.chmod(0o755)
    conf = d / "icinga2.conf"
    conf.write_text(ICINGA_TEST_CONF.format(plugins=plugins, conf=MON / "icinga2" / "shmguard.conf", extra=extra))
    return d, conf, defs


def example_apply_rule():
    """The commented example apply rule of shmguard.conf, uncommented."""
    text = (MON / "icinga2" / "shmguard.conf").read_text()
    m = re.search(r"\n \* (apply Service \"shmguard\" \{.*?\n \* \})", text, re.S)
    assert m, "the example apply rule is gone"
    rule = re.sub(r"\n \*", "\n", m.group(1))
    return rule.replace("command_endpoint = host.name", "")  # no agents in the test


def test_icinga2_validates_definitions_and_the_example(tmp_path):
    d, conf, defs = icinga_conf(tmp_path, extra=example_apply_rule())
    r = subprocess.run([ICINGA2, "daemon", "-C", "-c", str(conf), *defs], capture_output=True, text=True,
                       timeout=60, cwd=d)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Instantiated 2 Services" in r.stdout, r.stdout  # the test's and the example rule's


def test_icinga2_rejects_a_broken_definition(tmp_path):
    """The validation above can fail: the same file with a misspelt attribute does not load."""
    broken = tmp_path / "broken.conf"
    broken.write_text((MON / "icinga2" / "shmguard.conf").read_text().replace("check_interval", "check_intervall"))
    d, conf, defs = icinga_conf(tmp_path)
    conf.write_text(conf.read_text().replace(str(MON / "icinga2" / "shmguard.conf"), str(broken)))
    r = subprocess.run([ICINGA2, "daemon", "-C", "-c", str(conf), *defs], capture_output=True, text=True,
                       timeout=60, cwd=d)
    assert r.returncode != 0 and "check_intervall" in r.stdout + r.stderr


def read_netstrings(path):
    data, i, out = path.read_bytes(), 0, []
    while i < len(data):
        j = data.index(b":", i)
        n = int(data[i:j])
        out.append(json.loads(data[j + 1:j + 1 + n]))
        i = j + 1 + n + 1
    return out


def test_icinga2_runs_the_check_with_resolved_arguments(tmp_path):
    d, conf, defs = icinga_conf(tmp_path)
    p = subprocess.Popen([ICINGA2, "daemon", "-c", str(conf), *defs], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, cwd=d, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not list(d.glob("argv.*[0-9]")):
            assert p.poll() is None, p.stdout.read().decode()
            assert time.monotonic() < deadline, "Icinga 2 never ran the check"
            time.sleep(0.2)
        time.sleep(0.5)  # the object dump is written at start; let it settle
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                break
            try:
                p.wait(timeout=5)
                break
            except subprocess.TimeoutExpired:
                continue
        deadline = time.monotonic() + 5
        while subprocess.run(["pgrep", "-g", str(p.pid)], capture_output=True).returncode == 0:
            assert time.monotonic() < deadline, "Icinga 2 processes left"
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                break
            time.sleep(0.1)
    argv = sorted(d.glob("argv.*[0-9]"))[0].read_text().splitlines()
    # Icinga orders arguments by key; -d only in the non-sudo command.
    assert argv == ["-C", "101", "-c", "64M", "-d", "/var/lib/icinga2", "-n", "web1-shmguard headroom", "-w", "75%"]
    commands = {o["name"]: o["properties"] for o in read_netstrings(d / "cache" / "icinga2.debug")
                if o["type"] == "CheckCommand" and o["name"].startswith("shmguard")}
    assert commands["shmguard"]["command"] == [str(d / "plugins" / "check_shmguard")]
    assert commands["shmguard-sudo"]["command"] == ["/usr/bin/sudo", "-n", str(d / "plugins" / "check_shmguard")]
    assert sorted(commands["shmguard-sudo"]["arguments"]) == ["-C", "-c", "-n", "-w"]
    assert sorted(commands["shmguard"]["arguments"]) == ["-C", "-c", "-d", "-n", "-w"]
    # What Icinga passed is what the real wrapper accepts.
    state = tmp_path / "state"
    state.mkdir()
    fake_out = tmp_path / "probe-argv"
    probe = tmp_path / "fake-probe"
    probe.write_text(RECORDER.format(out=fake_out))
    probe.chmod(0o755)
    w = wrapper_copy(tmp_path, probe, state)
    without_d = argv[:4] + argv[6:]
    r = run_wrapper(w, *without_d)
    assert r.returncode == 0, r


# ---------------------------------------------------------------------------------------- Nagios 4
NAGIOS_MAIN = """log_file={d}/nagios.log
cfg_file={d}/objects.cfg
cfg_file={cfg}
resource_file={d}/resource.cfg
status_file={d}/status.dat
temp_file={d}/nagios.tmp
temp_path={d}
lock_file={d}/nagios.lock
check_result_path={d}/checkresults
state_retention_file={d}/retention.dat
command_file={d}/nagios.cmd
nagios_user=root
nagios_group=root
illegal_macro_output_chars=`~$&|'"<>
illegal_object_name_chars=`~!$%^&*|'"<>?,()=
"""
NAGIOS_OBJECTS = """define timeperiod {
    timeperiod_name 24x7
    alias           always
    monday 00:00-24:00
    tuesday 00:00-24:00
    wednesday 00:00-24:00
    thursday 00:00-24:00
    friday 00:00-24:00
    saturday 00:00-24:00
    sunday 00:00-24:00
}
define command {
    command_name notify-none
    command_line /bin/true
}
define command {
    command_name check-host-none
    command_line /bin/true
}
define contact {
    contact_name                  admin
    host_notifications_enabled    0
    service_notifications_enabled 0
    host_notification_period      24x7
    service_notification_period   24x7
    host_notification_options     n
    service_notification_options  n
    host_notification_commands    notify-none
    service_notification_commands notify-none
}
define host {
    host_name             web1
    address               127.0.0.1
    check_command         check-host-none
    max_check_attempts    1
    check_period          24x7
    contacts              admin
    notification_interval 0
    notification_period   24x7
}
define service {
    use        shmguard-service
    host_name  web1
    contacts   admin
}
define service {
    use                 shmguard-service
    host_name           web1
    service_description shmguard direct
    check_command       check_shmguard!64M!32M
    contacts            admin
}
define service {
    use                 shmguard-service
    host_name           web1
    service_description shmguard nrpe
    check_command       check_shmguard_nrpe
    contacts            admin
}
"""


def nagios_dir(tmp_path, cfg):
    d = tmp_path / "nagios"
    (d / "checkresults").mkdir(parents=True)
    (d / "main.cfg").write_text(NAGIOS_MAIN.format(d=d, cfg=cfg))
    (d / "objects.cfg").write_text(NAGIOS_OBJECTS)
    (d / "resource.cfg").write_text("$USER1$=/usr/lib/nagios/plugins\n")
    return d


def test_nagios_validates_the_definitions(tmp_path):
    d = nagios_dir(tmp_path, MON / "nagios" / "shmguard.cfg")
    r = subprocess.run([NAGIOS4, "-v", str(d / "main.cfg")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"Checked 3 services\.", r.stdout), r.stdout
    assert re.search(r"Total Errors:\s+0", r.stdout), r.stdout


def test_nagios_rejects_a_broken_definition(tmp_path):
    broken = tmp_path / "broken.cfg"
    broken.write_text((MON / "nagios" / "shmguard.cfg").read_text().replace("command_name    check_shmguard_sudo",
                                                                             "command_name    check_shmguard_sudox"))
    d = nagios_dir(tmp_path, broken)
    r = subprocess.run([NAGIOS4, "-v", str(d / "main.cfg")], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "check_shmguard_sudo" in r.stdout, r.stdout


def nagios_command_lines():
    text = (MON / "nagios" / "shmguard.cfg").read_text()
    return dict(re.findall(r"command_name\s+(\S+)\s*\n\s*command_line\s+(.+)", text))


@pytest.mark.parametrize("service", ["shmguard", "shmguard headroom; /etc [#1] {x}"])
def test_nagios_command_lines_reach_the_wrapper_as_meant(fake, tmp_path, service):
    """Nagios hands command_line, macros substituted, to /bin/sh: the wrapper must get the
    thresholds and a state name inside its state directory whatever the service description holds
    (' is kept out of it by Nagios's default illegal_object_name_chars)."""
    w, last, state = fake
    lines = nagios_command_lines()
    assert set(lines) == {"check_shmguard", "check_shmguard_sudo", "check_shmguard_nrpe"}
    desc = service
    for name in ("check_shmguard", "check_shmguard_sudo"):
        line = lines[name]
        line = line.replace("/usr/bin/sudo -n ", "")  # root runs it directly here
        line = line.replace("$USER1$/check_shmguard", shlex.quote(str(w)))
        line = line.replace("$ARG1$", "75%").replace("$ARG2$", "64M")
        line = line.replace("$HOSTNAME$", "web1").replace("$SERVICEDESC$", desc)
        if name == "check_shmguard":
            line = line.replace("-d /var/lib/nagios4", "")  # -d is refused as root
        r = subprocess.run(["/bin/sh", "-c", line], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, (line, r.stdout, r.stderr)
        argv = last()
        assert argv[:5] == ["--check", "--warning", "75%", "--critical", "64M"], argv
        assert argv[5] == "--state" and argv[6].startswith("%s/web1-" % state), argv
        assert "/" not in argv[6][len(str(state)) + 1:]


def test_nrpe_command_line_reaches_the_wrapper(fake):
    w, last, state = fake
    text = (MON / "nagios" / "nrpe_shmguard.cfg").read_text()
    (line,) = re.findall(r"^command\[check_shmguard\]=(.*)$", text, re.M)
    assert line.startswith("/usr/bin/sudo -n /usr/lib/nagios/plugins/check_shmguard ")
    line = line.replace("/usr/bin/sudo -n /usr/lib/nagios/plugins/check_shmguard", shlex.quote(str(w)))
    r = subprocess.run(["/bin/sh", "-c", line], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r
    assert last() == ["--check", "--warning", "75%", "--critical", "90%", "--state", "%s/nrpe.state" % state]
