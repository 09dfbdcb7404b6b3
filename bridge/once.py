"""``scale-bridge run --once``: read one weighing from the configured link and print what would be
posted, then exit. A test of a site's set-up (Telegraf's ``--test``): the scale link and the card
reader are the configured ones (or the ``[scale] capture``), decoded and paired as the daemon does
(``bridge.daemon.build_scale_link`` / ``build_card_link`` + ``bridge.intake.Intake``), but nothing
is queued, nothing is uploaded and the state dir is not touched.

``describe`` (pure) turns the first ``Capture`` into the lines printed; ``run_once`` is the shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from drivers.errors import CaptureError, LinkError
from drivers.events import LinkEvent
from drivers.links.base import Link
from drivers.registry import LinkKind, get

from .cardquery import platform_queries
from .config import Config
from .intake import Capture, CardSeen, Intake
from .logs import mask_card
from .outbox import JobState
from .pairing import Pairing
from .plausibility import park_reason

EX_NO_WEIGHING = 1
EX_NOINPUT = 66
EX_UNAVAILABLE = 69


def describe(cap: Capture, cfg: Config, link_name: str) -> list[str]:
    """What ``run --once`` prints for one weighing. Pure."""
    m = cap.reading.measurement
    lines = [
        f"weighing  {m.weight_kg} kg from {link_name} ({cap.reading.model or cap.reading.driver}, "
        f"scale time {cap.reading.device_time or '-'}, read at {cap.received_at.isoformat()})"
    ]
    if cap.card:
        how = "the scale's ID field" if cap.card_source == "scale_id" else "a card read"
        queries = platform_queries(cap.card, cfg.cards)
        asked = ", then ".join(f"{fmt} {mask_card(number)}" for number, fmt in queries) or "nothing (not a number)"
        lines.append(f"card      {mask_card(cap.card)} from {how}; the platform would be asked for {asked}")
    elif cap.state is JobState.UNIDENTIFIED:
        lines.append("card      none: no card read within the pairing window and no ID on the scale -> parked")
    reason = park_reason(m)
    lines.append(f"plausible {'yes' if reason is None else 'no: ' + reason + ' -> parked, not posted'}")
    benefit = cfg.platform.benefit_key
    if benefit:
        lines.append(f"benefit   {benefit} would be checked for the member ({cfg.platform.usage.value})")
    posted = "would post" if cap.state is JobState.PENDING and reason is None else "would not post"
    lines.append(f"{posted}  POST /v1/customers/{{member}}/weighing with this body:")
    lines.append(json.dumps(cap.body, indent=2, sort_keys=True))
    return lines


def _check_input(cfg: Config) -> None:
    """66 for a device or capture that does not exist, 69 for a port a daemon reads."""
    from .portcheck import check_device, check_port

    s = cfg.scale
    if s.capture:
        if not Path(s.capture).is_file():
            from .portcheck import PortMissing

            raise PortMissing(f"scale.capture: {s.capture}: no such file")
    elif get(s.driver).link is LinkKind.SERIAL:
        check_port(s.port)
    from drivers.links.cards import CARD_SOURCES, DeviceKind

    kind = CARD_SOURCES.get(str(cfg.cards.source))
    if kind is not None and kind.device_file:
        check_device(cfg.cards.device, what="card reader")
        if kind.device is DeviceKind.PORT:
            check_port(cfg.cards.device, what="card reader")


def run_once(cfg: Config, *, timeout_s: float, out: Callable[[str], None] = print) -> int:
    _check_input(cfg)
    return asyncio.run(_once(cfg, timeout_s, out))


def _say(text: str) -> None:
    print(f"run --once: {text}", file=sys.stderr, flush=True)


def _on_state(name: str) -> Callable[[str, str], None]:
    def cb(state: str, detail: str) -> None:
        _say(f"{name} {state}" + (f": {detail}" if detail else ""))

    return cb


_Item = LinkEvent | BaseException | None


async def _pump(link: Link, queue: asyncio.Queue[_Item], *, ends_run: bool) -> None:
    """``link``'s events into ``queue``, then its error; ``None`` when a capture of the scale ended
    (``ends_run``: a live link does not end by itself)."""
    try:
        async for ev in link.events():
            await queue.put(ev)
    except (LinkError, CaptureError) as exc:
        await queue.put(exc)
        return
    if ends_run:
        await queue.put(None)


async def _once(cfg: Config, timeout_s: float, out: Callable[[str], None]) -> int:
    from .daemon import build_card_link, build_scale_link

    spec = get(cfg.scale.driver)
    pairing = Pairing(cfg.pairing.window_s, cfg.pairing.unidentified, cfg.pairing.late_card_s)
    intake = Intake(spec, pairing, scale=cfg.scale.name)
    scale_link = build_scale_link(cfg, spec, _on_state("scale"))
    links: list[Link] = [scale_link]
    card_link = build_card_link(cfg, _on_state("card reader"))
    if card_link is not None:
        links.append(card_link)
    queue: asyncio.Queue[_Item] = asyncio.Queue()
    tasks = [asyncio.create_task(_pump(link, queue, ends_run=link is scale_link)) for link in links]
    what = f"{scale_link.name}" + (f" and {card_link.name}" if card_link is not None else "")
    _say(f"waiting up to {timeout_s:g} s for one weighing on {what} (nothing is sent)")
    try:
        return await _first_weighing(queue, intake, scale_link, cfg, timeout_s=timeout_s, out=out)
    finally:
        for link in links:
            with contextlib.suppress(Exception):
                await link.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _first_weighing(
    queue: asyncio.Queue[_Item],
    intake: Intake,
    scale_link: Link,
    cfg: Config,
    *,
    timeout_s: float,
    out: Callable[[str], None],
) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            _say(f"no weighing within {timeout_s:g} s")
            return EX_NO_WEIGHING
        try:
            item = await asyncio.wait_for(queue.get(), min(remaining, 1.0))
        except TimeoutError:
            continue  # (pairing needs no tick here: a reading looks back at the cards before it)
        code = _take(item, intake, scale_link, cfg, out)
        if code is not None:
            return code


def _take(item: _Item, intake: Intake, scale_link: Link, cfg: Config, out: Callable[[str], None]) -> int | None:
    """One queued item: the exit code once the run is decided, else ``None`` (keep waiting)."""
    if item is None:
        for outcome in intake.flush(_stream_end(scale_link)):
            if isinstance(outcome, Capture):
                return _print(outcome, cfg, scale_link.name, out)
        _say("the capture ended without a weighing")
        return EX_NO_WEIGHING
    if isinstance(item, BaseException):
        _say(str(item))
        return EX_NOINPUT if isinstance(item, CaptureError) else EX_UNAVAILABLE
    for outcome in intake.feed(item):
        if isinstance(outcome, Capture):
            return _print(outcome, cfg, scale_link.name, out)
        if isinstance(outcome, CardSeen):
            _say(f"card {mask_card(outcome.card.number)} read: step on the scale")
    return None


def _stream_end(link: Link) -> datetime:
    """The end of a capture on its own clock (its last event), else the host's now."""
    return getattr(link, "stream_now", None) or datetime.now(UTC)


def _print(cap: Capture, cfg: Config, link_name: str, out: Callable[[str], None]) -> int:
    for line in describe(cap, cfg, link_name):
        out(line)
    return 0


__all__ = ["describe", "run_once"]
