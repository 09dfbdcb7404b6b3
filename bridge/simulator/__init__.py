"""The built-in platform simulator: ``scale-bridge simulator`` and, for tests and the demo,
``SimulatorThread`` (a real HTTP server on 127.0.0.1 in a background thread).

Exports are loaded lazily so that importing ``bridge.simulator.model`` (or the CLI) does not load
aiohttp and jsonschema-rs (the ``simulator`` extra, not installed on a box)."""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_SEED", "PlatformState", "SimulatorThread", "make_app", "serve"]


def __getattr__(name: str) -> Any:
    if name in ("DEFAULT_SEED", "PlatformState"):
        from . import model

        return getattr(model, name)
    if name in ("SimulatorThread", "serve", "make_app"):
        try:
            from . import server
        except ModuleNotFoundError as exc:  # a box's install: the simulator is an extra
            raise ModuleNotFoundError(
                f"the platform simulator needs {exc.name}: pip install 'scale-bridge[simulator]'", name=exc.name
            ) from exc
        return getattr(server, name)
    raise AttributeError(name)
