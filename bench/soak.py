"""6. Soak: N weighings through decode -> pairing -> outbox -> simulator, in the real ``Daemon`` (in
this process; the simulator is a subprocess).

The scale is a synthetic link yielding Tanita MC-780 lines (each distinct, member ID on the scale). It
holds back while more than ``MAX_PENDING`` weighings wait in the outbox, so the soak measures a steady
state (as fast as the upload side goes) instead of an ever-growing backlog. Bench-only settings:
the pacer is lifted (the simulator has no limit here), delivered weighings are kept 20 s and the
retention sweep runs every 5 s instead of hourly, the dedupe window is 60 s: with those the DB must
plateau. RSS (this process: daemon + the synthetic link) is sampled every second; growth is the last
sample minus the sample at 10 % of N.

The DB's size is not a constant here: with deliveries keeping up, the outbox holds what was delivered
in the last retention + sweep period, so its size follows the delivery rate (which a loaded machine
changes several-fold within a run). "Bounded" therefore asks two things that a leak breaks and a rate
change does not: the database's pages per weighing held (``page_count`` over the most weighings held
so far) do not grow from the first half to the second, and the ``-wal`` file does not outgrow both
the first half's and the outbox's ``journal_size_limit`` (plus one ordinary checkpoint cycle).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bridge.config import config_from_dict, replace
from bridge.daemon import Daemon
from bridge.errors import OutboxError
from bridge.logs import configure
from bridge.outbox.store import JOURNAL_SIZE_LIMIT_BYTES, WAL_AUTOCHECKPOINT_PAGES
from drivers.events import EventKind, LinkEvent

from .common import config_doc, cpu_seconds, log, rss_bytes, simulator, tanita_frame

MAX_PENDING = 200
RETENTION_S = 20.0
SWEEP_S = 5.0
# The limit cuts the -wal file back when it starts over; between two starts it may run one ordinary
# checkpoint cycle past it (4 KiB pages, SQLite's default, which the outbox keeps) without growing.
WAL_ALLOWED_BYTES = JOURNAL_SIZE_LIMIT_BYTES + WAL_AUTOCHECKPOINT_PAGES * 4096


class SyntheticLink:
    def __init__(self, n: int, daemon_ref: list[Daemon]) -> None:
        self.name = "synthetic:tanita"
        self.n = n
        self.sent = 0
        self._daemon = daemon_ref
        self._closed = False
        self.finished = asyncio.Event()

    @property
    def state(self) -> str:
        return "connected"

    async def events(self) -> AsyncIterator[LinkEvent]:
        try:
            while self.sent < self.n and not self._closed:
                d = self._daemon[0]
                if (
                    d.outbox is not None
                    and d.stats.weighings_captured - (d.uploader.counters.delivered if d.uploader else 0) > MAX_PENDING
                ):
                    await asyncio.sleep(0.02)
                    continue
                self.sent += 1
                yield LinkEvent(EventKind.RX, tanita_frame(self.sent), datetime.now(UTC), scale="bench")
        finally:
            self.finished.set()

    async def send(self, data: bytes) -> None:
        return None

    async def close(self) -> None:
        self._closed = True


def _file_bytes(state: Path) -> tuple[int, int, int]:
    """(outbox.db, -wal, -shm) sizes (a side file may vanish between listing and stat)."""
    sizes = []
    for name in ("outbox.db", "outbox.db-wal", "outbox.db-shm"):
        size = 0
        with contextlib.suppress(OSError):
            size = (state / name).stat().st_size
        sizes.append(size)
    return sizes[0], sizes[1], sizes[2]


@dataclass(frozen=True, slots=True)
class DbSample:
    """One second's look at the outbox: its files, its pages (the WAL's included) and its rows. The
    figures come from the daemon's own (primary) connection, on the loop: no extra reader."""

    t: float
    sent: int
    rss: int
    db_file: int
    wal_file: int
    shm_file: int
    pages_bytes: int  # page_count x page_size: the database's size, wherever its pages are yet
    rows_held: int  # every weighing in the file, delivered ones waiting for retention included

    @property
    def total(self) -> int:
        return self.db_file + self.wal_file + self.shm_file


def _sample(t: float, sent: int, d: Daemon, state: Path, last: DbSample | None) -> DbSample:
    db_file, wal_file, shm_file = _file_bytes(state)
    pages_bytes, rows_held = (last.pages_bytes, last.rows_held) if last is not None else (0, 0)
    if d.outbox is not None:
        with contextlib.suppress(OutboxError):  # not open yet, or closed at the end: the last figures
            store = d.outbox.store
            pages = store.one("PRAGMA page_count")
            size = store.one("PRAGMA page_size")
            q = d.outbox.stats()
            pages_bytes = int(pages[0]) * int(size[0]) if pages is not None and size is not None else pages_bytes
            rows_held = q.pending + q.waiting_for_staff + q.delivered + q.dead
    return DbSample(t, sent, rss_bytes(), db_file, wal_file, shm_file, pages_bytes, rows_held)


