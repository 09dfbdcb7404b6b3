"""2. Catch-up drain: a backlog of weighings against the simulator (a subprocess: its own interpreter,
its own core).

- Rate-limited: the simulator refuses beyond L requests/min/endpoint (then locks the endpoint for a
  minute). Each weighing costs 3 calls on 3 different endpoints (card -> member, benefits by card,
  POST weighing), so each endpoint sees N calls and the drain cannot beat ``T_min = 60 * N / L``.
- Unlimited: weighings/s through the real Uploader vs a bare httpx loop making the same 3 calls with
  the same bodies at the same concurrency (no outbox, no pacing, no logging).
- Every uploader drain runs the loop-lag probe (``bench.looplag``) beside it. ``stores`` picks the
  uploader's outbox: ``inline`` (the sync Outbox on the loop) or ``thread`` (an AsyncOutbox, a second
  connection on its own thread, as ``SCALE_BRIDGE_UPLOAD_STORE=thread`` makes the daemon do); with
  several stores and ``repeats`` the rate-limited drain runs them alternately, ``repeats`` times each.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bridge.config import PlatformConfig, config_from_dict, replace
from bridge.logs import configure
from bridge.outbox import Outbox
from bridge.outbox.aio import AsyncOutbox
from bridge.platform import USER_AGENT, PlatformClient
from bridge.uploader import Uploader, pool_size

from .capture import bodies
from .common import CARD, SIM_KEY, Simulator, config_doc, cpu_seconds, log, median, simulator
from .looplag import LoopLagProbe

BIG = 10**9  # "no limit"


def make_backlog(path: Path, n: int) -> None:
    """n pending weighings through the real ``capture()`` (fsync off: only the template is built this way)."""
    ob = Outbox(path)
    ob._db.execute("PRAGMA synchronous=OFF")
    for body, key in bodies(n):
        ob.capture(scale="bench", driver="tanita", body=body, card=CARD, card_source="scale_id", dedupe_key=key)
    ob._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ob.close()


def backlog_bodies(path: Path) -> list[str]:
    db = sqlite3.connect(str(path))
    try:
        return [r[0] for r in db.execute("SELECT body FROM weighings ORDER BY id")]
    finally:
        db.close()


async def _uploader_drain(
    sim: Simulator, db: Path, n: int, *, pacer_per_min: int, concurrency: int, timeout_s: float, store: str = "inline"
) -> dict[str, Any]:
    cfg = config_from_dict(config_doc(sim.url, str(db.parent), port="/dev/null"), source="bench")
    # bench only: the config caps the pacer at 1000/min (the real platform's limit); the simulator's
    # L is scaled up here so a 10,000-weighing backlog drains in seconds, and the pacer with it.
    cfg = replace(cfg, platform=replace(cfg.platform, rate_limit_per_min=pacer_per_min, concurrency=concurrency))
    ob = Outbox(db)
    client = PlatformClient(
        cfg.platform.base_url,
        cfg.platform.api_key,
        timeout_s=cfg.platform.timeout_s,
        max_connections=pool_size(concurrency),  # as the daemon's
    )
    # as the daemon: the primary Outbox, and for "thread" a second connection on its own thread
    up_store: Outbox | AsyncOutbox = ob
    if store == "thread":
        up_store = await AsyncOutbox.open(db, check=False, primary=False)
    up = Uploader(cfg, up_store, client)
    last = [0.0]
    delivered = [0]

    def on_delivered(_job: Any) -> None:
        delivered[0] += 1
        last[0] = time.perf_counter()

    up.on_delivered = on_delivered
    cpu0, sim_cpu0 = time.process_time(), cpu_seconds(sim.proc.pid)
    probe = LoopLagProbe().start()
    t0 = time.perf_counter()
    task = asyncio.create_task(up.run())
    ok = await up.drain(timeout_s)
    cpu, sim_cpu = time.process_time() - cpu0, cpu_seconds(sim.proc.pid) - sim_cpu0
    await probe.stop()
    up.stop()
    await asyncio.wait_for(task, 30)
    await client.aclose()
    if isinstance(up_store, AsyncOutbox):
        await up_store.close()
    st = ob.stats()
    ob.close()
    sim_state = sim.state()
    return {
        "drained": ok and st.pending == 0,
        "delivered": delivered[0],
        "dead": st.dead,
        "seconds": (last[0] or time.perf_counter()) - t0,
        "client_cpu_s": cpu,
        "sim_cpu_s": sim_cpu,
        "sim_weighings": sim_state["weighings"],
        "sim_requests": sim_state["requests"],
        "http_429": sim_state["counters"]["rate_limited"],
        "uploader_429": up.counters.rate_limited,
        "retries": up.counters.retries,
        "store": store,
        "loop_lag": probe.summary(),
    }


def uploader_drain(
    template: Path,
    workdir: Path,
    n: int,
    *,
    rate_limit: int,
    pacer: int,
    concurrency: int = 4,
    timeout_s: float = 600,
    store: str = "inline",
) -> dict[str, Any]:
    run_dir = Path(tempfile.mkdtemp(dir=workdir))
    db = run_dir / "outbox.db"
    shutil.copyfile(template, db)
    sink = open(run_dir / "bridge.log", "w", encoding="utf-8")  # noqa: SIM115
    configure("info", "json", stream=sink)
    try:
        with simulator(rate_limit) as sim:
            return asyncio.run(
                _uploader_drain(
                    sim, db, n, pacer_per_min=pacer, concurrency=concurrency, timeout_s=timeout_s, store=store
                )
            )
    finally:
        configure("critical", "json")
        sink.close()
        shutil.rmtree(run_dir, ignore_errors=True)


async def _bare_drain(sim: Simulator, docs: list[str], concurrency: int) -> dict[str, Any]:
    """The same three calls per weighing made the same way (member and benefits together, then the
    POST), as a bare loop: no outbox, no pacing, no logging."""
    client = httpx.AsyncClient(
        base_url=sim.url,
        headers={"X-API-KEY": SIM_KEY, "User-Agent": USER_AGENT, "Accept": "application/json"},
        timeout=httpx.Timeout(10.0),
        limits=httpx.Limits(max_connections=pool_size(concurrency), max_keepalive_connections=pool_size(concurrency)),
    )
    queue = list(reversed(docs))
    errors = [0]

    async def worker() -> None:
        while queue:
            body = queue.pop()
            card = {"cardNumber": CARD, "cardNumberFormat": "DECIMAL"}
            r1, r2 = await asyncio.gather(
                client.get("/v1/customers/measurement/latest", params=card),
                client.get("/v1/customers/benefits", params={**card, "key": "BODY_SCAN"}),
            )
            cid = r1.json()["id"]
            valid = any(b.get("valid") for b in r2.json())
            r3 = await client.post(
                f"/v1/customers/{cid}/weighing",
                params={"benefitKey": "BODY_SCAN"} if valid else None,
                content=body,
                headers={"Content-Type": "application/json"},
            )
            errors[0] += r3.status_code >= 300

    cpu0, sim_cpu0 = time.process_time(), cpu_seconds(sim.proc.pid)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    dt = time.perf_counter() - t0
    cpu, sim_cpu = time.process_time() - cpu0, cpu_seconds(sim.proc.pid) - sim_cpu0
    await client.aclose()
    return {"seconds": dt, "errors": errors[0], "client_cpu_s": cpu, "sim_cpu_s": sim_cpu}


def bare_drain(docs: list[str], concurrency: int = 4) -> dict[str, Any]:
    with simulator(BIG) as sim:
        return asyncio.run(_bare_drain(sim, docs, concurrency))


def run(
    quick: bool,
    *,
    limited_n: int | None = None,
    rate_limit: int | None = None,
    skip_unlimited: bool = False,
    pacer_ratio: float | None = None,
    stores: Sequence[str] = ("inline",),
    repeats: int = 1,
) -> dict[str, Any]:
    n_limited = limited_n or (60 if quick else 500)
    n_free = 60 if quick else 300
    rounds = 1 if quick else 3
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-drain-") as d:
        work = Path(d)
        template = work / "template.db"
        t = time.perf_counter()
        make_backlog(template, max(n_limited, n_free))
        log(f"drain: backlog template of {max(n_limited, n_free)} built in {time.perf_counter() - t:.1f} s")
        small = work / "small.db"
        make_backlog(small, n_free)
        docs = backlog_bodies(small)

        # -- unlimited: uploader vs bare httpx, alternating
        if skip_unlimited:
            rounds = 0
        up_rates: list[float] = []
        bare_rates: list[float] = []
        ratios: list[float] = []
        runs = []
        for r in range(rounds):
            pair: dict[str, dict[str, Any]] = {}
            for side in ("uploader", "bare") if r % 2 == 0 else ("bare", "uploader"):
                if side == "uploader":
                    pair[side] = uploader_drain(small, work, n_free, rate_limit=BIG, pacer=BIG)
                else:
                    pair[side] = bare_drain(docs)
            u, b = n_free / pair["uploader"]["seconds"], n_free / pair["bare"]["seconds"]
            up_rates.append(u)
            bare_rates.append(b)
            ratios.append(u / b)
            runs.append(pair)
            log(f"drain unlimited round {r + 1}/{rounds}: uploader {u:.0f}/s, bare httpx {b:.0f}/s, ratio {u / b:.2f}")
        per_w = 1000 / n_free
        out["unlimited"] = (
            None
            if not rounds
            else {
                "n": n_free,
                "rounds": rounds,
                "uploader_per_s": median(up_rates),
                "bare_per_s": median(bare_rates),
                "ratio": median(ratios),
                "uploader_client_cpu_ms_per_weighing": median([p["uploader"]["client_cpu_s"] * per_w for p in runs]),
                "bare_client_cpu_ms_per_weighing": median([p["bare"]["client_cpu_s"] * per_w for p in runs]),
                "sim_cpu_ms_per_weighing": median([p["bare"]["sim_cpu_s"] * per_w for p in runs]),
                "runs": runs,
            }
        )

        # -- rate limited
        L = rate_limit or 1000  # the real platform's limit: no pacer override needed
        t_min = 60.0 * n_limited / L
        res: dict[str, Any] = {"n": n_limited, "rate_limit_per_min": L, "t_min_s": t_min}
        if pacer_ratio is None:  # what the shipped config does against the platform's 1000/min
            pacer_ratio = PlatformConfig(base_url="http://x").rate_limit_per_min / 1000
        pacer = round(L * pacer_ratio)
        by_store: dict[str, list[dict[str, Any]]] = {s: [] for s in stores}
        for r in range(repeats):
            for store in stores if r % 2 == 0 else list(reversed(stores)):  # alternating: ABBA...
                rr = uploader_drain(
                    template, work, n_limited, rate_limit=L, pacer=pacer, timeout_s=max(120.0, 4 * t_min), store=store
                )
                rr["pacer_per_min"] = pacer
                rr["ratio_to_t_min"] = rr["seconds"] / t_min
                rr["round"] = r
                by_store[store].append(rr)
                lag = rr["loop_lag"]
                log(
                    f"drain limited L={L}/min pacer={pacer}/min store={store}: {rr['seconds']:.1f} s vs T_min "
                    f"{t_min:.1f} s ({rr['ratio_to_t_min']:.3f}x), 429s {rr['http_429']}, loop lag p50/p99/max "
                    f"{lag['p50_ms']:.2f}/{lag['p99_ms']:.2f}/{lag['max_ms']:.1f} ms"
                )
        res["run"] = by_store[stores[0]][0]
        out["limited"] = res
        if len(stores) > 1 or repeats > 1:
            out["limited_ab"] = ab_summary(by_store, t_min)
    return out


def ab_summary(by_store: dict[str, list[dict[str, Any]]], t_min: float) -> dict[str, Any]:
    """Medians per store, and each later store against the first, per round (the runs of one round
    ran back to back) then the median of those ratios."""
    stores = list(by_store)
    base = stores[0]
    summary: dict[str, Any] = {"baseline": base, "t_min_s": t_min, "stores": {}}
    for store, runs in by_store.items():
        summary["stores"][store] = {
            "runs": len(runs),
            "seconds": median([r["seconds"] for r in runs]),
            "ratio_to_t_min": median([r["ratio_to_t_min"] for r in runs]),
            "http_429": sum(r["http_429"] for r in runs),
            "all_drained": all(r["drained"] for r in runs),
            "client_cpu_s": median([r["client_cpu_s"] for r in runs]),
            "loop_lag_p50_ms": median([r["loop_lag"]["p50_ms"] for r in runs]),
            "loop_lag_p99_ms": median([r["loop_lag"]["p99_ms"] for r in runs]),
            "loop_lag_max_ms": median([r["loop_lag"]["max_ms"] for r in runs]),
            "seconds_each": [r["seconds"] for r in runs],
            "loop_lag_p99_each": [r["loop_lag"]["p99_ms"] for r in runs],
            "each": runs,
        }
        if store != base:
            pairs = list(zip(by_store[base], runs, strict=False))
            summary["stores"][store]["ratio_vs_" + base] = {
                "seconds": median([r["seconds"] / b["seconds"] for b, r in pairs]),
                "loop_lag_p99": median([r["loop_lag"]["p99_ms"] / b["loop_lag"]["p99_ms"] for b, r in pairs]),
                "client_cpu": median([r["client_cpu_s"] / b["client_cpu_s"] for b, r in pairs]),
            }
    return summary
