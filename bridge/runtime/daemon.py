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
from drivers.registry import get

from .. import sd_notify
from ..config import Config, load_config
from ..errors import EX_IOERR, ConfigError
from ..flight_recorder import flight_recorder_for
from ..intake import Capture, Intake
from ..logs import get_logger, level_for, register_secret, settled
from ..outbox import Job, Outbox
from ..pairing import Pairing
from ..pc_mode import PcMode, pc_mode_for
from ..platform import PlatformClient
from ..reload import plan as reload_plan
from ..upload.loop import Uploader, pool_size
from .housekeeping import RETENTION_EVERY_S, Housekeeping
from .links import ReplayPause, build_card_link, build_scale_link
from .pump import Pump, PumpCounters

#: A replay link reads its whole capture again after every restart: its dedupe keys (content of each
#: reading) must outlive any restart (docs/reliability.md).
REPLAY_DEDUPE_S = 100 * 365 * 86400.0
STOP_TIMEOUT_ENV = "SCALE_BRIDGE_STOP_TIMEOUT_S"
DEFAULT_STOP_TIMEOUT_S = 25.0


def stop_timeout_s(env: dict[str, str] | None = None) -> float:
    """The one shutdown deadline: from the unit's environment, else 25 s (the unit's TimeoutStopSec is 30 s)."""
    raw = (env if env is not None else os.environ).get(STOP_TIMEOUT_ENV, "")
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_STOP_TIMEOUT_S
    return value if 1.0 <= value <= 3600.0 else DEFAULT_STOP_TIMEOUT_S


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

    def _build(self) -> tuple[Outbox, PlatformClient, Uploader, Pump, Housekeeping]:
        cfg = self.cfg
        register_secret(cfg.platform.api_key)
        spec = get(cfg.scale.driver)
        outbox = Outbox(cfg.outbox_path, clock=self.clock)
        if outbox.corruption is not None:
            self.log.critical(
                "outbox_corrupt_moved_aside",
                moved_to=outbox.corruption.moved_to,
                reason=outbox.corruption.reason,
                action="started a fresh outbox; acknowledge with `scale-bridge queue ack-corruption`",
            )
        if outbox.recovered_inflight:
            self.log.warning("inflight_attempts_recovered", count=outbox.recovered_inflight)
        client = PlatformClient(
            cfg.platform.base_url,
            cfg.platform.api_key,
            timeout_s=cfg.platform.timeout_s,
            connect_timeout_s=cfg.platform.connect_timeout_s,
            max_connections=pool_size(cfg.platform.concurrency),
        )
        uploader = Uploader(cfg, outbox, client, clock=self.clock)
        uploader.on_delivered = self.on_delivered
        replayed = bool(cfg.scale.capture)
        intake = Intake(
            spec,
            Pairing(cfg.pairing.window_s, cfg.pairing.unidentified, cfg.pairing.late_card_s),
            scale=cfg.scale.name,
            is_duplicate=lambda key, at: outbox.seen(key, now=at.timestamp()),
            dedupe_window_s=REPLAY_DEDUPE_S if replayed else cfg.queue.dedupe_window_s,
            broadcast_dedupe_window_s=REPLAY_DEDUPE_S if replayed else cfg.queue.broadcast_dedupe_window_s,
        )
        roles: list[tuple[str, Link]] = []
        scale_role = f"scale:{cfg.scale.name}"
        scale_link = self._scale_link or build_scale_link(
            cfg, spec, self._on_link_state(scale_role), replay_pause=self.replay_pause
        )
        roles.append((scale_role, scale_link))
        self.pc_mode = pc_mode_for(cfg, spec, scale_link, client, self.log)
        card_role = f"cards:{cfg.cards.source}"
        card_link = build_card_link(cfg, self._on_link_state(card_role))
        if card_link is not None:
            roles.append((card_role, card_link))
        self.links = [link for _, link in roles]
        recorder = flight_recorder_for(cfg, link=scale_link.name)
        pump = Pump(
            intake,
            outbox,
            log=self.log,
            clock=self.clock,
            scale_name=cfg.scale.name,
            on_committed=self._committed,
            on_fatal=self._failed,
            on_replay_finished=self._replay_finished,
            wake=uploader.notify,
            pc_mode=self.pc_mode,
            recorder=recorder,
        )
        pump.scale_link = scale_link
        house = Housekeeping(
            pump=pump,
            outbox=outbox,
            uploader=uploader if self.upload else None,
            links=roles,
            status_path=cfg.status_path,
            scale=cfg.scale.name,
            driver=cfg.scale.driver,
            retention_days=lambda: self.cfg.queue.retention_delivered_days,
            clock=self.clock,
            log=self.log,
            retention_every_s=self.retention_every_s,
        )
        return outbox, client, uploader, pump, house

    # ---- lifecycle ---------------------------------------------------------------------------------

    async def run(self) -> int:
        outbox, client, uploader, pump, house = self._build()
        self.outbox, self.uploader, self.pump, self.housekeeping = outbox, uploader, pump, house
        self._install_signals()
        link_tasks = [asyncio.create_task(pump.run(link), name=f"link:{link.name}") for link in self.links]
        upload_task = asyncio.create_task(uploader.run(), name="uploader") if self.upload else None
        house_task = asyncio.create_task(house.run(link_tasks, upload_task), name="housekeeping")
        self.log.info(
            "daemon_started",
            driver=self.cfg.scale.driver,
            link=self.links[0].name,
            pid=os.getpid(),
            queue_pending=outbox.stats().pending,
        )
        metrics = self._start_metrics(house)
        sd_notify.ready()
        sd_notify.status(house.status_line(house.write_status()))
        try:
            await self._stop.wait()
        finally:
            await self._shutdown(client, link_tasks, upload_task, house_task, metrics)
        if self._fatal is not None:
            self.log.error("daemon_failed", error=str(self._fatal))
            return self.exit_code or 1
        self.log.info("daemon_stopped")
        return self.exit_code

    async def _shutdown(
        self,
        client: PlatformClient,
        link_tasks: list[asyncio.Task[None]],
        upload_task: asyncio.Task[None] | None,
        house_task: asyncio.Task[None],
        metrics: Any,
    ) -> None:
        """Stop intake, commit what was read, give in-flight uploads what is left of the deadline."""
        assert self.outbox is not None and self.uploader is not None
        assert self.pump is not None and self.housekeeping is not None
        deadline = time.monotonic() + stop_timeout_s()
        sd_notify.stopping()
        self.log.info("daemon_stopping")
        self.housekeeping.stopping = True
        if self.pc_mode is not None:
            await self.pc_mode.close()
        for link in self.links:
            try:
                await asyncio.wait_for(link.close(), max(0.1, deadline - time.monotonic()))
            except Exception as exc:  # noqa: BLE001 - a link that fails to close must not stop the shutdown
                self.log.warning("link_close_failed", link=link.name, error=str(exc))
        for t in [*link_tasks, *self._tasks]:
            t.cancel()
        await asyncio.gather(*link_tasks, *self._tasks, return_exceptions=True)
        self.pump.close_recorder()
        self.pump.flush_unsaved()
        if upload_task is not None:
            self.uploader.stop()
            try:
                await asyncio.wait_for(upload_task, max(0.1, deadline - time.monotonic() - 1.0))
            except TimeoutError:
                self.log.warning("uploads_cut_at_stop", action="in-flight attempts are recovered at the next start")
            except Exception as exc:  # noqa: BLE001 - a crashed uploader is reported, the stop goes on
                self.log.error("uploader_failed", error=str(exc))
        house_task.cancel()
        await asyncio.gather(house_task, return_exceptions=True)
        self.housekeeping.write_status(final=True)
        if metrics is not None:
            metrics.shutdown()
        await client.aclose()
        if self.pump.unsaved:
            self.log.critical("weighings_not_committed_at_exit", count=len(self.pump.unsaved))
            self.exit_code = self.exit_code or EX_IOERR
        self.outbox.close()

    def _start_metrics(self, house: Housekeeping) -> Any:
        listen = self.cfg.metrics.listen
        if not listen:
            return None
        from ..metrics import serve

        try:
            server = serve(listen, lambda: house.latest)
        except (OSError, ImportError) as exc:
            self.log.error("metrics_unavailable", listen=listen, error=str(exc))
            return None
        self.log.info("metrics_listening", listen=listen)
        return server

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_term, sig)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, self._on_hup)

    def _on_term(self, sig: signal.Signals) -> None:
        self.log.info("signal_received", signal=sig.name)
        self.request_stop()

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

    # ---- SIGHUP ----------------------------------------------------------------------------------

    def _on_hup(self) -> None:
        if self.config_path is None:
            self.log.warning("reload_ignored", reason="no config file to reload")
            return
        sd_notify.reloading()
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            self.log.error("reload_rejected", problems=exc.lines(), action="keeping the running config")
            sd_notify.ready()
            return
        applied = reload_plan(self.cfg, new)
        self.cfg = applied.config
        if self.uploader is not None:
            self.uploader.apply(applied.config)
        if self.pump is not None:
            pairing = self.pump.intake.pairing
            pairing.window = Pairing(applied.config.pairing.window_s).window
            pairing.policy = applied.config.pairing.unidentified
        if applied.restart:
            self.log.warning(
                "reload_partial", needs_restart=list(applied.restart), action="restart the service to apply these"
            )
        self.log.info("config_reloaded", applied=list(applied.live))
        sd_notify.ready()
