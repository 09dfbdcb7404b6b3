"""replay as support uses it (issue 13 theme 7; installer-audit S2, S6): the demo-style journey in
every mode, "would upload" without --upload, --simulator --seed with the site's (pseudonymous)
members, a confirmation before uploading to a real platform, and a site's config without its live
parts. Real CLI subprocesses, the real simulator on 127.0.0.1."""

from __future__ import annotations

import json
import os
import pty
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.commands.demo import demo_capture_path
from tests.fakes.serial_fakes import tanita_line
from tests.helpers import REPO, run_cli

PSEUDONYM = "7304185529"  # what `record --redact` made of the member's card


def capture(tmp_path: Path) -> Path:
    header = {
        "format": "scale-bridge-capture",
        "version": 1,
        "driver": "tanita",
        "link": "serial",
        "started_at": "2026-11-22T09:00:00+00:00",
    }
    events = [
        {"t": 0.0, "kind": "card", "value": PSEUDONYM},
        {"t": 10.0, "kind": "rx", "hex": tanita_line(weight_kg=77.7).hex()},
    ]
    path = tmp_path / "site.capture.jsonl"
    path.write_text("\n".join(json.dumps(d) for d in [header, *events]) + "\n", encoding="utf-8")
    return path


SEED = f"""
tenant = "site"
[[studios]]
id = 7
name = "Site studio"
api_key = "site-pseudonymous-key"
[[benefits]]
key = "BODY_SCAN"
uses_per_month = 5
[[customers]]
id = 4242
studio = 7
first_name = "Pseudo"
last_name = "Nym"
gender = "FEMALE"
date_of_birth = "1980-01-01"
height_cm = 170.0
cards = ["{PSEUDONYM}"]
benefits = ["BODY_SCAN"]
"""


def test_without_upload_each_journey_says_would_upload(tmp_path: Path) -> None:
    r = run_cli("replay", "--quiet", str(demo_capture_path()), timeout=120)
    out, err = r.stdout.decode(), r.stderr.decode()
    assert r.returncode == 0, out + err
    blocks = [b for b in out.strip().split("\n\n") if b]
    assert len(blocks) == 4 and blocks[0].startswith("weighing #1  84.3 kg on MC-780")
    assert sum("would upload" in b for b in blocks) == 3
    assert "unidentified" in blocks[3] and "pending" not in out
    assert "3 would upload" in err and "pending" not in err


def test_json_keeps_one_document_per_weighing() -> None:
    r = run_cli("replay", "--quiet", "--json", str(demo_capture_path()), timeout=120)
    docs = [json.loads(line) for line in r.stdout.decode().splitlines()]
    assert [d.get("would_upload", False) for d in docs] == [True, True, True, False]


def test_simulator_seeded_with_the_sites_members(tmp_path: Path) -> None:
    seed = tmp_path / "seed.toml"
    seed.write_text(SEED, encoding="utf-8")
    r = run_cli("replay", "--quiet", "--simulator", "--seed", str(seed), str(capture(tmp_path)), timeout=120)
    out, err = r.stdout.decode(), r.stderr.decode()
    assert r.returncode == 0, out + err
    assert "weighing #1  77.7 kg on MC-780" in out
    assert "member    4242" in out
    assert "benefit   BODY_SCAN valid" in out
    assert "posted    HTTP 200 from the simulator: customer 4242 (home studio 7) via studio 7" in out
    assert "1 delivered" in err


def test_simulator_without_the_seed_does_not_know_the_member(tmp_path: Path) -> None:
    r = run_cli("replay", "--quiet", "--simulator", str(capture(tmp_path)), timeout=120)
    assert "member    4242" not in r.stdout.decode() and "0 delivered" in r.stderr.decode()


