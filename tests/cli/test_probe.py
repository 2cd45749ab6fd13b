"""shmguard-probe run as a program on fixture trees.

Run with `/usr/bin/python3 -m pytest tests/cli` (from any directory). The probe is taken from the
environment variable SHMGUARD_PROBE (default: build/shmguard-probe under the repository root).

Every expected number is computed here from the fixture files themselves (a small independent reading
of the kernel formats), never copied from the probe's own output, so a wrong parse or a wrong model
fails a test. Every run passes `--devshm off` (or a temporary directory) and, where bytes matter,
`--page-size 4096`, so nothing depends on the machine running the tests.
"""

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
BC = FIXTURES / "beancounters"
TREES = FIXTURES / "trees"
PAGE = 4096
LONG_MAX = 9223372036854775807
LONG_MAX_32 = 2147483647


def _probe_path():
    p = Path(os.environ.get("SHMGUARD_PROBE", "build/shmguard-probe"))
    if p.is_absolute():
        return p
    if (Path.cwd() / p).exists():
        return (Path.cwd() / p).resolve()
    return ROOT / p


PROBE = _probe_path()


@pytest.fixture(scope="session", autouse=True)
def _probe_exists():
    if not (PROBE.is_file() and os.access(PROBE, os.X_OK)):
        pytest.fail(f"probe not built: {PROBE} (run `make APXS= build/shmguard-probe` or set SHMGUARD_PROBE)")


@pytest.fixture
def empty(tmp_path):
    """An empty directory: a procfs/sysfs root where nothing exists."""
    d = tmp_path / "empty"
    d.mkdir()
    return d


