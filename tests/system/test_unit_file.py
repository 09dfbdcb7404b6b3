"""The systemd unit and sysusers file, checked with systemd's own tools (systemd 252 on Debian bookworm).

- ``systemd-analyze verify`` needs every ExecStart=/ExecReload= binary to exist, and the unit's
  dependencies to be loadable. /opt/scale-bridge/venv is not installed on a developer or CI machine, so
  the check runs with ``--root`` on a throwaway tree: the host's unit files (copied), the real
  ``/usr/bin/kill`` (copied) and an executable shim at /opt/scale-bridge/venv/bin/scale-bridge. The unit
  file itself is verified byte for byte as shipped.
- ``systemd-analyze security --offline=true --threshold=15`` (tenths): exits non-zero above 1.5; the
  overall exposure is also parsed and asserted.
- ``systemd-sysusers --root``: the user and groups the unit names are created.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEMD_DIR = REPO / "systemd"
UNIT = SYSTEMD_DIR / "scale-bridge.service"
SYSUSERS = SYSTEMD_DIR / "scale-bridge.sysusers"
MAX_EXPOSURE = 1.5

analyze = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(analyze is None, reason="systemd-analyze not installed (Debian package systemd)")


def _unit_settings() -> dict[str, list[str]]:
    """Key -> values of the unit file (all sections; comments and continuation lines are not used)."""
    out: dict[str, list[str]] = {}
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def _systemd_unit_dir() -> Path | None:
    for d in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")):
        if (d / "sysinit.target").exists():
            return d
    return None


@pytest.fixture
def verify_root(tmp_path: Path) -> Path:
    units = _systemd_unit_dir()
    kill = shutil.which("kill", path="/usr/bin:/bin")
    if units is None or kill is None:
        pytest.skip("no systemd unit directory or /usr/bin/kill on this machine")
    root = tmp_path / "root"
    (root / "usr/lib/systemd").mkdir(parents=True)
    (root / "usr/bin").mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")  # merged /usr, as on bookworm and Raspberry Pi OS
    shutil.copytree(units, root / "usr/lib/systemd/system", symlinks=True)
    shutil.copy2(kill, root / "usr/bin/kill")
    shim = root / "opt/scale-bridge/venv/bin/scale-bridge"
    shim.parent.mkdir(parents=True)
    shim.write_text("#!/bin/sh\nexit 0\n")
    shim.chmod(0o755)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy2(UNIT, root / "etc/systemd/system" / UNIT.name)
    return root


@needs_analyze
def test_verify_is_clean(verify_root: Path) -> None:
    assert analyze is not None
    # --man=no: whether man pages are installed on this machine is not a property of the unit.
    res = subprocess.run(
        [analyze, "verify", "--man=no", f"--root={verify_root}", UNIT.name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert (res.stdout + res.stderr).strip() == "", res.stdout + res.stderr


@needs_analyze
def test_verify_catches_a_missing_binary(tmp_path: Path, verify_root: Path) -> None:
    """Control: the same check fails when ExecStart's program is not there (so a pass means something)."""
    assert analyze is not None
    (verify_root / "opt/scale-bridge/venv/bin/scale-bridge").unlink()
    res = subprocess.run(
        [analyze, "verify", "--man=no", f"--root={verify_root}", UNIT.name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode != 0
    assert "/opt/scale-bridge/venv/bin/scale-bridge" in res.stdout + res.stderr


def assert_exposure_at_most_1_5(unit: Path) -> None:
    """``systemd-analyze security --offline`` on ``unit``: overall exposure <= MAX_EXPOSURE, exit 0."""
    assert analyze is not None
    res = subprocess.run(
        [analyze, "security", "--offline=true", "--threshold=15", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out = res.stdout + res.stderr
    m = re.search(rf"Overall exposure level for {re.escape(unit.name)}: (\d+(?:\.\d+)?)", out)
    assert m is not None, out
    assert float(m.group(1)) <= MAX_EXPOSURE, out
    assert res.returncode == 0, out


@needs_analyze
def test_security_exposure_at_most_1_5() -> None:
    assert_exposure_at_most_1_5(UNIT)


def test_unit_keeps_the_design_decisions() -> None:
    """DESIGN.md §5: what must not silently change in the unit."""
    s = _unit_settings()
    assert s["Type"] == ["notify"]
    assert s["NotifyAccess"] == ["main"]
    assert s["Restart"] == ["on-failure"]
    assert s.get("WatchdogSec") and s["WatchdogSec"][0] not in ("0", "infinity")
    assert s["ExecStart"] == ["/opt/scale-bridge/venv/bin/scale-bridge run --config /etc/scale-bridge/config.toml"]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert "TimeoutStopSec" in s
    # static user (DynamicUser breaks D-Bus, so BLE: systemd#22737)
    assert s["User"] == ["scale-bridge"]
    assert s.get("DynamicUser", ["no"]) == ["no"]
    assert set(" ".join(s["SupplementaryGroups"]).split()) >= {"dialout", "bluetooth"}
    # serial devices stay visible: no PrivateDevices=, a closed device policy with an allow list
    assert s.get("PrivateDevices", ["no"]) == ["no"]
    assert s["DevicePolicy"] == ["closed"]
    assert {"char-ttyUSB rw", "char-ttyACM rw"} <= set(s["DeviceAllow"])
    assert s["StateDirectory"] == ["scale-bridge"]
    assert s["ConfigurationDirectory"] == ["scale-bridge"]
    # the credential id is what bridge/config.py reads from $CREDENTIALS_DIRECTORY
    assert [v.split(":")[0] for v in s["LoadCredential"]] == ["api_key"]
    assert "AF_UNIX" in s["RestrictAddressFamilies"][0]  # system D-Bus (BlueZ), notify socket


def test_config_reads_the_credential_the_unit_passes(tmp_path: Path) -> None:
    from bridge.config import resolve_api_key

    text = UNIT.read_text()
    cred_id = re.search(r"^LoadCredential=([^:\s]+)", text, re.M)
    assert cred_id is not None
    (tmp_path / cred_id.group(1)).write_text("key-from-credential\n")
    cfg = _minimal_config()
    assert resolve_api_key(cfg, {"CREDENTIALS_DIRECTORY": str(tmp_path)}) == "key-from-credential"


def _minimal_config():  # type: ignore[no-untyped-def]
    import msgspec

    from bridge.config import Config

    return msgspec.convert(
        {"platform": {"base_url": "http://127.0.0.1:1"}, "scale": {"driver": "tanita"}}, Config, strict=True
    )


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="systemd-sysusers not installed")
def test_sysusers_creates_the_user_and_groups(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for name in ("passwd", "group"):
        (root / "etc" / name).write_text("root:x:0:0:root:/root:/bin/sh\n" if name == "passwd" else "root:x:0:\n")
    res = subprocess.run(
        ["systemd-sysusers", f"--root={root}", "-"],
        input=SYSUSERS.read_text(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    passwd = {line.split(":")[0]: line.split(":") for line in (root / "etc/passwd").read_text().splitlines()}
    groups = {line.split(":")[0] for line in (root / "etc/group").read_text().splitlines()}
    user = passwd["scale-bridge"]
    assert int(user[2]) < 1000  # a system user
    assert user[5] == "/var/lib/scale-bridge"
    assert user[6].endswith("nologin")
    assert {"scale-bridge", "dialout", "bluetooth"} <= groups


@pytest.mark.skipif(shutil.which("sh") is None, reason="no sh")
def test_install_script_parses() -> None:
    res = subprocess.run(["sh", "-n", str(SYSTEMD_DIR / "install.sh")], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    if shutil.which("shellcheck"):
        res = subprocess.run(
            ["shellcheck", str(SYSTEMD_DIR / "install.sh")], capture_output=True, text=True, check=False
        )
        assert res.returncode == 0, res.stdout


# ---- the template unit (several scales per box, DESIGN.md §5) ---------------------------------------------

TEMPLATE = SYSTEMD_DIR / "scale-bridge@.service"


def _settings(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


@needs_analyze
def test_template_security_exposure_at_most_1_5(tmp_path: Path) -> None:
    """Analysed as an instance (what systemd runs), scale-bridge@reception.service."""
    inst = tmp_path / "scale-bridge@reception.service"
    shutil.copy2(TEMPLATE, inst)
    assert_exposure_at_most_1_5(inst)


@needs_analyze
def test_template_instance_verifies(verify_root: Path) -> None:
    assert analyze is not None
    shutil.copy2(TEMPLATE, verify_root / "etc/systemd/system" / TEMPLATE.name)
    res = subprocess.run(
        [analyze, "verify", "--man=no", f"--root={verify_root}", "scale-bridge@reception.service"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert (res.stdout + res.stderr).strip() == "", res.stdout + res.stderr


def test_template_is_the_plain_unit_with_per_instance_paths() -> None:
    """The same sandbox as the plain unit; only the per-scale settings differ, and they carry %i."""
    plain, tpl = _unit_settings(), _settings(TEMPLATE)
    per_instance = {"Description", "ExecStart", "StateDirectory", "LoadCredential", "ConditionPathExists"}
    assert {k: v for k, v in plain.items() if k not in per_instance} == {
        k: v for k, v in tpl.items() if k not in per_instance
    }
    assert tpl["ExecStart"] == ["/opt/scale-bridge/venv/bin/scale-bridge run --config /etc/scale-bridge/%i.toml"]
    assert tpl["StateDirectory"] == ["scale-bridge/%i"]
    assert tpl["LoadCredential"] == ["api_key:scale-bridge.%i.api_key"]  # the id bridge/config.py reads
    # never started without its config (the package's postinst relies on it too)
    assert tpl["ConditionPathExists"] == ["/etc/scale-bridge/%i.toml"]
    assert plain["ConditionPathExists"] == ["/etc/scale-bridge/config.toml"]


@pytest.mark.parametrize("unit", ["scale-bridge.service", "scale-bridge@.service"])
def test_the_daemons_stop_deadline_is_below_timeout_stop_sec(unit: str) -> None:
    """One shutdown deadline (architecture review D8): the daemon's own, from the unit, ends a few
    seconds before systemd would SIGKILL it."""
    from bridge.runtime.shutdown import STOP_TIMEOUT_ENV, stop_timeout_s

    text = (SYSTEMD_DIR / unit).read_text(encoding="utf-8")
    stop_sec = re.search(r"^TimeoutStopSec=(\d+)s$", text, re.M)
    env = dict(m.groups() for m in re.finditer(r"^Environment=.*?\b(" + STOP_TIMEOUT_ENV + r")=(\S+)", text, re.M))
    assert stop_sec is not None and STOP_TIMEOUT_ENV in env
    deadline_s = stop_timeout_s({STOP_TIMEOUT_ENV: env[STOP_TIMEOUT_ENV]})
    assert 3 <= int(stop_sec.group(1)) - deadline_s <= 10
