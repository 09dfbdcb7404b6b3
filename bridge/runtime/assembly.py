"""Building the daemon's parts from the config: the outbox, the platform client, the uploader, the
intake and pump, the links and housekeeping. Nothing runs here; the composition root starts them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from drivers.links.base import FiniteLink, Link
from drivers.registry import get

from ..config import Config
from ..flight_recorder import flight_recorder_for
from ..intake import Capture, Intake
from ..logs import register_secret
from ..outbox import Job, Outbox
from ..pairing import Pairing
from ..pc_mode import PcMode, pc_mode_for
from ..platform import PlatformClient
from ..upload.loop import Uploader, pool_size
from .housekeeping import Housekeeping
from .links import ReplayPause, build_card_link, build_scale_link
from .pump import Pump

#: A replay link reads its whole capture again after every restart: its dedupe keys (content of each
#: reading) must outlive any restart (docs/reliability.md).
REPLAY_DEDUPE_S = 100 * 365 * 86400.0


@dataclass(frozen=True, slots=True)
class Hooks:
    """What the parts tell the composition root."""

    link_state: Callable[[str], Callable[[str, str], None]]
    committed: Callable[[Capture, int], None]
    fatal: Callable[[BaseException, int], None]
    finished: Callable[[FiniteLink], None]
    delivered: Callable[[Job], None] | None


@dataclass(frozen=True, slots=True)
class Parts:
    outbox: Outbox
    client: PlatformClient
    uploader: Uploader
    pump: Pump
    housekeeping: Housekeeping
    links: list[Link]
    pc_mode: PcMode | None


def open_outbox(cfg: Config, clock: Callable[[], float], log: Any) -> Outbox:
    outbox = Outbox(cfg.outbox_path, clock=clock)
    if outbox.corruption is not None:
        log.critical(
            "outbox_corrupt_moved_aside",
            moved_to=outbox.corruption.moved_to,
            reason=outbox.corruption.reason,
            action="started a fresh outbox; acknowledge with `scale-bridge queue ack-corruption`",
        )
    if outbox.recovered_inflight:
        log.warning("inflight_attempts_recovered", count=outbox.recovered_inflight)
    return outbox


def make_intake(cfg: Config, outbox: Outbox) -> Intake:
    replayed = bool(cfg.scale.capture)
    q = cfg.queue
    return Intake(
        get(cfg.scale.driver),
        Pairing(cfg.pairing.window_s, cfg.pairing.unidentified, cfg.pairing.late_card_s),
        scale=cfg.scale.name,
        is_duplicate=lambda key, at: outbox.seen(key, now=at.timestamp()),
        dedupe_window_s=REPLAY_DEDUPE_S if replayed else q.dedupe_window_s,
        broadcast_dedupe_window_s=REPLAY_DEDUPE_S if replayed else q.broadcast_dedupe_window_s,
    )


def assemble(
    cfg: Config,
    hooks: Hooks,
    *,
    clock: Callable[[], float],
    log: Any,
    upload: bool,
    retention_days: Callable[[], float],
    retention_every_s: float,
    scale_link: Link | None = None,
    replay_pause: ReplayPause | None = None,
) -> Parts:
    register_secret(cfg.platform.api_key)
    spec = get(cfg.scale.driver)
    outbox = open_outbox(cfg, clock, log)
    p = cfg.platform
    client = PlatformClient(
        p.base_url,
        p.api_key,
        timeout_s=p.timeout_s,
        connect_timeout_s=p.connect_timeout_s,
        max_connections=pool_size(p.concurrency),
    )
    uploader = Uploader(cfg, outbox, client, clock=clock)
    uploader.on_delivered = hooks.delivered
    scale_role = f"scale:{cfg.scale.name}"
    scale = scale_link or build_scale_link(cfg, spec, hooks.link_state(scale_role), replay_pause=replay_pause)
    roles: list[tuple[str, Link]] = [(scale_role, scale)]
    card_role = f"cards:{cfg.cards.source}"
    card_link = build_card_link(cfg, hooks.link_state(card_role))
    if card_link is not None:
        roles.append((card_role, card_link))
    pc_mode = pc_mode_for(cfg, spec, scale, client, log)
    pump = Pump(
        make_intake(cfg, outbox),
        outbox,
        log=log,
        clock=clock,
        scale_name=cfg.scale.name,
        on_committed=hooks.committed,
        on_fatal=hooks.fatal,
        on_replay_finished=hooks.finished,
        wake=uploader.notify,
        pc_mode=pc_mode,
        recorder=flight_recorder_for(cfg, link=scale.name),
    )
    pump.scale_link = scale
    house = Housekeeping(
        pump=pump,
        outbox=outbox,
        uploader=uploader if upload else None,
        links=roles,
        status_path=cfg.status_path,
        scale=cfg.scale.name,
        driver=cfg.scale.driver,
        retention_days=retention_days,
        clock=clock,
        log=log,
        retention_every_s=retention_every_s,
    )
    return Parts(outbox, client, uploader, pump, house, [link for _, link in roles], pc_mode)
