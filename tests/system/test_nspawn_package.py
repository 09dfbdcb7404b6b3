"""The Debian package and several scales per box, under real systemd 252 (Debian bookworm in nspawn).

Two packages are built on the host with ``make deb`` (the same checkout, versions ...~t1 and ...~t2: an
upgrade to a rebuilt package), then inside a fresh container, in order:

- install: the user exists, the units are known, and nothing was started (no config yet);
- configure two instances (reception, spa: own config, state dir, credential), enable --now: both capture
  a replayed weighing and deliver it to the simulator; ``check --all`` reports both;
- SIGKILL one: the other keeps its PID and stays active; the killed one is restarted;
- upgrade to the rebuilt package: both instances run the new program (new PIDs), config and queue kept;
- remove: units stopped, the program gone, config and state kept; purge: config, state and keys gone.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .machine import REPO, Machine, MachineError, ensure_rootfs, ensure_wheels, install_simulator, missing_requirements

# about 90 s (a package built in the container); in the default suite since the suite runs on two
# workers (make test: pytest -n 2), which leaves room for it under 10 minutes
pytestmark = [pytest.mark.nspawn, pytest.mark.timeout(2400)]

SIM_PORT = 8080
API_KEY = "sim-key-studio-a"
NAMES = ("reception", "spa")
VENV_BIN = "/opt/scale-bridge/venv/bin"
DEMO_CAPTURE = REPO / "bridge/data/demo-tanita.capture.jsonl"
V1, V2 = "0.1.0-1~t1", "0.1.0-1~t2"
DROPIN = "[Service]\nWatchdogSec=8s\nRestartSec=1s\nLimitCORE=0\n"


def config(name: str) -> str:
    return f"""[platform]
base_url = "http://127.0.0.1:{SIM_PORT}"
benefit_key = "BODY_SCAN"

[scale]
name = "{name}"
driver = "tanita"
capture = "/etc/scale-bridge/{name}.capture.jsonl"

[state]
dir = "/var/lib/scale-bridge/{name}"

