"""The Makefile on a bare machine: `make build` (what `make test` and `make run` start with) must
build the module when apxs is installed by `deps` during that same run.

The test copies the tracked tree, gives make a PATH on which apxs does not exist when make starts,
and a DEPS command that "installs" it (links the real apxs into that PATH), as apt-get would on a
machine without apache2-dev. A Makefile that decides at parse time whether to build the module
builds no mod_shmguard.so here.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REAL_APXS = shutil.which("apxs") or shutil.which("apxs2")

pytestmark = pytest.mark.skipif(
    os.environ.get("SHMGUARD_SKIP_BUILD_TEST") == "1" or not REAL_APXS or not shutil.which("git"),
    reason="needs apxs (apache2-dev) and git; skipped in the sanitizer run")


def _path_without(dirs, exclude, farm):
    """A directory of links to every program in `dirs` except the names in `exclude`."""
    farm.mkdir()
    for d in dirs:
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            if name in exclude or (farm / name).exists():
                continue
            (farm / name).symlink_to(os.path.join(d, name))
    return str(farm)


def _include_names(src, header):
    """The names under which the tree's sources include `header` ("shmguard/x.hpp" for the public
    headers, "shm/x.hpp" or "x.hpp" beside its source for the others)."""
    rel = header.relative_to(src)
    if rel.parts[0] == "include":
        return {str(rel.relative_to("include"))}
    return {str(rel.relative_to(rel.parts[0])), rel.name}


def _objects_including(src, header):
    """The objects `make all` builds from a source that includes `header`, directly or through
    other headers of the tree (found by reading the #include lines, not from make's .d files)."""
    import re
    inc = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
    files = [p for d in ("include", "mod_shmguard", "tests/unit") for p in (src / d).rglob("*")
             if p.suffix in (".hpp", ".cpp")]
    names = {header}
    while True:
        more = {n for p in files if p.suffix == ".hpp" and set(inc.findall(p.read_text())) & names
                for n in _include_names(src, p)} - names
        if not more:
            break
        names |= more
    out = []
    for p in files:
        if p.suffix != ".cpp" or not set(inc.findall(p.read_text())) & names:
            continue
        rel = p.relative_to(src)
        if rel.parts[0] == "mod_shmguard" and rel.parts[1] in ("probe", "wrapper", "core") \
                or rel.parts[0] == "tests":
            out.append("out/obj/%s" % rel.with_suffix(".o"))
        elif rel.parts[0] == "mod_shmguard" and rel.parts[1] in ("glue", "sampler"):
            out.append("out/obj-httpd/%s" % rel.with_suffix(".o"))
            if rel.parts[1] == "sampler":  # also built without httpd, for the unit tests
                out.append("out/obj/%s" % rel.with_suffix(".o"))
    return out


def test_make_build_finds_apxs_installed_by_deps(tmp_path):
    src = tmp_path / "src"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True,
                           stdout=subprocess.PIPE).stdout.split(b"\0")
    for rel in filter(None, files):
        rel = rel.decode()
        if not (ROOT / rel).is_file():
            continue
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    bindir = tmp_path / "bin"
    system = os.environ.get("PATH", "/usr/bin:/bin").split(":") + ["/usr/bin", "/bin", "/usr/sbin"]
    farm = _path_without(system, {"apxs", "apxs2"}, bindir)
    fake_deps = tmp_path / "deps.sh"
    fake_deps.write_text("#!/bin/sh\nln -sf %s %s/apxs\necho installed apxs\n" % (REAL_APXS, farm))
    fake_deps.chmod(0o755)
    env = {"PATH": farm, "HOME": str(tmp_path), "LANG": "C"}
    assert subprocess.run(["sh", "-c", "command -v apxs"], env=env).returncode != 0
    r = subprocess.run(["make", "-j2", "build", "DEPS=%s" % fake_deps, "OPT=-O0", "BUILD=out"],
                       cwd=src, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert r.returncode == 0, r.stdout[-4000:]
    assert "installed apxs" in r.stdout
    assert (src / "out" / "mod_shmguard.so").is_file(), r.stdout[-4000:]
    assert (src / "out" / "shmguard-probe").is_file()
    # Header dependencies: after the build, a header that few files include rebuilds exactly
    # those objects, not every object (a Makefile with every header on every object rebuilds all;
    # one with no header dependencies rebuilds none).
    (src / "include" / "shmguard" / "lean.hpp").touch()
    plan = subprocess.run(["make", "-n", "all", "OPT=-O0", "BUILD=out"], cwd=src, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
    rebuilt = sorted(line.split(" -o ")[-1].strip() for line in plan.splitlines()
                     if " -c " in line and " -o " in line)
    including = sorted(_objects_including(src, "shmguard/lean.hpp"))
    assert including, "no file includes shmguard/lean.hpp any more: pick another header"
    assert rebuilt == including, plan[-4000:]
