"""What the upload path asks of the outbox, as awaitables: ``UploadStore``.

Two implementations, chosen by the composition root (``bridge/runtime/assembly.py``):

* ``InlineStore`` - the synchronous ``Outbox`` called directly on the event loop's thread (each
  ``await`` returns at once, no thread hop). A plain ``Outbox`` given to the ``Uploader`` is wrapped
  in one, so ``Uploader(cfg, outbox, client)`` keeps working.
* ``bridge.outbox.aio.AsyncOutbox`` - the same calls run on one dedicated thread with its own
  connection to the same file: the loop is free while SQLite commits.

Only the upload path goes through this: the pump's capture and the intake's dedupe question stay
synchronous on the primary ``Outbox`` (one commit per weighing).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from ..outbox import Job, JobState, Outbox, QueueStats, Stage, WaitReason

P = ParamSpec("P")
R = TypeVar("R")


class UploadStore(Protocol):
    """The outbox calls the uploader, its steps and its decisions make (the ``Outbox`` signatures)."""

    # reads
    def get(self, wid: int) -> Awaitable[Job | None]: ...
    def due(
        self, now: float | None = None, limit: int = 16, exclude: frozenset[int] = frozenset()
    ) -> Awaitable[list[Job]]: ...
    def next_due_at(self) -> Awaitable[float | None]: ...
    def stats(self) -> Awaitable[QueueStats]: ...
    def meta(self, key: str) -> Awaitable[str | None]: ...

    # the journey's transitions
    def begin(self, wid: int, stage: Stage, *, now: float | None = None) -> Awaitable[Job]: ...
    def resolved(
        self,
        wid: int,
        *,
        customer_id: int,
        profile: dict[str, Any] | None,
        card_query: tuple[str, str] | None,
        benefit_valid: bool | None,
        home_studio: int | None = None,
        note: str | None = None,
        begin_post: bool = False,
        now: float | None = None,
    ) -> Awaitable[Job]: ...
    def benefit_refused(self, wid: int, *, note: str, now: float | None = None) -> Awaitable[Job]: ...
    def reresolve(self, wid: int, reason: str, *, now: float | None = None) -> Awaitable[Job]: ...
    def posted(
        self, wid: int, *, benefit_attached: bool, next_stage: Stage, status: int, now: float | None = None
    ) -> Awaitable[Job]: ...
    def benefit_use_recorded(
        self, wid: int, *, used: bool, status: int, note: str | None = None, now: float | None = None
    ) -> Awaitable[Job]: ...

    # the decisions' writes
    def retry_later(
        self,
        wid: int,
        *,
        next_attempt_at: float,
        reason: WaitReason = WaitReason.BACKOFF,
        status: int | None,
        error: str,
        ambiguous: bool = False,
        now: float | None = None,
    ) -> Awaitable[Job]: ...
    def release_backoff(self, reason: WaitReason, *, now: float | None = None) -> Awaitable[int]: ...
    def kill(
        self,
        wid: int,
        *,
        stage: Stage,
        status: int | None,
        error_code: str | None,
        error_message: str,
        trace_id: str | None,
        now: float | None = None,
    ) -> Awaitable[Job]: ...
    def park(
        self, wid: int, reason: str, state: JobState = JobState.PARKED, *, now: float | None = None
    ) -> Awaitable[Job]: ...
    def set_meta(self, key: str, value: str | None) -> Awaitable[None]: ...

    def close(self) -> Awaitable[None]:
        """Release what this store owns (``InlineStore``: nothing, the ``Outbox`` is its owner's)."""
        ...


def _inline(method: Callable[Concatenate[Outbox, P], R]) -> Callable[Concatenate[InlineStore, P], Awaitable[R]]:
    """``Outbox.method`` as an ``InlineStore`` coroutine: called directly, on the caller's thread."""

    async def call(self: InlineStore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return method(self.outbox, *args, **kwargs)

    call.__name__ = method.__name__
    call.__qualname__ = f"InlineStore.{method.__name__}"
    call.__doc__ = method.__doc__
    return call


class InlineStore:
    """The synchronous ``Outbox`` behind the ``UploadStore`` awaitables: every call runs inline on the
    event loop (what the uploader always did). ``close`` leaves the ``Outbox`` open: its owner closes it."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    async def close(self) -> None:
        return None

    get = _inline(Outbox.get)
    due = _inline(Outbox.due)
    next_due_at = _inline(Outbox.next_due_at)
    stats = _inline(Outbox.stats)
    meta = _inline(Outbox.meta)
    begin = _inline(Outbox.begin)
    resolved = _inline(Outbox.resolved)
    benefit_refused = _inline(Outbox.benefit_refused)
    reresolve = _inline(Outbox.reresolve)
    posted = _inline(Outbox.posted)
    benefit_use_recorded = _inline(Outbox.benefit_use_recorded)
    retry_later = _inline(Outbox.retry_later)
    release_backoff = _inline(Outbox.release_backoff)
    kill = _inline(Outbox.kill)
    park = _inline(Outbox.park)
    set_meta = _inline(Outbox.set_meta)


def upload_store(outbox: Outbox | UploadStore) -> UploadStore:
    """What the uploader talks to: a plain ``Outbox`` is wrapped (inline calls); any ``UploadStore``
    (``AsyncOutbox``, an ``InlineStore``) is used as it is."""
    return InlineStore(outbox) if isinstance(outbox, Outbox) else outbox

