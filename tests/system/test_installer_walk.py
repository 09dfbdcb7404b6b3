"""The scripted installer walk (issue 13 "Done means"): what a new installer does, as a test.

A fresh ``git clone`` of the checkout; ``make install`` of that clone into a booted Debian container
(systemd-nspawn, tests/system/machine.py): the exact command ``make -n install`` prints, run inside it,
offline from wheels built on the host, with ``--with cards``; a config with an evdev card reader;
``validate``; ``run`` (the shipped unit, started by systemd); a second ``run`` (must exit 75 and name
the running daemon's pid); ``check``.

The card reader: this machine (and the container) has no /dev/uinput, so no real input device can
be made. The reader is a regular file at the configured path: ``validate`` sees it exist and be
readable, python-evdev (installed by ``--with cards``) opens it and gets ENOTTY at its first ioctl,
and the card source reports it disconnected and retries, as it does for a reader that is unplugged.
What this walk proves is the installation and the daemon's lifecycle with an evdev config; the
decoding of key events is tests/integration/test_card_sources.py's.

Marked ``nspawn`` (skipped without root, systemd-nspawn, debootstrap). About 35 s with the caches of
machine.py warm (the root file system and dependency wheels); building them first takes minutes.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .machine import (
    REPO,
    Machine,
    _pip_wheel,
    ensure_rootfs,
    ensure_wheels,
    install_simulator,
    missing_requirements,
)

# a real clone and `make install` in the container (in the default suite since it runs on two workers)
pytestmark = [pytest.mark.nspawn, pytest.mark.timeout(1800)]

UNIT = "scale-bridge.service"
PREFIX = "/opt/scale-bridge"
BIN = f"{PREFIX}/venv/bin/scale-bridge"
STATE = "/var/lib/scale-bridge"
SIM_PORT = 8080
API_KEY = "sim-key-studio-a"
READER = "/etc/scale-bridge/card-reader-event-kbd"
CONFIG = f"""[platform]
base_url = "http://127.0.0.1:{SIM_PORT}"
benefit_key = "BODY_SCAN"

[scale]
driver = "tanita"
capture = "/etc/scale-bridge/capture.jsonl"

[cards]
source = "evdev"
device = "{READER}"
format = "decimal"

[state]
dir = "{STATE}"

[log]
format = "json"
"""
#: docs/install.md: an evdev reader needs the group input and the device class in a drop-in
DROPIN = """[Service]
SupplementaryGroups=input
DeviceAllow=char-input r
"""


def make_install_command(clone: Path, flags: str) -> list[str]:
    """What ``make install`` runs in the clone (``make -n``: printed, not run), to run in the container."""
    res = subprocess.run(
        ["make", "-n", "-C", str(clone), "install", f"PREFIX={PREFIX}", f"INSTALL_FLAGS={flags}"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    lines = [line for line in res.stdout.splitlines() if line.strip() and not line.startswith("make")]
    assert len(lines) == 1 and lines[0].startswith("systemd/install.sh"), res.stdout
    return shlex.split(lines[0])


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Machine, Path]]:
    why = missing_requirements()
    if why:
        pytest.skip(why)
    work = tmp_path_factory.mktemp("walk")
    clone = work / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone)], check=True, timeout=300)
    rootfs, _ = ensure_rootfs(work / "debootstrap.log")
    deps, _own = ensure_wheels(work, work / "pip-wheel.log")
    own = work / "own-clone"
    own.mkdir()
    _pip_wheel(["--no-deps", "--wheel-dir", str(own), str(clone)], work / "pip-wheel.log")
    extra = work / "extra"
    extra.mkdir()
    _pip_wheel(["--wheel-dir", str(extra), "evdev>=1.7"], work / "pip-wheel.log")  # the [cards] extra
    m = Machine(rootfs, work, {clone: "/src", deps: "/wheels/deps", own: "/wheels/own", extra: "/wheels/extra"})
    try:
        m.boot()
        yield m, clone
    finally:
        m.shutdown()


def test_the_installer_walk(walk: tuple[Machine, Path]) -> None:
    m, clone = walk
    # 1. make install (offline, with the optional part the evdev reader needs)
    flags = "--wheelhouse /wheels/deps --wheelhouse /wheels/own --wheelhouse /wheels/extra --with cards"
    cmd = make_install_command(clone, flags)
    m.run(["sh", "-c", "cd /src && " + shlex.join(cmd)], timeout=900)
    assert m.path(BIN).exists()
    assert m.run([f"{PREFIX}/venv/bin/python", "-c", "import evdev"], check=False).returncode == 0

    # 2. the site's config, key and reader, the drop-in docs/install.md asks for
    m.write("/etc/scale-bridge/capture.jsonl", (clone / "bridge/data/demo-tanita.capture.jsonl").read_text())
    m.write(READER, "")
    m.write("/etc/scale-bridge/config.toml", CONFIG, 0o640)
    m.run(["chgrp", "scale-bridge", "/etc/scale-bridge/config.toml"])
    m.write("/etc/credstore/scale-bridge.api_key", API_KEY, 0o600)
    if m.run(["getent", "group", "input"], check=False).returncode != 0:
        m.run(["groupadd", "--system", "input"])  # udev's group; this minimal container has no udev
    m.write(f"/etc/systemd/system/{UNIT}.d/50-cards.conf", DROPIN)
    m.run(["systemctl", "daemon-reload"])
    install_simulator(m, SIM_PORT)

    # 3. validate (as the installer: root, with the key where the unit will find it)
    cred = "/run/walk-cred"
    m.write(f"{cred}/api_key", API_KEY, 0o600)
    env = ["env", f"CREDENTIALS_DIRECTORY={cred}"]
    v = m.run([*env, BIN, "validate", "-c", "/etc/scale-bridge/config.toml"], check=False, timeout=120)
    assert v.returncode == 0, v.stdout + v.stderr
    assert "evdev" in v.stdout + v.stderr and "Traceback" not in v.stderr

    # 4. run: the shipped unit, started by systemd (Type=notify: active only after READY=1)
    m.run(["systemctl", "start", UNIT], timeout=120)
    show = m.show(UNIT, "ActiveState", "MainPID", "NRestarts")
    assert show["ActiveState"] == "active", show
    pid = show["MainPID"]
    status_path = m.path(f"{STATE}/status.json")
    m.wait_for("the daemon's status file", status_path.exists, 60)
    m.wait_for(
        "the card reader link in the status",
        lambda: "cards:evdev" in json.loads(status_path.read_text()).get("links", {}),
        60,
    )

    # 5. a second run on the same state dir: refused, naming the holder
    second = m.run([*env, BIN, "run", "-c", "/etc/scale-bridge/config.toml"], check=False, timeout=120)
    assert second.returncode == 75, second.stdout + second.stderr
    assert pid in second.stderr and "Traceback" not in second.stderr
    assert m.show(UNIT, "MainPID")["MainPID"] == pid  # the daemon was not disturbed

    # 6. check (the Nagios plugin) answers about the running daemon
    chk = m.run([*env, BIN, "check", "--json", "-c", "/etc/scale-bridge/config.toml"], check=False, timeout=120)
    assert chk.returncode in (0, 1, 2), chk.stdout + chk.stderr  # OK / WARNING / CRITICAL, never UNKNOWN
    doc = json.loads(chk.stdout)
    assert doc["code"] == chk.returncode and doc["components"], doc
    assert "Traceback" not in chk.stderr
    final = m.show(UNIT, "ActiveState", "NRestarts")
    assert final == {"ActiveState": "active", "NRestarts": "0"}, f"{final}\n{m.journal(UNIT, 60)}"
