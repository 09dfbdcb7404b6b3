"""What a SIGHUP reload may change live. Pure: ``plan(old, new)`` compares two frozen configs key by key.

The daemon runs with ``plan.config``: the new values of the keys that can be swapped while running,
the old values of every key that needs a restart (named in ``plan.restart``, e.g. ``scale.port``), so
a reload never half-applies a link or platform change. What may be swapped live is what the running
parts read afresh on each use: the benefit and eligibility settings, cross-studio lookups, the
pairing window and policy, the queue's retry settings and the health thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from .config import Config

#: keys swapped live; a section name means every key of it
LIVE: frozenset[str] = frozenset(
    {
        "platform.benefit_key",
        "platform.usage",
        "platform.not_eligible",
        "platform.cross_studio",
        "pairing.window_s",
        "pairing.unidentified",
        "queue",
        "health",
    }
)


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    #: the config to run with after the reload
    config: Config
    #: changed keys that were applied live ("health.daemon_stale_s", ...)
    live: tuple[str, ...]
    #: changed keys that keep their old value until a restart ("scale.port", "platform.api_key", ...)
    restart: tuple[str, ...]

    @property
    def needs_restart(self) -> bool:
        return bool(self.restart)

    @property
    def changed(self) -> bool:
        return bool(self.live or self.restart)


def is_live(key: str) -> bool:
    return key in LIVE or key.split(".", 1)[0] in LIVE


def plan(old: Config, new: Config) -> ReloadPlan:
    live: list[str] = []
    restart: list[str] = []
    sections: dict[str, Any] = {}
    for section in msgspec.structs.fields(Config):
        o, n = getattr(old, section.name), getattr(new, section.name)
        keep: dict[str, Any] = {}
        for f in msgspec.structs.fields(type(o)):
            key = f"{section.name}.{f.name}"
            ov, nv = getattr(o, f.name), getattr(n, f.name)
            if ov == nv:
                continue
            if is_live(key):
                live.append(key)
            else:
                restart.append(key)
                keep[f.name] = ov
        sections[section.name] = msgspec.structs.replace(n, **keep) if keep else n
    return ReloadPlan(Config(**sections), tuple(live), tuple(restart))
