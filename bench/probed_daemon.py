"""``python -m bench.probed_daemon run --config F``: the daemon (``bridge.cli.main``) with the loop-lag
probe (``bench.looplag``) running on its event loop, for ``bench live``.

The probe is started on every loop the process creates (an event-loop policy: the daemon's code is
not touched) and, when ``asyncio.run`` cancels it at the end, writes its samples as JSON lines
``[wall_s, lag_ms]`` to ``$BENCH_LOOP_LAG_FILE``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from .looplag import LoopLagProbe

ENV = "BENCH_LOOP_LAG_FILE"


async def _probe(out: Path) -> None:
    probe = LoopLagProbe()
    try:
        await probe.run()
    finally:
        with out.open("w", encoding="utf-8") as fh:
            for at, lag in probe.samples:
                fh.write(json.dumps([at, round(lag, 4)]) + "\n")


class _ProbedPolicy(asyncio.DefaultEventLoopPolicy):
    def __init__(self, out: Path) -> None:
        super().__init__()
        self.out = out

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = super().new_event_loop()
        loop.call_soon(lambda: loop.create_task(_probe(self.out), name="loop-lag-probe"))
        return loop


def main() -> int:
    from bridge.cli import main as bridge_main

    out = os.environ.get(ENV)
    if out:
        asyncio.set_event_loop_policy(_ProbedPolicy(Path(out)))
    return int(bridge_main(sys.argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
