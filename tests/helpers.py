"""Helpers shared by the tests (import as ``from tests.helpers import ...``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
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


def wait_for(predicate: Any, what: str, *, timeout_s: float = 60.0, interval_s: float = 0.05,
             alive: Any = None) -> None:
    """Poll ``predicate()`` until it is true. ``timeout_s`` is a guard against a hang, never the
    thing under test: size it for a loaded 2-core machine. ``alive()`` (optional) returning a string
    means the process under test is gone: fail at once with that text instead of waiting."""
    import time

    deadline = time.monotonic() + timeout_s
    while not predicate():
        if alive is not None:
            gone = alive()
            if gone:
                raise AssertionError(f"{gone} (while waiting for {what})")
        if time.monotonic() > deadline:
            raise AssertionError(f"guard timeout ({timeout_s:g} s) waiting for {what}")
        time.sleep(interval_s)


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
