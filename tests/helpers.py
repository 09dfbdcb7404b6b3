"""Helpers shared by the tests (import as ``from tests.helpers import ...``)."""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
#: The wall-clock start of a ``FakeClock`` (2027-01-15): fixed, so no test depends on today's date.
EPOCH = 1_800_000_000.0


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines: list[str] = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def run_cli(*args: str, env: dict[str, str] | None = None, input: bytes | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "bridge", *args], cwd=REPO, env=full_env, input=input,
                          capture_output=True, timeout=timeout, check=False)


def wait_for(predicate: Callable[[], Any], what: str, *, timeout_s: float = 60.0, interval_s: float = 0.05,
             alive: Callable[[], str | None] | None = None) -> Any:
    """Poll ``predicate()`` until it returns something true, and return that value. ``timeout_s`` is a
    guard against a hang, never the thing under test: size it for a loaded 2-core machine. ``alive()``
    (optional) returning a string means the process under test is gone: fail at once with that text
    instead of waiting."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        _check(what, timeout_s, deadline, alive)
        time.sleep(interval_s)


def popen_logged(cmd: list[str], log_path: Path, *, append: bool = False, stderr_only: bool = False,
                 **kw: Any) -> subprocess.Popen[bytes]:
    """Start ``cmd`` with its output (stdout + stderr, or stderr only) going to ``log_path``. The
    parent's copy of the file is closed at once (the child keeps its own): no unclosed file."""
    with log_path.open("ab" if append else "wb") as fh:
        if stderr_only:
            kw["stderr"] = fh
        else:
            kw.setdefault("stdout", fh)
            kw.setdefault("stderr", subprocess.STDOUT)
        return subprocess.Popen(cmd, **kw)


async def wait_for_async(predicate: Callable[[], Any], what: str, *, timeout_s: float = 60.0,
                         interval_s: float = 0.05, alive: Callable[[], str | None] | None = None) -> Any:
    """``wait_for`` for asyncio tests: the loop keeps running between polls. ``predicate()`` may return
    an awaitable (an ``async def`` predicate), which is awaited each round."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        _check(what, timeout_s, deadline, alive)
        await asyncio.sleep(interval_s)


def _check(what: str, timeout_s: float, deadline: float, alive: Callable[[], str | None] | None) -> None:
    if alive is not None:
        gone = alive()
        if gone:
            raise AssertionError(f"{gone} (while waiting for {what})")
    if time.monotonic() > deadline:
        raise AssertionError(f"guard timeout ({timeout_s:g} s) waiting for {what}")


def exited(proc: subprocess.Popen[Any], tail: Callable[[], str] | None = None) -> Callable[[], str | None]:
    """An ``alive`` for ``wait_for``: the text to fail with once ``proc`` has exited (with ``tail()``,
    e.g. the end of its log, appended), else None."""

    def check() -> str | None:
        if proc.poll() is None:
            return None
        return f"the process exited with {proc.returncode}" + (f":\n{tail()}" if tail is not None else "")

    return check


class FakeClock:
    """One fake time for a test: ``wall()`` (epoch seconds) and ``mono()`` move together, only when
    ``sleep`` or ``advance`` says so. ``sleep`` advances the clock by at least 1 µs (a real sleep always
    lets some time pass, so a tiny wait cannot spin) and yields to the event loop once. ``slept`` sums
    what the code under test slept."""

    def __init__(self, epoch: float = EPOCH) -> None:
        self.epoch = epoch
        self.t = 0.0
        self.slept = 0.0

    def wall(self) -> float:
        return self.epoch + self.t

    def mono(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        assert s >= 0, f"time does not run backwards ({s})"
        self.t += s

    def advance_to(self, wall_s: float) -> None:
        """Move on to the wall time ``wall_s`` (e.g. a job's ``next_attempt_at``); never backwards."""
        self.advance(wall_s - self.wall())

    async def sleep(self, s: float) -> None:
        s = max(s, 1e-6)
        self.t += s
        self.slept += s
        await asyncio.sleep(0)


#: the two stores the uploader can run on (``bridge.runtime.assembly.UploadStoreKind``)
UPLOAD_STORES = ("inline", "thread")


def upload_store_for(kind: str, outbox: Any, clock: Any) -> Any:
    """The uploader's store as the daemon builds it (``assembly.open_upload_store``), for code that
    cannot await: ``inline`` is ``outbox`` itself (the Uploader wraps it), ``thread`` an ``AsyncOutbox``
    with a secondary connection to the same file made on its own worker thread (the steps of
    ``AsyncOutbox.open``, waited for here). Close a ``thread`` store with ``await store.close()``."""
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from functools import partial

    from bridge.outbox import Outbox
    from bridge.outbox.aio import AsyncOutbox

    if kind == "inline":
        return outbox
    assert kind == "thread", kind
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
    thread = executor.submit(threading.current_thread).result()
    core = executor.submit(partial(Outbox, outbox.path, clock=clock, check=False, primary=False)).result()
    return AsyncOutbox(core, executor, thread)