@pytest.mark.parametrize(
    ("content", "code", "text"),
    [(None, 66, "no such file"), ("not = [toml", 65, "not a simulator seed")],
)
def test_a_bad_seed_is_one_line(tmp_path: Path, content: str | None, code: int, text: str) -> None:
    seed = tmp_path / "seed.toml"
    if content is not None:
        seed.write_text(content)
    r = run_cli("replay", "--simulator", "--seed", str(seed), str(capture(tmp_path)), timeout=60)
    assert r.returncode == code and text in r.stderr.decode() and b"Traceback" not in r.stderr


def test_seed_needs_the_simulator(tmp_path: Path) -> None:
    r = run_cli("replay", "--seed", "x.toml", str(capture(tmp_path)), timeout=60)
    assert r.returncode == 64 and "--simulator" in r.stderr.decode()


# ---------------------------------------------------------------------------- --upload to a real platform


@pytest.fixture
def site(tmp_path: Path, simulator: Any) -> Iterator[tuple[Path, Any]]:
    """A site config whose platform is a real HTTP server (the simulator standing in for production:
    replay is not told it is one), with a live card socket, a metrics port and a state dir."""
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    cfg = tmp_path / "site.toml"
    cfg.write_text(
        f'[platform]\nbase_url = "{simulator.url}"\napi_key = "{simulator.api_key(1)}"\nbenefit_key = "BODY_SCAN"\n'
        f'[scale]\ndriver = "tanita"\nport = "/dev/ttyUSB0"\nrecord_dir = "{tmp_path / "flight"}"\n'
        f'[cards]\nsource = "socket"\ndevice = "{tmp_path / "cards.sock"}"\n'
        f'[metrics]\nlisten = "127.0.0.1:{port}"\n'
        f'[state]\ndir = "{tmp_path / "site-state"}"\n',
        encoding="utf-8",
    )
    try:
        yield cfg, simulator
    finally:
        busy.close()


def posted(sim: Any) -> int:
    return int(sim.call(lambda: len(sim.state.weighings)))


def test_upload_without_a_terminal_and_without_yes_refuses(tmp_path: Path, site: tuple[Path, Any]) -> None:
    cfg, sim = site
    r = run_cli("replay", "--quiet", "--config", str(cfg), "--upload", str(demo_capture_path()), timeout=60)
    err = r.stderr.decode()
    assert r.returncode == 64, err
    assert "Refusing without a terminal" in err and "--yes" in err and sim.url in err
    assert posted(sim) == 0


def test_upload_asks_on_a_terminal_and_no_means_nothing_is_sent(tmp_path: Path, site: tuple[Path, Any]) -> None:
    cfg, sim = site
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bridge",
                "replay",
                "--quiet",
                "--config",
                str(cfg),
                "--upload",
                str(demo_capture_path()),
            ],
            cwd=REPO,
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        os.write(master, b"no\n")
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode == 64, err
    assert b"Type yes" in err and b"not confirmed; nothing was sent" in err
    assert posted(sim) == 0


def test_upload_with_yes_posts_and_leaves_the_sites_live_parts_alone(tmp_path: Path, site: tuple[Path, Any]) -> None:
    cfg, sim = site
    r = run_cli("replay", "--quiet", "--config", str(cfg), "--upload", "--yes", str(demo_capture_path()), timeout=120)
    out, err = r.stdout.decode(), r.stderr.decode()
    assert r.returncode == 0, out + err
    assert posted(sim) == 3 and "posted    HTTP 200 from the platform" in out
    assert not (tmp_path / "cards.sock").exists()  # the site's card source was never opened
    assert "metrics" not in err  # its (busy) metrics port was never tried
    assert not (tmp_path / "site-state").exists()  # nor its state dir used
    assert not (tmp_path / "flight").exists()  # nor its flight recorder


def test_state_dir_held_by_a_daemon_is_refused(tmp_path: Path) -> None:
    from bridge.statelock import acquire

    state = tmp_path / "state"
    state.mkdir()
    with acquire(state):
        r = run_cli("replay", "--quiet", "--state-dir", str(state), str(demo_capture_path()), timeout=60)
    assert r.returncode == 75, r.stderr
    assert str(os.getpid()) in r.stderr.decode()
