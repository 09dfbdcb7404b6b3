"""Config: the shipped example loads; every problem names its key; the CLI exits 78 with one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import Usage, load_config, parse_config
from bridge.errors import ConfigError
from tests.helpers import REPO, run_cli, toml_value, write_config

BASE = {
    "platform": {"base_url": "https://mygym.open-api.perfectgym.com", "api_key": "k" * 32},
    "scale": {"driver": "tanita", "port": "/dev/ttyUSB0"},
}


def _toml(sections: dict) -> str:
    out = []
    for name, values in sections.items():
        out.append(f"[{name}]")
        out += [f"{k} = {toml_value(v)}" for k, v in values.items()]
    return "\n".join(out)


def test_example_config_loads_with_credential_directory(tmp_path: Path) -> None:
    (tmp_path / "api_key").write_text("secret-key-from-systemd\n")
    cfg = load_config(REPO / "config.example.toml", env={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert cfg.platform.api_key == "secret-key-from-systemd"
    assert cfg.scale.driver == "tanita"
    assert cfg.platform.usage is Usage.WEIGHING
    assert cfg.pairing.window_s == 60.0


def test_example_config_lists_every_key() -> None:
    """Every key the code knows appears in config.example.toml (commented or not)."""
    import msgspec

    from bridge.config import Config

    text = (REPO / "config.example.toml").read_text()
    for section in msgspec.structs.fields(Config):
        assert f"[{section.name}]" in text
        for f in msgspec.structs.fields(section.type):
            assert f"{f.name} =" in text, f"{section.name}.{f.name} missing from config.example.toml"


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (("platform", "colour", "blue"), "platform.colour"),
        (("pairing", "window_s", "soon"), "pairing.window_s"),
        (("pairing", "unidentified", "ignore"), "pairing.unidentified"),
        (("scale", "driver", "seca"), "scale.driver"),
        (("platform", "base_url", "ftp://x"), "platform.base_url"),
        (("platform", "rate_limit_per_min", 5000), "platform.rate_limit_per_min"),
        (("cards", "source", "telepathy"), "cards.source"),
        (("queue", "rate_limit_pause_s", 10), "queue.rate_limit_pause_s"),
        (("log", "level", "loud"), "log.level"),
    ],
)
def test_bad_value_names_the_key(change: tuple[str, str, object], key: str) -> None:
    section, name, value = change
    doc = {k: dict(v) for k, v in BASE.items()}
    doc.setdefault(section, {})[name] = value
    with pytest.raises(ConfigError) as exc:
        parse_config(_toml(doc), env={})
    assert [p.key for p in exc.value.problems] == [key]


def test_missing_api_key_says_how_to_give_one() -> None:
    doc = {k: dict(v) for k, v in BASE.items()}
    del doc["platform"]["api_key"]
    with pytest.raises(ConfigError) as exc:
        parse_config(_toml(doc), env={})
    assert exc.value.problems[0].key == "platform.api_key"
    assert "LoadCredential" in exc.value.problems[0].message


def test_serial_driver_needs_a_port() -> None:
    doc = {k: dict(v) for k, v in BASE.items()}
    del doc["scale"]["port"]
    with pytest.raises(ConfigError) as exc:
        parse_config(_toml(doc), env={})
    assert exc.value.problems[0].key == "scale.port"


def test_validate_cli_exit_codes(tmp_path: Path) -> None:
    good = write_config(tmp_path / "good.toml", BASE)
    r = run_cli("validate", "--no-environment", "--config", str(good))
    assert r.returncode == 0, r.stderr
    bad = write_config(tmp_path / "bad.toml", {**BASE, "pairing": {"window": 5}})
    r = run_cli("validate", "--config", str(bad))
    assert r.returncode == 78
    lines = r.stderr.decode().strip().splitlines()
    assert lines == [f"{bad}: pairing.window: unknown key (did you mean window_s?)"]
    r = run_cli("validate", "--config", str(tmp_path / "absent.toml"))
    assert r.returncode == 78 and b"no such file" in r.stderr and b"Traceback" not in r.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("[platform\nbase_url = 1")
    r = run_cli("validate", "--config", str(broken))
    assert r.returncode == 78 and b"not valid TOML" in r.stderr and b"Traceback" not in r.stderr
