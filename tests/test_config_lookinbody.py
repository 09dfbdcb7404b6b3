"""The [lookinbody] section: one clear line per bad key, the key handled like the platform key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.config import config_from_dict
from bridge.errors import ConfigError
from drivers import inbody as ib


def doc(**lookinbody: Any) -> dict[str, Any]:
    return {
        "platform": {"base_url": "https://gym.open-api.perfectgym.com", "api_key": "platform-key-1"},
        "scale": {"driver": "inbody"},
        "lookinbody": {"account": "mygym", "api_key": "lookinbody-key-1", "time_zone": "Europe/Berlin", **lookinbody},
    }


def problems(d: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        config_from_dict(d, env=env or {})
    return exc.value.lines()


def test_valid_section_gives_the_link_settings() -> None:
    cfg = config_from_dict(doc(identify_by="phone", mass_unit="lb"), env={})
    s = cfg.lookinbody.settings()
    assert s.account == "mygym" and s.api_key == "lookinbody-key-1" and s.base_url == "https://apiusa.lookinbody.com"
    assert s.identify_by is ib.IdentifyBy.PHONE and s.mass_unit is ib.MassUnit.LB
    assert "lookinbody-key-1" not in repr(s)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"account": ""}, "lookinbody.account"),
        ({"time_zone": ""}, "lookinbody.time_zone"),
        ({"time_zone": "Mars/Olympus"}, "lookinbody.time_zone"),
        ({"identify_by": "email"}, "lookinbody.identify_by"),
        ({"mass_unit": "stone"}, "lookinbody.mass_unit"),
        ({"date_format": "dd.MM.yyyy"}, "lookinbody.date_format"),
        ({"base_url": "http://apiusa.lookinbody.com"}, "lookinbody.base_url"),
        ({"poll_interval_s": 0}, "lookinbody.poll_interval_s"),
        ({"lookback_days": 9}, "lookinbody.lookback_days"),
        ({"backoff_cap_s": 1, "backoff_base_s": 5}, "lookinbody.backoff_cap_s"),
        ({"colour": "blue"}, "lookinbody.colour"),
    ],
)
def test_one_line_per_bad_key(change: dict[str, Any], key: str) -> None:
    lines = problems(doc(**change))
    assert len(lines) == 1 and key in lines[0], lines


def test_key_from_file_or_systemd_credential(tmp_path: Path) -> None:
    (tmp_path / "lookinbody_api_key").write_text("from-systemd-1\n")
    d = doc(api_key="")
    assert config_from_dict(d, env={"CREDENTIALS_DIRECTORY": str(tmp_path)}).lookinbody.api_key == "from-systemd-1"
    f = tmp_path / "lb.key"
    f.write_text("from-file-1\n")
    assert config_from_dict(doc(api_key="", api_key_file=str(f)), env={}).lookinbody.api_key == "from-file-1"
    lines = problems(doc(api_key=""))
    assert len(lines) == 1 and "lookinbody.api_key" in lines[0]
    assert config_from_dict(doc(api_key=""), env={}, require_key=False).lookinbody.api_key == ""
