"""Latency baseline, run as its own process (like the daemon): the same three calls a weighing needs,
made the way the bridge makes them (member by card and benefits by card together, then the POST),
with a bare ``httpx.AsyncClient``: no outbox, no pacing, no logging. One warm-up sequence, then N;
prints the wall-clock time each of the N + 1 sequences started, as JSON.
``python -m bench.bare_client URL N GAP_S``"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx

from .common import CARD, SIM_KEY


async def sequences(url: str, n: int, gap: float) -> list[float]:
    body = {"weight": 80.0, "rawResults": "bench bare client"}
    started = []
    headers = {"X-API-KEY": SIM_KEY, "Accept": "application/json"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as c:
        card = {"cardNumber": CARD, "cardNumberFormat": "DECIMAL"}
        for _ in range(n + 1):
            t0 = time.time()
            member, benefits = await asyncio.gather(
                c.get("/v1/customers/measurement/latest", params=card),
                c.get("/v1/customers/benefits", params={**card, "key": "BODY_SCAN"}),
            )
            benefits.json()
            (await c.post(f"/v1/customers/{member.json()['id']}/weighing", json=body)).raise_for_status()
            started.append(t0)
            await asyncio.sleep(gap)
    return started


def main() -> None:
    url, n, gap = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    print(json.dumps(asyncio.run(sequences(url, n, gap))))


if __name__ == "__main__":
    main()
