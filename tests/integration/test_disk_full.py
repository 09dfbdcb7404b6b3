"""Disk full.

1. For real (needs root: ``mount -t tmpfs -o size=...``; skipped otherwise): the daemon as a subprocess,
   its state dir on a 4 MiB tmpfs, a Tanita scale on a pty. The test fills the tmpfs to ENOSPC, the
   scale sends a weighing: the commit fails, the daemon keeps the weighing in memory, reports
   ``storage_error`` / ``unsaved_in_memory`` in its status file (written in place when a new file cannot
   be created) and keeps running; nothing reaches the platform (nothing is acknowledged that is not on
   disk). Space comes back: the weighing is committed and uploaded exactly once.
2. Always: SQLite's own "database or disk is full" (SQLITE_FULL) raised through ``PRAGMA max_page_count``
   at the Outbox boundary: the failed capture is not in the file (rolled back), it is a
   ``StorageError``, and the same call succeeds once there is room.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import tty
from pathlib import Path
from typing import Any

import pytest

from bridge.errors import StorageError
from bridge.outbox import Outbox
from drivers.tanita import checksum
from tests.helpers import REPO, exited, popen_logged, wait_for, write_config


def _line(card: str, weight: float) -> bytes:
    body = "{0,16,~0,1,~1,1,~2,1," f'MO,"MC-780",ID,"{card.zfill(16)}",Wk,{weight:.1f},FW,20.0,'
    return (body + "CS," + checksum(body.encode()) + "\r\n").encode()


def _status(state: Path) -> dict[str, Any] | None:
    try:
        return json.loads((state / "status.json").read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def _fill(mount: Path) -> Path:
    filler = mount / "filler"
    with filler.open("wb") as fh:
        chunk = b"\0" * 65536
        try:
            while True:
                fh.write(chunk)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


@pytest.fixture
def tiny_tmpfs(tmp_path: Path):  # type: ignore[no-untyped-def]
    mount = tmp_path / "state"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (the injected-error test below covers the Outbox boundary)")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True,
                       check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_daemon_holds_the_weighing_in_memory_and_commits_it_when_space_returns(
        tmp_path: Path, tiny_tmpfs: Path, simulator: Any) -> None:
    state = tiny_tmpfs
    master, slave = os.openpty()
    tty.setraw(master)
    cfg = write_config(tmp_path / "config.toml", {
        "platform": {"base_url": simulator.url, "api_key": simulator.api_key(1)},
        "scale": {"driver": "tanita", "port": os.ttyname(slave)},
        "state": {"dir": str(state)},
        "log": {"format": "json"},
    })
    log = tmp_path / "daemon.log"
    before = len(simulator.call(lambda: list(simulator.state.weighings)))
    proc = popen_logged([sys.executable, "-m", "bridge", "run", "--config", str(cfg)], log, cwd=REPO)
    filler: Path | None = None
    try:
        wait_for(lambda: "link_connected" in log.read_text(), "serial link connected")
        wait_for(lambda: _status(state), "first status file")
        filler = _fill(state)
        os.write(master, _line("3220338716", 81.5))
        st = wait_for(lambda: (s := _status(state)) and s.get("storage_error") and s, "status reports the failure")
        assert st["unsaved_in_memory"] == 1 and st["intake"]["weighings_captured"] == 0
        assert "outbox_commit_failed" in log.read_text()
        crit = [json.loads(x) for x in log.read_text().splitlines() if '"outbox_commit_failed"' in x]
        assert crit and crit[0]["level"] == "critical"
        # housekeeping retries the commit every round, then rewrites the status: two more status files
        # that still report the failure are two more rounds that retried and failed with the disk full
        rounds = {st["updated_at"]}

        def retried_while_full() -> bool:
            now = _status(state)
            if now is not None and now["updated_at"] not in rounds:
                assert now.get("storage_error") and now["unsaved_in_memory"] == 1, now
                rounds.add(now["updated_at"])
            return len(rounds) >= 3

        wait_for(retried_while_full, "two more housekeeping rounds with the disk still full", alive=exited(proc))
        assert proc.poll() is None  # no crash, no crash loop
        assert len(simulator.call(lambda: list(simulator.state.weighings))) == before  # nothing acknowledged
        filler.unlink()
        filler = None
        st = wait_for(lambda: (s := _status(state)) and not s.get("storage_error")
                   and s["intake"]["weighings_captured"] == 1 and s, "commit after space returned")
        assert st["unsaved_in_memory"] == 0
        got = wait_for(lambda: [w for w in simulator.call(lambda: list(simulator.state.weighings))[before:]
                             if w["body"].get("weight") == 81.5], "upload after recovery")
        assert len(got) == 1
        assert "outbox_commit_recovered" in log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if filler is not None:
            with contextlib.suppress(OSError):
                filler.unlink()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(master)
        os.close(slave)


def test_sqlite_full_at_the_outbox_boundary_is_a_storage_error_and_rolls_back(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db", clock=lambda: 1_800_000_000.0)
    pages = box._db.execute("PRAGMA page_count").fetchone()[0]
    box._db.execute(f"PRAGMA max_page_count = {pages + 2}")
    ok = 0
    with pytest.raises(StorageError, match="full"):
        for i in range(1000):
            box.capture(scale="s", driver="tanita", body={"weight": 70.0, "rawResults": "x" * 3000 + str(i)},
                        card="42", card_source="scale_id")
            ok += 1
    assert len(box.jobs(limit=10_000)) == ok  # the failed capture left nothing behind
    box._db.execute("PRAGMA max_page_count = 1073741823")
    assert box.capture(scale="s", driver="tanita", body={"weight": 70.0, "rawResults": "again"}, card="42",
                       card_source="scale_id") is not None
    assert len(box.jobs(limit=10_000)) == ok + 1
    box.close()
