"""The upload path's store (``bridge/upload/store.py``) and the daemon's choice of it
(``bridge/runtime/assembly.py``): a plain ``Outbox`` is wrapped and called inline on the caller's
thread; an ``AsyncOutbox`` is used as it is and runs on its own; both see the same file."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from bridge.outbox import JobState, Outbox, Stage
from bridge.outbox.aio import AsyncOutbox
from bridge.runtime.assembly import (
    DEFAULT_UPLOAD_STORE,
    UPLOAD_STORE_ENV,
    UploadStoreKind,
    open_upload_store,
    upload_store_kind,
)
from bridge.upload.store import InlineStore, upload_store

NOW = 1_800_000_000.0


def _capture(box: Outbox, i: int) -> int:
    wid = box.capture(scale="s", driver="tanita", body={"weight": 60.0 + i, "rawResults": f"r{i}"}, card="42",
                      card_source="scale_id", dedupe_key=f"k{i}", now=NOW)
    assert wid is not None
    return wid


def test_the_daemon_store_comes_from_the_environment_else_the_default() -> None:
    assert upload_store_kind({}) is DEFAULT_UPLOAD_STORE
    assert upload_store_kind({UPLOAD_STORE_ENV: "thread"}) is UploadStoreKind.THREAD
    assert upload_store_kind({UPLOAD_STORE_ENV: " Inline "}) is UploadStoreKind.INLINE
    assert upload_store_kind({UPLOAD_STORE_ENV: "fibre"}) is DEFAULT_UPLOAD_STORE  # unknown: the default


def test_inline_store_runs_the_outbox_calls_on_the_callers_thread(tmp_path: Path) -> None:
    threads: set[int] = set()

    def clock() -> float:
        threads.add(threading.get_ident())
        return NOW

    box = Outbox(tmp_path / "outbox.db", clock=clock)
    wid = _capture(box, 1)
    store = upload_store(box)
    assert isinstance(store, InlineStore) and upload_store(store) is store

    async def main() -> None:
        threads.clear()
        [job] = await store.due(NOW)
        job = await store.resolved(job.id, customer_id=1001, profile=None, card_query=("42", "DECIMAL"),
                                   benefit_valid=None, begin_post=True)
        job = await store.posted(job.id, benefit_attached=False, next_stage=Stage.DONE, status=201)
        assert job.state is JobState.DELIVERED and (await store.stats()).delivered == 1
        await store.close()  # leaves the Outbox to its owner

    asyncio.run(main())
    assert threads == {threading.get_ident()}
    assert box.get(wid) is not None and box.get(wid).state is JobState.DELIVERED  # type: ignore[union-attr]
    box.close()


def test_thread_store_is_a_second_connection_beside_the_primary(tmp_path: Path) -> None:
    primary = Outbox(tmp_path / "outbox.db", clock=lambda: NOW)

    async def main() -> None:
        store = await open_upload_store(UploadStoreKind.THREAD, primary, lambda: NOW)
        assert isinstance(store, AsyncOutbox) and upload_store(store) is store
        assert store.thread.ident != threading.get_ident()
        wid = _capture(primary, 2)  # the pump's capture, on the loop's connection
        [job] = await store.due(NOW)  # seen by the uploader's connection at once (WAL)
        assert job.id == wid
        await store.park(wid, "test")
        assert primary.get(wid).state is JobState.PARKED  # type: ignore[union-attr]
        await store.close()
        assert not store.thread.is_alive()
        assert isinstance(await open_upload_store(UploadStoreKind.INLINE, primary, lambda: NOW), InlineStore)

    asyncio.run(main())
    primary.close()
