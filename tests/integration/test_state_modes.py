"""L2 (issue 14): outside systemd (umask 022) the daemon keeps its health data to itself: the state dir
is 0750 (tightened if an older version left it 0755), and what it creates inside - the outbox
(outbox.db and its -wal/-shm), status.json - is at most 0640. The real daemon in a subprocess."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

from tests.fakes.serial_fakes import PtyDevice
from tests.helpers import REPO, wait_for, write_config


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _run_daemon_once(tmp_path: Path, state: Path) -> None:
    dev = PtyDevice()
    cfg = write_config(tmp_path / "config.toml", {
        "platform": {"base_url": "http://127.0.0.1:9", "api_key": "sk_test_0123456789"},
        "scale": {"driver": "tanita", "port": dev.slave_path},
        "state": {"dir": str(state)},
        "log": {"format": "json"},
    })
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", "run", "--config", str(cfg)], cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, umask=0o022,
    )
    try:
        wait_for(lambda: (state / "status.json").exists() and (state / "outbox.db").exists(),
                 "the daemon to write its state", alive=lambda: proc.poll() is not None and f"exited {proc.returncode}")
    finally:
        proc.terminate()
        proc.wait(30)
        dev.close()


def test_a_new_state_dir_and_its_files_are_not_world_readable(tmp_path: Path) -> None:
    state = tmp_path / "new" / "state"
    _run_daemon_once(tmp_path, state)
    assert _mode(state) == 0o750
    files = [p for p in state.iterdir() if p.is_file()]
    assert {"outbox.db", "status.json"} <= {p.name for p in files}
    for p in files:
        assert _mode(p) & 0o027 == 0, f"{p.name} is {oct(_mode(p))}"


def test_an_existing_open_state_dir_is_tightened(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o777)
    _run_daemon_once(tmp_path, state)
    assert _mode(state) == 0o750
