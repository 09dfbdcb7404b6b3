"""Fleet monitoring: monitoring/alerts.yml checked and unit-tested with promtool, and every metric the
alerts and the Grafana dashboard use asserted to exist in the real exporter's output (a daemon run as a
subprocess, its ``[metrics]`` endpoint scraped over 127.0.0.1). The same daemon shows that it never
imports the simulator's server stack (its ``sys.modules`` at exit)."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import REPO, exited, popen_logged, wait_for, write_config

MON = REPO / "monitoring"
promtool = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    promtool is None, reason="promtool not installed (Debian package prometheus; .ci/run installs it)"
)
#: the daemon must not load these (the simulator's server stack, the old and new validators)
SIMULATOR_STACK = ("aiohttp", "openapi_core", "jsonschema_rs", "jsonschema", "bridge.simulator.app")
#: Prometheus's own series, not the exporter's
NOT_EXPORTED = {"up"}

WRAPPER = """
import atexit, json, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
from bridge.cli import main
sys.exit(main())
"""


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    assert promtool is not None
    res = subprocess.run(
        [promtool, "check", "rules", str(MON / "alerts.yml")], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS: 10 rules found" in res.stdout


@needs_promtool
def test_promtool_unit_tests_pass() -> None:
    assert promtool is not None
    res = subprocess.run(
        [promtool, "test", "rules", "alerts.test.yml"], cwd=MON, capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stdout + res.stderr


@needs_promtool
def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """Control: the same tests against rules with a changed threshold fail (so a pass means something)."""
    assert promtool is not None
    (tmp_path / "alerts.yml").write_text((MON / "alerts.yml").read_text().replace("> 1800", "> 99999"))
    shutil.copy2(MON / "alerts.test.yml", tmp_path / "alerts.test.yml")
    res = subprocess.run(
        [promtool, "test", "rules", "alerts.test.yml"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert res.returncode != 0 and "ScaleBridgeQueueAging" in res.stdout + res.stderr


def used_metrics() -> dict[str, set[str]]:
    import yaml  # pyyaml comes with the dev tools (openapi-core's dependency)

    rules = yaml.safe_load((MON / "alerts.yml").read_text())
    alert_exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    dash = json.loads((MON / "grafana-dashboard.json").read_text())
    dash_exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    dash_exprs += [v["definition"] for v in dash["templating"]["list"] if "definition" in v]
    name = re.compile(r"\b(?:scale_bridge_[a-z0-9_]+|up)\b(?=\s*[{\[)\s><=!*/+-]|$)")
    return {
        "alerts": {m for e in alert_exprs for m in name.findall(e)},
        "dashboard": {m for e in dash_exprs for m in name.findall(e)},
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from bridge.simulator import SimulatorThread

    tmp = tmp_path_factory.mktemp("exporter")
    state = tmp / "state"
    port = _free_port()
    with SimulatorThread() as sim:
        cfg = write_config(
            tmp / "config.toml",
            {
                "platform": {"base_url": sim.url, "api_key": sim.api_key(1), "benefit_key": "BODY_SCAN"},
                "scale": {"driver": "tanita", "capture": str(REPO / "bridge/data/demo-tanita.capture.jsonl")},
                "state": {"dir": str(state)},
                "metrics": {"listen": f"127.0.0.1:{port}"},
                "log": {"format": "json"},
            },
        )
        modules = tmp / "modules.json"
        state.mkdir()
        proc = popen_logged(
            [sys.executable, "-c", WRAPPER, str(modules), "run", "--config", str(cfg)],
            tmp / "daemon.log",
            stderr_only=True,
            cwd=REPO,
            env={"PATH": "/usr/bin:/bin", "STATE_DIRECTORY": str(state)},  # as systemd sets it for the unit
            stdout=subprocess.DEVNULL,
        )
        text, rss_kib = "", 0
        try:
            def delivered() -> str | None:
                try:
                    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                except httpx.HTTPError:
                    return None
                return text if re.search(r'scale_bridge_uploads_total\{outcome="delivered"\} [1-9]', text) else None

            text = wait_for(delivered, "a delivery in /metrics", timeout_s=60, interval_s=0.2, alive=exited(proc))
            status = Path(f"/proc/{proc.pid}/status").read_text()
            rss_kib = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
        yield {
            "text": text,
            "modules": json.loads(modules.read_text()),
            "code": code,
            "rss_kib": rss_kib,
            "log": (tmp / "daemon.log").read_text(),
        }


def exported_names(text: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{| )", text, re.M)}


def test_every_metric_the_alerts_and_dashboard_use_is_exported(exporter: dict[str, Any]) -> None:
    names = exported_names(exporter["text"])
    assert 'scale_bridge_uploads_total{outcome="delivered"}' in exporter["text"], exporter["log"][-2000:]
    used = used_metrics()
    assert len(used["alerts"]) >= 10 and len(used["dashboard"]) >= 10, used
    for where, metrics in used.items():
        missing = sorted(m for m in metrics - NOT_EXPORTED if m not in names)
        assert not missing, f"{where} uses metrics the exporter does not export: {missing}"


def test_the_daemon_never_imports_the_simulator_stack(exporter: dict[str, Any]) -> None:
    assert exporter["code"] == 0, exporter["log"][-2000:]
    mods = exporter["modules"]
    assert "bridge.runtime.daemon" in mods and "bridge.upload.loop" in mods  # it did run the daemon
    loaded = [m for m in mods if m.split(".")[0] in SIMULATOR_STACK or m in SIMULATOR_STACK]
    assert loaded == [], loaded
    print(f"daemon RSS while delivering: {exporter['rss_kib']} KiB")
