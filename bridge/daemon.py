"""The daemon lives in ``bridge.runtime``: ``daemon`` (the composition root), ``pump`` (link events ->
intake -> outbox), ``housekeeping`` (watchdog, status, retention), ``links`` (config -> links). This
module keeps the old import path."""

from __future__ import annotations

from .intake import UNIDENTIFIED_NOTE
from .runtime.assembly import REPLAY_DEDUPE_S
from .runtime.daemon import Daemon
from .runtime.housekeeping import RETENTION_EVERY_S
from .runtime.links import build_card_link, build_scale_link, replay_clock, serial_settings
from .runtime.shutdown import stop_timeout_s

__all__ = [
    "REPLAY_DEDUPE_S",
    "RETENTION_EVERY_S",
    "UNIDENTIFIED_NOTE",
    "Daemon",
    "build_card_link",
    "build_scale_link",
    "replay_clock",
    "serial_settings",
    "stop_timeout_s",
]
