"""Event-loop lag: a task that sleeps 10 ms and records how late it wakes.

While the loop's thread is busy (a SQLite COMMIT waiting for its fsync, JSON, a parser) the probe
cannot run, so its lateness is how long the loop was unavailable to every other task at that
moment. Used in this process (``bench drain``) and, through ``bench.probed_daemon``, inside the
daemon that ``bench live`` runs. Bench only: the product has no probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

from .common import percentile

INTERVAL_S = 0.010


class LoopLagProbe:
    def __init__(self, interval_s: float = INTERVAL_S) -> None:
        self.interval_s = interval_s
        #: (wall clock at wake-up, lateness in ms)
        self.samples: list[tuple[float, float]] = []
        self._task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        interval = self.interval_s
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(interval)
            late_ms = (time.perf_counter() - t0 - interval) * 1000.0
            self.samples.append((time.time(), max(0.0, late_ms)))

    def start(self) -> LoopLagProbe:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="loop-lag-probe")
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def summary(self, since: float | None = None, until: float | None = None) -> dict[str, Any]:
        lo, hi = since if since is not None else float("-inf"), until if until is not None else float("inf")
        return summarise([lag for at, lag in self.samples if lo <= at <= hi])


def summarise(lags_ms: Sequence[float]) -> dict[str, Any]:
    return {
        "interval_ms": INTERVAL_S * 1000,
        "samples": len(lags_ms),
        "p50_ms": percentile(lags_ms, 50),
        "p99_ms": percentile(lags_ms, 99),
        "max_ms": max(lags_ms) if lags_ms else float("nan"),
        "over_10ms": sum(1 for x in lags_ms if x > 10.0),
    }
