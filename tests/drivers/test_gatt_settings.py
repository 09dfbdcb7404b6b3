"""Per-scale driver settings (``[scale] user_index`` / ``consent_code``): config -> ExchangeContext
text, one problem line per bad key."""

from __future__ import annotations

import pytest

from bridge.config import parse_config
from bridge.errors import ConfigError
from drivers.gatt import int_setting
from tests.helpers import toml_value

PLATFORM = {"base_url": "https://mygym.open-api.perfectgym.com", "api_key": "k" * 32}


def _toml(scale: dict[str, object]) -> str:
    lines = ["[platform]", *(f"{k} = {toml_value(v)}" for k, v in PLATFORM.items()), "[scale]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in scale.items()]
    return "\n".join(lines)


def test_settings_reach_the_scale_config_as_text() -> None:
    cfg = parse_config(
        _toml({"driver": "ble_standard", "address": "A4:C1:38:00:00:02", "user_index": 1, "consent_code": "3752"}),
        env={},
    )
    assert cfg.scale.settings == {"user_index": "1", "consent_code": "3752"}


def test_no_settings_is_an_empty_mapping() -> None:
    cfg = parse_config(_toml({"driver": "ble_standard"}), env={})
    assert cfg.scale.settings == {}


@pytest.mark.parametrize(
    ("scale", "problems"),
    [
        ({"user_index": 0, "consent_code": 1}, ["scale.user_index"]),
        ({"user_index": 1, "consent_code": 10000}, ["scale.consent_code"]),
        ({"user_index": "one", "consent_code": 1}, ["scale.user_index"]),
        ({"user_index": 1.5, "consent_code": 1}, ["scale.user_index"]),
        ({"user_index": True, "consent_code": 1}, ["scale.user_index"]),
        ({"user_index": 2}, ["scale.user_index"]),
        ({"user_index": 300, "consent_code": -1}, ["scale.user_index", "scale.consent_code"]),
    ],
)
def test_each_bad_setting_is_one_problem_line(scale: dict[str, object], problems: list[str]) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(_toml({"driver": "ble_standard", **scale}), env={})
    assert [p.key for p in exc.value.problems] == problems
    assert all("\n" not in p.message for p in exc.value.problems)


def test_a_setting_the_driver_does_not_use_names_the_drivers_that_do() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(_toml({"driver": "mi_scale", "user_index": 1}), env={})
    [problem] = exc.value.problems
    assert problem.key == "scale.user_index"
    assert "mi_scale" in problem.message and "ble_standard" in problem.message


def test_the_internal_settings_key_is_not_a_config_key() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(_toml({"driver": "ble_standard", "settings": "x"}), env={})
    assert [p.key for p in exc.value.problems] == ["scale.settings"]


def test_int_setting() -> None:
    assert int_setting({}, "k", low=1, high=2) is None
    assert int_setting({"k": "2"}, "k", low=1, high=2) == 2
    with pytest.raises(ValueError, match="from 1 to 2"):
        int_setting({"k": "3"}, "k", low=1, high=2)
    with pytest.raises(ValueError, match="whole number"):
        int_setting({"k": "0x1"}, "k", low=1, high=2)


def test_lefu_profile_settings_reach_the_exchange_and_each_bad_one_is_a_line() -> None:
    """``lefu_ffb0``'s profile (``sex`` / ``age_years`` / ``height_cm``): text to the exchange; one
    problem line per bad key (``validate`` exits 78 on them)."""
    scale = {"driver": "lefu_ffb0", "address": "01:B6:EC:D5:B4:C3", "sex": "male", "age_years": 40, "height_cm": 180}
    assert parse_config(_toml(scale), env={}).scale.settings == {"sex": "male", "age_years": "40", "height_cm": "180"}
    with pytest.raises(ConfigError) as exc:
        parse_config(_toml({**scale, "sex": "other", "age_years": 8, "height_cm": 300}), env={})
    assert [p.key for p in exc.value.problems] == ["scale.sex", "scale.age_years", "scale.height_cm"]
