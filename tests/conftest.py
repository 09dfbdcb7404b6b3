"""Shared fixtures: the shared/ folder beside the repo, the platform simulator (a real HTTP server on
127.0.0.1), config files, and a way to run the CLI as a subprocess."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import SHARED


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "vectors").is_dir():
        pytest.skip(f"shared/ folder not found beside the repo ({SHARED})")
    return SHARED


@pytest.fixture
def simulator() -> Iterator[Any]:
    from bridge.simulator import SimulatorThread

    sim = SimulatorThread().start()
    try:
        yield sim
    finally:
        sim.stop()




@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """Each test starts with structlog's defaults: an in-process ``configure()`` (a demo at level
    critical, a replay at warning) must not filter the next test's ``capture_logs``."""
    import structlog

    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture(autouse=True, scope="module")
def _collect_garbage_between_modules() -> Iterator[None]:
    """What a module's tests left for the garbage collector is finalised at the module's end, not in
    the middle of a later test. Python 3.11.7 fails ``ast.parse`` with "AST constructor recursion depth
    mismatch" when a finaliser runs during it and formats a traceback (3.11's traceback carets parse the
    line again): seen once, an asyncio Future of a bleak D-Bus bus left by an earlier BLE test, logged
    ("exception was never retrieved") while hypothesis read a test's source. The BLE fixture collects
    after each of its tests too (tests/fakes/bluez_fixture.py)."""
    yield
    gc.collect()
