"""Synthetic Tanita (MC-780-style) weighings and capture files for reliability tests.

Every line is a valid frame (``drivers.tanita.checksum``) and distinct (the index is encoded in the
date, time, weight and BMR fields); the scale's ``ID`` field carries a seeded card number of the
simulator (bridge/simulator/seed.toml) so each weighing resolves to a member."""

from __future__ import annotations

import json
from pathlib import Path

from drivers.tanita import checksum

#: seeded cards: 1001 (studio A, BODY_SCAN), 1002 (studio A), 1003 (studio B: cross-studio), 1004 (A, BODY_SCAN)
SEEDED_CARDS = ("3220338716", "1173673668653440", "6547886", "1234567890123456")


def tanita_line(i: int, card: str) -> bytes:
    """Weighing number ``i`` (0 <= i < 10**6) for ``card``: one CRLF-terminated frame."""
    weight = 45.0 + (i % 700) / 10
    minute, hour = i % 60, (i // 60) % 24
    day, month = 1 + (i // 1440) % 28, 1 + (i // 40320) % 12
    fat_kg = round(weight * 0.214, 1)  # the masses follow from the weight, as on a real analyser
    ffm_kg = round(weight - fat_kg, 1)
    body = (
        f'{{0,16,~0,1,~1,1,~2,1,MO,"MC-780",ID,"{int(card):016d}",St,0,Da,"{day:02d}/{month:02d}/2026",'
        f'TI,"{hour:02d}:{minute:02d}",Bt,0,GE,1,AG,36,Hm,181.0,Pt,1.0,Wk,{weight:.1f},FW,21.4,fW,{fat_kg:.1f},'
        f"MW,{ffm_kg:.1f},mW,{ffm_kg * 0.95:.1f},sW,1,bW,3.2,wW,{ffm_kg * 0.73:.1f},ww,57.5,MI,25.7,IF,9,"
        f"rB,{1000 + i % 5000},rA,35,"
    )
    return (body + f"CS,{checksum(body.encode())}\r\n").encode()


def write_capture(path: Path, indices: range, cards: tuple[str, ...] = SEEDED_CARDS, *,
                  step_s: float = 0.01) -> list[str]:
    """Write a capture of the weighings ``indices``; returns their raw lines (without CRLF)."""
    raws: list[str] = []
    with path.open("w", encoding="utf-8") as fh:
        fh.write(json.dumps({"format": "scale-bridge-capture", "version": 1, "driver": "tanita",
                             "link": "serial", "note": "synthetic weighings for reliability tests"}) + "\n")
        for n, i in enumerate(indices):
            line = tanita_line(i, cards[i % len(cards)])
            raws.append(line.decode().rstrip("\r\n"))
            fh.write(json.dumps({"t": round(n * step_s, 6), "kind": "rx", "hex": line.hex()}) + "\n")
    return raws


def raw_of(body: dict) -> str:  # type: ignore[type-arg]
    """The scale line inside a posted weighing body's ``rawResults``."""
    return str(json.loads(body["rawResults"])["raw"])
