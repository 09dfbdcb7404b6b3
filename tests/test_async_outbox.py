"""``AsyncOutbox`` on a real SQLite file: the core runs on one thread of its own (the connection is
made there and refuses any other), calls from many tasks are run one after another on it, the core's
exceptions come back to the awaiting task, and ``close()`` joins the thread."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from bridge.errors import OutboxError, StorageError
from bridge.outbox import JobNotFound, JobState, Outbox, Stage, WaitReason
from bridge.outbox.aio import AsyncOutbox

NOW = 1_800_000_000.0


async def _capture(box: AsyncOutbox, i: int) -> int:
    wid = await box.capture(scale="s", driver="tanita", body={"weight": 60.0 + i, "rawResults": f"r{i}"}, card="42",
                            card_source="scale_id", dedupe_key=f"k{i}", now=NOW + i)
    assert wid is not None
    return wid


def test_calls_from_many_tasks_run_one_after_another_on_one_thread(tmp_path: Path) -> None:
    threads: set[int] = set()

    def clock() -> float:  # the core calls its clock inside each capture: on the thread that runs it
        threads.add(threading.get_ident())
        return NOW

    async def journey(box: AsyncOutbox, i: int) -> None:
        wid = await _capture(box, i)
        await box.resolved(wid, customer_id=1000 + i, profile=None, card_query=("42", "DECIMAL"), benefit_valid=None,
                           home_studio=None, note=None, begin_post=True, now=NOW)
        job = await box.posted(wid, benefit_attached=False, next_stage=Stage.DONE, status=201, now=NOW)
        assert job.state is JobState.DELIVERED and job == await box.get(wid)

    async def main() -> None:
        box = await AsyncOutbox.open(tmp_path / "outbox.db", clock=clock)
        assert box.thread.ident != threading.get_ident()
        await asyncio.gather(*(journey(box, i) for i in range(40)))
        st = await box.stats()
        assert (st.delivered, st.pending) == (40, 0)
        assert threads == {box.thread.ident}  # every call ran on the outbox thread, none on the loop's
        assert await box.run(lambda core: threading.get_ident()) == box.thread.ident
        await box.close()

    asyncio.run(main())
    box = Outbox(tmp_path / "outbox.db", clock=lambda: NOW)  # and it was all committed
    jobs = box.jobs(limit=100)
    assert len(jobs) == 40 and {j.customer_id for j in jobs} == set(range(1000, 1040))
    assert all(j.state is JobState.DELIVERED for j in jobs)
    box.close()


def test_the_connection_is_confined_to_its_thread(tmp_path: Path) -> None:
    async def main() -> None:
        box = await AsyncOutbox.open(tmp_path / "outbox.db", clock=lambda: NOW)
        await _capture(box, 1)
        core = await box.run(lambda c: c)
        with pytest.raises(OutboxError, match="thread"):  # check_same_thread: the loop's thread may not use it
            core.get(1)
        assert (await box.get(1)) is not None
        await box.close()

    asyncio.run(main())


def test_exceptions_come_back_to_the_awaiting_task(tmp_path: Path) -> None:
    async def main() -> None:
        box = await AsyncOutbox.open(tmp_path / "outbox.db", clock=lambda: NOW)
        with pytest.raises(JobNotFound):
            await box.begin(99, Stage.POST)
        pages = await box.run(lambda c: c.store.connection.execute("PRAGMA page_count").fetchone()[0])
        await box.run(lambda c: c.store.connection.execute(f"PRAGMA max_page_count = {pages + 2}"))
        committed = 0
        with pytest.raises(StorageError):  # the file is "full": the capture is not acknowledged
            for i in range(50):
                await box.capture(scale="s", driver="tanita", body={"rawResults": "x" * 3000 + str(i)}, card=None,
                                  card_source=None, now=NOW)
                committed += 1
        assert committed < 50
        await box.run(lambda c: c.store.connection.execute("PRAGMA max_page_count = 1073741823"))
        assert len(await box.jobs(limit=100)) == committed  # the failed one left nothing behind
        wid = await _capture(box, 7)  # and the thread still serves the next call
        job = await box.retry_later(wid, next_attempt_at=NOW + 60, reason=WaitReason.RATE_LIMIT, status=None,
                                    error="paused", now=NOW)
        assert job.wait_reason is WaitReason.RATE_LIMIT
        await box.close()

    asyncio.run(main())


def test_close_joins_the_thread_and_later_calls_raise(tmp_path: Path) -> None:
    async def main() -> threading.Thread:
        async with await AsyncOutbox.open(tmp_path / "outbox.db", clock=lambda: NOW) as box:
            await _capture(box, 1)
            thread = box.thread
            assert thread.is_alive()
        assert not thread.is_alive()
        with pytest.raises(OutboxError, match="closed"):
            await box.get(1)
        await box.close()  # twice is harmless
        return thread

    thread = asyncio.run(main())
    assert not thread.is_alive()


def test_a_failed_open_leaves_no_thread_behind(tmp_path: Path) -> None:
    (tmp_path / "outbox.db").mkdir()  # not a file: a secondary open (no move-aside) cannot use it
    before = {t.ident for t in threading.enumerate()}

    async def main() -> None:
        with pytest.raises(OutboxError):
            await AsyncOutbox.open(tmp_path / "outbox.db", primary=False)

    asyncio.run(main())
    assert {t.ident for t in threading.enumerate() if t.name.startswith("outbox")} - before == set()
