"""Several scales on one box: ``scale-bridge check --all`` over a config dir (real files, the CLI as a
subprocess), and the daemon's own lock on its state dir (a real second ``scale-bridge run``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.helpers import run_cli, write_config


def instance(config_dir: Path, name: str, state: Path, **cards: Any) -> Path:
    sections: dict[str, dict[str, Any]] = {
        "platform": {"base_url": "http://127.0.0.1:9", "api_key": "k", "connect_timeout_s": 1},
        "scale": {"driver": "tanita", "port": f"/dev/serial/by-id/{name}"},
        "state": {"dir": str(state)},
    }
    if cards:
        sections["cards"] = cards
    return write_config(config_dir / f"{name}.toml", sections)


def check_all(config_dir: Path) -> tuple[int, dict[str, Any]]:
    res = run_cli("check", "--all", "--json", "--no-platform", "--config-dir", str(config_dir))
    return res.returncode, json.loads(res.stdout)


def test_every_instance_is_reported(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    instance(etc, "reception", tmp_path / "state-reception")
    instance(etc, "spa", tmp_path / "state-spa")
    (etc / "config.example.toml").write_text("not an instance")
    code, doc = check_all(etc)
    components = {c["component"]: c for c in doc["components"]}
    assert {"reception/config", "spa/config", "reception/db", "spa/db"} <= set(components), components
    assert "scale-bridge@reception.service" in components["instances"]["message"]
    assert "scale-bridge@spa.service" in components["instances"]["message"]
    assert not any("example" in c for c in components)
    # a state dir other than the unit's StateDirectory= is said (the sandbox would refuse its writes)
    assert components["reception/state"]["status"] == "WARNING"
    assert "/var/lib/scale-bridge/reception" in components["reception/state"]["message"]
    # nothing is shared: no cross-instance finding (the daemons are not running: their own checks say so)
    assert [c for c in doc["components"] if c["component"] == "instances"][1:] == [], doc
    assert code in (1, 2), doc


def test_a_shared_card_reader_is_refused(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    reader = "/dev/input/by-id/usb-kiosk-reader-event-kbd"
    instance(etc, "reception", tmp_path / "a", source="evdev", device=reader)
    instance(etc, "spa", tmp_path / "b", source="evdev", device=reader)
    code, doc = check_all(etc)
    crit = [c["message"] for c in doc["components"] if c["status"] == "CRITICAL"]
    assert code == 2, doc
    assert any("card reader" in m and "reception and spa" in m and "not supported" in m for m in crit), crit


def test_a_shared_state_dir_is_critical(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    instance(etc, "reception", tmp_path / "same")
    instance(etc, "spa", tmp_path / "same")
    code, doc = check_all(etc)
    assert code == 2
    assert any("share the state dir" in c["message"] for c in doc["components"] if c["status"] == "CRITICAL")
