"""validate is the truth about whether run will work: every problem in one pass, one line each naming
the key; ranges, non-finite numbers, base_url, API key text, key files, enums, suggestions, warnings
(installer audit I1, I3, I4, I14; hostile-input audit M3, M5, L1, L10)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from bridge.config import Config, load, parse_config
from bridge.errors import ConfigError
from tests.helpers import run_cli, toml_value

BASE = {
    "platform": {"base_url": "https://mygym.open-api.perfectgym.com", "api_key": "k" * 32},
    "scale": {"driver": "tanita", "port": "/dev/ttyUSB0"},
}


def _toml(sections: dict) -> str:
    out = []
    for name, values in sections.items():
        out.append(f"[{name}]")
        out += [f"{k} = {v if isinstance(v, _Raw) else toml_value(v)}" for k, v in values.items()]
    return "\n".join(out)


class _Raw(str):
    """A TOML literal written as is (nan, inf)."""


def _with(**changes: object) -> dict:
    doc = {k: dict(v) for k, v in BASE.items()}
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        doc.setdefault(section, {})[key] = value
    return doc


def _problems(doc: dict, env: dict | None = None) -> dict[str, str]:
    with pytest.raises(ConfigError) as exc:
        parse_config(_toml(doc), env=env or {})
    return {p.key: p.message for p in exc.value.problems}


def test_structural_and_range_problems_come_out_together() -> None:
    got = _problems(
        _with(
            platform__benefit_kye="BODY_SCAN", scale__driver="tanitaa", pairing__window_s=-5, log__format="text"
        )
    )
    assert set(got) == {"platform.benefit_kye", "scale.driver", "pairing.window_s", "log.format"}
    assert "did you mean benefit_key?" in got["platform.benefit_kye"]
    assert got["log.format"] == "must be one of auto, json, console (got 'text')"


def test_a_key_in_the_wrong_section_says_where_it_belongs() -> None:
    assert "belongs in [pairing]" in _problems(_with(queue__window_s=5))["queue.window_s"]


def test_unknown_section_suggests_the_closest() -> None:
    doc = _with()
    doc["pairng"] = {"window_s": 5}
    assert "did you mean pairing?" in _problems(doc)["pairng"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("queue__dedupe_window_s", -1),
        ("queue__retention_delivered_days", -3),
        ("queue__max_conflict_retries", -2),
        ("queue__backoff_base_s", 0),
        ("scale__reconnect_max_s", -1),
        ("scale__baudrate", -9600),
        ("cards__baudrate", 0),
        ("health__disk_free_warning_mb", -5),
        ("health__pending_count_warning", 0),
        ("health__daemon_stale_s", 0),
        ("platform__timeout_s", 0),
        ("platform__concurrency", 0),
        ("pairing__late_card_s", 121),
    ],
)
def test_out_of_range_numbers_name_the_key(key: str, value: float) -> None:
    dotted = key.replace("__", ".")
    assert list(_problems(_with(**{key: value}))) == [dotted]


@pytest.mark.parametrize("literal", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("key", ["pairing__window_s", "platform__timeout_s", "queue__backoff_cap_s"])
def test_non_finite_numbers_are_refused(key: str, literal: str) -> None:
    got = _problems(_with(**{key: _Raw(literal)}))
    assert got == {key.replace("__", "."): "must be a finite number (not nan or inf)"}


def test_critical_below_warning_is_refused() -> None:
    got = _problems(_with(health__pending_age_warning_s=100, health__pending_age_critical_s=10))
    assert list(got) == ["health.pending_age_critical_s"]
    got = _problems(_with(health__disk_free_warning_mb=10, health__disk_free_critical_mb=50))
    assert list(got) == ["health.disk_free_critical_mb"]


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("https://my gym.com", "spaces"),
        ("https://mygym.open-api.perfectgym.com/v1/", "without a path such as /v1"),
        ("https://user:hunter2@mygym.com", "user name or password"),
        ("http://gym.example.com", "clear text"),
        ("https://gym.example.com:99999", "not a valid URL"),
        ("ftp://gym.example.com", "http(s) URL"),
        ("https://gym.example.com/?x=1", "query"),
    ],
)
def test_base_url_sanity(url: str, fragment: str) -> None:
    got = _problems(_with(platform__base_url=url))
    assert list(got) == ["platform.base_url"]
    assert fragment in got["platform.base_url"]
    assert "hunter2" not in got["platform.base_url"]


@pytest.mark.parametrize("url", ["http://127.0.0.1:18080", "http://localhost:8080/", "http://[::1]:9"])
def test_plain_http_to_loopback_is_fine(url: str) -> None:
    assert parse_config(_toml(_with(platform__base_url=url)), env={}).platform.base_url == url


def test_plain_http_to_a_remote_host_needs_the_explicit_opt_in() -> None:
    doc = _with(platform__base_url="http://gym.lan", platform__allow_insecure_http=True)
    assert parse_config(_toml(doc), env={}).platform.allow_insecure_http is True


@pytest.mark.parametrize(
    ("key", "fragment"),
    [("  ", "blank"), ("sk_live_SECRET ", "whitespace"), ("sk\x00x", "control"), ("clé", "non-ASCII")],
)
def test_bad_api_key_text_is_refused_without_echoing_it(key: str, fragment: str) -> None:
    doc = _with()
    doc["platform"]["api_key"] = key
    text = _toml(doc).replace("\x00", "\\u0000")
    with pytest.raises(ConfigError) as exc:
        parse_config(text, env={})
    [problem] = exc.value.problems
    assert problem.key == "platform.api_key" and fragment in problem.message
    assert key.strip() not in problem.message or not key.strip()


def _key_file_doc(path: Path) -> dict:
    doc = _with()
    del doc["platform"]["api_key"]
    doc["platform"]["api_key_file"] = str(path)
    return doc


def test_key_file_is_read_with_a_size_cap() -> None:
    got = _problems(_key_file_doc(Path("/dev/zero")))
    assert "larger than 4096 bytes" in got["platform.api_key_file"]


def test_key_file_with_inner_whitespace_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "key"
    f.write_text("sk_live with space\n")
    f.chmod(0o600)
    assert "whitespace" in _problems(_key_file_doc(f))["platform.api_key_file"]


def test_group_readable_key_file_is_a_warning(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("sk_test_0123456789\n")
    cfg_path = tmp_path / "c.toml"
    cfg_path.write_text(_toml(_key_file_doc(key)))
    key.chmod(0o644)
    loaded = load(cfg_path, env={})
    assert loaded.config.platform.api_key == "sk_test_0123456789"
    assert any("chmod 600" in w.message for w in loaded.warnings)
    key.chmod(0o600)
    assert not [w for w in load(cfg_path, env={}).warnings if w.key == "platform.api_key_file"]


def test_metrics_on_a_public_address_warns_and_a_bad_port_is_refused(tmp_path: Path) -> None:
    assert list(_problems(_with(metrics__listen="127.0.0.1:99999"))) == ["metrics.listen"]
    p = tmp_path / "c.toml"
    p.write_text(_toml(_with(metrics__listen="0.0.0.0:9464")))
    p.chmod(0o600)
    assert [w.key for w in load(p, env={}).warnings] == ["metrics.listen"]


def test_config_is_frozen() -> None:
    cfg = parse_config(_toml(BASE), env={})
    assert isinstance(cfg, Config)
    with pytest.raises(AttributeError):
        cfg.pairing.window_s = 5  # type: ignore[misc]


# ------------------------------------------------------------------------------ the CLI and the machine


def _write(tmp_path: Path, doc: dict) -> Path:
    p = tmp_path / "site.toml"
    p.write_text(_toml(doc))
    p.chmod(0o600)
    return p


def _machine_doc(tmp_path: Path, **changes: object) -> dict:
    port = tmp_path / "tty"
    port.write_bytes(b"")  # a readable, writable stand-in for the device node
    doc = _with(scale__port=str(port), state__dir=str(tmp_path / "state"), **changes)
    return doc


def test_validate_ok_says_where_the_key_came_from_never_the_key(tmp_path: Path) -> None:
    r = run_cli("validate", "-c", str(_write(tmp_path, _machine_doc(tmp_path))))
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr
    assert "key from platform.api_key in the config file" in out
    assert "cards: scale_id" in out and f"state: {tmp_path / 'state'}" in out
    assert "k" * 32 not in out + r.stderr.decode()


def test_validate_checks_the_machine_by_default(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    doc = _with(
        scale__port=str(tmp_path / "ttyUSB9"),
        state__dir=str(tmp_path / "afile"),
        cards__source="evdev",
        cards__device=str(tmp_path / "event99"),
    )
    cfg = _write(tmp_path, doc)
    r = run_cli("validate", "-c", str(cfg))
    lines = r.stderr.decode().splitlines()
    assert r.returncode == 78
    keys = [line.split(": ")[1] for line in lines]
    assert keys == sorted(set(keys), key=keys.index)  # one line each
    assert {"scale.port", "state.dir", "cards.device"} <= set(keys)
    assert b"Traceback" not in r.stderr
    r = run_cli("validate", "--no-environment", "-c", str(cfg))
    assert r.returncode == 0, r.stderr


def test_validate_finds_a_missing_capture_and_a_taken_metrics_port(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        doc = _machine_doc(tmp_path, metrics__listen=f"127.0.0.1:{port}")
        del doc["scale"]["port"]
        doc["scale"]["capture"] = str(tmp_path / "absent.jsonl")
        r = run_cli("validate", "-c", str(_write(tmp_path, doc)))
    err = r.stderr.decode()
    assert r.returncode == 78
    assert "scale.capture:" in err and "metrics.listen: cannot bind" in err


def test_state_dir_under_a_read_only_parent_is_refused(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        doc = _machine_doc(tmp_path, state__dir=str(ro / "state"))
        r = run_cli("validate", "-c", str(_write(tmp_path, doc)))
    finally:
        ro.chmod(0o700)
    assert r.returncode == 78 and b"state.dir: cannot create" in r.stderr
