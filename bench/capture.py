"""1. Durable capture: weighings committed per second through the real ``Outbox.capture()`` vs a bare
``sqlite3`` BEGIN/INSERT/COMMIT loop with the same pragmas (WAL, synchronous=FULL), same directory,
same JSON bodies. Rounds alternate which side goes first; the ratio is taken per round."""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bridge.body import weighing_body
from bridge.outbox import Outbox
from drivers.registry import get

from .common import log, median, tanita_frame


def bodies(n: int) -> list[tuple[dict[str, Any], str]]:
    spec = get("tanita")
    at = datetime.now(UTC)
    out = []
    for i in range(n):
        frame = spec.make_framer().feed(tanita_frame(i))[0]
        reading = spec.parse(frame, "")
        out.append((weighing_body(reading, received_at=at, scale="bench"), f"tanita::{i:032x}"))
    return out


class Bare:
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(str(path), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE w (id INTEGER PRIMARY KEY, captured_at REAL NOT NULL, body TEXT NOT NULL)")

    def block(self, items: list[tuple[dict[str, Any], str]]) -> float:
        db = self.db
        t0 = time.perf_counter()
        for body, _key in items:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "INSERT INTO w (captured_at, body) VALUES (?, ?)",
                (time.time(), json.dumps(body, separators=(",", ":"))),
            )
            db.execute("COMMIT")
        return time.perf_counter() - t0

    def close(self) -> None:
        self.db.close()


class Real:
    def __init__(self, path: Path) -> None:
        self.ob = Outbox(path)

    def block(self, items: list[tuple[dict[str, Any], str]]) -> float:
        ob = self.ob
        t0 = time.perf_counter()
        for body, key in items:
            ob.capture(
                scale="bench", driver="tanita", body=body, card="3220338716", card_source="scale_id", dedupe_key=key
            )
        return time.perf_counter() - t0

    def close(self) -> None:
        self.ob.close()


BLOCK = 50


def run(quick: bool) -> dict[str, Any]:
    """Each round: fresh files for both sides, a warm-up block each, then blocks of 50 commits
    alternating bare / outbox, so disk noise (shared machine) hits both sides alike."""
    n = 300 if quick else 1000
    rounds = 3 if quick else 5
    items = bodies(n + BLOCK)
    bare: list[float] = []
    real: list[float] = []
    ratios: list[float] = []
    size = 0
    with tempfile.TemporaryDirectory(prefix="bench-capture-") as d:
        for r in range(rounds):
            b, o = Bare(Path(d) / f"bare-{r}.db"), Real(Path(d) / f"outbox-{r}.db")
            b.block(items[-BLOCK:])
            o.block([(body, key + "w") for body, key in items[-BLOCK:]])
            tb = to = 0.0
            for k in range(0, n, BLOCK):
                chunk = items[k : k + BLOCK]
                if (k // BLOCK + r) % 2 == 0:
                    tb += b.block(chunk)
                    to += o.block(chunk)
                else:
                    to += o.block(chunk)
                    tb += b.block(chunk)
            b.close()
            o.close()
            bare.append(n / tb)
            real.append(n / to)
            ratios.append(tb / to)
            log(f"capture round {r + 1}/{rounds}: outbox {n / to:.0f}/s, bare {n / tb:.0f}/s, ratio {tb / to:.2f}")
            size = (Path(d) / f"outbox-{r}.db").stat().st_size
    return {
        "n_per_round": n,
        "rounds": rounds,
        "outbox_per_s": median(real),
        "bare_per_s": median(bare),
        "ratio": median(ratios),
        "runs": {"outbox_per_s": real, "bare_per_s": bare, "ratio": ratios},
        "outbox_db_bytes_per_weighing": size / (n + BLOCK),
    }
