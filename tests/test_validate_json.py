"""``validate --json`` for fleet tooling: one JSON object on stdout, ``{"ok", "problems": [{"key",
"message"}], "warnings": [...]}``, with the exit codes of the text output (0, 78)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.helpers import run_cli, write_config

KEY = "sk_live_" + "k" * 32
BASE = {
    "platform": {"base_url": "https://mygym.open-api.perfectgym.com", "api_key": KEY},
    "scale": {"driver": "tanita", "port": "/dev/null"},
}


def _doc(r: subprocess.CompletedProcess[bytes]) -> dict:
    assert r.stderr == b"", r.stderr  # everything is in the object
    doc = json.loads(r.stdout)
    assert set(doc) == {"ok", "problems", "warnings"}
    for item in doc["problems"] + doc["warnings"]:
        assert set(item) == {"key", "message"} and all(isinstance(v, str) for v in item.values())
    return doc


def test_a_good_config_is_ok_with_its_warnings(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "site.toml", {**BASE, "state": {"dir": str(tmp_path / "state")}})
    cfg.chmod(0o644)  # an inline key in a file everyone can read: valid, with a warning
    r = run_cli("validate", "--json", "-c", str(cfg))
    assert r.returncode == 0
    doc = _doc(r)
    assert doc["ok"] is True and doc["problems"] == []
    assert [w["key"] for w in doc["warnings"]] == ["platform.api_key"]
    assert KEY not in r.stdout.decode()


def test_a_bad_config_lists_every_problem_by_key_and_exits_78(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    doc_in = {
        **BASE,
        "scale": {**BASE["scale"], "record_dir": str(tmp_path / "afile")},
        "pairing": {"window_s": -5},
        "state": {"dir": str(tmp_path / "state")},
    }
    cfg = write_config(tmp_path / "site.toml", doc_in)
    cfg.chmod(0o600)
    r = run_cli("validate", "--json", "-c", str(cfg))  # the file's own problem first: pairing.window_s
    assert r.returncode == 78
    doc = _doc(r)
    assert doc["ok"] is False and [p["key"] for p in doc["problems"]] == ["pairing.window_s"]
    del doc_in["pairing"]
    write_config(cfg, doc_in)
    r = run_cli("validate", "--json", "-c", str(cfg))  # then this machine: the record dir is a file
    assert r.returncode == 78
    doc = _doc(r)
    assert doc["ok"] is False and [p["key"] for p in doc["problems"]] == ["scale.record_dir"]
    assert "is not a directory" in doc["problems"][0]["message"]
    assert _doc(run_cli("validate", "--json", "--no-environment", "-c", str(cfg)))["ok"] is True


def test_a_missing_file_is_a_problem_too(tmp_path: Path) -> None:
    r = run_cli("validate", "--json", "-c", str(tmp_path / "absent.toml"))
    assert r.returncode == 78
    assert _doc(r)["problems"] == [{"key": "(file)", "message": "no such file (start from config.example.toml)"}]
