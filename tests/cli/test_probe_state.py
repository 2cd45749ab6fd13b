"""shmguard-probe --check --state FILE writes its state file safely (issue 9, item 7): it never
follows a symbolic link, neither at FILE nor at a predictable temporary name next to it, and leaves
no temporary file behind. The probe often runs as root from a monitoring agent, with the state file
in a directory other users can write."""

import os
import shutil
import stat

from test_probe import BC, FIELD, bc_only, check  # noqa: F401 (fixtures and helpers)
from test_probe import empty  # noqa: F401  pytest fixture

ARGS = ["--check", "--warning", "1M", "--critical", "512K"]


def test_symlink_at_the_old_temporary_name_is_not_followed(tmp_path, empty):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    state = tmp_path / "state"
    # Before: the probe wrote STATE.tmp with O_TRUNC through whatever was there.
    os.symlink(victim, str(state) + ".tmp")
    code, status, _ = check(*bc_only(empty, FIELD), *ARGS, "--state", state)
    assert code == 0, status
    assert victim.read_text() == "precious\n"
    assert "beancounter:shmpages:failcnt 10067" in state.read_text().splitlines()
    assert not state.is_symlink() and stat.S_ISREG(state.lstat().st_mode)
    # Only the state file and the planted link: no temporary file left.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name not in ("empty", "victim")) == \
        ["state", "state.tmp"]


def test_state_file_that_is_a_symlink_is_refused(tmp_path, empty):
    victim = tmp_path / "victim"
    victim.write_text("beancounter:shmpages:failcnt 1\n")
    state = tmp_path / "state"
    os.symlink(victim, state)
    code, status, _ = check(*bc_only(empty, FIELD), *ARGS, "--state", state)
    assert code == 3, status
    assert f"cannot write state file {state}: it is a symbolic link (not followed)" in status
    # Neither read (no "+10066 since last run") nor written, and still a link.
    assert "since last run" not in status
    assert victim.read_text() == "beancounter:shmpages:failcnt 1\n"
    assert state.is_symlink()


def test_state_written_atomically_and_private(tmp_path, empty):
    bc = tmp_path / "ubc"
    shutil.copy(FIELD, bc)
    state = tmp_path / "state"
    state.write_text("beancounter:shmpages:failcnt 10000\n")
    code, status, _ = check(*bc_only(empty, bc), *ARGS, "--state", state)
    assert code == 1 and "beancounter:shmpages:failcnt +67 since last run" in status
    assert "beancounter:shmpages:failcnt 10067" in state.read_text().splitlines()
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if p.name not in ("empty", "ubc")) == ["state"]
