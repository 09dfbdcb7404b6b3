"""The built-in platform simulator server: ``scale-bridge simulator`` and, for tests and the demo,
``SimulatorThread`` (a real HTTP server on 127.0.0.1 in a background thread)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from aiohttp import web

from .app import Validator, make_app
from .model import DEFAULT_SEED, PlatformState


async def serve(
    state: PlatformState, host: str = "127.0.0.1", port: int = 0, validator: Validator | None = None
) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(make_app(state, validator), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    assert server is not None
    sockets: Any = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, int(bound)


class SimulatorThread:
    """Run the simulator in its own thread and event loop. ``state`` may be inspected (with care:
    read it between requests) and ``url`` is the base URL."""

    def __init__(
        self,
        seed: str | Path = DEFAULT_SEED,
        *,
        port: int = 0,
        rate_limit_per_min: int = 1000,
        validator: Validator | None = None,
    ) -> None:
        self.state = PlatformState.from_file(seed, rate_limit_per_min=rate_limit_per_min)
        self._validator = validator
        self._port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="platform-simulator", daemon=True)
        self._started = threading.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            started = serve(self.state, port=self._port, validator=self._validator)
            self._runner, self.port = self._loop.run_until_complete(started)
        except Exception as exc:  # noqa: BLE001 - re-raised in the caller thread by start()
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api_key(self, studio: int = 1) -> str:
        return self.state.studios[studio].api_key

    def start(self) -> SimulatorThread:
        self._thread.start()
        self._started.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the simulator's loop (safe access to its state)."""
        return asyncio.run_coroutine_threadsafe(self._acall(fn, *args), self._loop).result(10)

    @staticmethod
    async def _acall(fn: Any, *args: Any) -> Any:
        return fn(*args)

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