def _bounded(after: list[DbSample], peak_rows_before: int, long_enough: bool) -> dict[str, Any]:
    """The DB-size verdict over the samples after the warm-up (see the module's docstring)."""
    per_row: list[float] = []
    peak = peak_rows_before
    for x in after:
        peak = max(peak, x.rows_held)
        per_row.append(x.pages_bytes / peak if peak else 0.0)
    half = len(after) // 2
    first, second = after[:half], after[half:]
    if not (long_enough and first and second):
        return {"db_bounded": None}
    pages_ok = max(per_row[half:]) <= 1.1 * max(per_row[:half])
    wal_first, wal_second = max(x.wal_file for x in first), max(x.wal_file for x in second)
    wal_ok = wal_second <= max(1.1 * wal_first, WAL_ALLOWED_BYTES)

    def rate(xs: list[DbSample]) -> float:
        return (xs[-1].sent - xs[0].sent) / max(xs[-1].t - xs[0].t, 1e-9)

    return {
        "db_bounded": pages_ok and wal_ok,
        "db_pages_bytes_per_held_row_first_half": max(per_row[:half]),
        "db_pages_bytes_per_held_row_second_half": max(per_row[half:]),
        "rows_held_max_first_half": max(x.rows_held for x in first),
        "rows_held_max_second_half": max(x.rows_held for x in second),
        "wal_max_first_half": wal_first,
        "wal_max_second_half": wal_second,
        "wal_limit": JOURNAL_SIZE_LIMIT_BYTES,
        "wal_allowed": WAL_ALLOWED_BYTES,
        "weighings_per_s_first_half": rate(first),
        "weighings_per_s_second_half": rate(second),
    }


async def _soak(n: int, url: str, state: Path, sim_pid: int) -> dict[str, Any]:
    doc = config_doc(url, str(state), port="/dev/null")
    doc["queue"] = {"retention_delivered_days": RETENTION_S / 86400, "dedupe_window_s": 60.0}
    cfg = config_from_dict(doc, source="bench")
    # bench only: the config caps it at the real platform's 1000
    cfg = replace(cfg, platform=replace(cfg.platform, rate_limit_per_min=10**9))
    ref: list[Daemon] = []
    link = SyntheticLink(n, ref)
    d = Daemon(cfg, exit_when_replayed=True, drain_timeout_s=600, scale_link=link, retention_every_s=SWEEP_S)
    ref.append(d)
    samples: list[DbSample] = []
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    sim_cpu0 = cpu_seconds(sim_pid)

    async def sampler() -> None:
        last_log = 0.0
        while True:  # every second; an error here must not end the sampling silently
            now = time.perf_counter() - t0
            samples.append(_sample(now, link.sent, d, state, samples[-1] if samples else None))
            if now - last_log >= 30:
                last_log = now
                x = samples[-1]
                log(
                    f"soak: {link.sent:,}/{n:,} weighings, {link.sent / max(now, 1e-9):.0f}/s, "
                    f"RSS {x.rss / 2**20:.1f} MB, DB {x.total / 2**20:.1f} MB "
                    f"(wal {x.wal_file / 2**20:.1f} MB, {x.rows_held:,} weighings held)"
                )
            await asyncio.sleep(1.0)

    s = asyncio.create_task(sampler())
    code = await d.run()
    s.cancel()
    wall = time.perf_counter() - t0
    samples.append(_sample(wall, link.sent, d, state, samples[-1] if samples else None))
    warm = next((x for x in samples if x.sent >= n // 10), samples[0])
    after = [x for x in samples if x.sent >= warm.sent]
    c = d.uploader.counters if d.uploader else None
    half = len(after) // 2
    first, second = [x.total for x in after[:half]], [x.total for x in after[half:]]
    long_enough = wall >= 3 * (RETENTION_S + SWEEP_S)
    peak_rows_before = max((x.rows_held for x in samples if x.sent < warm.sent), default=0)
    return {
        "n": n,
        "exit_code": code,
        "seconds": wall,
        "weighings_per_s": n / wall,
        "captured": d.stats.weighings_captured,
        "duplicates": d.stats.duplicates,
        "delivered": c.delivered if c else None,
        "retries": c.retries if c else None,
        "rss_warm_mb": warm.rss / 2**20,
        "rss_end_mb": samples[-1].rss / 2**20,
        "rss_max_after_warm_mb": max(x.rss for x in after) / 2**20,
        "rss_growth_mb": (samples[-1].rss - warm.rss) / 2**20,
        "retention_s": RETENTION_S,
        "retention_sweep_s": SWEEP_S,
        # the files as they are (db + wal + shm): they follow the delivery rate, see _bounded
        "db_max_first_half": max(first) if first else 0,
        "db_max_second_half": max(second) if second else 0,
        **_bounded(after, peak_rows_before, long_enough),
        "db_bytes_at_warm": warm.total,
        "db_bytes_max": max(x.total for x in after),
        "db_bytes_end": samples[-1].total,
        "cpu_s": time.process_time() - cpu0,
        "sim_cpu_s": cpu_seconds(sim_pid) - sim_cpu0,
        "samples": [
            {
                "t": round(x.t, 1),
                "sent": x.sent,
                "rss_mb": round(x.rss / 2**20, 2),
                "db_mb": round(x.total / 2**20, 2),
                "db_file_mb": round(x.db_file / 2**20, 2),
                "wal_mb": round(x.wal_file / 2**20, 2),
                "pages_mb": round(x.pages_bytes / 2**20, 2),
                "rows_held": x.rows_held,
            }
            for x in samples[:: max(1, len(samples) // 60)]
        ],
    }


def run(n: int) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-soak-") as d,
        simulator(10**9) as sim,
        open(os.devnull, "w", encoding="utf-8") as sink,
    ):
        configure("info", "json", stream=sink)
        try:
            res = asyncio.run(_soak(n, sim.url, Path(d) / "state", sim.proc.pid))
        finally:
            configure("critical", "json")
        st = sim.state()
        res["sim_weighings"] = st["weighings"]
        res["sim_rss_mb"] = rss_bytes(sim.proc.pid) / 2**20
    log(
        f"soak: {n:,} in {res['seconds']:.0f} s ({res['weighings_per_s']:.0f}/s), RSS growth "
        f"{res['rss_growth_mb']:+.1f} MB, DB max {res['db_bytes_max'] / 2**20:.1f} MB, sim got {res['sim_weighings']}"
    )
    return res
