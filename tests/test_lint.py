"""The style bar is part of the suite: ruff clean everywhere, mypy strict on drivers/ (and the
configured checks on bridge/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO

BIN = Path(sys.executable).parent


def test_ruff_clean() -> None:
    r = subprocess.run(
        [str(BIN / "ruff"), "check", "bridge", "drivers", "tests", "bench"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stdout[-4000:]


def test_mypy_clean() -> None:
    r = subprocess.run([str(BIN / "mypy")], cwd=REPO, capture_output=True, text=True, check=False, timeout=600)
    assert r.returncode == 0, r.stdout[-4000:]
