"""Shared fixtures: the shared/ folder beside the repo, the platform simulator (a real HTTP server on
127.0.0.1), config files, and a way to run the CLI as a subprocess."""

from __future__ import annotations

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
