"""6. Soak: N weighings through decode -> pairing -> outbox -> simulator, in the real ``Daemon`` (in
this process; the simulator is a subprocess).

The scale is a synthetic link yielding Tanita MC-780 lines (each distinct, member ID on the scale). It
holds back while more than ``MAX_PENDING`` weighings wait in the outbox, so the soak measures a steady
state (as fast as the upload side goes) instead of an ever-growing backlog. Bench-only settings:
the pacer is lifted (the simulator has no limit here), delivered weighings are kept 20 s and the
retention sweep runs every 5 s instead of hourly, the dedupe window is 60 s: with those the DB must
plateau. RSS (this process: daemon + the synthetic link) is sampled every second; growth is the last
sample minus the sample at 10 % of N.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bridge.config import config_from_dict, replace
from bridge.daemon import Daemon
from bridge.logs import configure
from drivers.events import EventKind, LinkEvent

from .common import config_doc, cpu_seconds, log, rss_bytes, simulator, tanita_frame

MAX_PENDING = 200
RETENTION_S = 20.0
SWEEP_S = 5.0


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


def _db_bytes(state: Path) -> int:
    """outbox.db + -wal + -shm (a side file may vanish between listing and stat)."""
    total = 0
    for name in ("outbox.db", "outbox.db-wal", "outbox.db-shm"):
        with contextlib.suppress(OSError):
            total += (state / name).stat().st_size
    return total


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
    samples: list[tuple[float, int, int, int]] = []  # (t, sent, rss, db bytes)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    sim_cpu0 = cpu_seconds(sim_pid)

    async def sampler() -> None:
        last_log = 0.0
        while True:  # every second; an error here must not end the sampling silently
            now = time.perf_counter() - t0
            samples.append((now, link.sent, rss_bytes(), _db_bytes(state)))
            if now - last_log >= 30:
                last_log = now
                log(
                    f"soak: {link.sent:,}/{n:,} weighings, {link.sent / max(now, 1e-9):.0f}/s, "
                    f"RSS {samples[-1][2] / 2**20:.1f} MB, DB {samples[-1][3] / 2**20:.1f} MB"
                )
            await asyncio.sleep(1.0)

    s = asyncio.create_task(sampler())
    code = await d.run()
    s.cancel()
    wall = time.perf_counter() - t0
    samples.append((wall, link.sent, rss_bytes(), _db_bytes(state)))
    warm = next((x for x in samples if x[1] >= n // 10), samples[0])
    rss_warm, rss_end = warm[2], samples[-1][2]
    rss_max = max(x[2] for x in samples if x[1] >= warm[1])
    db_after_warm = [x[3] for x in samples if x[1] >= warm[1]]
    c = d.uploader.counters if d.uploader else None
    after = [x for x in samples if x[1] >= warm[1]]
    half = len(after) // 2
    first, second = [x[3] for x in after[:half]], [x[3] for x in after[half:]]
    long_enough = wall >= 3 * (RETENTION_S + SWEEP_S) and first and second
    return {
        "n": n,
        "exit_code": code,
        "seconds": wall,
        "weighings_per_s": n / wall,
        "captured": d.stats.weighings_captured,
        "duplicates": d.stats.duplicates,
        "delivered": c.delivered if c else None,
        "retries": c.retries if c else None,
        "rss_warm_mb": rss_warm / 2**20,
        "rss_end_mb": rss_end / 2**20,
        "rss_max_after_warm_mb": rss_max / 2**20,
        "rss_growth_mb": (rss_end - rss_warm) / 2**20,
        "retention_s": RETENTION_S,
        "retention_sweep_s": SWEEP_S,
        "db_max_first_half": max(first) if first else 0,
        "db_max_second_half": max(second) if second else 0,
        "db_bounded": (max(second) <= 1.1 * max(first)) if long_enough else None,
        "db_bytes_at_warm": warm[3],
        "db_bytes_max": max(db_after_warm),
        "db_bytes_end": samples[-1][3],
        "cpu_s": time.process_time() - cpu0,
        "sim_cpu_s": cpu_seconds(sim_pid) - sim_cpu0,
        "samples": [
            {"t": round(t, 1), "sent": k, "rss_mb": round(r / 2**20, 2), "db_mb": round(b / 2**20, 2)}
            for t, k, r, b in samples[:: max(1, len(samples) // 60)]
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
