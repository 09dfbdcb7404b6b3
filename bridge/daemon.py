"""The daemon: links -> intake -> outbox.commit -> uploader, supervised.

Order of start: outbox open (corruption handled), links started, then READY=1. The watchdog is pinged
only while the pipeline is alive (uploader loop and link tasks make progress). SIGTERM stops intake,
commits what was read, lets in-flight uploads finish (bounded), and exits 0. SIGHUP reloads the config
if it is valid, else keeps the old one and says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drivers.errors import CaptureError, LinkError
from drivers.links.base import Link
from drivers.links.replay import ReplayClock, ReplayLink
from drivers.model import DeviceReport
from drivers.registry import DriverSpec, LinkKind, SerialSettings, get

from . import sd_notify
from .config import Config, load_config
from .errors import BridgeError, ConfigError, StorageError
from .intake import Capture, CardSeen, Dropped, Duplicate, Intake, Rejected
from .logs import get_logger, mask_card, register_secret
from .outbox import Job, JobState, Outbox
from .pairing import CardExpired, CardSuperseded, Ignored, LateCard, Pairing
from .pc_mode import PcMode, pc_mode_for
from .platform import PlatformClient
from .reload import plan as reload_plan
from .uploader import Uploader, pool_size

HOUSEKEEPING_S = 1.0
STATUS_EVERY_S = 2.0
RETENTION_EVERY_S = 3600.0
STALL_S = 90.0
#: A replay link reads its whole capture again after every restart: its dedupe keys (content of each
#: reading) must outlive any restart, or a weighing replayed after the normal window would be captured
#: (and uploaded) a second time. See docs/reliability.md.
REPLAY_DEDUPE_S = 100 * 365 * 86400.0
UNIDENTIFIED_NOTE = "no member: no card read within the pairing window and no ID on the scale"


def _utc(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


@dataclass
class DaemonStats:
    frames: int = 0
    rejected_frames: int = 0
    weighings_captured: int = 0
    duplicates: int = 0
    dropped: int = 0
    device_errors: int = 0
    last_frame_at: float | None = None
    last_weighing_at: float | None = None
    link_states: dict[str, str] = field(default_factory=dict)


def serial_settings(cfg: Config, spec: DriverSpec) -> SerialSettings:
    base = spec.serial or SerialSettings()
    s = cfg.scale
    return SerialSettings(
        baudrate=s.baudrate or base.baudrate,
        bytesize=s.bytesize or base.bytesize,
        parity=s.parity or base.parity,
        stopbits=s.stopbits or base.stopbits,
        xonxoff=base.xonxoff if s.xonxoff is None else s.xonxoff,
        rtscts=base.rtscts if s.rtscts is None else s.rtscts,
    )


#: card sources whose events come from the scale's own stream (no second clock)
STREAM_CARD_SOURCES = frozenset({"scale_id", "capture"})


def replay_clock(cfg: Config) -> ReplayClock:
    """A capture replayed alone runs on its own clock. Beside a live card reader it is re-based to the
    host clock (played in real time, each event stamped when played), so that both streams that meet
    in pairing are on one clock."""
    return ReplayClock.CAPTURE if cfg.cards.source in STREAM_CARD_SOURCES else ReplayClock.HOST


ReplayPause = tuple[float, Callable[[float], Awaitable[None]]]


def build_scale_link(
    cfg: Config, spec: DriverSpec, on_state: Callable[[str, str], None], *, replay_pause: ReplayPause | None = None
) -> Link:
    s = cfg.scale
    if s.capture:
        gap_s, on_pause = replay_pause if replay_pause is not None else (None, None)
        return ReplayLink(
            s.capture,
            scale=s.name,
            realtime=s.replay_realtime,
            clock=replay_clock(cfg),
            pause_gap_s=gap_s,
            on_pause=on_pause,
        )
    if spec.link is LinkKind.CLOUD:  # InBody via LookinBody Web (docs/inbody.md)
        from drivers.links.lookinbody import LookinBodyLink

        register_secret(cfg.lookinbody.api_key)
        return LookinBodyLink(cfg.lookinbody.settings(), scale=s.name, on_state=on_state)
    if spec.link is LinkKind.SERIAL:
        from drivers.links.serial import SerialLink

        # command/response scales (MT-SICS): the link polls while connected (drivers/links/serial.py)
        return SerialLink(
            s.port,
            serial_settings(cfg, spec),
            scale=s.name,
            reconnect_max_s=s.reconnect_max_s,
            on_state=on_state,
            poll_command=spec.poll_command,
            poll_interval_s=spec.poll_interval_s,
        )
    try:
        from drivers.links.ble import BleLink
    except ImportError as exc:  # pragma: no cover - shipped with the package
        raise BridgeError(f"BLE support is not available: {exc}") from None
    return BleLink(
        [spec],
        adapter=s.adapter or None,
        address=s.address or None,
        scale=s.name,
        on_state=on_state,
        settings=s.settings,
    )


def build_card_link(cfg: Config, on_state: Callable[[str, str], None]) -> Link | None:
    c = cfg.cards
    if c.source in ("scale_id", "capture"):
        return None
    from drivers.links.cards import from_config

    return from_config(
        c.source,
        c.device,
        scale=cfg.scale.name,
        format=c.format,
        protocol=c.protocol,
        baudrate=c.baudrate,
        on_state=on_state,
    )


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
    ) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.upload = upload
        self.exit_when_replayed = exit_when_replayed
        self.drain_timeout_s = drain_timeout_s
        self.clock = clock
        self.on_captured = on_captured
        self.on_delivered = on_delivered
        self.log = get_logger(component="daemon", scale=cfg.scale.name)
        self.stats = DaemonStats()
        self.started_at = clock()
        self._stop = asyncio.Event()
        self._fatal: BaseException | None = None
        self._unsaved: deque[Capture] = deque()
        self.storage_error: str | None = None
        self.outbox: Outbox | None = None
        self.uploader: Uploader | None = None
        self.client: PlatformClient | None = None
        self.links: list[Link] = []
        self._intake: Intake | None = None
        self.exit_code = 0
        self.snapshot: dict[str, Any] = {}
        self._unidentified_wid: dict[str, int] = {}
        self._drain_task: asyncio.Task[None] | None = None
        self._metrics: Any = None
        #: Tanita PC mode ([scale] pc_mode): pre-sets the member's profile after a card read (bridge/pc_mode.py)
        self.pc_mode: PcMode | None = None
        #: a replayed capture: ``(gap_s, hook)`` awaits ``hook(t_s)`` at every pause >= gap_s (the demo)
        self.replay_pause: ReplayPause | None = None

    # ---- lifecycle -----------------------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> int:
        cfg = self.cfg
        register_secret(cfg.platform.api_key)
        spec = get(cfg.scale.driver)
        self.outbox = outbox = Outbox(cfg.outbox_path, clock=self.clock)
        if self.outbox.corruption is not None:
            c = self.outbox.corruption
            self.log.critical(
                "outbox_corrupt_moved_aside",
                moved_to=c.moved_to,
                reason=c.reason,
                action="started a fresh outbox; acknowledge with `scale-bridge queue ack-corruption`",
            )
        if self.outbox.recovered_inflight:
            self.log.warning("inflight_attempts_recovered", count=self.outbox.recovered_inflight)
        self.client = PlatformClient(
            cfg.platform.base_url,
            cfg.platform.api_key,
            timeout_s=cfg.platform.timeout_s,
            connect_timeout_s=cfg.platform.connect_timeout_s,
            max_connections=pool_size(cfg.platform.concurrency),
        )
        self.uploader = Uploader(cfg, self.outbox, self.client, clock=self.clock)
        self.uploader.on_delivered = self._delivered
        pairing = Pairing(cfg.pairing.window_s, cfg.pairing.unidentified, cfg.pairing.late_card_s)
        self._intake = Intake(
            spec,
            pairing,
            scale=cfg.scale.name,
            is_duplicate=lambda key, at: outbox.seen(key, now=at.timestamp()),
            dedupe_window_s=REPLAY_DEDUPE_S if cfg.scale.capture else cfg.queue.dedupe_window_s,
            broadcast_dedupe_window_s=REPLAY_DEDUPE_S if cfg.scale.capture else cfg.queue.broadcast_dedupe_window_s,
        )
        scale_link = build_scale_link(
            cfg, spec, self._link_state_cb(f"scale:{cfg.scale.name}"), replay_pause=self.replay_pause
        )
        self.links = [scale_link]
        self.pc_mode = pc_mode_for(cfg, spec, scale_link, self.client, self.log)
        card_link = build_card_link(cfg, self._link_state_cb(f"cards:{cfg.cards.source}"))
        if card_link is not None:
            self.links.append(card_link)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_term, sig)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, self._on_hup)

        link_tasks = [asyncio.create_task(self._pump(link), name=f"link:{link.name}") for link in self.links]
        upload_task = asyncio.create_task(self.uploader.run(), name="uploader") if self.upload else None
        house_task = asyncio.create_task(self._housekeeping(link_tasks, upload_task), name="housekeeping")
        self.log.info(
            "daemon_started",
            driver=spec.name,
            link=scale_link.name,
            pid=os.getpid(),
            queue_pending=self.outbox.stats().pending,
        )
        self._write_status()
        if cfg.metrics.listen:
            self._start_metrics(cfg.metrics.listen)
        sd_notify.ready()
        sd_notify.status(self.status_line())
        try:
            await self._stop.wait()
        finally:
            await self._shutdown(link_tasks, upload_task, house_task)
        if self._fatal is not None:
            self.log.error("daemon_failed", error=str(self._fatal))
            return self.exit_code or 1
        self.log.info("daemon_stopped")
        return self.exit_code

    async def _shutdown(
        self,
        link_tasks: list[asyncio.Task[None]],
        upload_task: asyncio.Task[None] | None,
        house_task: asyncio.Task[None],
    ) -> None:
        """Stop intake, commit what was read, let in-flight uploads finish (bounded), close everything."""
        assert self.outbox is not None and self.uploader is not None and self.client is not None
        cfg = self.cfg
        sd_notify.stopping()
        self.log.info("daemon_stopping")
        if self.pc_mode is not None:
            await self.pc_mode.close()
        for link in self.links:
            with contextlib.suppress(Exception):
                await link.close()
        for t in link_tasks:
            t.cancel()
        await asyncio.gather(*link_tasks, return_exceptions=True)
        self._flush_unsaved()
        if upload_task is not None:
            self.uploader.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(upload_task, timeout=cfg.platform.timeout_s + 5)
        house_task.cancel()
        await asyncio.gather(house_task, return_exceptions=True)
        self._write_status(final=True)
        if self._metrics is not None:
            self._metrics.shutdown()
        await self.client.aclose()
        if self._unsaved:
            self.log.critical("weighings_not_committed_at_exit", count=len(self._unsaved))
            self.exit_code = self.exit_code or 74
        self.outbox.close()

    def _start_metrics(self, listen: str) -> None:
        from .metrics import serve

        try:
            self._metrics = serve(listen, lambda: self.snapshot)
            self.log.info("metrics_listening", listen=listen)
        except (OSError, ImportError) as exc:
            self.log.error("metrics_unavailable", listen=listen, error=str(exc))

    def _on_term(self, sig: signal.Signals) -> None:
        self.log.info("signal_received", signal=sig.name)
        self.request_stop()

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
        if self._intake is not None:
            self._intake.pairing.window = Pairing(applied.config.pairing.window_s).window
            self._intake.pairing.policy = applied.config.pairing.unidentified
        if applied.restart:
            self.log.warning(
                "reload_partial", needs_restart=list(applied.restart), action="restart the service to apply these"
            )
        self.log.info("config_reloaded", applied=list(applied.live))
        sd_notify.ready()

    def _link_state_cb(self, name: str) -> Callable[[str, str], None]:
        def cb(state: str, detail: str) -> None:
            previous = self.stats.link_states.get(name)
            self.stats.link_states[name] = state
            if state == previous:  # e.g. every retry while a device stays unplugged: once is enough
                self.log.debug("link_" + state, link=name, detail=detail)
                return
            level = "info" if state == "connected" else "warning"
            getattr(self.log, level)("link_" + state, link=name, detail=detail)

        return cb

    # ---- intake --------------------------------------------------------------------------------------

    async def _pump(self, link: Link) -> None:
        assert self._intake is not None
        try:
            async for event in link.events():
                self.stats.last_frame_at = self.clock()
                for outcome in self._intake.feed(event):
                    self._handle(outcome)
        except asyncio.CancelledError:
            raise
        except (LinkError, CaptureError) as exc:
            self._fatal = exc
            self.exit_code = 66 if isinstance(exc, CaptureError) else 69
            self.log.error("link_failed", link=link.name, error=str(exc))
            self.request_stop()
            return
        if isinstance(link, ReplayLink):
            # end of the capture: what the decoders still hold, then every open window closes (on the
            # stream's own clock: a card nobody stood on before the recording ended is reported)
            end = self._stream_now() or datetime.fromtimestamp(self.clock(), UTC)
            for outcome in self._intake.flush(end):
                self._handle(outcome)
            for outcome in self._intake.tick(end + self._intake.pairing.horizon):
                self._handle(outcome)
        if getattr(link, "finished", None) is not None and self.exit_when_replayed:
            self.log.info("replay_finished", link=link.name, events=getattr(link, "replayed", None))
            self._drain_task = asyncio.create_task(self._stop_when_drained())

    async def _stop_when_drained(self) -> None:
        if self.upload and self.uploader is not None:
            ok = await self.uploader.drain(self.drain_timeout_s)
            if not ok:
                self.log.warning("drain_incomplete", pending=self.outbox.stats().pending if self.outbox else None)
        self.request_stop()

    def _handle(self, outcome: object) -> None:
        log = self.log
        if isinstance(outcome, Capture):
            self._commit(outcome)
        elif isinstance(outcome, Rejected):
            self.stats.rejected_frames += 1
            log.warning("frame_rejected", reason=outcome.error.reason, frame_bytes=len(outcome.frame))
        elif isinstance(outcome, Duplicate):
            self.stats.duplicates += 1
            log.debug("reading_duplicate_skipped", driver=outcome.reading.driver)
        elif isinstance(outcome, Dropped):
            self.stats.dropped += 1
            log.warning("weighing_dropped", reason=outcome.reason, weight_kg=outcome.reading.measurement.weight_kg)
        elif isinstance(outcome, DeviceReport):
            self.stats.device_errors += int(outcome.is_error)
            if self.pc_mode is not None and self.pc_mode.feed(outcome):
                return  # a reply to a PC-mode command: the conversation checks and logs it
            (log.warning if outcome.is_error else log.debug)(
                "device_report", code=outcome.code, message=outcome.message
            )
        elif isinstance(outcome, CardSeen):
            log.info("card_read", card=mask_card(outcome.card.number), window_s=self.cfg.pairing.window_s)
            if self.pc_mode is not None:
                self.pc_mode.card(outcome.card.number)  # runs beside the pump; never blocks a weighing
        elif isinstance(outcome, LateCard):
            self._late_card(outcome)
        elif isinstance(outcome, CardExpired):
            log.info("card_expired_without_weighing", card=mask_card(outcome.card.number))
        elif isinstance(outcome, CardSuperseded):
            log.info("card_superseded", old=mask_card(outcome.old.number), new=mask_card(outcome.new.number))
        elif isinstance(outcome, Ignored):
            log.debug("reading_ignored", reason=outcome.reason)

    def _commit(self, cap: Capture) -> None:
        assert self.outbox is not None
        try:
            wid = self.outbox.capture(
                scale=self.cfg.scale.name,
                driver=cap.reading.driver,
                body=cap.body,
                card=cap.card,
                card_source=cap.card_source,
                state=cap.state,
                dedupe_key=cap.dedupe_key,
                dedupe_ttl_s=cap.dedupe_ttl_s,
                note=UNIDENTIFIED_NOTE if cap.state is JobState.UNIDENTIFIED else None,
                dedupe_at=cap.received_at.timestamp(),
            )
        except StorageError as exc:
            self._unsaved.append(cap)
            if self.storage_error is None:
                self.log.critical(
                    "outbox_commit_failed",
                    error=str(exc),
                    held_in_memory=len(self._unsaved),
                    action="retrying; nothing is acknowledged until it is on disk",
                )
            self.storage_error = str(exc)
            return
        if wid is None:
            self.stats.duplicates += 1
            return
        self.stats.weighings_captured += 1
        self.stats.last_weighing_at = self.clock()
        if cap.state is JobState.UNIDENTIFIED:
            self._unidentified_wid[cap.reading_scale] = wid
        self.log.info(
            "weighing_captured",
            weighing=wid,
            state=cap.state.value,
            weight_kg=cap.reading.measurement.weight_kg,
            card=mask_card(cap.card) if cap.card else None,
        )
        if self.on_captured is not None:
            self.on_captured(cap, wid)
        if self.uploader is not None:
            self.uploader.notify()

    def _late_card(self, late: LateCard) -> None:
        wid = self._unidentified_wid.pop(late.card.scale, None)
        if wid is None or self.outbox is None:
            self.log.warning("late_card_unmatched", card=mask_card(late.card.number))
            return
        try:
            assigned = self.outbox.assign(wid, late.card.number)
        except StorageError as exc:
            self.log.critical("outbox_write_failed", error=str(exc))
            return
        if assigned:
            self.log.info("late_card_assigned", weighing=wid, card=mask_card(late.card.number))
            if self.uploader is not None:
                self.uploader.notify()

    def _flush_unsaved(self) -> None:
        pending = len(self._unsaved)
        for _ in range(pending):
            cap = self._unsaved.popleft()
            before = len(self._unsaved)
            self._commit(cap)
            if len(self._unsaved) > before:  # still failing: keep order and stop trying for now
                self._unsaved.rotate(1)
                return
        if pending and not self._unsaved:
            self.log.info("outbox_commit_recovered", committed=pending)
            self.storage_error = None

    def _delivered(self, job: Job) -> None:
        if self.on_delivered is not None:
            self.on_delivered(job)

    # ---- housekeeping: watchdog, status, retention ---------------------------------------------------

    def alive(self, link_tasks: list[asyncio.Task[None]], upload_task: asyncio.Task[None] | None) -> bool:
        now = time.monotonic()
        if upload_task is not None and (
            upload_task.done() or (self.uploader is not None and now - self.uploader.last_progress_at > STALL_S)
        ):
            return False
        for task, link in zip(link_tasks, self.links, strict=False):
            replay_done = getattr(link, "finished", None) is not None and link.finished.is_set()  # type: ignore[attr-defined]
            if task.done() and not replay_done and not self._stop.is_set():
                return False  # a live link's supervisor ended: not alive
        return True

    async def _housekeeping(self, link_tasks: list[asyncio.Task[None]], upload_task: asyncio.Task[None] | None) -> None:
        interval = sd_notify.watchdog_interval_s()
        ping_every = (interval / 2.0) if interval else None
        last_ping = last_status = last_retention = 0.0
        while True:
            now = time.monotonic()
            if self._unsaved:
                self._flush_unsaved()
            if ping_every is not None and now - last_ping >= ping_every:
                if self.alive(link_tasks, upload_task):
                    sd_notify.watchdog()
                    last_ping = now
                else:
                    self.log.error("pipeline_stalled", action="withholding watchdog pings")
            if now - last_status >= STATUS_EVERY_S:
                self._write_status()
                sd_notify.status(self.status_line())
                last_status = now
            if now - last_retention >= RETENTION_EVERY_S and self.outbox is not None:
                cutoff = self.clock() - self.cfg.queue.retention_delivered_days * 86400
                with contextlib.suppress(StorageError):
                    purged = self.outbox.purge_delivered(cutoff)
                    if purged:
                        self.log.info("delivered_purged", count=purged)
                last_retention = now
            stream_now = self._stream_now()
            if self._intake is not None and stream_now is not None:
                for outcome in self._intake.tick(stream_now):
                    self._handle(outcome)
            await asyncio.sleep(HOUSEKEEPING_S if ping_every is None else min(HOUSEKEEPING_S, ping_every / 2))

    def _stream_now(self) -> datetime | None:
        """Now on the clock of the scale's event stream: the host's for a live link (or a capture
        re-based to the host clock), the recording's for a capture replayed on its own clock (None
        before its first event). Pairing is only ever ticked with this clock."""
        link = self.links[0] if self.links else None
        if isinstance(link, ReplayLink) and link.clock is ReplayClock.CAPTURE:
            return link.stream_now
        return datetime.fromtimestamp(self.clock(), UTC)

    def status_line(self) -> str:
        st = self.outbox.stats() if self.outbox else None
        links = ",".join(f"{k}={v}" for k, v in self.stats.link_states.items()) or "-"
        parts = [
            f"queue {st.pending if st else '?'} pending",
            f"{st.dead if st else '?'} dead",
            f"last weighing {_utc(self.stats.last_weighing_at) or 'never'}",
            f"last upload {(_utc(st.last_delivered_at) if st else None) or 'never'}",
            f"links {links}",
        ]
        if self.uploader is not None and self.uploader.auth_error is not None:
            parts.insert(0, "API KEY REJECTED")
        if self.storage_error:
            parts.insert(0, "DISK WRITE FAILING")
        return "; ".join(parts)

    def _write_status(self, final: bool = False) -> None:
        if self.outbox is None:
            return
        st = self.outbox.stats()
        doc: dict[str, Any] = {
            "pid": os.getpid(),
            "state": "stopped" if final else "running",
            "started_at": _utc(self.started_at),
            "updated_at": _utc(self.clock()),
            "updated_at_epoch": self.clock(),
            "scale": self.cfg.scale.name,
            "driver": self.cfg.scale.driver,
            "links": {link.name: link.state for link in self.links},
            "last_frame_at": _utc(self.stats.last_frame_at),
            "last_frame_at_epoch": self.stats.last_frame_at,
            "last_weighing_at": _utc(self.stats.last_weighing_at),
            "weighings_captured": self.stats.weighings_captured,
            "rejected_frames": self.stats.rejected_frames,
            "duplicates": self.stats.duplicates,
            "queue": {
                "pending": st.pending,
                "unidentified": st.unidentified,
                "parked": st.parked,
                "dead": st.dead,
                "ambiguous": st.ambiguous_jobs,
            },
            "last_upload_at": _utc(st.last_delivered_at),
            "auth_rejected": self.uploader is not None and self.uploader.auth_error is not None,
            "storage_error": self.storage_error,
            "unsaved_in_memory": len(self._unsaved),
        }
        if self.uploader is not None:
            c = self.uploader.counters
            doc["uploads"] = {
                "delivered": c.delivered,
                "retries": c.retries,
                "ambiguous": c.ambiguous,
                "rate_limited": c.rate_limited,
                "dead_letters": c.dead_letters,
                "auth_failures": c.auth_failures,
            }
        doc["frames"] = self._intake.frames if self._intake is not None else 0
        doc["oldest_pending_age_s"] = st.oldest_pending_age_s(self.clock())
        doc["last_upload_epoch"] = st.last_delivered_at
        self.snapshot = doc
        path = self.cfg.status_path
        tmp = path.with_name(path.name + ".tmp")
        text = json.dumps(doc, indent=1)
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            # A full disk is exactly when the status must say so: overwrite the existing file in place
            # (its block is already allocated; compact JSON is shorter than the indented one).
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            try:
                with path.open("r+b") as fh:
                    fh.write(json.dumps(doc, separators=(",", ":")).encode("utf-8"))
                    fh.truncate()
            except OSError:
                self.log.warning("status_write_failed", error=str(exc))
