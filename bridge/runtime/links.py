"""Which link the config asks for: the scale's (serial, BLE, cloud, or a capture replayed) and the
card reader's. The only place that turns config into links."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from drivers.links.base import Link
from drivers.links.replay import ReplayClock, ReplayLink
from drivers.registry import DriverSpec, LinkKind, SerialSettings

from ..config import Config
from ..errors import BridgeError
from ..logs import register_secret


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


def replay_clock(cfg: Config) -> ReplayClock:
    """A capture replayed alone runs on its own clock. Beside a live card reader it is re-based to the
    host clock (played in real time, each event stamped when played), so that both streams that meet
    in pairing are on one clock."""
    return ReplayClock.HOST if cfg.cards.has_reader else ReplayClock.CAPTURE


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
    if not c.has_reader:
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