[log]
format = "json"
"""


def build_deb(version: str, wheels: Path, out: Path) -> Path:
    res = subprocess.run(
        ["make", "-C", str(REPO), "deb", f"DEB_VERSION={version}", f"WHEELHOUSE={wheels}"],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    if res.returncode != 0:
        raise MachineError(f"make deb failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    deb = next((REPO / "dist").glob(f"scale-bridge_{version}_*.deb"))
    out.mkdir(exist_ok=True)
    target = out / deb.name
    deb.replace(target)
    return target


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Machine, Path, Path]]:
    why = missing_requirements()
    if why:
        pytest.skip(why)
    for tool in ("dpkg-buildpackage", "dh"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, check=False).returncode:
            pytest.skip(f"{tool} not installed (apt-get install dpkg-dev debhelper; .ci/run does)")
    work = tmp_path_factory.mktemp("nspawn-deb")
    rootfs, _meta = ensure_rootfs(work / "debootstrap.log")
    deps, own = ensure_wheels(work, work / "pip-wheel.log")
    debs = work / "debs"
    v1 = build_deb(V1, deps, debs)
    v2 = build_deb(V2, deps, debs)
    m = Machine(rootfs, work, {debs: "/debs", deps: "/wheels/deps", own: "/wheels/own"})
    try:
        m.boot()
        install_simulator(m, SIM_PORT)
        yield m, v1, v2
    finally:
        m.shutdown()


def unit(m: Machine, name: str) -> dict[str, str]:
    return m.show(name, "ActiveState", "SubState", "Result", "MainPID", "NRestarts", "ConditionResult")


def status(m: Machine, name: str) -> dict[str, object]:
    try:
        return json.loads(m.path(f"/var/lib/scale-bridge/{name}/status.json").read_text())
    except (OSError, ValueError):
        return {}


def delivered(m: Machine, name: str) -> int:
    uploads = status(m, name).get("uploads")
    return int(uploads.get("delivered", 0)) if isinstance(uploads, dict) else 0


def explain(m: Machine, name: str) -> str:
    return f"\n--- {name} ---\n{unit(m, name)}\n{m.journal(name, 60)}"


def test_install_starts_nothing(machine: tuple[Machine, Path, Path]) -> None:
    m, v1, _ = machine
    res = m.run(["dpkg", "-i", f"/debs/{v1.name}"], check=False, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert int(m.run(["id", "-u", "scale-bridge"]).stdout) < 1000
    assert m.path(f"{VENV_BIN}/scale-bridge").exists()
    assert m.path("/usr/share/man/man1/scale-bridge.1.gz").exists()  # the units' Documentation=man:scale-bridge(1)
    assert m.run([f"{VENV_BIN}/scale-bridge", "--help"]).returncode == 0
    conffiles = m.run(["dpkg-query", "-W", "-f=${Conffiles}", "scale-bridge"]).stdout
    assert "/etc/scale-bridge/config.example.toml" in conffiles
    assert "/etc/udev/rules.d/70-scale-bridge.rules" in conffiles
    for name in ("scale-bridge.service", "scale-bridge@reception.service"):
        u = unit(m, name)
        assert u["ActiveState"] == "inactive", explain(m, name)
    # asked to start without a config, a unit does not run the daemon (condition, not a failure)
    m.run(["systemctl", "start", "scale-bridge@nothing.service"])
    u = unit(m, "scale-bridge@nothing.service")
    assert (u["ActiveState"], u["ConditionResult"]) == ("inactive", "no"), u
    # no aiohttp/openapi-core on a box (the simulator is an extra)
    res = m.run([f"{VENV_BIN}/python", "-c", "import aiohttp"], check=False)
    assert res.returncode != 0


def test_two_instances_capture_and_deliver(machine: tuple[Machine, Path, Path]) -> None:
    m, _, _ = machine
    m.write("/etc/systemd/system/scale-bridge@.service.d/50-test.conf", DROPIN)
    for name in NAMES:
        m.write(f"/etc/scale-bridge/{name}.capture.jsonl", DEMO_CAPTURE.read_text())
        m.write(f"/etc/scale-bridge/{name}.toml", config(name), 0o640)
        m.run(["chgrp", "scale-bridge", f"/etc/scale-bridge/{name}.toml"])
        m.write(f"/etc/credstore/scale-bridge.{name}.api_key", API_KEY, 0o600)
    m.run(["systemctl", "daemon-reload"])
    units = [f"scale-bridge@{n}.service" for n in NAMES]
    res = m.run(["systemctl", "enable", "--now", *units], check=False, timeout=200)
    assert res.returncode == 0, res.stderr + "".join(explain(m, f"scale-bridge@{n}.service") for n in NAMES)
    for name in NAMES:
        try:
            m.wait_for(f"{name} to deliver a weighing", lambda name=name: delivered(m, name) >= 1, 90)
        except MachineError as exc:
            raise AssertionError(f"{exc}{explain(m, f'scale-bridge@{name}.service')}") from None
        assert unit(m, f"scale-bridge@{name}.service")["ActiveState"] == "active"
    # each in its own state dir, with its own credential
    assert m.path("/var/lib/scale-bridge/reception/outbox.db").exists()
    assert m.path("/var/lib/scale-bridge/spa/outbox.db").exists()
    res = m.run([f"{VENV_BIN}/scale-bridge", "check", "--all", "--json", "--no-platform"], check=False, timeout=90)
    doc = json.loads(res.stdout)
    comps = {c["component"]: c for c in doc["components"]}
    assert {"reception/config", "spa/config", "reception/systemd", "spa/systemd"} <= set(comps), res.stdout
    assert not [c for c in doc["components"] if c["status"] == "CRITICAL"], res.stdout


def test_killing_one_instance_does_not_stop_the_other(machine: tuple[Machine, Path, Path]) -> None:
    m, _, _ = machine
    a, b = (f"scale-bridge@{n}.service" for n in NAMES)
    before_a, before_b = unit(m, a), unit(m, b)
    m.run(["kill", "-KILL", before_a["MainPID"]])
    m.wait_for(
        f"{a} to be restarted",
        lambda: int(unit(m, a)["NRestarts"]) > int(before_a["NRestarts"]) and unit(m, a)["ActiveState"] == "active",
        60,
    )
    after_b = unit(m, b)
    assert (after_b["ActiveState"], after_b["MainPID"], after_b["NRestarts"]) == (
        "active",
        before_b["MainPID"],
        before_b["NRestarts"],
    ), explain(m, b)


def _jobs(m: Machine, name: str) -> int:
    code = (
        "import sqlite3,sys; c=sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True);"
        "print(c.execute('select count(*) from weighings').fetchone()[0])"
    )
    return int(m.run([f"{VENV_BIN}/python", "-c", code, f"/var/lib/scale-bridge/{name}/outbox.db"]).stdout)


def test_upgrade_keeps_config_and_queue(machine: tuple[Machine, Path, Path]) -> None:
    m, _, v2 = machine
    pids = {n: unit(m, f"scale-bridge@{n}.service")["MainPID"] for n in NAMES}
    configs = {n: m.path(f"/etc/scale-bridge/{n}.toml").read_text() for n in NAMES}
    jobs = {n: _jobs(m, n) for n in NAMES}
    assert all(j >= 1 for j in jobs.values()), jobs
    res = m.run(["dpkg", "-i", f"/debs/{v2.name}"], check=False, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert m.run(["dpkg-query", "-W", "-f=${Version}", "scale-bridge"]).stdout == V2
    for n in NAMES:
        name = f"scale-bridge@{n}.service"
        m.wait_for(f"{name} active after the upgrade", lambda name=name: unit(m, name)["ActiveState"] == "active", 90)
        assert unit(m, name)["MainPID"] != pids[n], explain(m, name)  # restarted on the new program
        assert m.path(f"/etc/scale-bridge/{n}.toml").read_text() == configs[n]
        assert _jobs(m, n) == jobs[n]  # the queue (delivered history included) survived
        assert m.path(f"/etc/credstore/scale-bridge.{n}.api_key").read_text() == API_KEY
    assert "Traceback" not in m.journal("scale-bridge@reception.service", 300)


def test_remove_keeps_state_and_purge_removes_it(machine: tuple[Machine, Path, Path]) -> None:
    m, _, _ = machine
    res = m.run(["dpkg", "-r", "scale-bridge"], check=False, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    for n in NAMES:
        assert unit(m, f"scale-bridge@{n}.service")["ActiveState"] in ("inactive", "failed")
        assert m.path(f"/var/lib/scale-bridge/{n}/outbox.db").exists()
        assert m.path(f"/etc/scale-bridge/{n}.toml").exists()
    assert not m.path(f"{VENV_BIN}/scale-bridge").exists()
    assert not m.path(f"{VENV_BIN}/python").exists()
    res = m.run(["dpkg", "-P", "scale-bridge"], check=False, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    gone_paths = (
        "/var/lib/scale-bridge",
        "/etc/scale-bridge",
        "/opt/scale-bridge",
        "/etc/credstore/scale-bridge.spa.api_key",
    )
    for gone in gone_paths:
        assert not m.path(gone).exists(), gone
    res = m.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", "scale-bridge"], check=False)
    assert res.returncode != 0 or res.stdout.startswith("un"), res.stdout  # no trace left in dpkg's database
