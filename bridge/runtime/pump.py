"""The pump: link events -> intake -> outcomes handled (committed, logged, counted).

One pump per daemon; it reads every link (the scale's and the card reader's) and owns what happens to
each outcome: a weighing is committed to the outbox (the durability point; on a storage failure it is
held in memory, in order, and retried by housekeeping), a late card is assigned, every other outcome
is logged once at the level that fits.

Time: pairing is ticked only with the clock of the scale's event stream (``stream_now``): the host
clock for a live link or a capture re-based to it, the recording's for a capture replayed on its own
clock (see docs/reliability.md, "Clocks").
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from drivers.errors import CaptureError, LinkError
from drivers.events import LinkEvent
from drivers.links.base import FiniteLink, Link
from drivers.links.replay import ReplayClock, ReplayLink
from drivers.model import DeviceReport

from ..errors import EX_NOINPUT, EX_UNAVAILABLE, StorageError
from ..flight_recorder import FlightRecorder
from ..intake import Capture, CardSeen, Dropped, Duplicate, Intake, Outcome, Rejected
from ..logs import mask_card
from ..outbox import JobState, Outbox
from ..pairing import CardExpired, CardSuperseded, Ignored, LateCard
from ..pc_mode import PcMode
from ..status import IntakeCounters


@dataclass
class PumpCounters:
    rejected_frames: int = 0
    weighings_captured: int = 0
    duplicates: int = 0
    dropped: int = 0
    implausible: int = 0
    device_errors: int = 0
    last_frame_at: float | None = None  # the scale link only: a card tap is not data from the scale
    last_weighing_at: float | None = None


class Pump:
    def __init__(
        self,
        intake: Intake,
        outbox: Outbox,
        *,
        log: Any,
        clock: Callable[[], float],
        scale_name: str,
        on_committed: Callable[[Capture, int], None],
        on_fatal: Callable[[BaseException, int], None],
        on_replay_finished: Callable[[FiniteLink], None],
        wake: Callable[[], None] = lambda: None,
        pc_mode: PcMode | None = None,
        recorder: FlightRecorder | None = None,
    ) -> None:
        self.intake = intake
        self.outbox = outbox
        self.log = log
        self.clock = clock
        self.scale_name = scale_name
        self.on_committed = on_committed
        self.on_fatal = on_fatal
        self.on_replay_finished = on_replay_finished
        self.wake = wake  # the uploader: something to look at
        self.pc_mode = pc_mode
        #: ``[scale] record_dir``: the last days of raw traffic, for support (bridge/flight_recorder.py)
        self.recorder = recorder
        self._recorder_failure_logged = False
        self.counters = PumpCounters()
        self.unsaved: deque[Capture] = deque()
        self.storage_error: str | None = None
        self._unidentified_wid: dict[str, int] = {}
        self.scale_link: Link | None = None

    def figures(self) -> IntakeCounters:
        c = self.counters
        return IntakeCounters(
            frames=self.intake.frames,
            rejected_frames=c.rejected_frames,
            weighings_captured=c.weighings_captured,
            duplicates=c.duplicates,
            dropped=c.dropped,
            implausible=c.implausible,
            device_errors=c.device_errors,
        )

    # ---- the clock of the scale's stream ------------------------------------------------------------

    def stream_now(self) -> datetime | None:
        """Now on the clock of the scale's event stream: the host's for a live link (or a capture
        re-based to the host clock), the recording's for a capture replayed on its own clock (None
        before its first event). Pairing is only ever ticked with this clock."""
        link = self.scale_link
        if isinstance(link, ReplayLink) and link.clock is ReplayClock.CAPTURE:
            return link.stream_now
        return datetime.fromtimestamp(self.clock(), UTC)

    def tick(self) -> None:
        now = self.stream_now()
        if now is not None:
            for outcome in self.intake.tick(now):
                self.handle(outcome)

    # ---- reading a link -------------------------------------------------------------------------------

    async def run(self, link: Link) -> None:
        scale = link is self.scale_link
        try:
            async for event in link.events():
                if scale:
                    self.counters.last_frame_at = self.clock()
                self._record(event)
                for outcome in self.intake.feed(event):
                    self.handle(outcome)
        except asyncio.CancelledError:
            raise
        except (LinkError, CaptureError) as exc:
            self.log.error("link_failed", link=link.name, error=str(exc))
            self.on_fatal(exc, EX_NOINPUT if isinstance(exc, CaptureError) else EX_UNAVAILABLE)
            return
        if isinstance(link, FiniteLink):
            # end of the capture: what the decoders still hold, then every open window closes (on the
            # stream's own clock: a card nobody stood on before the recording ended is reported)
            end = self.stream_now() or datetime.fromtimestamp(self.clock(), UTC)
            for outcome in self.intake.flush(end):
                self.handle(outcome)
            for outcome in self.intake.tick(end + self.intake.pairing.horizon):
                self.handle(outcome)
            self.on_replay_finished(link)

    def _record(self, event: LinkEvent) -> None:
        rec = self.recorder
        if rec is None:
            return
        rec.record(event)
        if rec.failed and not self._recorder_failure_logged:
            self._recorder_failure_logged = True
            self.log.error("flight_recorder_failed", error=rec.failed, action="recording stopped; weighings go on")

    def close_recorder(self) -> None:
        if self.recorder is not None:
            self.recorder.close()

    # ---- outcomes -----------------------------------------------------------------------------------

    def handle(self, outcome: Outcome | LateCard) -> None:
        log, c = self.log, self.counters
        if isinstance(outcome, Capture):
            self.commit(outcome)
        elif isinstance(outcome, Rejected):
            c.rejected_frames += 1
            log.warning("frame_rejected", reason=outcome.error.reason, frame_bytes=len(outcome.frame))
        elif isinstance(outcome, Duplicate):
            c.duplicates += 1
            log.info("reading_duplicate_skipped", driver=outcome.reading.driver, dedupe_key=outcome.dedupe_key[:24])
        elif isinstance(outcome, Dropped):
            c.dropped += 1
            log.warning("weighing_dropped", reason=outcome.reason, weight_kg=outcome.reading.measurement.weight_kg)
        elif isinstance(outcome, DeviceReport):
            c.device_errors += int(outcome.is_error)
            if self.pc_mode is not None and self.pc_mode.feed(outcome):
                return  # a reply to a PC-mode command: the conversation checks and logs it
            report = log.warning if outcome.is_error else log.debug
            report("device_report", code=outcome.code, message=outcome.message)
        elif isinstance(outcome, CardSeen):
            window_s = self.intake.pairing.window.total_seconds()
            log.info("card_read", card=mask_card(outcome.card.number), window_s=window_s)
            if self.pc_mode is not None:
                self.pc_mode.card(outcome.card.number)  # runs beside the pump; never blocks a weighing
        elif isinstance(outcome, LateCard):
            self.late_card(outcome)
        elif isinstance(outcome, CardExpired):
            log.info("card_expired_without_weighing", card=mask_card(outcome.card.number))
        elif isinstance(outcome, CardSuperseded):
            log.info("card_superseded", old=mask_card(outcome.old.number), new=mask_card(outcome.new.number))
        elif isinstance(outcome, Ignored):
            log.debug("reading_ignored", reason=outcome.reason)

    def commit(self, cap: Capture) -> None:
        try:
            wid = self.outbox.capture(
                scale=self.scale_name,
                driver=cap.reading.driver,
                body=cap.body,
                card=cap.card,
                card_source=cap.card_source,
                state=cap.state,
                dedupe_key=cap.dedupe_key,
                dedupe_ttl_s=cap.dedupe_ttl_s,
                note=cap.note,
                dedupe_at=cap.received_at.timestamp(),
            )
        except StorageError as exc:
            self.unsaved.append(cap)
            if self.storage_error is None:
                self.log.critical(
                    "outbox_commit_failed",
                    error=str(exc),
                    held_in_memory=len(self.unsaved),
                    action="retrying; nothing is acknowledged until it is on disk",
                )
            self.storage_error = str(exc)
            return
        if wid is None:
            self.counters.duplicates += 1
            return
        self.counters.weighings_captured += 1
        self.counters.last_weighing_at = self.clock()
        if cap.state is JobState.UNIDENTIFIED:
            self._unidentified_wid[cap.reading_scale] = wid
        self.log.info(
            "weighing_captured",
            weighing=wid,
            state=cap.state.value,
            weight_kg=cap.reading.measurement.weight_kg,
            card=mask_card(cap.card) if cap.card else None,
        )
        if cap.state is JobState.PARKED and cap.note and cap.note.startswith("implausible"):
            self.counters.implausible += 1
            self.log.warning("weighing_implausible_parked", weighing=wid, reason=cap.note)
        self.on_committed(cap, wid)
        self.wake()

    def late_card(self, late: LateCard) -> None:
        wid = self._unidentified_wid.pop(late.card.scale, None)
        if wid is None:
            self.log.warning("late_card_unmatched", card=mask_card(late.card.number))
            return
        try:
            assigned = self.outbox.assign(wid, late.card.number)
        except StorageError as exc:
            self.log.critical("outbox_write_failed", error=str(exc))
            return
        if assigned:
            self.log.info("late_card_assigned", weighing=wid, card=mask_card(late.card.number))
            self.wake()

    def flush_unsaved(self) -> None:
        """Retry the weighings held in memory, in capture order; stop at the first that still fails."""
        pending = len(self.unsaved)
        for _ in range(pending):
            cap = self.unsaved.popleft()
            before = len(self.unsaved)
            self.commit(cap)
            if len(self.unsaved) > before:  # still failing: keep order and stop trying for now
                self.unsaved.rotate(1)
                return
        if pending and not self.unsaved:
            self.log.info("outbox_commit_recovered", committed=pending)
            self.storage_error = None
