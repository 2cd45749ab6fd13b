"""shmguard-probe --lenient: a customer's pasted /proc/user_beancounters.

The pasted files are made here from the kernel-format fixtures (Version line or header dropped,
spaces collapsed, no-break spaces, CR LF). The numbers a lenient reading must give are the probe's
strict reading of the untouched fixture (which test_probe.py checks against an independent reading
of the file), so a lenient reading that loses or shifts a column fails.
"""

import json
import re
import subprocess

import pytest

from test_probe import BC, bc_only, empty, probe_json, run  # noqa: F401 (empty: a fixture)

FIXTURES = ["openvz6-container.txt", "vz7-container.txt", "vz7-uuid-id.txt", "x86-32bit.txt",
            "hardware-node.txt", "all-unlimited.txt"]


def lines(name):
    return (BC / name).read_text().splitlines()


def collapse(text_lines):
    return [re.sub(r" +", " ", l).strip() for l in text_lines]


PASTES = {
    "no-version": lambda l: l[1:],
    "no-header": lambda l: l[:1] + l[2:],
    "no-version-no-header": lambda l: l[2:],
    "collapsed": collapse,
    "collapsed-no-version": lambda l: collapse(l[1:]),
}


def write(tmp_path, text_lines, name="pasted.txt", end="\n"):
    p = tmp_path / name
    p.write_bytes((end.join(text_lines) + end).encode())
    return p


def bc_unavailable(doc):
    return [u for u in doc["unavailable"] if u["source"] == "beancounter"]


def comparable(doc):
    """The parts of a JSON reading that must not depend on how the file was read."""
    keep = ("headroom_bytes", "binding", "limits", "counters")
    out = {k: doc[k] for k in keep}
    out["sources"] = [{k: v for k, v in s.items() if k not in ("file", "version", "version_known")}
                      for s in doc["sources"] if s["source"] == "beancounter"]
    return out


@pytest.mark.parametrize("paste", sorted(PASTES))
@pytest.mark.parametrize("name", FIXTURES)
def test_lenient_reads_a_paste_as_the_kernel_file(empty, tmp_path, name, paste):
    want = probe_json(*bc_only(empty, BC / name))
    assert want["sources"], "fixture not read strictly"
    pasted = write(tmp_path, PASTES[paste](lines(name)))
    got = probe_json(*bc_only(empty, pasted, "--lenient"))
    assert bc_unavailable(got) == []
    assert comparable(got) == comparable(want)
    fmt = got["beancounter_format"]
    assert fmt["read"] == "lenient" and fmt["exact"] is False
    if "no-version" in paste:
        assert "no 'Version:' line (lost in copying?)" in fmt["notes"]
        assert {s["version"] for s in got["sources"] if s["source"] == "beancounter"} == {""}
    if paste == "no-header":
        assert fmt["notes"] == ["no column header line (lost in copying?)"]
    if "collapsed" in paste:
        assert any("not laid out as the kernel prints them" in n for n in fmt["notes"]), fmt


@pytest.mark.parametrize("name", FIXTURES)
def test_lenient_on_the_kernels_own_format_says_it_is_exact(empty, name):
    doc = probe_json(*bc_only(empty, BC / name, "--lenient"))
    assert doc["beancounter_format"] == {"read": "lenient", "exact": True, "notes": []}
    assert comparable(doc) == comparable(probe_json(*bc_only(empty, BC / name)))
    r = run(*bc_only(empty, BC / name, "--lenient"))
    first = r.stdout.splitlines()[0]
    assert first == "note: %s was read leniently (--lenient) and is in the kernel's exact format" % (BC / name)


def test_text_output_says_first_that_the_file_is_not_exact(empty, tmp_path):
    pasted = write(tmp_path, collapse(lines("openvz6-container.txt")[1:]))
    r = run(*bc_only(empty, pasted, "--lenient"))
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0].startswith("NOTE: %s is NOT in the kernel's exact format of /proc/user_beancounters; "
                             "read leniently (--lenient): " % pasted), out[0]
    rows = len(lines("openvz6-container.txt")) - 2
    assert "no 'Version:' line (lost in copying?)" in out[0]
    assert "%d of %d rows not laid out as the kernel prints them" % (rows, rows) in out[0]
    assert out[1].startswith("headroom 58.7 MiB (61530112 bytes)"), out[1]
    assert any("no version (no 'Version:' line)" in l for l in out), r.stdout


def test_default_stays_strict_and_hints_at_lenient(empty, tmp_path):
    pasted = write(tmp_path, lines("openvz6-container.txt")[1:])
    doc = probe_json(*bc_only(empty, pasted))
    assert "beancounter_format" not in doc
    assert doc["headroom_bytes"] is None
    (u,) = bc_unavailable(doc)
    assert u["reason"].startswith("malformed at line 1: expected 'Version: 2.5'"), u
    assert u["reason"].endswith("(%s); not the kernel's exact format, but --lenient reads it (a pasted "
                                "copy?)" % pasted), u


