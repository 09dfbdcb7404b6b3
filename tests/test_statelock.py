"""One scale-bridge per state dir (installer audit I2): bridge.statelock and `run` exiting 75 beside a
holder; a missing optional package and an unusable state dir exit 78 from `run` (I1, I3, M5)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bridge import statelock
from bridge.errors import EX_TEMPFAIL
from tests.helpers import REPO, run_cli, write_config

HOLD = textwrap.dedent(
    """
    import sys
    from bridge import statelock
    lock = statelock.acquire(sys.argv[1])
    print("held", flush=True)
    sys.stdin.read()
    """
)


def _holder_process(state: Path) -> subprocess.Popen[str]:
    p = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(state)], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "held"
    return p


def test_second_holder_is_told_the_pid_and_how_to_stop_it(tmp_path: Path) -> None:
    p = _holder_process(tmp_path)
    try:
        with pytest.raises(statelock.StateDirInUse) as exc:
            statelock.acquire(tmp_path)
        assert exc.value.pid == p.pid
        assert exc.value.exit_code == EX_TEMPFAIL == 75
        assert str(exc.value) == (
            f"another scale-bridge (pid {p.pid}) is using {tmp_path}; stop it first (systemctl stop scale-bridge)"
        )
        assert statelock.holder(tmp_path) == p.pid
    finally:
        p.communicate("")
    # the kernel dropped the lock with the process: free again, and the stale pid file is no obstacle
    assert statelock.holder(tmp_path) is None
    with statelock.acquire(tmp_path):
        assert statelock.holder(tmp_path) == os.getpid()
    assert statelock.holder(tmp_path) is None


def test_killed_holder_leaves_no_lock(tmp_path: Path) -> None:
    p = _holder_process(tmp_path)
    p.kill()
    p.communicate()  # waits, and closes our ends of its pipes
    with statelock.acquire(tmp_path):
        pass


def test_reentrant_within_one_process(tmp_path: Path) -> None:
    outer = statelock.acquire(tmp_path)
    inner = statelock.acquire(tmp_path)
    inner.release()
    assert statelock.holder(tmp_path) == os.getpid()
    outer.release()
    assert statelock.holder(tmp_path) is None


def _run_config(tmp_path: Path, **extra: dict[str, object]) -> Path:
    cap = tmp_path / "empty.capture.jsonl"
    cap.write_text('{"format":"scale-bridge-capture","version":1,"driver":"tanita","link":"serial"}\n')
    sections: dict[str, dict[str, object]] = {
        "platform": {"base_url": "http://127.0.0.1:9", "api_key": "sk_test_0123456789"},
        "scale": {"driver": "tanita", "capture": str(cap)},
        "state": {"dir": str(tmp_path / "state")},
        "log": {"format": "json"},
    }
    for k, v in extra.items():
        sections.setdefault(k, {}).update(v)
    return write_config(tmp_path / "run.toml", sections)


def test_second_run_on_a_held_state_dir_exits_75(tmp_path: Path) -> None:
    cfg = _run_config(tmp_path)
    (tmp_path / "state").mkdir()
    p = _holder_process(tmp_path / "state")
    try:
        r = run_cli("run", "-c", str(cfg), timeout=60)
    finally:
        p.communicate("")
    assert r.returncode == 75, r.stderr
    assert f"another scale-bridge (pid {p.pid}) is using {tmp_path / 'state'}".encode() in r.stderr
    assert b"Traceback" not in r.stderr


BLOCK = 'import sys\nclass _B:\n    def find_spec(self, name, path=None, target=None):\n' \
    '        if name.split(".")[0] in ("evdev", "prometheus_client"):\n            raise ModuleNotFoundError(name)\n' \
    'sys.meta_path.insert(0, _B())\n'


def test_run_without_an_optional_package_exits_78_with_the_venv_install_command(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCK)  # this interpreter "has no" evdev / prometheus-client
    dev = tmp_path / "event-kbd"
    dev.write_bytes(b"")
    cfg = _run_config(tmp_path, cards={"source": "evdev", "device": str(dev)}, metrics={"listen": "127.0.0.1:9464"})
    env = {"PYTHONPATH": f"{site}{os.pathsep}{REPO}"}
    r = run_cli("run", "-c", str(cfg), env=env, timeout=60)
    err = r.stderr.decode()
    assert r.returncode == 78, err
    pip = f"{sys.prefix}/bin/pip install 'evdev>=1.7'"
    assert f'cards.source: "evdev" needs python-evdev, not installed: {pip}' in err
    assert "metrics.listen: needs prometheus-client" in err
    r = run_cli("validate", "-c", str(cfg), env=env, timeout=60)
    assert r.returncode == 78 and "python-evdev" in r.stderr.decode()


@pytest.mark.parametrize("kind", ["file", "dev-null"])
def test_run_with_an_unusable_state_dir_exits_78_naming_the_key(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "afile" if kind == "file" else Path("/dev/null")
    if kind == "file":
        target.write_text("")
    cfg = _run_config(tmp_path, state={"dir": str(target)})
    started = time.monotonic()
    r = run_cli("run", "-c", str(cfg), timeout=60)
    assert r.returncode == 78, r.stderr
    assert f"state.dir: {target} exists and is not a directory".encode() in r.stderr
    assert b"Traceback" not in r.stderr
    assert time.monotonic() - started < 60
