"""L11 (issue 14): both units bound the daemon's memory and tasks, with values systemd accepts
(``systemd-analyze verify`` names an invalid limit; the check below proves it would)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SYSTEMD_DIR = Path(__file__).resolve().parents[2] / "systemd"
UNITS = ["scale-bridge.service", "scale-bridge@.service"]
analyze = shutil.which("systemd-analyze")


def _values(unit: Path, key: str) -> list[str]:
    return [ln.split("=", 1)[1].strip() for ln in unit.read_text().splitlines() if ln.startswith(key + "=")]


@pytest.mark.parametrize("name", UNITS)
def test_memory_and_tasks_are_bounded(name: str) -> None:
    unit = SYSTEMD_DIR / name
    assert _values(unit, "MemoryMax") == ["256M"]
    assert _values(unit, "TasksMax") == ["64"]


def _limit_complaints(unit_file: Path) -> list[str]:
    assert analyze is not None
    r = subprocess.run([analyze, "verify", "--man=no", str(unit_file)], capture_output=True, text=True, check=False)
    return [ln for ln in (r.stdout + r.stderr).splitlines() if "memory limit" in ln or "tasks value" in ln]


@pytest.mark.skipif(analyze is None, reason="systemd-analyze not installed (Debian package systemd)")
@pytest.mark.parametrize("name", UNITS)
def test_systemd_accepts_the_limits(tmp_path: Path, name: str) -> None:
    shipped = (SYSTEMD_DIR / name).read_text()
    copy = tmp_path / name.replace("@.", "@site.")  # a template is verified as one instance
    copy.write_text(shipped)
    assert _limit_complaints(copy) == []
    broken = tmp_path / ("broken-" + copy.name)
    broken.write_text(shipped.replace("MemoryMax=256M", "MemoryMax=256Q").replace("TasksMax=64", "TasksMax=abc"))
    assert len(_limit_complaints(broken)) == 2  # the check above would have seen a bad value
