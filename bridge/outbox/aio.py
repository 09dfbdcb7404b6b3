"""``AsyncOutbox``: the ``Outbox`` API as awaitables, every call run on ONE dedicated thread.

The SQLite connection is created on that thread (``AsyncOutbox.open`` builds the ``Outbox`` there) and
only ever used there: ``check_same_thread`` stays on, and calls from any number of tasks are run one
after another in the order they were made (a one-worker executor). An exception raised by the core
(``StorageError``, ``OutboxError``, ``JobNotFound``) is raised to the task that awaits the call.

A task cancelled while it awaits a call does not cancel the call: a transaction that has been handed
to the thread commits (or fails) as a whole, and its result is dropped. So a cancelled ``capture``
may still have captured; the at-least-once design already allows for that.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial, update_wrapper
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from ..errors import OutboxError
from .jobs import Outbox
from .schema import CorruptionEvent, Job, JobState

P = ParamSpec("P")
R = TypeVar("R")


def _on_thread(method: Callable[Concatenate[Outbox, P], R]) -> Callable[Concatenate[AsyncOutbox, P], Awaitable[R]]:
    """``Outbox.method`` as an ``AsyncOutbox`` method with the same parameters, run on the thread."""

    async def call(self: AsyncOutbox, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self._submit(partial(method, self._core, *args, **kwargs))

    update_wrapper(call, method)
    return call


def _export_rows(box: Outbox, /, state: JobState | None = None, batch: int = 1000) -> list[Job]:
    """``Outbox.export_rows`` read to its end on the thread (a generator cannot cross threads)."""
    return list(box.export_rows(state, batch))


class AsyncOutbox:
    """Build with ``await AsyncOutbox.open(path, clock=..., check=..., primary=...)`` (the ``Outbox``
    options); end with ``await close()``, which closes the connection and joins the thread."""

    def __init__(self, core: Outbox, executor: ThreadPoolExecutor, thread: threading.Thread) -> None:
        """Use ``open``: ``core`` must have been made on ``thread``, ``executor``'s one worker."""
        self._core = core
        self._executor = executor
        self.thread = thread
        self._closed = False
        self.path: Path = core.path
        self.corruption: CorruptionEvent | None = core.corruption
        self.recovered_inflight: int = core.recovered_inflight

    @classmethod
    async def open(
        cls, path: str | Path, *, clock: Callable[[], float] | None = None, check: bool = True, primary: bool = True
    ) -> AsyncOutbox:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        loop = asyncio.get_running_loop()
        try:
            thread = await loop.run_in_executor(executor, threading.current_thread)
            core = await loop.run_in_executor(
                executor, partial(Outbox, path, clock=clock, check=check, primary=primary)
            )
        except BaseException:
            executor.shutdown(wait=True)
            raise
        return cls(core, executor, thread)

    async def _submit(self, fn: Callable[[], R]) -> R:
        if self._closed:
            raise OutboxError(f"the outbox {self.path} is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def run(self, fn: Callable[[Outbox], R]) -> R:
        """Run ``fn(core)`` on the outbox thread, between the other calls (benchmarks, tests, and any
        sequence of core calls that must not interleave with others)."""
        return await self._submit(partial(fn, self._core))

    async def close(self) -> None:
        """Close the connection (on its thread), then join the thread. Calls after this raise."""
        if self._closed:
            return
        try:
            await self._submit(self._core.close)
        finally:
            self._closed = True
            await asyncio.get_running_loop().run_in_executor(None, partial(self._executor.shutdown, wait=True))

    async def __aenter__(self) -> AsyncOutbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # capture and reads
    capture = _on_thread(Outbox.capture)
    seen = _on_thread(Outbox.seen)
    get = _on_thread(Outbox.get)
    due = _on_thread(Outbox.due)
    next_due_at = _on_thread(Outbox.next_due_at)
    # the uploader's transitions
    begin = _on_thread(Outbox.begin)
    resolved = _on_thread(Outbox.resolved)
    benefit_refused = _on_thread(Outbox.benefit_refused)
    reresolve = _on_thread(Outbox.reresolve)
    posted = _on_thread(Outbox.posted)
    benefit_use_recorded = _on_thread(Outbox.benefit_use_recorded)
    retry_later = _on_thread(Outbox.retry_later)
    release_backoff = _on_thread(Outbox.release_backoff)
    kill = _on_thread(Outbox.kill)
    park = _on_thread(Outbox.park)
    # the read model and the operator's actions
    jobs = _on_thread(Outbox.jobs)
    dead_letter = _on_thread(Outbox.dead_letter)
    history = _on_thread(Outbox.history)
    stats = _on_thread(Outbox.stats)
    meta = _on_thread(Outbox.meta)
    set_meta = _on_thread(Outbox.set_meta)
    quick_check = _on_thread(Outbox.quick_check)
    assign = _on_thread(Outbox.assign)
    retry = _on_thread(Outbox.retry)
    retry_dead = _on_thread(Outbox.retry_dead)
    purge_delivered = _on_thread(Outbox.purge_delivered)
    acknowledge_corruption = _on_thread(Outbox.acknowledge_corruption)
    export_rows = _on_thread(_export_rows)