def run(*args, timeout=30):
    """Runs the probe; checks it neither crashed nor reported an internal error."""
    r = subprocess.run([str(PROBE), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, cwd=ROOT, stdin=subprocess.DEVNULL)
    assert r.returncode >= 0, f"probe killed by signal {-r.returncode}: {args}\n{r.stderr}"
    assert "internal error" not in r.stderr, r.stderr
    assert "runtime error" not in r.stderr, r.stderr  # UBSan, when the probe is a sanitizer build
    assert "AddressSanitizer" not in r.stderr, r.stderr
    return r


def tree_args(name):
    t = TREES / name
    return ["--procfs", t / "proc", "--sysfs", t / "sys"]


def bc_only(empty, bcfile, *extra):
    """Arguments that read only a beancounter file (every other source missing)."""
    return ["--procfs", empty, "--sysfs", empty, "--beancounters", bcfile, "--devshm", "off",
            "--page-size", PAGE, *extra]


def probe_json(*args):
    r = run(*args, "--format", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def human(b):
    """What the probe's human_bytes should print (binary units, one decimal)."""
    if b < 1024:
        return f"{b} B"
    v, units = float(b), ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    u = -1
    while v >= 1024.0 and u < 5:
        v /= 1024.0
        u += 1
    return f"{v:.1f} {units[u]}"


# ------------------------------------------------------------------ an independent reading of the fixtures

def unit_of(resource):
    if resource.endswith("pages"):
        return "pages"
    if resource.startswith("num"):
        return "count"
    return "bytes"


def unlimited(v):
    return v in (LONG_MAX, LONG_MAX_32, 0)


def make_row(toks):
    held, maxheld, barrier, limit, failcnt = (int(x) for x in toks[1:6])
    return dict(resource=toks[0], held=held, maxheld=maxheld, barrier=barrier, limit=limit,
                failcnt=failcnt, unit=unit_of(toks[0]))


def parse_ubc(path):
    """/proc/user_beancounters -> (version, {id: [rows]}) in file order."""
    lines = Path(path).read_text().splitlines()
    version = lines[0].split(":", 1)[1].strip()
    blocks, cur = {}, None
    for line in lines[2:]:
        toks = line.split()
        if not toks:
            continue
        if ":" in toks[0]:
            cur, rest = toks[0].split(":", 1)
            blocks[cur] = []
            toks = ([rest] if rest else []) + toks[1:]
        blocks[cur].append(make_row(toks))
    return version, blocks


def parse_bc_resources(path):
    return [make_row(line.split()) for line in Path(path).read_text().splitlines() if line.split()]


def to_bytes(row, v, page=PAGE):
    return {"pages": v * page, "bytes": v, "count": None}[row["unit"]]


def bc_limits(rows, page=PAGE):
    """The model for beancounters: shmpages and privvmpages, (barrier - held) pages, if limited."""
    out = {}
    for r in rows:
        if r["resource"] in ("shmpages", "privvmpages") and not unlimited(r["barrier"]):
            out["beancounter:" + r["resource"]] = (r["barrier"] * page, r["held"] * page)
    return out


def read_int(p):
    return int(Path(p).read_text().split()[0])


def cg_level(d):
    """(limit, usage - reclaimable) of one cgroup level by README's rule: reclaimable is the clean
    file cache inactive_file + active_file - dirty - writeback from the level's own memory.stat
    (v1: total_* keys), 0 without a memory.stat."""
    d = Path(d)
    v2 = (d / "memory.max").exists()
    lim = read_int(d / ("memory.max" if v2 else "memory.limit_in_bytes"))
    use = read_int(d / ("memory.current" if v2 else "memory.usage_in_bytes"))
    rec = 0
    if (d / "memory.stat").exists():
        st = dict((k, int(v)) for k, v in (l.split() for l in (d / "memory.stat").read_text().splitlines()))
        keys = ("inactive_file", "active_file", "file_dirty", "file_writeback") if v2 else \
            ("total_inactive_file", "total_active_file", "total_dirty", "total_writeback")
        rec = max(0, st[keys[0]] + st[keys[1]] - st[keys[2]] - st[keys[3]])
    return lim, use - min(rec, use), rec


def meminfo(path):
    out = {}
    for line in Path(path).read_text().splitlines():
        k, v = line.split(":", 1)
        toks = v.split()
        out[k] = int(toks[0]) * (1024 if toks[1:] == ["kB"] else 1)
    return out


def tree_limits(tree, page=PAGE):
    """Every finite limit of a mixed-* tree (cgroup v2 own level only, as those trees have one level)."""
    t = TREES / tree
    limits = {}
    if (t / "proc/user_beancounters").exists():
        _, blocks = parse_ubc(t / "proc/user_beancounters")
        assert len(blocks) == 1
        limits.update(bc_limits(next(iter(blocks.values())), page))
    cg_rel = (t / "proc/self/cgroup").read_text().strip().split("::", 1)[1].lstrip("/")
    cg = t / "sys/fs/cgroup" / cg_rel
    mx = (cg / "memory.max").read_text().strip()
    if mx != "max":
        limits["cgroup:memory"] = (int(mx), read_int(cg / "memory.current"))
    if read_int(t / "proc/sys/vm/overcommit_memory") == 2:
        m = meminfo(t / "proc/meminfo")
        limits["overcommit"] = (m["CommitLimit"], m["Committed_AS"])
    return limits


def headroom_of(limits):
    """(headroom, binding) by the model: the smallest (limit - used), clamped at 0."""
    if not limits:
        return None, None
    name = min(limits, key=lambda n: max(0, limits[n][0] - limits[n][1]))
    return max(0, limits[name][0] - limits[name][1]), name


def bc_sources(doc):
    return [s for s in doc["sources"] if s["source"] == "beancounter"]


def unavailable(doc):
    return {u["source"]: u["reason"] for u in doc["unavailable"]}


def assert_rows_match(doc, rows, container, page=PAGE):
    got = bc_sources(doc)
    assert [s["resource"] for s in got] == [r["resource"] for r in rows]
    for s, r in zip(got, rows):
        assert s["container"] == container
        for k in ("held", "maxheld", "barrier", "limit", "failcnt", "unit"):
            assert s[k] == r[k], (r["resource"], k)
        assert s["held_bytes"] == to_bytes(r, r["held"], page), r["resource"]
        assert s["maxheld_bytes"] == to_bytes(r, r["maxheld"], page), r["resource"]
        assert s["barrier_unlimited"] == unlimited(r["barrier"]), r["resource"]
        assert s["limit_unlimited"] == unlimited(r["limit"]), r["resource"]
        assert s["barrier_bytes"] == (None if unlimited(r["barrier"]) else to_bytes(r, r["barrier"], page))
        assert s["limit_bytes"] == (None if unlimited(r["limit"]) else to_bytes(r, r["limit"], page))


# ------------------------------------------------------------------ the field-report container

FIELD = BC / "openvz6-container.txt"
FIELD_HEADROOM = (262144 - 247122) * PAGE  # shmpages barrier - held, in bytes


def test_field_report_numbers_are_what_the_fixture_says():
    # Guards the constants below against a silently edited fixture.
    _, blocks = parse_ubc(FIELD)
    shm = next(r for r in blocks["852638"] if r["resource"] == "shmpages")
    assert (shm["held"], shm["barrier"], shm["failcnt"]) == (247122, 262144, 10067)
    assert headroom_of(bc_limits(blocks["852638"])) == (FIELD_HEADROOM, "beancounter:shmpages")


def test_text_headline_names_headroom_and_binding(empty):
    r = run(*bc_only(empty, FIELD))
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert first == (
        f"headroom {human(FIELD_HEADROOM)} ({FIELD_HEADROOM} bytes) for new shared memory, bound by "
        f"beancounter:shmpages ({human(247122 * PAGE)} of {human(262144 * PAGE)} used, "
        f"247122/262144 pages held/barrier, failcnt 10067)")
    assert "58.7 MiB (61530112 bytes)" in first  # the same, spelled out


def test_text_lists_every_row_raw_and_human_with_failcnt(empty):
    out = run(*bc_only(empty, FIELD)).stdout
    _, blocks = parse_ubc(FIELD)
    lines = out.splitlines()
    assert "Beancounters: " + str(FIELD) + ", container 852638, version 2.5" in lines
    table = [l.split() for l in lines if l.startswith("  ") and l.split()
             and l.split()[0] in {r["resource"] for r in blocks["852638"]}]
    # One table line per row, raw numbers as in the file ("unlimited" for LONG_MAX / 0).
    assert len(table) == len(blocks["852638"])
    for toks, r in zip(table, blocks["852638"]):
        want = [r["resource"], str(r["held"]), str(r["maxheld"]),
                "unlimited" if unlimited(r["barrier"]) else str(r["barrier"]),
                "unlimited" if unlimited(r["limit"]) else str(r["limit"]), str(r["failcnt"])]
        assert toks[:6] == want
    shm_line = next(l for l in lines if l.split()[:1] == ["shmpages"])
    assert f"{human(247122 * PAGE)} of {human(262144 * PAGE)}" in shm_line  # 965.3 MiB of 1.0 GiB
    kmem_line = next(l for l in lines if l.split()[:1] == ["kmemsize"])
    assert kmem_line.rstrip().endswith(f"{human(16595303)} of {human(67108864)}")
    # Failure counters section: the shmpages failcnt with its value.
    fc = lines.index("Failure counters:")
    assert re.match(r"^\s+beancounter:shmpages:failcnt\s+10067 \(\+0 since start, \+0 in the last minute\)$",
                    lines[fc + 1])
    # The limits section: both beancounter limits with headroom in human units.
    assert re.search(r"beancounter:shmpages\s+headroom\s+58\.7 MiB .*<- binding", out)
    priv = (2359296 - 498310) * PAGE
    assert re.search(rf"beancounter:privvmpages\s+headroom\s+{re.escape(human(priv))} ", out)


def test_text_unbounded_when_everything_is_unlimited(empty):
    out = run(*bc_only(empty, BC / "all-unlimited.txt")).stdout
    assert out.splitlines()[0] == "headroom unbounded: no finite shared-memory limit found among the sources read"
    assert "<- binding" not in out


def test_json_field_report(empty):
    doc = probe_json(*bc_only(empty, FIELD))
    assert doc["headroom_bytes"] == FIELD_HEADROOM == 61530112
    assert doc["binding"] == "beancounter:shmpages"
    assert doc["page_size"] == PAGE
    assert [(l["name"], l["limit_bytes"], l["used_bytes"], l["headroom_bytes"], l["binding"])
            for l in doc["limits"]] == [
        ("beancounter:shmpages", 262144 * PAGE, 247122 * PAGE, FIELD_HEADROOM, True),
        ("beancounter:privvmpages", 2359296 * PAGE, 498310 * PAGE, (2359296 - 498310) * PAGE, False)]
    _, blocks = parse_ubc(FIELD)
    assert_rows_match(doc, blocks["852638"], "852638")
    assert len(bc_sources(doc)) == 24
    shm = next(s for s in bc_sources(doc) if s["resource"] == "shmpages")
    assert (shm["held"], shm["maxheld"], shm["barrier"], shm["limit"], shm["failcnt"], shm["unit"]) == \
        (247122, 262131, 262144, 262144, 10067, "pages")
    assert (shm["held_bytes"], shm["barrier_bytes"]) == (247122 * 4096, 262144 * 4096)
    assert all(s["file"] == str(FIELD) and s["version"] == "2.5" and s["version_known"]
               for s in bc_sources(doc))
    # The other sources are missing here: said so, with a reason, not zeros.
    un = unavailable(doc)
    assert set(un) == {"cgroup", "overcommit", "sysv"}
    assert all(reason.startswith("missing") for reason in un.values())
    counters = {c["name"]: c["value"] for c in doc["counters"]}
    assert counters["beancounter:shmpages:failcnt"] == 10067
    assert counters["beancounter:privvmpages:failcnt"] == 0


GOOD_BC = sorted(p.name for p in BC.glob("*.txt"))


@pytest.mark.parametrize("name", GOOD_BC)
def test_json_every_good_beancounter_file(empty, name):
    """Every row of the selected block, and the headroom the model gives for it."""
    version, blocks = parse_ubc(BC / name)
    block = next(iter(blocks)) if len(blocks) == 1 else "0"
    rows = blocks[block]
    doc = probe_json(*bc_only(empty, BC / name))
    assert "beancounter" not in unavailable(doc)
    assert_rows_match(doc, rows, block)
    assert all(s["version"] == version and s["version_known"] == (version == "2.5")
               for s in bc_sources(doc))
    want, binding = headroom_of(bc_limits(rows))
    assert (doc["headroom_bytes"], doc["binding"]) == (want, binding)


def test_json_32bit_long_max_is_unlimited(empty):
    doc = probe_json(*bc_only(empty, BC / "x86-32bit.txt"))
    phys = next(s for s in bc_sources(doc) if s["resource"] == "physpages")
    assert phys["limit"] == LONG_MAX_32 and phys["limit_unlimited"] and phys["limit_bytes"] is None
    assert phys["barrier"] == 0 and phys["barrier_unlimited"] and phys["barrier_bytes"] is None
    # privvmpages 45119/65536, shmpages 4912/21504: shmpages binds.
    assert doc["headroom_bytes"] == (21504 - 4912) * PAGE
    assert doc["binding"] == "beancounter:shmpages"


def test_json_version_other_than_2_5_is_parsed_and_flagged(empty):
    doc = probe_json(*bc_only(empty, BC / "version-2.6.txt"))
    assert {(s["version"], s["version_known"]) for s in bc_sources(doc)} == {("2.6", False)}
    assert doc["headroom_bytes"] == (524288 - 777) * PAGE
    text = run(*bc_only(empty, BC / "version-2.6.txt")).stdout
    assert "version 2.6 (not 2.5: parsed because the columns match)" in text


def test_json_held_at_barrier_gives_zero_headroom(empty):
    # vz7-uuid-id: shmpages 65536 held of 65536 -> headroom exactly 0, not "unknown".
    doc = probe_json(*bc_only(empty, BC / "vz7-uuid-id.txt"))
    assert doc["headroom_bytes"] == 0
    assert doc["binding"] == "beancounter:shmpages"
    assert {s["container"] for s in bc_sources(doc)} == {"a1b2c3d4-e5f6-4789-8abc-1234567890ab"}


HW = BC / "hardware-node.txt"


def test_json_hardware_node_defaults_to_block_0(empty):
    _, blocks = parse_ubc(HW)
    assert len(blocks) >= 3 and "0" in blocks and list(blocks)[0] != "0"
    doc = probe_json(*bc_only(empty, HW))
    assert_rows_match(doc, blocks["0"], "0")
    # Block 0 (the node itself) is all unlimited.
    assert doc["headroom_bytes"] is None and doc["binding"] is None and doc["limits"] == []
    text = run(*bc_only(empty, HW)).stdout
    assert f"container 0, version 2.5, {len(blocks)} containers in the file" in text


@pytest.mark.parametrize("container", ["101", "102", "1007"])
def test_json_hardware_node_container_option(empty, container):
    _, blocks = parse_ubc(HW)
    doc = probe_json(*bc_only(empty, HW, "--container", container))
    assert_rows_match(doc, blocks[container], container)
    want, binding = headroom_of(bc_limits(blocks[container]))
    assert (doc["headroom_bytes"], doc["binding"]) == (want, binding)
    if container == "101":
        assert want == (65536 - 1200) * PAGE and binding == "beancounter:shmpages"


def test_json_unknown_container_is_unavailable_and_others_still_report():
    doc = probe_json(*tree_args("cgroup2-limited"), "--beancounters", HW, "--container", "999",
                     "--devshm", "off", "--page-size", PAGE)
    un = unavailable(doc)
    assert "999" in un["beancounter"]
    assert bc_sources(doc) == []
    kinds = {s["source"] for s in doc["sources"]}
    assert {"cgroup", "overcommit", "sysv"} <= kinds
    # The cgroup still binds: the ancestor system.slice (256 MiB limit, 192 MiB used, 35 MiB of it
    # clean file cache).
    lim, used, _ = cg_level(TREES / "cgroup2-limited/sys/fs/cgroup/system.slice")
    assert doc["headroom_bytes"] == lim - used == (64 << 20) + 36708352
    assert doc["binding"] == "cgroup:memory"


def test_json_vz7_proc_bc_fallback(empty):
    # tests/fixtures as procfs: no user_beancounters there, but bc/101/resources.
    assert not (FIXTURES / "user_beancounters").exists()
    rows = parse_bc_resources(FIXTURES / "bc/101/resources")
    doc = probe_json("--procfs", FIXTURES, "--sysfs", empty, "--container", "101", "--devshm", "off",
                     "--page-size", PAGE)
    assert "beancounter" not in unavailable(doc)
    assert_rows_match(doc, rows, "101")
    assert {s["file"] for s in bc_sources(doc)} == {str(FIXTURES / "bc/101/resources")}
    want, binding = headroom_of(bc_limits(rows))
    assert (doc["headroom_bytes"], doc["binding"]) == (want, binding) == ((131072 - 21954) * PAGE,
                                                                         "beancounter:shmpages")


def test_json_vz7_without_container_says_missing(empty):
    doc = probe_json("--procfs", FIXTURES, "--sysfs", empty, "--devshm", "off")
    assert unavailable(doc)["beancounter"].startswith("missing")
    assert bc_sources(doc) == []


def test_json_all_unlimited_gives_null_headroom():
    doc = probe_json(*tree_args("cgroup2-unlimited"), "--beancounters", BC / "all-unlimited.txt",
                     "--devshm", "off", "--page-size", PAGE)
    assert doc["headroom_bytes"] is None
    assert doc["binding"] is None
    assert doc["limits"] == []
    assert len(bc_sources(doc)) == len(next(iter(parse_ubc(BC / "all-unlimited.txt")[1].values())))
    cg = next(s for s in doc["sources"] if s["source"] == "cgroup")
    assert cg["limit_bytes"] is None and cg["version"] == 2
    scope = TREES / "cgroup2-unlimited/sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope"
    assert cg["usage_bytes"] == read_int(scope / "memory.current")


def test_json_page_size(empty):
    # Default: the machine's page size; --page-size overrides it.
    doc = probe_json("--procfs", empty, "--sysfs", empty, "--beancounters", FIELD, "--devshm", "off")
    ps = os.sysconf("SC_PAGE_SIZE")
    assert doc["page_size"] == ps and doc["headroom_bytes"] == 15022 * ps
    doc = probe_json(*bc_only(empty, FIELD)[:-2], "--page-size", 65536)
    assert doc["page_size"] == 65536 and doc["headroom_bytes"] == 15022 * 65536


def test_json_devshm_reports_statvfs_of_the_path(empty, tmp_path):
    doc = probe_json(*bc_only(empty, FIELD)[:-4], "--devshm", tmp_path, "--page-size", PAGE)
    ds = next(s for s in doc["sources"] if s["source"] == "devshm")
    st = os.statvfs(tmp_path)
    assert ds["path"] == str(tmp_path)
    assert ds["total_bytes"] == st.f_blocks * st.f_frsize
    # /dev/shm never limits the headroom.
    assert doc["headroom_bytes"] == FIELD_HEADROOM


def test_json_sysv_and_overcommit_values():
    t = TREES / "mixed-beancounter-binds/proc"
    doc = probe_json(*tree_args("mixed-beancounter-binds"), "--devshm", "off", "--page-size", PAGE)
    sv = next(s for s in doc["sources"] if s["source"] == "sysv")
    assert sv["shmmax_bytes"] == read_int(t / "sys/kernel/shmmax") == 33554432
    assert sv["shmall_pages"] == 2097152 and sv["shmall_bytes"] == 2097152 * PAGE
    assert sv["shmmni"] == 4096 and sv["segments"] == 1 and sv["segments_bytes"] == 4194304
    oc = next(s for s in doc["sources"] if s["source"] == "overcommit")
    m = meminfo(t / "meminfo")
    assert (oc["mode"], oc["mode_name"]) == (2, "strict")
    assert oc["commit_limit_bytes"] == m["CommitLimit"] == 8000000 * 1024
    assert oc["committed_as_bytes"] == m["Committed_AS"]
    assert oc["shmem_bytes"] == m["Shmem"] and oc["mem_available_bytes"] == m["MemAvailable"]


# ------------------------------------------------------------------ mixed cases: the smallest headroom wins

MIXED = {
    # tree: the binding limit the scenario was built for
    "mixed-beancounter-binds": "beancounter:shmpages",
    "mixed-cgroup-binds": "cgroup:memory",
    "mixed-overcommit-binds": "overcommit",
    "mixed-privvmpages-binds": "beancounter:privvmpages",
}


@pytest.mark.parametrize("tree", sorted(MIXED))
def test_mixed_smallest_headroom_wins(tree):
    limits = tree_limits(tree)
    want, binding = headroom_of(limits)
    assert binding == MIXED[tree]  # the fixture really is the case it is named for
    doc = probe_json(*tree_args(tree), "--devshm", "off", "--page-size", PAGE)
    assert doc["unavailable"] == []
    assert {l["name"]: (l["limit_bytes"], l["used_bytes"]) for l in doc["limits"]} == limits
    assert (doc["headroom_bytes"], doc["binding"]) == (want, binding)
    assert [l["name"] for l in doc["limits"] if l["binding"]] == [binding]
    text = run(*tree_args(tree), "--devshm", "off", "--page-size", PAGE).stdout
    assert text.splitlines()[0].startswith(
        f"headroom {human(want)} ({want} bytes) for new shared memory, bound by {binding} (")


def test_mixed_exact_values():
    # The same, as plain numbers from the fixtures (see tests/fixtures/trees/mixed-*).
    cases = {
        "mixed-beancounter-binds": (61530112, "beancounter:shmpages"),      # 15022 pages
        "mixed-cgroup-binds": (32 << 20, "cgroup:memory"),                  # 256 MiB - 224 MiB
        "mixed-overcommit-binds": ((8200718 - 8180000) * 1024, "overcommit"),
        "mixed-privvmpages-binds": ((2359296 - 2359000) * PAGE, "beancounter:privvmpages"),
    }
    for tree, (want, binding) in cases.items():
        doc = probe_json(*tree_args(tree), "--devshm", "off", "--page-size", PAGE)
        assert (doc["headroom_bytes"], doc["binding"]) == (want, binding), tree


def test_mixed_heuristic_overcommit_never_binds():
    # mixed-privvmpages-binds: overcommit_memory 0 with Committed_AS > CommitLimit, cgroup "max".
    doc = probe_json(*tree_args("mixed-privvmpages-binds"), "--devshm", "off", "--page-size", PAGE)
    names = [l["name"] for l in doc["limits"]]
    assert "overcommit" not in names and "cgroup:memory" not in names
    oc = next(s for s in doc["sources"] if s["source"] == "overcommit")
    assert oc["mode"] == 0 and oc["committed_as_bytes"] > oc["commit_limit_bytes"]


def test_mixed_overcommit_past_the_limit_clamps_at_zero(tmp_path):
    t = tmp_path / "t"
    shutil.copytree(TREES / "mixed-overcommit-binds", t)
    mi = t / "proc/meminfo"
    mi.write_text(mi.read_text().replace("8180000 kB", "8300000 kB"))
    doc = probe_json("--procfs", t / "proc", "--sysfs", t / "sys", "--devshm", "off", "--page-size", PAGE)
    assert doc["headroom_bytes"] == 0
    assert doc["binding"] == "overcommit"
    oc = next(l for l in doc["limits"] if l["name"] == "overcommit")
    assert (oc["limit_bytes"], oc["used_bytes"], oc["headroom_bytes"]) == (8200718 * 1024, 8300000 * 1024, 0)


def test_mixed_zero_beancounter_headroom_beats_cgroup():
    doc = probe_json(*tree_args("cgroup2-limited"), "--beancounters", BC / "vz7-uuid-id.txt",
                     "--devshm", "off", "--page-size", PAGE)
    assert (doc["headroom_bytes"], doc["binding"]) == (0, "beancounter:shmpages")
    assert "cgroup:memory" in [l["name"] for l in doc["limits"]]


def test_cgroup_ancestor_limit_binds():
    # cgroup2-limited: own level 512 MiB (144 MiB used), system.slice 256 MiB (192 MiB used).
    base = TREES / "cgroup2-limited/sys/fs/cgroup/system.slice"
    own = (read_int(base / "apache2.service/memory.max"), read_int(base / "apache2.service/memory.current"))
    parent = cg_level(base)
    own_counted = cg_level(base / "apache2.service")
    assert own_counted[0] - own_counted[1] > parent[0] - parent[1]
    doc = probe_json(*tree_args("cgroup2-limited"), "--devshm", "off")
    assert doc["limits"] == [{"name": "cgroup:memory", "limit_bytes": parent[0], "used_bytes": parent[1],
                              "reclaimable_bytes": parent[2], "headroom_bytes": parent[0] - parent[1],
                              "binding": True}]
    cg = next(s for s in doc["sources"] if s["source"] == "cgroup")
    assert (cg["limit_bytes"], cg["usage_bytes"]) == own
    assert cg["events"] == {"max": 12, "oom": 1, "oom_kill": 1}


def test_cgroup_v1_and_strict_overcommit_trees():
    cg = TREES / "cgroup1-limited/sys/fs/cgroup/memory/system.slice/apache2.service"
    doc = probe_json(*tree_args("cgroup1-limited"), "--devshm", "off")
    lim, used, _ = cg_level(cg)
    assert (doc["headroom_bytes"], doc["binding"]) == (lim - used, "cgroup:memory")
    src = next(s for s in doc["sources"] if s["source"] == "cgroup")
    assert src["version"] == 1 and src["failcnt"] == read_int(cg / "memory.failcnt")

    m = meminfo(TREES / "strict-overcommit/proc/meminfo")
    doc = probe_json(*tree_args("strict-overcommit"), "--devshm", "off")
    assert (doc["headroom_bytes"], doc["binding"]) == (m["CommitLimit"] - m["Committed_AS"], "overcommit")


# ------------------------------------------------------------------ prometheus

SAMPLE = re.compile(r'^(shmguard_[a-zA-Z0-9_]+)(\{(?:[a-z_]+="(?:[^"\\]|\\.)*",?)*\})? (-?\d+|\+Inf)$')

# promtool check metrics prints one line per lint problem. The exposition is entirely ours (names,
# types, help texts), so no lint problem is acceptable: any line it prints fails the test. Add a
# pattern here only for a lint rule that is deliberately not followed, with the reason.
ACCEPTABLE_PROMTOOL_LINES = []

PROM_CASES = {
    "field-report": lambda e: bc_only(e, FIELD),
    "mixed-beancounter-binds": lambda e: [*tree_args("mixed-beancounter-binds"), "--devshm", "off"],
    "cgroup1-limited": lambda e: [*tree_args("cgroup1-limited"), "--devshm", "off"],
    "all-unlimited": lambda e: [*tree_args("cgroup2-unlimited"), "--beancounters", BC / "all-unlimited.txt",
                                "--devshm", "off"],
    "broken": lambda e: [*tree_args("broken"), "--beancounters", BC / "bad/garbage.txt", "--devshm", "off"],
    "hardware-node-101": lambda e: bc_only(e, HW, "--container", "101"),
    "devshm-tmp": lambda e: [*bc_only(e, FIELD)[:-4], "--devshm", e],
}


def prom(args):
    r = run(*args, "--format", "prometheus")
    assert r.returncode == 0, r.stderr
    return r.stdout


def parse_prom(text):
    """{(name, labels): value}; checks HELP/TYPE come first for every family."""
    helped, typed, samples = set(), {}, []
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name.startswith("shmguard_") and name not in helped, line
            helped.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert name in helped and name not in typed, line
            assert kind in ("gauge", "counter")
            typed[name] = kind
        else:
            m = SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            assert m.group(1) in typed, f"sample before its TYPE: {line!r}"
            samples.append((m.group(1), m.group(2) or "", m.group(3)))
    assert helped == set(typed)
    return typed, samples


@pytest.mark.parametrize("case", sorted(PROM_CASES))
def test_prometheus_help_type_prefix_and_promtool(empty, case):
    text = prom(PROM_CASES[case](empty))
    typed, samples = parse_prom(text)
    assert samples and "shmguard_headroom_bytes" in typed and "shmguard_source_up" in typed
    for name, kind in typed.items():
        assert (kind == "counter") == name.endswith("_total"), name
    r = subprocess.run(["/usr/bin/promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    bad = [l for l in (r.stdout + r.stderr).splitlines()
           if l.strip() and not any(re.search(p, l) for p in ACCEPTABLE_PROMTOOL_LINES)]
    assert bad == [], "promtool:\n" + "\n".join(bad)
    assert r.returncode == 0


def test_prometheus_values_field_report(empty):
    typed, samples = parse_prom(prom(bc_only(empty, FIELD)))
    s = {(n, l): v for n, l, v in samples}
    assert s[("shmguard_headroom_bytes", "")] == str(FIELD_HEADROOM)
    assert s[("shmguard_limit_binding", '{limit="beancounter:shmpages"}')] == "1"
    assert s[("shmguard_limit_binding", '{limit="beancounter:privvmpages"}')] == "0"
    assert s[("shmguard_limit_bytes", '{limit="beancounter:shmpages"}')] == str(262144 * PAGE)
    assert s[("shmguard_limit_used_bytes", '{limit="beancounter:shmpages"}')] == str(247122 * PAGE)
    lbl = '{container="852638",resource="shmpages",unit="pages"}'
    assert s[("shmguard_beancounter_held", lbl)] == "247122"
    assert s[("shmguard_beancounter_maxheld", lbl)] == "262131"
    assert s[("shmguard_beancounter_barrier", lbl)] == "262144"
    assert s[("shmguard_beancounter_failcnt_total", '{container="852638",resource="shmpages"}')] == "10067"
    assert typed["shmguard_beancounter_failcnt_total"] == "counter"
    tcp = '{container="852638",resource="numtcpsock",unit="count"}'
    assert s[("shmguard_beancounter_barrier", tcp)] == "+Inf"
    assert s[("shmguard_source_up", '{source="beancounter"}')] == "1"
    assert s[("shmguard_source_up", '{source="overcommit"}')] == "0"


def test_prometheus_values_mixed_and_unbounded(empty):
    _, samples = parse_prom(prom([*tree_args("mixed-cgroup-binds"), "--devshm", "off", "--page-size", PAGE]))
    s = {(n, l): v for n, l, v in samples}
    assert s[("shmguard_headroom_bytes", "")] == str(32 << 20)
    assert s[("shmguard_limit_binding", '{limit="cgroup:memory"}')] == "1"
    assert s[("shmguard_overcommit_mode", "")] == "2"
    assert s[("shmguard_meminfo_commit_limit_bytes", "")] == str(8000000 * 1024)
    d = str(TREES / "mixed-cgroup-binds/sys/fs/cgroup/web.slice")
    assert s[("shmguard_cgroup_memory_limit_bytes", f'{{dir="{d}",version="2"}}')] == str(256 << 20)
    assert s[("shmguard_cgroup_memory_events_total", f'{{dir="{d}",event="oom_kill"}}')] == "1"
    _, samples = parse_prom(prom(PROM_CASES["all-unlimited"](empty)))
    s = {(n, l): v for n, l, v in samples}
    assert s[("shmguard_headroom_bytes", "")] == "+Inf"
    assert not any(n == "shmguard_limit_binding" for n, _ in s)


def test_prometheus_series_are_unique(empty):
    _, samples = parse_prom(prom(bc_only(empty, FIELD)))
    keys = [(n, l) for n, l, _ in samples]
    dups = sorted({k for k in keys if keys.count(k) > 1})
    assert dups == []


# ------------------------------------------------------------------ --check

def check(*args):
    r = run(*args)
    assert r.stdout.count("\n") == 1, r.stdout  # one status line
    status, _, perf = r.stdout.rstrip("\n").partition(" | ")
    return r.returncode, status, perf


SIZE = ["--warning", "64M", "--critical", "16M"]


def test_check_size_thresholds_warning(empty):
    code, status, perf = check(*bc_only(empty, FIELD), "--check", *SIZE)
    assert code == 1
    assert status == ("SHMGUARD WARNING - headroom 58.7 MiB, bound by beancounter:shmpages (94.3% in use); "
                      "warning threshold 64M")
    assert perf.split() == ["headroom=61530112B;67108864:;16777216:;0;", "used=94.27%;;;0;100",
                            "'beancounter:privvmpages:failcnt'=0c", "'beancounter:shmpages:failcnt'=10067c"]


@pytest.mark.parametrize("bcfile,code,word", [
    ("vz7-container.txt", 0, "OK"),          # (131072-21954) pages = 426.2 MiB >= 64M
    ("virtuozzo-nospace.txt", 0, "OK"),      # (32768-4096) pages = 112 MiB
    ("x86-32bit.txt", 0, "OK"),              # (21504-4912) pages = 64.8 MiB, just above 64M
    ("openvz6-container.txt", 1, "WARNING"), # 15022 pages = 58.7 MiB
    ("vz7-uuid-id.txt", 2, "CRITICAL"),      # 0 bytes
])
def test_check_size_thresholds_exit_codes(empty, bcfile, code, word):
    _, blocks = parse_ubc(BC / bcfile)
    headroom, _ = headroom_of(bc_limits(next(iter(blocks.values()))))
    want = 0 if headroom >= 64 << 20 else 1 if headroom >= 16 << 20 else 2
    assert want == code  # the case is what its row says
    got, status, perf = check(*bc_only(empty, BC / bcfile), "--check", *SIZE)
    assert got == code, status
    assert status.startswith(f"SHMGUARD {word} - headroom {human(headroom)}")
    assert perf.startswith(f"headroom={headroom}B;67108864:;16777216:;0;")


def test_check_critical_from_mixed_tree():
    code, status, perf = check(*tree_args("mixed-privvmpages-binds"), "--devshm", "off", "--page-size", PAGE,
                               "--check", *SIZE)
    assert code == 2
    assert status.startswith("SHMGUARD CRITICAL - headroom 1.2 MiB, bound by beancounter:privvmpages (")
    assert status.endswith("; critical threshold 16M")
    assert perf.startswith(f"headroom={296 * PAGE}B;")


@pytest.mark.parametrize("thresholds,code", [
    ([], 2),                                          # defaults 75% / 90%: 94.27% in use
    (["--warning", "90%", "--critical", "95%"], 1),
    (["--warning", "94.2%", "--critical", "94.3%"], 1),
    (["--warning", "94.3%", "--critical", "99%"], 0),
    (["--warning", "95%", "--critical", "99%"], 0),
    (["--warning", "50%", "--critical", "94.25%"], 2),
])
def test_check_percent_thresholds(empty, thresholds, code):
    used = 100.0 * 247122 / 262144  # 94.2696...
    got, status, perf = check(*bc_only(empty, FIELD), "--check", *thresholds)
    assert got == code, status
    assert f"({used:.1f}% in use)" in status
    assert f" used={used:.2f}%;" in " " + perf
    w = thresholds[1].rstrip("%") if thresholds else "75"
    c = thresholds[3].rstrip("%") if thresholds else "90"
    assert f"used={used:.2f}%;{w};{c};0;100" in perf
    assert perf.startswith("headroom=61530112B;;;0;")


def test_check_unknown_when_headroom_cannot_be_read():
    code, status, _ = check(*tree_args("broken"), "--devshm", "off", "--check")
    assert code == 3
    assert status.startswith("SHMGUARD UNKNOWN - headroom unknown: a source could not be read; ")
    assert "overcommit unavailable: malformed at line 1" in status


def test_check_ok_when_no_finite_limit_and_nothing_unreadable(empty):
    code, status, _ = check(*bc_only(empty, BC / "all-unlimited.txt"), "--check", *SIZE)
    assert code == 0
    assert status == "SHMGUARD OK - no finite shared-memory limit found"


def test_check_state_file_failcnt_rise_is_warning(tmp_path, empty):
    bc = tmp_path / "user_beancounters"
    shutil.copy(FIELD, bc)
    state = tmp_path / "state"
    args = [*bc_only(empty, bc), "--check", "--warning", "1M", "--critical", "512K", "--state", state]
    code, status, _ = check(*args)
    assert (code, status) == (0, "SHMGUARD OK - headroom 58.7 MiB, bound by beancounter:shmpages (94.3% in use)")
    assert "beancounter:shmpages:failcnt 10067" in state.read_text().splitlines()
    # The kernel refused 10 more shared-memory allocations since.
    bc.write_text(bc.read_text().replace("262144                10067", "262144                10077"))
    code, status, perf = check(*args)
    assert code == 1
    assert status.startswith("SHMGUARD WARNING - ")
    assert status.endswith("; beancounter:shmpages:failcnt +10 since last run")
    assert "'beancounter:shmpages:failcnt'=10077c" in perf
    assert "beancounter:shmpages:failcnt 10077" in state.read_text().splitlines()
    # No further rise: OK again.
    code, status, _ = check(*args)
    assert code == 0 and "since last run" not in status


def test_check_state_rise_does_not_lower_critical(tmp_path, empty):
    bc = tmp_path / "ubc"
    shutil.copy(FIELD, bc)
    state = tmp_path / "state"
    args = [*bc_only(empty, bc), "--check", "--critical", "90%", "--state", state]
    assert check(*args)[0] == 2
    bc.write_text(bc.read_text().replace("262144                10067", "262144                10068"))
    code, status, _ = check(*args)
    assert code == 2 and "beancounter:shmpages:failcnt +1 since last run" in status


def test_check_unwritable_state_is_unknown(tmp_path, empty):
    state = tmp_path / "no-such-dir" / "state"
    code, status, _ = check(*bc_only(empty, FIELD), "--check", "--warning", "1M", "--critical", "1K",
                            "--state", state)
    assert code == 3
    assert f"cannot write state file {state}" in status


@pytest.mark.parametrize("bad", [
    ["--warning", "64X"], ["--critical", "101%"], ["--warning", ""], ["--critical", "-5M"],
    ["--warning", "99999999999999999999G"], ["--warning"], ["--bogus"], ["--format", "xml"],
])
def test_check_bad_arguments_exit_3(empty, bad):
    r = run(*bc_only(empty, FIELD), "--check", *bad)
    assert r.returncode == 3
    assert "usage: shmguard-probe" in r.stderr
    assert r.stdout == ""


@pytest.mark.parametrize("bad", [
    ["--bogus"], ["--format", "xml"], ["--format=xml"], ["--procfs"], ["--container", ""],
    ["--cgroup", "relative/dir"], ["--page-size", "3000"], ["--page-size", "0"], ["--state", "x"],
    ["--warning", "64X"],
])
def test_bad_arguments_exit_2_with_usage(empty, bad):
    r = run("--procfs", empty, "--sysfs", empty, "--devshm", "off", *bad)
    assert r.returncode == 2
    assert "usage: shmguard-probe" in r.stderr
    assert r.stderr.startswith("shmguard-probe: ")
    assert r.stdout == ""


def test_help_exits_0_with_usage_on_stdout():
    r = run("--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: shmguard-probe")


def test_check_status_text_never_contains_a_pipe(tmp_path):
    bc = tmp_path / "ubc"
    bc.write_text(FIELD.read_text().replace("lockedpages                     0",
                                            "lockedpages                   a|b", 1))
    r = run(*tree_args("cgroup2-limited"), "--beancounters", bc, "--devshm", "off", "--check")
    assert r.stdout.count("|") == 1, r.stdout


# ------------------------------------------------------------------ bad input

BAD = sorted(p.name for p in (BC / "bad").iterdir() if p.is_file())
BAD_LINE = {"continuation-first.txt": 3, "empty.txt": 1, "garbage.txt": 4, "negative.txt": 6,
            "overflow.txt": 5, "truncated.txt": 6}


@pytest.mark.parametrize("name", BAD)
def test_bad_beancounter_file_is_unavailable_others_report(name):
    doc = probe_json(*tree_args("cgroup2-limited"), "--beancounters", BC / "bad" / name,
                     "--devshm", "off", "--page-size", PAGE)
    reason = unavailable(doc)["beancounter"]
    assert "line" in reason
    if name in BAD_LINE:
        assert f"line {BAD_LINE[name]}" in reason
    assert bc_sources(doc) == []
    assert {"cgroup", "overcommit", "sysv"} <= {s["source"] for s in doc["sources"]}
    assert set(unavailable(doc)) == {"beancounter"}
    # Unavailable is not zero: the cgroup limit still decides the headroom.
    lim, used, _ = cg_level(TREES / "cgroup2-limited/sys/fs/cgroup/system.slice")
    assert (doc["headroom_bytes"], doc["binding"]) == (lim - used, "cgroup:memory")


def test_missing_procfs_dir_still_exits_0(tmp_path):
    gone = tmp_path / "no-such-proc"
    doc = probe_json("--procfs", gone, "--sysfs", tmp_path / "no-such-sys", "--devshm", "off")
    un = unavailable(doc)
    assert set(un) == {"beancounter", "cgroup", "overcommit", "sysv"}
    assert all(r.startswith("missing") and str(gone) in r for r in un.values())
    assert doc["sources"] == [] and doc["headroom_bytes"] is None and doc["binding"] is None
    r = run("--procfs", gone, "--sysfs", gone, "--devshm", "off")
    assert r.returncode == 0 and "Unavailable:" in r.stdout


def test_missing_devshm_is_unavailable(empty, tmp_path):
    doc = probe_json(*bc_only(empty, FIELD)[:-4], "--devshm", tmp_path / "nope")
    assert "devshm" in unavailable(doc)
    assert doc["headroom_bytes"] == FIELD_HEADROOM


def test_beancounter_path_is_a_directory(tmp_path):
    d = tmp_path / "ubc-dir"
    d.mkdir()
    doc = probe_json(*tree_args("cgroup2-limited"), "--beancounters", d, "--devshm", "off")
    reason = unavailable(doc)["beancounter"]
    assert str(d) in reason and "directory" in reason.lower()
    assert doc["binding"] == "cgroup:memory"


def test_beancounter_file_too_large_is_refused(tmp_path, empty):
    # Tests run as root, so chmod 000 does not stop a read; a (sparse) file above the 16 MiB cap does.
    big = tmp_path / "huge"
    with open(big, "wb") as f:
        f.truncate(17 << 20)
    doc = probe_json(*bc_only(empty, big))
    reason = unavailable(doc)["beancounter"]
    assert str(big) in reason and "too large" in reason


def test_beancounter_file_unreadable_when_not_root(tmp_path, empty):
    f = tmp_path / "ubc"
    shutil.copy(FIELD, f)
    f.chmod(0)
    try:
        if os.geteuid() == 0:
            pytest.skip("running as root: mode 000 does not stop reads (covered by the directory case)")
        doc = probe_json(*bc_only(empty, f))
        assert "permission denied" in unavailable(doc)["beancounter"]
    finally:
        f.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_beancounters_off_is_neither_source_nor_unavailable(empty):
    doc = probe_json("--procfs", empty, "--sysfs", empty, "--beancounters", "off", "--devshm", "off")
    assert "beancounter" not in unavailable(doc) and bc_sources(doc) == []


# ------------------------------------------------------------------ never a crash

ALL_FIXTURE_FILES = sorted(str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*")
                           if p.is_file() and not p.is_symlink())


@pytest.mark.parametrize("rel", ALL_FIXTURE_FILES)
def test_never_a_crash_on_any_fixture_file(empty, rel):
    for fmt in ("json", "text", "prometheus"):
        r = run(*bc_only(empty, FIXTURES / rel), "--format", fmt)
        assert r.returncode == 0, (fmt, r.stderr)
        if fmt == "json":
            doc = json.loads(r.stdout)
            # Either parsed, or unavailable with a reason: never silently nothing.
            assert bool(bc_sources(doc)) != ("beancounter" in unavailable(doc))
            if "beancounter" in unavailable(doc):
                assert unavailable(doc)["beancounter"].strip()
    r = run(*bc_only(empty, FIXTURES / rel), "--check")
    assert r.returncode in (0, 1, 2, 3)


@pytest.mark.parametrize("tree,levels", [
    ("cgroup1-cache-full", ["memory/hosting/web1", "memory/hosting"]),
    ("cgroup2-cache-full", ["system.slice/apache2.service", "system.slice"]),
])
def test_cgroup_page_cache_full_counts_clean_cache_per_level(tree, levels):
    # Issue 17: a cgroup whose page cache is full. limit - usage would be a few MiB; what the kernel
    # can still charge is limit - (usage - clean file cache), every level with its own memory.stat.
    base = TREES / tree / "sys/fs/cgroup"
    counted = [cg_level(base / l) for l in levels]
    want = min(lim - used for lim, used, _ in counted)
    doc = probe_json(*tree_args(tree), "--devshm", "off", "--page-size", PAGE)
    assert (doc["headroom_bytes"], doc["binding"]) == (want, "cgroup:memory")
    assert want > 500 << 20
    assert min(read_int(base / l / ("memory.max" if "2" in tree else "memory.limit_in_bytes")) -
               read_int(base / l / ("memory.current" if "2" in tree else "memory.usage_in_bytes"))
               for l in levels) < 5 << 20  # what limit - usage said
    src = next(s for s in doc["sources"] if s["source"] == "cgroup")
    assert [l["reclaimable_bytes"] for l in src["levels"][:2]] == [rec for _, _, rec in counted]
    assert src["reclaimable_bytes"] == counted[0][2]
    text = run(*tree_args(tree), "--devshm", "off", "--page-size", PAGE).stdout
    assert "reclaimable cache" in text and "less reclaimable cache" in text.splitlines()[0]
