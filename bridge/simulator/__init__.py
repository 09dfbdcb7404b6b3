"""The built-in platform simulator: ``scale-bridge simulator`` and, for tests and the demo,
``SimulatorThread`` (a real HTTP server on 127.0.0.1 in a background thread).

Exports are loaded lazily so that importing ``bridge.simulator.model`` (or the CLI) does not load
aiohttp and openapi-core."""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_SEED", "PlatformState", "SimulatorThread", "make_app", "serve"]


def __getattr__(name: str) -> Any:
    if name in ("DEFAULT_SEED", "PlatformState"):
        from . import model

        return getattr(model, name)
    if name in ("SimulatorThread", "serve", "make_app"):
        from . import server

        return getattr(server, name)
    raise AttributeError(name)
