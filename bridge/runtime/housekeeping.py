"""Housekeeping: the watchdog, the status (file, STATUS=, metrics), retention, pairing ticks.

Runs every ``HOUSEKEEPING_S`` (faster when the watchdog needs it). The watchdog is pinged only while
the pipeline is alive: the uploader loop makes progress and every live link's task is still running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from drivers.links.base import FiniteLink, Link, LinkState

from .. import sd_notify
from ..errors import StorageError
from ..outbox import Outbox
from ..status import BenefitFigures, DaemonStatus, QueueFigures, UploadFigures, iso
from ..upload.loop import Uploader
from .pump import Pump

HOUSEKEEPING_S = 1.0
STATUS_EVERY_S = 2.0
RETENTION_EVERY_S = 3600.0
STALL_S = 90.0


class Housekeeping:
    def __init__(
        self,
        *,
        pump: Pump,
        outbox: Outbox,
        uploader: Uploader | None,
        links: Sequence[tuple[str, Link]],
        status_path: Path,
        scale: str,
        driver: str,
        retention_days: Callable[[], float],
        clock: Callable[[], float],
        log: Any,
        retention_every_s: float = RETENTION_EVERY_S,
    ) -> None:
        self.pump = pump
        self.outbox = outbox
        self.uploader = uploader
        self.links = list(links)
        self.status_path = status_path
        self.scale = scale
        self.driver = driver
        self.retention_days = retention_days
        self.clock = clock
        self.log = log
        self.retention_every_s = retention_every_s
        self.started_at = clock()
        self.stopping = False
        #: the latest status, for the metrics exporter (read from its thread; a frozen value)
        self.latest: DaemonStatus | None = None

    # ---- the status --------------------------------------------------------------------------------

    def snapshot(self, *, final: bool = False) -> DaemonStatus:
        now = self.clock()
        up = self.uploader
        c = up.counters if up is not None else None
        return DaemonStatus(
            pid=os.getpid(),
            running=not final,
            started_at=self.started_at,
            updated_at=now,
            scale=self.scale,
            driver=self.driver,
            links={name: LinkState.of(link.state) for name, link in self.links},
            last_frame_at=self.pump.counters.last_frame_at,
            last_weighing_at=self.pump.counters.last_weighing_at,
            queue=QueueFigures.from_stats(self.outbox.stats(), now),
            intake=self.pump.figures(),
            uploads=c.figures() if c is not None else UploadFigures(),
            benefit=up.benefit_figures() if up is not None else BenefitFigures(),
            auth_rejected=up is not None and up.auth_error is not None,
            storage_error=self.pump.storage_error,
            unsaved_in_memory=len(self.pump.unsaved),
        )

    def write_status(self, *, final: bool = False) -> DaemonStatus:
        status = self.snapshot(final=final)
        self.latest = status
        write_atomically(self.status_path, status.to_json(), log=self.log)
        return status

    def status_line(self, status: DaemonStatus) -> str:
        q = status.queue
        links = ",".join(f"{k}={v.value}" for k, v in status.links.items()) or "-"
        parts = [
            f"queue {q.pending} pending",
            f"{q.dead} dead",
            f"last weighing {iso(status.last_weighing_at) or 'never'}",
            f"last upload {iso(q.last_delivered_at) or 'never'}",
            f"links {links}",
        ]
        if status.auth_rejected:
            parts.insert(0, "API KEY REJECTED")
        if status.storage_error:
            parts.insert(0, "DISK WRITE FAILING")
        return "; ".join(parts)

    # ---- the loop ----------------------------------------------------------------------------------

    def alive(self, link_tasks: Sequence[asyncio.Task[None]], upload_task: asyncio.Task[None] | None) -> bool:
        now = time.monotonic()
        up = self.uploader
        if upload_task is not None and (upload_task.done() or (up is not None and now - up.last_progress_at > STALL_S)):
            return False
        for task, (_, link) in zip(link_tasks, self.links, strict=False):
            replay_done = isinstance(link, FiniteLink) and link.finished.is_set()
            if task.done() and not replay_done and not self.stopping:
                return False  # a live link's task ended: not alive
        return True

    async def run(self, link_tasks: Sequence[asyncio.Task[None]], upload_task: asyncio.Task[None] | None) -> None:
        interval = sd_notify.watchdog_interval_s()
        ping_every = (interval / 2.0) if interval else None
        last_ping = last_status = last_retention = 0.0
        withheld = False
        while True:
            now = time.monotonic()
            if self.pump.unsaved:
                self.pump.flush_unsaved()
            if ping_every is not None and now - last_ping >= ping_every:
                if self.alive(link_tasks, upload_task):
                    sd_notify.watchdog()
                    last_ping, withheld = now, False
                elif not withheld:
                    self.log.error("pipeline_stalled", action="withholding watchdog pings")
                    withheld = True
            if now - last_status >= STATUS_EVERY_S:
                sd_notify.status(self.status_line(self.write_status()))
                last_status = now
            if now - last_retention >= self.retention_every_s:
                self._retention()
                last_retention = now
            self.pump.tick()
            await asyncio.sleep(HOUSEKEEPING_S if ping_every is None else min(HOUSEKEEPING_S, ping_every / 2))

    def _retention(self) -> None:
        cutoff = self.clock() - self.retention_days() * 86400
        try:
            purged = self.outbox.purge_delivered(cutoff)
        except StorageError as exc:
            self.log.warning("retention_failed", error=str(exc), action="retried in an hour")
            return
        if purged:
            self.log.info("delivered_purged", count=purged)


def write_atomically(path: Path, text: str, *, log: Any) -> None:
    """Write ``path`` through a temporary file (0640, never following a symlink) and a rename. On a full
    disk, overwrite the existing file in place (its blocks are allocated; compact JSON is shorter)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "r+b") as fh:
                fh.write(json.dumps(json.loads(text), separators=(",", ":")).encode("utf-8"))
                fh.truncate()
        except OSError:
            log.warning("status_write_failed", error=str(exc))