def test_no_hint_when_lenient_would_fail_too(empty, tmp_path):
    bad = write(tmp_path, ["Version: 2.5", "uid resource held maxheld barrier limit failcnt",
                           "101: shmpages 1 2 3"])
    (u,) = bc_unavailable(probe_json(*bc_only(empty, bad)))
    assert "--lenient" not in u["reason"], u


@pytest.mark.parametrize("text,error", [
    ("", "malformed at line 1: empty file"),
    ("just some text a customer pasted\n", "malformed at line 1: row 'just' before any container id"),
    ("# cat /proc/user_beancounters\n101: shmpages 1 2 3 x 5\n",
     "malformed at line 2: not a number: 'x' in limit of 'shmpages'"),
    ("Version: 2.5\nuid resource held\n", "malformed at line 2: expected header"),
])
def test_lenient_bad_input_is_a_clear_reason_never_a_crash(empty, tmp_path, text, error):
    p = tmp_path / "bad.txt"
    p.write_text(text)
    r = run(*bc_only(empty, p, "--lenient", "--format", "json"))
    assert r.returncode == 0, r.stderr
    (u,) = bc_unavailable(json.loads(r.stdout))
    assert u["reason"].startswith(error), u
    assert u["reason"].endswith("(%s, read leniently)" % p), u


def test_lenient_nbsp_crlf_and_prompt_line(empty, tmp_path):
    src = lines("vz7-container.txt")
    pasted_lines = ["[root@ct101 ~]# cat /proc/user_beancounters"] + \
        [l.replace("  ", "\u00a0 ") for l in src]
    p = tmp_path / "web.txt"
    p.write_bytes(("\r\n".join(pasted_lines) + "\r\n").encode("utf-8"))
    got = probe_json(*bc_only(empty, p, "--lenient"))
    assert comparable(got) == comparable(probe_json(*bc_only(empty, BC / "vz7-container.txt")))
    notes = got["beancounter_format"]["notes"]
    assert any(n.startswith("line 1 skipped: '[root@ct101 ~]# cat /proc/user_beanc") for n in notes), notes
    assert "Windows line ends (CR LF)" in notes
    assert any(n.endswith("non-breaking or other Unicode spaces read as ' '") for n in notes), notes


def test_lenient_hardware_node_container(empty, tmp_path):
    pasted = write(tmp_path, collapse(lines("hardware-node.txt")[2:]))
    for container in ("0", "101"):
        want = probe_json(*bc_only(empty, BC / "hardware-node.txt", "--container", container))
        got = probe_json(*bc_only(empty, pasted, "--lenient", "--container", container))
        assert comparable(got) == comparable(want)
    (u,) = bc_unavailable(probe_json(*bc_only(empty, pasted, "--lenient", "--container", "999")))
    assert u["reason"].startswith("no block for container '999'"), u


def test_lenient_check_names_the_format_and_keeps_the_state(empty, tmp_path):
    strict = run(*bc_only(empty, BC / "openvz6-container.txt", "--check"))
    pasted = write(tmp_path, collapse(lines("openvz6-container.txt")[1:]))
    r = run(*bc_only(empty, pasted, "--lenient", "--check"))
    assert r.returncode == strict.returncode == 2
    assert "the beancounter file is not in the kernel's exact format (read with --lenient)" in r.stdout
    assert r.stdout.split(" | ")[1] == strict.stdout.split(" | ")[1]  # the same perfdata
    exact = run(*bc_only(empty, BC / "openvz6-container.txt", "--lenient", "--check"))
    assert "exact format" not in exact.stdout


def test_lenient_prometheus_passes_promtool(empty, tmp_path):
    pasted = write(tmp_path, collapse(lines("openvz6-container.txt")[2:]), name="a\nb.txt")
    r = run(*bc_only(empty, pasted, "--lenient", "--format", "prometheus"))
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith("# NOTE: ") and "not in the kernel's exact format" in first
    assert "shmguard_headroom_bytes 61530112" in r.stdout.splitlines()
    p = subprocess.run(["/usr/bin/promtool", "check", "metrics"], input=r.stdout, capture_output=True,
                       text=True)
    assert p.returncode == 0 and (p.stdout + p.stderr).strip() == "", p.stdout + p.stderr


@pytest.mark.parametrize("bad", [["--lenient=yes"], ["--lenient", "--check", "--lenient=1"]])
def test_lenient_takes_no_value(empty, bad):
    r = run(*bad)
    assert r.returncode == (3 if "--check" in bad else 2)
    assert "--lenient takes no value" in r.stderr
