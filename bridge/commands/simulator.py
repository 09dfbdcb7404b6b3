"""``scale-bridge simulator``: the built-in platform simulator as a real HTTP server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from ..simulator.model import DEFAULT_SEED


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("simulator", help="run the platform simulator (HTTP, validates requests against the OpenAPI)")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 = any free port)")
    p.add_argument("--seed", default=str(DEFAULT_SEED), help="seed data file (TOML): studios, members, cards, benefits")
    p.add_argument("--rate-limit", type=int, default=1000, help="requests/min per endpoint before 429 (default 1000)")
    p.set_defaults(func=cmd_simulator)


def cmd_simulator(args: argparse.Namespace) -> int:
    from ..simulator import PlatformState, serve

    state = PlatformState.from_file(args.seed, rate_limit_per_min=args.rate_limit)

    async def main() -> None:
        runner, port = await serve(state, args.host, args.port)
        keys = ", ".join(f"studio {s.id} ({s.name}): {s.api_key}" for s in state.studios.values())
        print(f"simulator listening on http://{args.host}:{port}  API keys: {keys}", file=sys.stderr, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())
    return 0
