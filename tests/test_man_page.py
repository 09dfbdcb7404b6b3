"""The manual page ``scale-bridge(1)`` the units point at (``Documentation=man:scale-bridge(1)``): it
renders with ``man -l`` without warnings, and both installers put the program's own page in man's path
(``systemd/install.sh``: /usr/local/share/man/man1; the package: /usr/share/man/man1, gzipped by
dh_compress). The installs themselves run in tests/system (test_nspawn, test_nspawn_package)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bridge.cli import command_names
from tests.helpers import REPO, run_cli


def _page(tmp_path: Path) -> Path:
    r = run_cli("man", env={"SOURCE_DATE_EPOCH": "1764547200"})
    assert r.returncode == 0, r.stderr
    page = tmp_path / "scale-bridge.1"
    page.write_bytes(r.stdout)
    return page


def test_man_renders_the_page_without_warnings(tmp_path: Path) -> None:
    if shutil.which("man") is None:
        pytest.skip("man (man-db) is not installed here")
    page = _page(tmp_path)
    r = subprocess.run(["man", "-l", str(page)], capture_output=True, check=False, timeout=60,
                       env={**os.environ, "MANWIDTH": "100", "MANPAGER": "cat", "PAGER": "cat", "LC_ALL": "C.UTF-8"})
    assert r.returncode == 0 and r.stderr == b"", r.stderr
    text = r.stdout.decode()
    assert text.startswith("SCALE-BRIDGE(1)") and "2025-12-01" in text
    for heading in ("NAME", "SYNOPSIS", "COMMANDS", "EXIT STATUS", "FILES", "SEE ALSO"):
        assert re.search(rf"^{heading}$", text, re.M), heading
    for name in command_names():
        assert re.search(rf"^   scale-bridge {name}$", text, re.M), name
    validate = text.split("   scale-bridge validate\n", 1)[1]
    assert "--json" in validate and "--no-environment" in validate


def test_groff_finds_nothing_to_warn_about(tmp_path: Path) -> None:
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed here")
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(_page(tmp_path))], capture_output=True,
                       check=False, timeout=60)
    assert r.returncode == 0 and r.stderr == b"", r.stderr


def test_both_units_name_the_page() -> None:
    for unit in ("scale-bridge.service", "scale-bridge@.service"):
        lines = (REPO / "systemd" / unit).read_text().splitlines()
        docs = [line for line in lines if line.startswith("Documentation=")]
        assert len(docs) == 1 and "man:scale-bridge(1)" in docs[0].split(), unit


def test_both_installers_write_the_programs_own_page_into_mans_path() -> None:
    script = (REPO / "systemd" / "install.sh").read_text()
    assert "MAN1=/usr/local/share/man/man1\n" in script
    assert '"$VENV/bin/scale-bridge" man >"$MAN1/scale-bridge.1.tmp"' in script
    assert 'mv "$MAN1/scale-bridge.1.tmp" "$MAN1/scale-bridge.1"' in script
    rules = (REPO / "debian" / "rules").read_text()
    assert "\t$(VENV_BUILD)/bin/scale-bridge man > $(DEST)/usr/share/man/man1/scale-bridge.1\n" in rules
