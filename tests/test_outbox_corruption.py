"""What the outbox does with a damaged file at start, case by case (docs/reliability.md explains what
SQLite guarantees for each):

- structural damage (flipped bytes in a b-tree page), a garbage header, a file that is not SQLite at all:
  ``PRAGMA quick_check`` / open fails -> the file (and its -wal/-shm) is moved aside as
  ``outbox.db.corrupt-<UTC time>``, a fresh outbox starts, and the ``corruption`` meta key says so until
  an operator acknowledges it -- across restarts, never a silent empty start;
- a torn WAL (power cut while a transaction was being appended): SQLite's recovery drops the frames
  after the last complete commit; every transaction whose COMMIT returned is still there;
- a deleted WAL: the transactions in it that were not yet checkpointed are gone and SQLite cannot know;
  the outbox checkpoints its schema at creation, so the file is never "empty and valid";
- flipped bytes inside a record's payload: not detected (SQLite has no page checksums) -- documented.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from bridge.outbox import SCHEMA_VERSION, JobState, Outbox

NOW = 1_800_000_000.0


def _fill(path: Path, n: int) -> list[str]:
    box = Outbox(path, clock=lambda: NOW)
    uids = []
    for i in range(n):
        wid = box.capture(scale="s", driver="tanita", body={"weight": 60 + i, "rawResults": f"synthetic {i}" * 20},
                          card="42", card_source="scale_id", now=NOW + i)
        assert wid is not None
        uids.append(box.get(wid).uid)  # type: ignore[union-attr]
    box.close()  # the last connection checkpoints: everything is in the main file
    return uids


def _snapshot_open(path: Path, dest: Path, n: int) -> tuple[Outbox, list[str]]:
    """Captures ``n`` weighings with the WAL not checkpointed, and copies the files as they are on disk
    (the writer stays open, as a SIGKILLed daemon would leave them)."""
    box = Outbox(path, clock=lambda: NOW)
    box._db.execute("PRAGMA wal_autocheckpoint=0")
    uids = []
    for i in range(n):
        wid = box.capture(scale="s", driver="tanita", body={"weight": 60 + i, "rawResults": f"synthetic {i}"},
                          card="42", card_source="scale_id", now=NOW + i)
        uids.append(box.get(wid).uid)  # type: ignore[union-attr, arg-type]
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, dest)
    shutil.copyfile(str(path) + "-wal", str(dest) + "-wal")
    return box, uids


def _assert_moved_aside(path: Path, box: Outbox, reason_part: str) -> None:
    assert box.corruption is not None
    assert reason_part in box.corruption.reason
    moved = Path(box.corruption.moved_to)
    assert moved.exists() and moved.name.startswith("outbox.db.corrupt-")
    assert box.stats().pending == 0  # a fresh outbox...
    meta = json.loads(box.meta("corruption") or "{}")
    assert meta["moved_to"] == str(moved)  # ...that says so
    box.close()
    again = Outbox(path, clock=lambda: NOW + 60)  # a restart does not forget it
    assert again.corruption is None and again.meta("corruption") is not None
    assert again.acknowledge_corruption() is True
    assert again.meta("corruption") is None
    again.close()


def _btree_page_offsets(path: Path) -> list[int]:
    """Byte offsets of b-tree pages of the weighings table (from dbstat-free arithmetic: page size x
    (rootpage - 1) for the table and its index)."""
    conn = sqlite3.connect(path)
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    roots = [r[0] for r in conn.execute("SELECT rootpage FROM sqlite_master WHERE tbl_name = 'weighings'")]
    conn.close()
    return [page * (r - 1) for r in roots if r > 1]


def test_flipped_bytes_in_a_btree_page_are_detected_and_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    _fill(path, 40)
    original = path.read_bytes()
    data = bytearray(original)
    for off in _btree_page_offsets(path):
        for k in range(0, 24):  # the b-tree page header and cell pointer array
            data[off + k] ^= 0xA5
    path.write_bytes(bytes(data))
    box = Outbox(path, clock=lambda: NOW)
    _assert_moved_aside(path, box, "")
    assert Path(box.corruption.moved_to).read_bytes() == bytes(data)  # type: ignore[union-attr]


def test_garbage_header_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    _fill(path, 5)
    data = bytearray(path.read_bytes())
    data[:100] = b"\x13" * 100
    path.write_bytes(bytes(data))
    box = Outbox(path, clock=lambda: NOW)
    _assert_moved_aside(path, box, "not a database")


def test_a_file_that_is_not_sqlite_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    path.write_bytes(b"this is a text file someone copied here\n" * 100)
    box = Outbox(path, clock=lambda: NOW)
    _assert_moved_aside(path, box, "not a database")


def test_a_sqlite_file_of_something_else_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE songs (title TEXT)")
    conn.commit()
    conn.close()
    box = Outbox(path, clock=lambda: NOW)
    _assert_moved_aside(path, box, "not a scale-bridge outbox")


def test_torn_wal_keeps_every_committed_transaction_but_the_torn_one(tmp_path: Path) -> None:
    live, snap = tmp_path / "live" / "outbox.db", tmp_path / "snap" / "outbox.db"
    live.parent.mkdir()
    box, uids = _snapshot_open(live, snap, 10)
    wal = Path(str(snap) + "-wal")
    size = wal.stat().st_size
    with wal.open("r+b") as fh:  # the last frame is only half on disk
        fh.truncate(size - 2000)
    reopened = Outbox(snap, clock=lambda: NOW)
    assert reopened.corruption is None
    got = [j.uid for j in reopened.jobs(limit=100)]
    assert got == uids[: len(got)] and len(got) >= 9  # a prefix: only the torn tail is gone
    assert reopened.quick_check() == "ok"
    reopened.close()
    box.close()


def test_torn_wal_with_garbage_in_the_last_frame_is_ignored_by_recovery(tmp_path: Path) -> None:
    live, snap = tmp_path / "live" / "outbox.db", tmp_path / "snap" / "outbox.db"
    live.parent.mkdir()
    box, uids = _snapshot_open(live, snap, 10)
    wal = Path(str(snap) + "-wal")
    data = bytearray(wal.read_bytes())
    for k in range(len(data) - 3000, len(data) - 1000):
        data[k] ^= 0xFF  # salt/checksum mismatch from here on: those frames are not replayed
    wal.write_bytes(bytes(data))
    reopened = Outbox(snap, clock=lambda: NOW)
    assert reopened.corruption is None
    got = [j.uid for j in reopened.jobs(limit=100)]
    assert got == uids[: len(got)] and len(got) >= 8
    reopened.close()
    box.close()


def test_deleted_wal_loses_what_was_not_checkpointed_but_never_looks_empty_and_valid(tmp_path: Path) -> None:
    live, snap = tmp_path / "live" / "outbox.db", tmp_path / "snap" / "outbox.db"
    live.parent.mkdir()
    box, _uids = _snapshot_open(live, snap, 10)
    Path(str(snap) + "-wal").unlink()
    raw = sqlite3.connect(f"file:{snap}?mode=ro", uri=True)  # before the outbox touches it
    assert raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    raw.close()
    reopened = Outbox(snap, clock=lambda: NOW)
    # SQLite cannot know the WAL existed: the captures in it are gone (documented; never delete -wal).
    assert reopened.corruption is None
    assert [j.uid for j in reopened.jobs(limit=100)] == []
    # but the schema and meta were checkpointed when the outbox was opened: not an empty new file
    reopened.close()
    box.close()


def test_deleted_wal_after_a_restart_keeps_what_was_there_at_the_restart(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    first = _fill(path, 5)  # closed: checkpointed
    live_box, _more = _snapshot_open(path, tmp_path / "snap" / "outbox.db", 3)
    snap = tmp_path / "snap" / "outbox.db"
    Path(str(snap) + "-wal").unlink()
    reopened = Outbox(snap, clock=lambda: NOW)
    assert [j.uid for j in reopened.jobs(limit=100)] == first  # the 3 after the restart are lost
    reopened.close()
    live_box.close()


def test_flipped_bytes_inside_a_payload_are_not_detected(tmp_path: Path) -> None:
    """SQLite keeps no checksum of record contents: a bit flip inside a body string is invisible to
    quick_check (documented in docs/reliability.md; the cure would be the cksumvfs extension)."""
    path = tmp_path / "outbox.db"
    _fill(path, 3)
    data = bytearray(path.read_bytes())
    at = data.find(b"synthetic 1")
    assert at > 0
    data[at] = ord("S")
    path.write_bytes(bytes(data))
    box = Outbox(path, clock=lambda: NOW)
    assert box.corruption is None
    bodies = [j.body["rawResults"] for j in box.jobs(limit=10)]
    assert any(b.startswith("Synthetic 1") for b in bodies)
    box.close()


def test_empty_file_is_a_fresh_outbox_not_corruption(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    path.write_bytes(b"")
    box = Outbox(path, clock=lambda: NOW)
    assert box.corruption is None and box.stats().pending == 0
    box.close()


@pytest.mark.parametrize("n", [1, 50])
def test_healthy_file_is_not_touched(tmp_path: Path, n: int) -> None:
    path = tmp_path / "outbox.db"
    uids = _fill(path, n)
    box = Outbox(path, clock=lambda: NOW)
    assert box.corruption is None
    assert [j.uid for j in box.jobs(JobState.PENDING, limit=100)] == uids
    assert not list(tmp_path.glob("*.corrupt-*"))
    box.close()


def test_a_permission_problem_is_not_corruption(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """(As root ``os.access`` is always true, so the denial is simulated at that call.)"""
    from bridge.errors import OutboxError
    from bridge.outbox import store as outbox_mod

    path = tmp_path / "outbox.db"
    uids = _fill(path, 3)
    monkeypatch.setattr(outbox_mod.os, "access", lambda p, mode: False)
    with pytest.raises(OutboxError, match="permission denied"):
        Outbox(path, clock=lambda: NOW)
    monkeypatch.undo()
    assert not list(tmp_path.glob("*.corrupt-*"))  # left where it is
    box = Outbox(path, clock=lambda: NOW)
    assert [j.uid for j in box.jobs(limit=10)] == uids and box.corruption is None
    box.close()


def test_a_directory_in_place_of_the_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    path.mkdir()
    (path / "something").write_text("x")
    box = Outbox(path, clock=lambda: NOW)
    _assert_moved_aside(path, box, "")
