"""InBody via LookinBody Web, against a fake LookinBody Web (a real HTTP server on 127.0.0.1,
tests/fakes/fake_lookinbody.py) and the platform simulator:

- the link's requests (headers, bodies, both key styles) and the events it yields;
- slow, 500, garbage, HTML and redirecting answers lose nothing and crash nothing;
- the daemon as a subprocess carries one InBody test through pairing and the outbox to a posted
  weighing with the benefit key; a SIGKILL and a restart (which lists and fetches the test again)
  and overlapping listings (the same test twice, in both time formats) never post it twice;
- the data-access add-on missing (401 on data endpoints): ``check`` CRITICAL with what to do,
  ``validate`` exit 69; ``record --redact`` captures what the API returned without member data.

Waits are for conditions with a deadline (failure guards, not timed assertions)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # for tests.fakes

from bridge.simulator import SimulatorThread
from drivers import DeviceReport, Reading
from drivers import inbody as ib
from drivers.capture import read_capture
from drivers.events import EventKind, LinkEvent
from drivers.links.lookinbody import LookinBodyLink, LookinBodySettings
from tests.fakes.fake_lookinbody import FakeLookinBody, FakeTest, sample_values
from tests.helpers import exited, wait_for

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
CARD_A = "3220338716"  # customer 1001, studio A, BODY_SCAN (bridge/simulator/seed.toml)
LAUNCH = (
    "import ctypes, runpy, signal, sys; ctypes.CDLL(None).prctl(1, signal.SIGKILL); "
    "sys.argv = ['bridge', *sys.argv[1:]]; runpy.run_module('bridge', run_name='__main__')"
)


def today_utc(hhmmss: str = "103000") -> str:
    """A test time on the current UTC day (the listings use lookback_days = 1, so a run across
    midnight still finds it)."""
    return datetime.now(UTC).strftime("%Y%m%d") + hhmmss


@pytest.fixture
def fake() -> Iterator[FakeLookinBody]:
    with FakeLookinBody() as f:
        yield f


def settings_for(fake: FakeLookinBody, **kw: Any) -> LookinBodySettings:
    base: dict[str, Any] = {
        "account": fake.state.account,
        "api_key": fake.state.api_key,
        "base_url": fake.url,
        "poll_interval_s": 0.2,
        "time_zone": "UTC",
        "pace_s": 0.0,
        "backoff_base_s": 0.05,
        "backoff_cap_s": 0.2,
        "timeout_s": 0.5,
        "connect_timeout_s": 0.5,
    }
    return LookinBodySettings(**{**base, **kw})


async def collect(
    link: LookinBodyLink, until: Callable[[list[LinkEvent]], bool], guard_s: float = 30
) -> list[LinkEvent]:
    got: list[LinkEvent] = []

    async def pump() -> None:
        async for ev in link.events():
            got.append(ev)
            if until(got):
                await link.close()

    await asyncio.wait_for(pump(), guard_s)
    return got


def decoded(events: list[LinkEvent]) -> list[Any]:
    return [ib.parse(e.payload) for e in events]


def readings(events: list[LinkEvent]) -> list[Reading]:
    return [r for r in decoded(events) if isinstance(r, Reading)]


# ------------------------------------------------------------------------------- the link


def test_link_lists_fetches_and_yields_one_reading(fake: FakeLookinBody) -> None:
    fake.call(lambda: fake.state.tests.append(FakeTest(CARD_A, "5550102000", today_utc(), sample_values())))
    states: list[str] = []
    link = LookinBodyLink(settings_for(fake), scale="inbody", on_state=lambda s, d: states.append(s))
    events = asyncio.run(collect(link, lambda got: any(r for r in readings(got))))
    assert all(e.kind is EventKind.HTTP and e.scale == "inbody" for e in events)
    (r,) = readings(events)
    assert r.device_id == CARD_A and r.measurement.weight_kg == 80.5 and r.measurement.skeletal_muscle_mass_kg == 36.2
    reqs = fake.call(lambda: list(fake.state.requests))
    assert {p for p, _, _ in reqs} >= {ib.ENDPOINT_TODAY, ib.ENDPOINT_FULL_BY_ID}
    for _, headers, _ in reqs:
        assert headers["Account"] == "fakegym" and headers["API-KEY"] == "fake-lookinbody-key-123"
    fetch = next(b for p, _, b in reqs if p == ib.ENDPOINT_FULL_BY_ID)
    assert fetch == {"UserID": CARD_A, "Datetimes": today_utc()}
    assert "connected" in states and states[-1] == "closed"


def test_abbreviated_answer_when_full_has_no_weight_and_iso_listing(fake: FakeLookinBody) -> None:
    def setup() -> None:
        fake.state.tests.append(
            FakeTest("", "5550102000", today_utc(), sample_values(), time_format="iso", numbers_as_text=True)
        )

    fake.call(setup)
    fake.call(lambda: fake.state.faults.extend(["", "html"]))  # listing fine, the full answer is not JSON
    link = LookinBodyLink(settings_for(fake, identify_by=ib.IdentifyBy.PHONE, lookback_days=0))
    events = asyncio.run(collect(link, lambda got: bool(readings(got))))
    (r,) = readings(events)
    assert r.device_id == "5550102000" and r.measurement.weight_kg == 80.5  # by usertoken, abbreviated keys
    paths = [p for p, _, _ in fake.call(lambda: list(fake.state.requests))]
    assert ib.ENDPOINT_FULL in paths and ib.ENDPOINT_ABBR in paths


def test_slow_broken_and_redirecting_answers_lose_nothing(fake: FakeLookinBody) -> None:
    def setup() -> None:
        fake.state.tests.append(FakeTest(CARD_A, "", today_utc(), sample_values()))
        fake.state.slow_s = 2.0
        fake.state.faults.extend(["slow", "500", "garbage", "redirect", "", "slow", "500", "garbage"])

    fake.call(setup)
    link = LookinBodyLink(settings_for(fake))
    events = asyncio.run(collect(link, lambda got: bool(readings(got))))
    reports = [r for r in decoded(events) if isinstance(r, DeviceReport)]
    codes = [r.code for r in reports]
    assert {"http_0", "http_500", "http_200", "http_302"} <= set(codes), codes
    assert len(readings(events)) == 1


def test_addon_missing_gives_401_events_and_unauthorized_state(fake: FakeLookinBody) -> None:
    fake.call(lambda: setattr(fake.state, "addon_active", False))
    states: list[tuple[str, str]] = []
    link = LookinBodyLink(settings_for(fake), on_state=lambda s, d: states.append((s, d)))
    events = asyncio.run(collect(link, lambda got: len(got) >= 2))
    assert [r.code for r in decoded(events)] == ["http_401", "http_401"]
    assert ("unauthorized" in {s for s, _ in states}) and any("add-on" in d for _, d in states)


# ------------------------------------------------------------------------------- the daemon


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def write_config(tmp: Path, sim: SimulatorThread, fake: FakeLookinBody) -> Path:
    key_file = tmp / "lookinbody.key"
    key_file.write_text(fake.state.api_key + "\n")
    cfg = tmp / "config.toml"
    cfg.write_text(
        f"""
