"""Card sources are one table in drivers/ (``drivers.links.cards.CARD_SOURCES``): the config's allowed
values, the device checks and the optional packages all come from it, so a new card reader is one
entry there and nothing in bridge/."""

from __future__ import annotations

import pytest

from bridge.config import CardReaderSource, config_from_dict
from bridge.envcheck import needed_extras
from bridge.errors import ConfigError
from drivers.errors import LinkError
from drivers.links.cards import CARD_SOURCES, DeviceKind, from_config


def test_the_config_accepts_exactly_the_table_and_the_stream_sources() -> None:
    assert {s.value for s in CardReaderSource} == {"scale_id", "capture", *CARD_SOURCES}


def _cfg(source: str, device: str = "") -> object:
    cards = {"source": source} | ({"device": device} if device else {})
    return config_from_dict({"platform": {"base_url": "http://127.0.0.1:9", "api_key": "k"},
                             "scale": {"driver": "tanita", "port": "/dev/null"}, "cards": cards}, source="t")


@pytest.mark.parametrize("name", sorted(CARD_SOURCES))
def test_each_kind_says_whether_it_needs_a_device(name: str) -> None:
    kind = CARD_SOURCES[name]
    if kind.device is DeviceKind.NONE:
        _cfg(name)  # accepted without a device
        return
    with pytest.raises(ConfigError) as exc:
        _cfg(name)
    assert exc.value.lines() == [f't: cards.device: required for source = "{name}"']
    with pytest.raises(LinkError, match=f"cards.device: required for source = {name}"):
        from_config(name, "")


def test_the_extras_a_site_needs_come_from_the_table() -> None:
    assert needed_extras(_cfg("evdev", "/dev/input/event0")) == [CARD_SOURCES["evdev"].extra] == ["cards"]  # type: ignore[arg-type]
    assert needed_extras(_cfg("socket", "/run/x.sock")) == []  # type: ignore[arg-type]


def test_an_unknown_source_lists_the_table() -> None:
    with pytest.raises(ConfigError) as exc:
        _cfg("bluetooth-reader")
    (line,) = exc.value.lines()
    assert line.startswith("t: cards.source: must be one of ") and all(n in line for n in CARD_SOURCES)
    with pytest.raises(LinkError, match="one of evdev, serial, socket, stdin"):
        from_config("bluetooth-reader", "/dev/x")
