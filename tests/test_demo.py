"""`scale-bridge demo` (what `make demo` runs) delivers the shipped weighings with their benefit keys."""

from __future__ import annotations

from tests.helpers import run_cli


def test_demo_runs_and_shows_each_journey() -> None:
    r = run_cli("demo", timeout=180)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert "#1 delivered member 1001 -> benefit valid -> posted HTTP 200 with benefitKey" in out
    assert "#2 delivered member 1002 -> benefit not valid -> uploaded without it -> posted HTTP 200" in out
    assert "#3 delivered member 1003 -> cross-studio member (home studio 2) -> benefit valid" in out
    assert "#4 unidentified" in out
    assert "customer 1001 (home studio 1) via studio 1: weight 84.3 kg, benefitKey=BODY_SCAN" in out
    assert "queue: 3 delivered, 0 pending, 1 unidentified, 0 parked, 0 dead" in out
    assert "Traceback" not in r.stderr.decode()


def test_demo_with_the_use_endpoint() -> None:
    r = run_cli("demo", "--usage", "endpoint", timeout=180)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert "benefit used via /use" in out
    assert "benefitKey=-" in out and "benefitKey=BODY_SCAN" not in out
    assert "benefit uses recorded this month: 2" in out
