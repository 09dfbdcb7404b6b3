"""The outbox file stays bounded when deliveries keep up (issue #17's soak): real SQLite files, the
daemon's two connections (the primary one captures and runs retention, a secondary one delivers, as
the threaded upload store does), rounds of capture -> deliver -> retention purge.

Sizes are properties with generous bounds, never timings: a file that leaked (rows not purged, free
pages never reused, a ``-wal`` file that never starts over) grows with the rows written, here ten
times the rows it ever holds at once, and ends far above the bounds."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bridge.outbox import Outbox, Stage
from bridge.outbox.store import JOURNAL_SIZE_LIMIT_BYTES

NOW = 1_800_000_000.0
ROUND_S = 60.0  # one round of weighings a minute; retention keeps the last round's deliveries
BODY = {"weight_kg": 81.4, "fat_pct": 21.7, "raw": "x" * 3000}  # about a real body's size


def _wal_bytes(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def _round(primary: Outbox, uploader: Outbox, r: int, n: int) -> None:
    """``n`` weighings captured (primary), delivered (the uploader's connection), then the retention
    sweep (primary): everything delivered before the previous round goes."""
    t = NOW + r * ROUND_S
    for i in range(n):
        wid = primary.capture(
            scale="bench", driver="tanita", body={**BODY, "n": r * n + i}, card="42", card_source="c", now=t
        )
        uploader.posted(wid, benefit_attached=False, next_stage=Stage.DONE, status=201, now=t)
    primary.purge_delivered(t - ROUND_S, now=t)


def _open_pair(path: Path) -> tuple[Outbox, Outbox]:
    primary = Outbox(path, clock=lambda: NOW)
    return primary, Outbox(path, clock=lambda: NOW, check=False, primary=False)


def test_db_and_wal_stay_bounded_while_retention_purges(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    primary, uploader = _open_pair(path)
    n, warm_rounds, rounds = 60, 3, 30
    try:
        for r in range(warm_rounds):
            _round(primary, uploader, r, n)
        db_warm = path.stat().st_size
        peak_wal = 0
        for r in range(warm_rounds, rounds):
            _round(primary, uploader, r, n)
            peak_wal = max(peak_wal, _wal_bytes(path))
        held = primary.stats()
        db_end = path.stat().st_size
    finally:
        uploader.close()
        primary.close()
    assert held.delivered == 2 * n  # retention ran: this round's and the previous one's only
    assert held.pending == 0
    # 1,800 weighings written, at most 180 held at once: a leak would end near 10x the warm size
    assert db_end <= 1.5 * db_warm, (db_warm, db_end)
    assert peak_wal <= 2 * JOURNAL_SIZE_LIMIT_BYTES, peak_wal


def test_wal_is_cut_back_after_a_reader_held_it_open(tmp_path: Path) -> None:
    """A reader that holds a snapshot (an operator's ``sqlite3`` session) stops the WAL from starting
    over, so it grows; once the reader is gone the next cycles cut the file back to the limit instead
    of keeping its largest size for good."""
    path = tmp_path / "outbox.db"
    primary, uploader = _open_pair(path)
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM weighings").fetchall()  # the snapshot is now held
        r = 0
        while _wal_bytes(path) <= 2 * JOURNAL_SIZE_LIMIT_BYTES:  # bounded: about 8 rounds here
            _round(primary, uploader, r, 60)
            r += 1
            assert r < 200, "the WAL did not grow while a reader held it"
        grown = _wal_bytes(path)
        reader.execute("COMMIT")
        for k in range(r, r + 4):
            _round(primary, uploader, k, 60)
        after = _wal_bytes(path)
    finally:
        reader.close()
        uploader.close()
        primary.close()
    assert grown > 2 * JOURNAL_SIZE_LIMIT_BYTES
    assert after <= JOURNAL_SIZE_LIMIT_BYTES, (grown, after)
