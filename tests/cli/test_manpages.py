"""Man pages docs/man/shmguard-probe.8 and docs/man/shmguard.conf.5 (installed by the Debian
packages): `man -l` renders them without a warning (the command lintian runs), and they document
exactly the probe's options and the module's directives (taken from the sources that define them).
"""

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAN = ROOT / "docs" / "man"
PAGES = [MAN / "shmguard-probe.8", MAN / "shmguard.conf.5"]


def render(page, width=80):
    env = dict(os.environ, LC_ALL="C.UTF-8", MANROFFSEQ="", MANWIDTH=str(width))
    return subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", str(page)],
                          capture_output=True, text=True, env=env, timeout=60)


def text(page):
    env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="200")
    r = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    return re.sub(r".\x08", "", r.stdout)


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_man_renders_without_warnings(page):
    r = render(page)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", r.stderr
    assert r.stdout.strip()


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_man_warnings_are_seen(page, tmp_path):
    """The check above can fail: an unknown request in the same page is reported."""
    bad = tmp_path / page.name
    bad.write_text(page.read_text().replace(".SH DESCRIPTION", ".SH DESCRIPTION\n.XY bogus", 1))
    assert "XY" in render(bad).stderr


def test_probe_page_documents_exactly_the_probes_options():
    src = (ROOT / "mod_shmguard" / "probe" / "main.cpp").read_text()
    accepted = set(re.findall(r'opt == "(--[a-z-]+)"', src))
    assert {"--check", "--lenient", "--format"} <= accepted
    page = text(MAN / "shmguard-probe.8")
    options = page[page.index("\nOPTIONS\n"):page.index("\nEXIT STATUS\n")]
    documented = set(re.findall(r"^ {7}(--[a-z-]+)", options, re.M))
    documented |= set(re.findall(r"^ {7}--[a-z-]+ \S+, (--[a-z-]+)", options, re.M))
    documented |= set(re.findall(r"^ {7}-h, (--help)", options, re.M))
    assert documented == accepted


def test_probe_page_synopsis_has_every_option_of_the_usage():
    r = subprocess.run([str(ROOT / os.environ.get("SHMGUARD_PROBE", "build/shmguard-probe")), "--help"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    usage = set(re.findall(r"\[(--[a-z-]+)", r.stdout))
    synopsis = text(MAN / "shmguard-probe.8")
    synopsis = synopsis[synopsis.index("\nSYNOPSIS\n"):synopsis.index("\nDESCRIPTION\n")]
    assert usage and usage <= set(re.findall(r"(--[a-z-]+)", synopsis))


def test_conf_page_documents_exactly_the_modules_directives():
    src = (ROOT / "mod_shmguard" / "glue" / "config.cpp").read_text()
    registered = set(re.findall(r'\{"(ShmGuard[A-Za-z]*)",\s*fn\(', src))
    assert "ShmGuardReserve" in registered and len(registered) >= 10
    page = text(MAN / "shmguard.conf.5")
    section = page[page.index("\nDIRECTIVES\n"):page.index("\nSTATUS PAGE\n")]
    documented = set(re.findall(r"^ {7}(ShmGuard[A-Za-z]*)\b", section, re.M))
    assert documented == registered


def test_conf_page_covers_the_shipped_conf_and_how_to_enable_it():
    page = text(MAN / "shmguard.conf.5")
    conf = (ROOT / "conf" / "shmguard.conf").read_text()
    flat = " ".join(page.split())
    assert "enabled with a2enmod shmguard and disabled with a2dismod shmguard" in flat
    for name in re.findall(r"^\s*(ShmGuard[A-Za-z]+)\s", conf, re.M):
        assert re.search(r"^ {7}%s\b" % name, page, re.M), name
