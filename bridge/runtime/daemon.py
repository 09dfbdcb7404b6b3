"""The daemon: the composition root. It builds the parts, starts their tasks, handles signals, stops.

    links ──events──▶ Pump (intake → outbox.capture) ──wake──▶ Uploader (journey → platform)
                          ▲                                        │
                    Housekeeping (watchdog, status, retention, pairing ticks)

Order of start: outbox open (corruption handled), links started, then READY=1. SIGTERM stops intake,
commits what was read, gives in-flight uploads what is left of one stop deadline, and exits 0. The
deadline comes from the unit (``SCALE_BRIDGE_STOP_TIMEOUT_S``, set a few seconds below
``TimeoutStopSec=``), so systemd never has to SIGKILL a clean stop. SIGHUP applies ``reload.plan``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers.links.base import FiniteLink, Link

from .. import sd_notify
from ..config import Config
from ..errors import EX_SOFTWARE
from ..intake import Capture
from ..logs import get_logger, level_for, settled
from ..outbox import Job, Outbox
from ..pc_mode import PcMode
from ..upload.loop import Uploader
from .assembly import Hooks, assemble
from .housekeeping import RETENTION_EVERY_S, Housekeeping
from .links import ReplayPause
from .pump import Pump, PumpCounters
from .reload import reload
from .shutdown import Running, shutdown, start_metrics


class Daemon:
    def __init__(
        self,
        cfg: Config,
        *,
        config_path: str | Path | None = None,
        upload: bool = True,
        exit_when_replayed: bool = False,
        drain_timeout_s: float | None = None,
        clock: Callable[[], float] = time.time,
        on_captured: Callable[[Capture, int], None] | None = None,
        on_delivered: Callable[[Job], None] | None = None,
        scale_link: Link | None = None,
        retention_every_s: float = RETENTION_EVERY_S,
    ) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.upload = upload
        self.exit_when_replayed = exit_when_replayed
        self.drain_timeout_s = drain_timeout_s
        self.clock = clock
        self.on_captured = on_captured
        self.on_delivered = on_delivered
        self._scale_link = scale_link
        self.retention_every_s = retention_every_s
        #: a replayed capture: ``(gap_s, hook)`` awaits ``hook(t_s)`` at every pause >= gap_s (the demo)
        self.replay_pause: ReplayPause | None = None
        self.log = get_logger(component="daemon", scale=cfg.scale.name)
        self.exit_code = 0
        self._stop = asyncio.Event()
        self._fatal: BaseException | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        # the parts, built by run()
        self.outbox: Outbox | None = None
        self.uploader: Uploader | None = None
        self.pump: Pump | None = None
        self.housekeeping: Housekeeping | None = None
        self.links: list[Link] = []
        self.pc_mode: PcMode | None = None

    @property
    def stats(self) -> PumpCounters:
        return self.pump.counters if self.pump is not None else PumpCounters()

    def request_stop(self) -> None:
        self._stop.set()

    # ---- building the parts ------------------------------------------------------------------------

    def _hooks(self) -> Hooks:
        return Hooks(self._on_link_state, self._committed, self._failed, self._replay_finished, self.on_delivered)

    # ---- lifecycle ---------------------------------------------------------------------------------

    async def run(self) -> int:
        parts = await assemble(
            self.cfg,
            self._hooks(),
            clock=self.clock,
            log=self.log,
            upload=self.upload,
            retention_days=lambda: self.cfg.queue.retention_delivered_days,
            retention_every_s=self.retention_every_s,
            scale_link=self._scale_link,
            replay_pause=self.replay_pause,
        )
        outbox, uploader, pump, house = parts.outbox, parts.uploader, parts.pump, parts.housekeeping
        self.outbox, self.uploader, self.pump, self.housekeeping = outbox, uploader, pump, house
        self.links, self.pc_mode = parts.links, parts.pc_mode
        self._install_signals()
        supervise = self._supervise
        link_tasks = [supervise(asyncio.create_task(pump.run(link), name=f"link:{link.name}")) for link in self.links]
        upload_task = supervise(asyncio.create_task(uploader.run(), name="uploader")) if self.upload else None
        house_task = supervise(asyncio.create_task(house.run(link_tasks, upload_task), name="housekeeping"))
        self.log.info(
            "daemon_started",
            driver=self.cfg.scale.driver,
            link=self.links[0].name,
            pid=os.getpid(),
            queue_pending=outbox.stats().pending,
        )
        metrics = start_metrics(self.cfg.metrics.listen, house, self.log)
        sd_notify.ready()
        sd_notify.status(house.status_line(house.write_status()))
        try:
            await self._stop.wait()
        finally:
            running = Running(link_tasks, [*self._tasks], upload_task, house_task, metrics)
            code = await shutdown(parts, running, self.log)
            self.exit_code = self.exit_code or code
        if self._fatal is not None:
            self.log.error("daemon_failed", error=str(self._fatal))
            return self.exit_code or 1
        self.log.info("daemon_stopped")
        return self.exit_code

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_term, sig)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, self._on_hup)

    def _on_term(self, sig: signal.Signals) -> None:
        self.request_stop()  # first: nothing that follows (a log line) may keep the daemon from stopping
        self.log.info("signal_received", signal=sig.name)

    def _supervise(self, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        """A part (a link's pump, the uploader, housekeeping) that ends with an exception stops the
        daemon with EX_SOFTWARE at once, naming the part: a bug must not leave a half daemon that
        waits for ever (the watchdog catches that only under systemd, and only after WatchdogSec)."""
        task.add_done_callback(self._part_ended)
        return task

    def _part_ended(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled() or (exc := task.exception()) is None:
            return
        self.log.critical("part_crashed", part=task.get_name(), error=f"{type(exc).__name__}: {exc}", exc_info=exc)
        self._failed(exc, EX_SOFTWARE)

    # ---- callbacks from the parts ------------------------------------------------------------------

    def _committed(self, cap: Capture, wid: int) -> None:
        if self.on_captured is not None:
            self.on_captured(cap, wid)

    def _failed(self, exc: BaseException, code: int) -> None:
        self._fatal = exc
        self.exit_code = code
        self.request_stop()

    def _replay_finished(self, link: FiniteLink) -> None:
        if not self.exit_when_replayed:
            return
        self.log.info("replay_finished", link=link.name, events=getattr(link, "replayed", None))
        self._tasks.append(asyncio.get_running_loop().create_task(self._stop_when_drained()))

    async def _stop_when_drained(self) -> None:
        if self.upload and self.uploader is not None and not await self.uploader.drain(self.drain_timeout_s):
            pending = self.outbox.stats().pending if self.outbox is not None else None
            self.log.warning("drain_incomplete", pending=pending)
        self.request_stop()

    def _on_link_state(self, name: str) -> Callable[[str, str], None]:
        """One line per state change at the level ``logs.level_for`` gives (expected transitions at
        info, a problem once at warning, its repeats at debug)."""
        last: list[str | None] = [None]

        def cb(state: str, detail: str) -> None:
            level = level_for(state, last[0])
            last[0] = settled(state, last[0])
            getattr(self.log, level)("link_" + state, link=name, detail=detail)

        return cb

    def _on_hup(self) -> None:
        if self.config_path is None:
            self.log.warning("reload_ignored", reason="no config file to reload")
            return
        self.cfg = reload(self.cfg, self.config_path, uploader=self.uploader, pump=self.pump, log=self.log)
