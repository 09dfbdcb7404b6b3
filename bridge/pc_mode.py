"""Tanita PC mode, the I/O half: after a card read, pre-set the member's profile on the analyser.

``[scale] pc_mode = true`` (off by default) with a driver whose units accept PC-mode commands
(``tanita``: MC-780/MC-980 family; ``tanita_bc418``: BC-418). When the daemon sees a card
(``CardSeen``), ``PcMode.card`` starts a task that

1. fetches the member's profile (``GET /v1/customers/measurement/latest`` with the card's platform
   queries, first match wins; gender, age, height) within ``profile_timeout_s``;
2. runs ``drivers.tanita_pc.Conversation`` over the scale's serial link: one ``link.send`` per
   command, at least ``MIN_COMMAND_GAP_S`` (100 ms) between two writes (measured on the real send
   times, and never within 100 ms of bytes received from the unit), each reply checked against the
   command's echo; ``Dn!`` (parameter error), ``!`` (unknown command) and ``E0``..``E9`` end it with
   ``pc_mode_failed`` naming the unit's code and meaning. BC-418: the last command, ``G1``, starts the
   measurement; MC-980: the unit waits for the member to step on.

Replies reach the conversation as ``DeviceReport``s from the driver's parser: the daemon offers every
report to ``PcMode.feed`` first; while a conversation waits for a reply it takes them (they are logged
here, not as ``device_report``), otherwise they go the usual way.

Never in the weighing's way: the task runs beside the link pump, nothing waits for it. A failed or
slow profile fetch, an unsendable profile (gender UNISEX, age out of range), a unit that does not
answer: all end in one ``pc_mode_failed`` line and the unit stays in whatever mode it is in; the scale
still sends its result line and the card still pairs with it by the normal pairing window. A new card
cancels a conversation still running for the previous one (``pc_mode_superseded``).

Personal data: logs carry the masked card and the command prefixes (``D3``), never the values sent.
The result number (``D5``, MC-980) is not sent: pairing goes by the card window, not the unit's ID.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from drivers.errors import LinkError
from drivers.model import DeviceReport
from drivers.registry import DriverSpec
from drivers.tanita_pc import (
    MIN_COMMAND_GAP_S,
    REPLY_TIMEOUT_S,
    Conversation,
    Done,
    Failed,
    Family,
    Gender,
    Profile,
    Send,
    Wait,
)

from .cardquery import platform_queries
from .config import CardsConfig, Config
from .errors import NotFound, PlatformError
from .logs import mask_card
from .platform import CustomerProfile, PlatformClient


#: driver name -> PC-mode command family (only these drivers' units accept PC mode)
def _families() -> dict[str, Family]:
    """Drivers that speak a PC-mode family (``DriverSpec.pc_mode``): the spec says, not this module."""
    from drivers.registry import registry

    return {name: Family(spec.pc_mode) for name, spec in registry().items() if spec.pc_mode is not None}
PROFILE_TIMEOUT_S = 5.0
#: do not write while the unit is transmitting: wait until it has been quiet this long (capped)
QUIET_BEFORE_SEND_S = 0.1
MAX_QUIET_WAIT_S = 2.0


class ProfileProblem(Exception):
    """The member's profile cannot be used (not found, incomplete, not sendable)."""


def family_for(driver: str) -> Family | None:
    return _families().get(driver)


def tanita_profile(customer: CustomerProfile) -> Profile:
    """Platform profile -> what the analyser needs. Raises ProfileProblem when something is missing."""
    missing = [
        name
        for name, v in (("gender", customer.gender), ("age", customer.age), ("height", customer.height_cm))
        if v is None
    ]
    if missing:
        raise ProfileProblem(f"profile incomplete on the platform (no {', '.join(missing)})")
    try:
        gender = Gender(str(customer.gender).upper())
    except ValueError:
        raise ProfileProblem(f"gender {customer.gender!r} unknown to PC mode") from None
    assert customer.age is not None and customer.height_cm is not None
    return Profile(gender=gender, age_years=customer.age, height_cm=customer.height_cm)


