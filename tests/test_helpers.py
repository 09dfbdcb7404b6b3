"""The shared test helpers do what the tests rely on: one fake clock, one wait_for."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from tests.helpers import EPOCH, FakeClock, exited, wait_for, wait_for_async


def test_fake_clock_moves_wall_and_monotonic_together_only_when_told() -> None:
    clock = FakeClock()
    assert (clock.wall(), clock.mono()) == (EPOCH, 0.0)
    clock.advance(90.0)
    assert (clock.wall(), clock.mono(), clock.slept) == (EPOCH + 90.0, 90.0, 0.0)
    with pytest.raises(AssertionError):
        clock.advance(-1.0)


def test_fake_sleep_advances_the_clock_and_lets_other_tasks_run() -> None:
    clock = FakeClock(epoch=1_000.0)
    ran: list[float] = []

    async def other() -> None:
        ran.append(clock.mono())

    async def main() -> None:
        task = asyncio.create_task(other())
        await clock.sleep(30.0)  # yields once: the other task runs, at the advanced time
        assert task.done()
        await clock.sleep(0.0)  # a zero wait still moves time on (no busy loop on a 0 s backoff)

    asyncio.run(main())
    assert ran == [30.0]
    assert clock.mono() > 30.0 and clock.slept == clock.mono() and clock.wall() == 1_000.0 + clock.mono()


def test_wait_for_returns_the_value_and_fails_at_once_when_the_process_is_gone() -> None:
    calls = iter([None, 0, "done"])
    assert wait_for(lambda: next(calls), "the third answer", interval_s=0) == "done"
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait(60)
    with pytest.raises(AssertionError, match=r"exited with 3 \(while waiting for never\)"):
        wait_for(lambda: False, "never", timeout_s=600, alive=exited(proc))
    with pytest.raises(AssertionError, match="guard timeout"):
        wait_for(lambda: False, "never", timeout_s=0.01, interval_s=0.001)


def test_wait_for_async_awaits_an_async_predicate() -> None:
    rounds: list[int] = []

    async def third_round() -> bool:
        rounds.append(len(rounds))
        return len(rounds) >= 3

    assert asyncio.run(wait_for_async(third_round, "three rounds", interval_s=0)) is True
    assert rounds == [0, 1, 2]
