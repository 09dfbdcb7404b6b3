"""Latency baseline, run as its own process (like the daemon): the same three calls a weighing needs
(member by card, benefits by card, POST weighing), in sequence, with a bare httpx client; prints the
wall-clock time each sequence started, as JSON. ``python -m bench.bare_client URL N GAP_S``"""

from __future__ import annotations

import json
import sys
import time

import httpx

from .common import CARD, SIM_KEY


def main() -> None:
    url, n, gap = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    body = {"weight": 80.0, "rawResults": "bench bare client"}
    started = []
    with httpx.Client(base_url=url, headers={"X-API-KEY": SIM_KEY, "Accept": "application/json"}, timeout=10) as c:
        card = {"cardNumber": CARD, "cardNumberFormat": "DECIMAL"}
        for _ in range(n):
            t0 = time.time()
            cid = c.get("/v1/customers/measurement/latest", params=card).json()["id"]
            c.get("/v1/customers/benefits", params={**card, "key": "BODY_SCAN"}).json()
            c.post(f"/v1/customers/{cid}/weighing", json=body).raise_for_status()
            started.append(t0)
            time.sleep(gap)
    print(json.dumps(started))


if __name__ == "__main__":
    main()