class PcMode:
    def __init__(
        self,
        family: Family,
        link: Any,
        client: PlatformClient,
        cards: CardsConfig,
        log: Any,
        *,
        profile_timeout_s: float = PROFILE_TIMEOUT_S,
        reply_timeout_s: float = REPLY_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.family = family
        self.link = link
        self.client = client
        self.cards = cards
        self.log = log
        self.profile_timeout_s = profile_timeout_s
        self.reply_timeout_s = reply_timeout_s
        self.clock = clock
        self._task: asyncio.Task[None] | None = None
        self._replies: asyncio.Queue[str] | None = None
        self._last_send_s: float | None = None
        self.counters = {"started": 0, "done": 0, "failed": 0, "superseded": 0}

    # ---- called by the daemon (synchronously, from the link pump) --------------------------------------

    def card(self, number: str) -> None:
        """A card was read: start a conversation for it (superseding one still running)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            self.counters["superseded"] += 1
            self.log.info("pc_mode_superseded", card=mask_card(number))
        self._task = asyncio.get_running_loop().create_task(self._run(number), name="pc_mode")

    def feed(self, report: DeviceReport) -> bool:
        """Offer a device report; True if an active conversation took it as its reply."""
        if self._replies is None:
            return False
        self._replies.put_nowait(report.raw)
        return True

    @property
    def active(self) -> bool:
        return self._task is not None and not self._task.done()

    async def wait_idle(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # ---- the conversation --------------------------------------------------------------------------------

    async def _run(self, number: str) -> None:
        card = mask_card(number)
        self.counters["started"] += 1
        started = self.clock()
        self.log.info("pc_mode_started", card=card, family=self.family.value)
        try:
            customer = await asyncio.wait_for(self._fetch(number), self.profile_timeout_s)
            profile = tanita_profile(customer)
        except TimeoutError:
            self._failed(card, "profile", f"profile fetch timed out after {self.profile_timeout_s:g} s")
            return
        except ProfileProblem as exc:
            self._failed(card, "profile", str(exc))
            return
        except PlatformError as exc:
            self._failed(card, "profile", f"profile fetch failed: {exc}")
            return
        try:
            result, sent = await self._converse(profile)
        except LinkError as exc:
            self._failed(card, "link", f"cannot write to the scale: {exc}")
            return
        if isinstance(result, Failed):
            self._failed(card, "conversation", _redact(result.reason, sent), code=result.code)
            return
        self.counters["done"] += 1
        self.log.info(
            "pc_mode_done",
            card=card,
            family=self.family.value,
            commands=[t[:2] for t in sent],
            elapsed_s=round(self.clock() - started, 3),
            next="measuring" if self.family is Family.BC418 else "waiting for the member to step on",
        )

    async def _fetch(self, number: str) -> CustomerProfile:
        last: NotFound | None = None
        for card_number, fmt in platform_queries(number, self.cards):
            try:
                return await self.client.customer_by_card(card_number, fmt)
            except NotFound as exc:
                last = exc
        raise ProfileProblem("member not found on the platform" + (f" ({last})" if last else ""))

    async def _converse(self, profile: Profile) -> tuple[Done | Failed, list[str]]:
        conv = Conversation(self.family, reply_timeout_s=self.reply_timeout_s)
        sent: list[str] = []
        self._replies = asyncio.Queue()
        try:
            step = conv.start(profile, now=self.clock())
            while True:
                if isinstance(step, Done | Failed):
                    return step, sent
                if isinstance(step, Send):
                    await self._pace(step.not_before_s)
                    while not self._replies.empty():  # anything before this command is not its reply
                        self._replies.get_nowait()
                    await self.link.send(step.data)
                    self._last_send_s = self.clock()
                    text = step.data.decode("ascii", "replace").strip()
                    sent.append(text)
                    self.log.debug("pc_mode_command", command=text[:2])
                    deadline = step.reply_by_s
                elif isinstance(step, Wait):
                    deadline = step.reply_by_s
                try:
                    line = await asyncio.wait_for(self._replies.get(), max(0.0, deadline - self.clock()))
                except TimeoutError:
                    self.log.debug("pc_mode_reply_timeout", command=sent[-1][:2] if sent else None)
                    step = conv.on_timeout(now=self.clock())
                    continue
                self.log.debug("pc_mode_reply", reply=line[:8])
                step = conv.on_line(line, now=self.clock())
        finally:
            self._replies = None

    async def _pace(self, not_before_s: float) -> None:
        """>= MIN_COMMAND_GAP_S after the previous real write, and not while the unit is sending."""
        earliest = not_before_s
        if self._last_send_s is not None:
            earliest = max(earliest, self._last_send_s + MIN_COMMAND_GAP_S)
        delay = earliest - self.clock()
        if delay > 0:
            await asyncio.sleep(delay)
        waited = 0.0
        while waited < MAX_QUIET_WAIT_S:
            last_rx: datetime | None = getattr(self.link, "last_rx_at", None)
            if last_rx is None:
                return
            quiet = (datetime.now(UTC) - last_rx).total_seconds()
            if quiet >= QUIET_BEFORE_SEND_S:
                return
            pause = QUIET_BEFORE_SEND_S - quiet
            await asyncio.sleep(pause)
            waited += pause

    def _failed(self, card: str, stage: str, reason: str, code: str = "") -> None:
        self.counters["failed"] += 1
        self.log.warning(
            "pc_mode_failed",
            card=card,
            stage=stage,
            reason=reason,
            code=code or None,
            action="the member can still weigh; the unit uses the data keyed in on it",
        )


def _redact(reason: str, sent: list[str]) -> str:
    """Reasons name the command (``D3181.0: parameter error``): keep its prefix, drop the value."""
    for text in sorted(sent, key=len, reverse=True):
        if len(text) > 2:
            reason = reason.replace(text, text[:2])
    return reason


def pc_mode_for(cfg: Config, spec: DriverSpec, link: Any, client: PlatformClient, log: Any) -> PcMode | None:
    """The PC-mode driver for this daemon, or None (off, replaying, or a driver without PC mode)."""
    if not cfg.scale.pc_mode or cfg.scale.capture:
        return None
    family = family_for(spec.name)
    if family is None:
        log.warning(
            "pc_mode_unsupported",
            driver=spec.name,
            reason=f"PC mode exists only for {', '.join(sorted(_families()))}; ignoring [scale] pc_mode",
        )
        return None
    if not cfg.cards.has_reader:
        log.warning(
            "pc_mode_without_card_reader",
            source=cfg.cards.source,
            reason="PC mode starts on a card read; set [cards] source to a reader",
        )
    log.info("pc_mode_enabled", family=family.value)
    return PcMode(family, link, client, cfg.cards, log)
