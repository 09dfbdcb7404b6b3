"""The daemon's output going away must not kill it, hang it, or make it exit "successfully".

Found by hand (operability review, session 4): a ``run`` whose stdout/stderr pipe was closed
ignored SIGTERM (the signal handler logged before it asked the daemon to stop, and the log write raised
BrokenPipeError); closed before start-up, the same daemon exited 0 (BrokenPipeError is "a reader
went away" for the CLI), which ``Restart=on-failure`` does not restart; ``replay --json | head -1``
never ended (the reader's hook raised inside the daemon, the link task died, nothing noticed). Each
test below failed before its fix.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bridge.config import config_from_dict
from bridge.daemon import Daemon
from bridge.errors import EX_SOFTWARE
from bridge.logs import configure
from tests.fakes.serial_fakes import tanita_line
from tests.helpers import REPO, exited, wait_for, write_config


def _capture(path: Path, times_s: list[float]) -> Path:
    head = {"format": "scale-bridge-capture", "version": 1, "driver": "tanita", "link": "serial"}
    card = "3220338716".zfill(16)
    events = [{"t": t, "kind": "rx", "hex": tanita_line(card, 70.0 + i).hex()} for i, t in enumerate(times_s)]
    path.write_text("\n".join(json.dumps(doc) for doc in [head, *events]) + "\n")
    return path


def _sections(tmp_path: Path, capture: Path, url: str, key: str, **scale: Any) -> dict[str, dict[str, Any]]:
    return {
        "platform": {"base_url": url, "api_key": key, "benefit_key": "BODY_SCAN"},
        "scale": {"driver": "tanita", "capture": str(capture), **scale},
        "state": {"dir": str(tmp_path / "state")},
        "log": {"format": "json"},
    }


def _captured(state: Path) -> int:
    try:
        doc = json.loads((state / "status.json").read_text())
    except (OSError, ValueError):
        return 0
    return int((doc.get("intake") or {}).get("weighings_captured", 0))


def test_the_daemon_outlives_its_log_pipe_and_still_stops_on_sigterm(tmp_path: Path, simulator: Any) -> None:
    capture = _capture(tmp_path / "c.jsonl", [1.0, 2.0, 3.0])
    cfg = write_config(
        tmp_path / "config.toml",
        _sections(tmp_path, capture, simulator.url, simulator.api_key(1), replay_realtime=True),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", "run", "--config", str(cfg)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # the journal (or a terminal) gone before the daemon has even started
        proc.stderr.close()
        state = tmp_path / "state"
        # it goes on with its work, logging into the void: three weighings, each one logged
        wait_for(lambda: _captured(state) >= 3, "three weighings captured with nowhere to log", alive=exited(proc))
        wait_for(lambda: simulator.call(lambda: len(simulator.state.weighings)) >= 3, "three weighings posted",
                 alive=exited(proc))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0  # a guard against the hang, not a timing
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_replay_json_read_by_head_ends_when_the_reader_goes(tmp_path: Path) -> None:
    capture = _capture(tmp_path / "c.jsonl", [float(i) for i in range(40)])
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", "replay", "--json", str(capture)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())  # `| head -1`
        assert first["weight"] == pytest.approx(70.0)
        proc.stdout.close()
        assert proc.wait(timeout=60) == 0  # the reader went away: quietly done, as `head` expects
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_a_part_that_crashes_stops_the_daemon_with_70(tmp_path: Path) -> None:
    configure("critical", "json")
    capture = _capture(tmp_path / "c.jsonl", [0.0, 1.0])
    cfg = config_from_dict(_sections(tmp_path, capture, "http://127.0.0.1:9", "abcdefgh-key"))

    def broken_hook(cap: Any, wid: int) -> None:
        raise RuntimeError("a bug in a part")

    daemon = Daemon(cfg, upload=False, exit_when_replayed=True, on_captured=broken_hook)

    async def run() -> int:
        return await asyncio.wait_for(daemon.run(), timeout=60)  # a guard against the hang

    assert asyncio.run(run()) == EX_SOFTWARE


def test_the_log_sink_drops_lines_once_its_reader_is_gone() -> None:
    import os

    from bridge.logs import LogSink

    read_fd, write_fd = os.pipe()
    stream = os.fdopen(write_fd, "w")
    sink = LogSink(stream)
    sink.write("first line\n")
    sink.flush()
    assert os.read(read_fd, 100) == b"first line\n"
    os.close(read_fd)  # the journal, the terminal, `head`: gone
    sink.write("nobody reads this\n")
    sink.flush()  # no BrokenPipeError, now or at exit
    assert sink.reader_gone
    assert os.readlink(f"/proc/self/fd/{write_fd}") == "/dev/null"
    sink.write("nor this\n")
    sink.flush()
    stream.close()