[platform]
base_url = "{sim.url}"
api_key = "{sim.api_key(1)}"
benefit_key = "BODY_SCAN"

[scale]
name = "inbody-1"
driver = "inbody"

[lookinbody]
base_url = "{fake.url}"
account = "{fake.state.account}"
api_key_file = "{key_file}"
time_zone = "UTC"
poll_interval_s = 1
pace_s = 0
backoff_base_s = 0.1
backoff_cap_s = 0.5
timeout_s = 2

[state]
dir = "{tmp / "state"}"

[queue]
backoff_base_s = 0.1
backoff_cap_s = 0.5

[log]
level = "info"
format = "json"
""",
        encoding="utf-8",
    )
    return cfg


def spawn(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        return subprocess.Popen(
            [PYTHON, "-c", LAUNCH, "run", "--config", str(cfg)],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=fh,
            start_new_session=True,
        )


def status(tmp: Path) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        doc: dict[str, Any] = json.loads((tmp / "state" / "status.json").read_text())
        return doc
    return {}


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_daemon_posts_one_inbody_test_with_the_benefit_and_a_restart_never_twice(
    tmp_path: Path, fake: FakeLookinBody
) -> None:
    def setup() -> None:
        fake.state.tests.append(FakeTest(CARD_A, "5550102000", today_utc(), sample_values()))
        fake.state.duplicate_listing = True  # every listing names the test twice, in both time formats

    fake.call(setup)
    with SimulatorThread() as sim:
        cfg = write_config(tmp_path, sim, fake)
        log = tmp_path / "daemon.log"
        proc = spawn(cfg, log)
        try:
            weighings = wait_for(
                lambda: sim.call(lambda: list(sim.state.weighings)), "the weighing", alive=exited(proc)
            )
            (w,) = weighings
            assert w["customerId"] == 1001 and w["benefitKey"] == "BODY_SCAN"
            body = w["body"]
            assert body["weight"] == 80.5 and body["skeletalMuscleMass"] == 36.2 and body["totalBodyWater"] == 45.1
            assert body["ffmRightArm"] == 3.5 and "ffmPercentRightArm" not in body
            raw = json.loads(body["rawResults"])
            assert raw["driver"] == "inbody" and raw["deviceTime"].endswith("T10:30:00")
            assert ib.ENDPOINT_FULL_BY_ID in json.loads(raw["raw"])["answers"]
            # several polls with the test listed twice each: still one weighing
            wait_for(
                lambda: fake.call(lambda: fake.state.count(ib.ENDPOINT_TODAY)) >= 4, "more polls", alive=exited(proc)
            )
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            fetched_before = fake.call(lambda: fake.state.count(ib.ENDPOINT_FULL_BY_ID))
            proc = spawn(cfg, log)
            # the restarted daemon lists and fetches the test again; the outbox knows it
            wait_for(
                lambda: fake.call(lambda: fake.state.count(ib.ENDPOINT_FULL_BY_ID)) > fetched_before,
                "the re-fetch after the restart",
                alive=exited(proc),
            )
            wait_for(
                lambda: status(tmp_path).get("pid") == proc.pid
                and status(tmp_path).get("intake", {}).get("duplicates", 0) >= 1,
                "the duplicate counted by the restarted daemon",
                alive=exited(proc),
            )
            assert len(sim.call(lambda: list(sim.state.weighings))) == 1
        finally:
            stop(proc)
        assert len(sim.call(lambda: list(sim.state.weighings))) == 1
        text = log.read_text()
        assert fake.state.api_key not in text and CARD_A not in text  # never logged


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "bridge", *args], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120, check=False
    )


def test_check_and_validate_say_the_addon_is_missing(tmp_path: Path, fake: FakeLookinBody) -> None:
    fake.call(lambda: setattr(fake.state, "addon_active", False))
    with SimulatorThread() as sim:
        cfg = write_config(tmp_path, sim, fake)
        chk = run_cli("check", "--config", str(cfg), "--json")
        doc = json.loads(chk.stdout)
        (lb,) = [c for c in doc["components"] if c["component"] == "lookinbody"]
        assert chk.returncode == 2 and lb["status"] == "CRITICAL"
        assert "data-access add-on is not active" in lb["message"] and "InBody support" in lb["message"]
        val = run_cli("validate", "--config", str(cfg))
        assert val.returncode == 69 and "data-access add-on is not active" in val.stdout
        assert run_cli("validate", "--config", str(cfg), "--offline").returncode == 0
        fake.call(lambda: setattr(fake.state, "addon_active", True))
        ok = run_cli("validate", "--config", str(cfg))
        assert ok.returncode == 0 and "data access active" in ok.stdout, ok.stdout + ok.stderr
        fake.call(lambda: setattr(fake.state, "api_key", "another-key-000"))
        bad_key = json.loads(run_cli("check", "--config", str(cfg), "--json").stdout)
        (lb,) = [c for c in bad_key["components"] if c["component"] == "lookinbody"]
        assert lb["status"] == "CRITICAL" and "Account / API-KEY" in lb["message"]


def test_record_redact_captures_the_answers_without_member_data(tmp_path: Path, fake: FakeLookinBody) -> None:
    fake.call(lambda: fake.state.tests.append(FakeTest(CARD_A, "5550102000", today_utc(), sample_values())))
    with SimulatorThread() as sim:
        cfg = write_config(tmp_path, sim, fake)
        out = tmp_path / "first-site.capture.jsonl"
        rec = run_cli("record", "--driver", "inbody", "--config", str(cfg), "--redact", "--seconds", "3", str(out))
        assert rec.returncode == 0, rec.stderr
    text = out.read_text()
    assert CARD_A not in text and "5550102000" not in text and fake.state.api_key not in text
    header, events = read_capture(text.splitlines())
    assert header.driver == "inbody" and header.extra.get("redacted") is True
    results = [ib.parse(ce.event.payload) for ce in events]
    (r,) = [x for x in results if isinstance(x, Reading)]
    assert r.measurement.weight_kg == 80.5 and r.device_id and r.device_id != CARD_A and len(r.device_id) == 10
