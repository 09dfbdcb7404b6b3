"""L3 (issue 14): ``record`` creates its output itself - a new file with O_EXCL, an existing one never
through a symbolic link (O_NOFOLLOW) - and at most 0640 (captures can hold card numbers). A link
(dangling or not) is refused with exit 64 and nothing is written where it points. Devices (/dev/null,
/dev/stdout) still work. The real CLI in a subprocess; the port is a closed 127.0.0.1 socket."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO

PORT = "socket://127.0.0.1:9"


def record(out: str | Path, *extra: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", "record", "--port", PORT, "--driver", "tanita", str(out), "--seconds", "0.2",
         *extra],
        cwd=REPO, capture_output=True, timeout=60, check=False, umask=0o022,
    )


def test_a_new_capture_is_created_0640(tmp_path: Path) -> None:
    out = tmp_path / "new.jsonl"
    r = record(out)
    assert r.returncode == 0, r.stderr
    assert out.read_text().startswith('{"format":"scale-bridge-capture"') or "scale-bridge-capture" in out.read_text()
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


def test_a_dangling_symlink_is_not_followed(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.symlink_to(tmp_path / "newtarget")
    r = record(out)
    assert r.returncode == 64 and b"symbolic link" in r.stderr and b"Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "newtarget").exists()


def test_a_symlink_to_a_file_is_refused_even_with_force(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    for target, extra in ((victim, ["--force"]), (empty, [])):
        out = tmp_path / f"to-{target.name}.jsonl"
        out.symlink_to(target)
        r = record(out, *extra)
        assert r.returncode == 64 and b"symbolic link" in r.stderr, r.stderr
    assert victim.read_text() == "keep me\n" and empty.read_text() == ""


def test_force_overwrites_a_regular_file_and_devices_still_work(tmp_path: Path) -> None:
    out = tmp_path / "old.jsonl"
    out.write_text("old\n")
    r = record(out, "--force")
    assert r.returncode == 0, r.stderr
    assert "scale-bridge-capture" in out.read_text() and "old" not in out.read_text()
    assert record("/dev/null").returncode == 0
    r = record("/dev/stdout")  # a link to the pipe subprocess gave us: not a file to clobber
    assert r.returncode == 0 and b"scale-bridge-capture" in r.stdout, r.stderr
