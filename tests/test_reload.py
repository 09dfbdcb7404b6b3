"""bridge.reload.plan: which changed keys a SIGHUP applies live and which wait for a restart (a table)."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.config import Config, config_from_dict, replace
from bridge.reload import plan

BASE: dict[str, dict[str, Any]] = {
    "platform": {"base_url": "https://mygym.open-api.perfectgym.com", "api_key": "k" * 32},
    "scale": {"driver": "tanita", "port": "/dev/ttyUSB0"},
}


def _cfg(**changes: Any) -> Config:
    doc = {k: dict(v) for k, v in BASE.items()}
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        doc.setdefault(section, {})[key] = value
    return config_from_dict(doc, env={})


@pytest.mark.parametrize(
    ("change", "live", "restart"),
    [
        ({}, (), ()),
        ({"platform__benefit_key": "BODY_SCAN"}, ("platform.benefit_key",), ()),
        ({"platform__usage": "endpoint", "platform__benefit_key": "B"}, ("platform.benefit_key", "platform.usage"), ()),
        ({"platform__not_eligible": "park"}, ("platform.not_eligible",), ()),
        ({"platform__cross_studio": False}, ("platform.cross_studio",), ()),
        ({"pairing__window_s": 30.0}, ("pairing.window_s",), ()),
        ({"pairing__unidentified": "drop"}, ("pairing.unidentified",), ()),
        ({"queue__backoff_cap_s": 60.0}, ("queue.backoff_cap_s",), ()),
        ({"health__daemon_stale_s": 30.0}, ("health.daemon_stale_s",), ()),
        ({"pairing__late_card_s": 10.0}, (), ("pairing.late_card_s",)),
        ({"platform__base_url": "https://other.open-api.perfectgym.com"}, (), ("platform.base_url",)),
        ({"platform__api_key": "n" * 32}, (), ("platform.api_key",)),
        ({"platform__timeout_s": 5.0}, (), ("platform.timeout_s",)),
        ({"platform__concurrency": 2}, (), ("platform.concurrency",)),
        ({"scale__port": "/dev/ttyUSB1"}, (), ("scale.port",)),
        ({"scale__name": "front"}, (), ("scale.name",)),
        ({"cards__source": "stdin"}, (), ("cards.source",)),
        ({"cards__format": "hex"}, (), ("cards.format",)),
        ({"state__dir": "/tmp/elsewhere"}, (), ("state.dir",)),
        ({"log__level": "debug"}, (), ("log.level",)),
        ({"metrics__listen": "127.0.0.1:9464"}, (), ("metrics.listen",)),
        ({"health__pending_count_warning": 5, "scale__port": "/dev/ttyS1"}, ("health.pending_count_warning",),
         ("scale.port",)),
    ],
)
def test_reload_table(change: dict[str, Any], live: tuple[str, ...], restart: tuple[str, ...]) -> None:
    old = _cfg()
    new = _cfg(**change)
    p = plan(old, new)
    assert (p.live, p.restart) == (live, restart)
    assert p.needs_restart is bool(restart)
    assert p.changed is bool(live or restart)


def test_the_planned_config_takes_the_live_keys_and_keeps_the_restart_keys() -> None:
    old = _cfg()
    new = _cfg(platform__benefit_key="BODY_SCAN", scale__port="/dev/ttyUSB1", health__daemon_stale_s=30.0,
               platform__api_key="n" * 32)
    p = plan(old, new)
    assert p.config.platform.benefit_key == "BODY_SCAN"
    assert p.config.health.daemon_stale_s == 30.0
    assert p.config.scale.port == "/dev/ttyUSB0"
    assert p.config.platform.api_key == "k" * 32
    assert p.config == replace(old, platform=replace(old.platform, benefit_key="BODY_SCAN"), health=new.health)
