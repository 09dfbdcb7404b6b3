"""Loading and comparing BLE test vectors (shared/vectors/*.jsonl and tests/vectors/<driver>/*.jsonl).

Vector format: shared/vectors/README.md, one JSON object per line, with ``hex`` and ``characteristic``
(ble_standard) or ``service_uuid`` (mi_scale). The same conventions as the serial drivers' vectors
(tests/drivers/vectorlib.py):

- ``expect``: ``null`` (valid, not a result), ``"FrameError"``, ``{"device_report": {"code", "is_error"}}``
  or the expected reading, compared as a whole by tests/drivers/expected.py: the project's vectors in
  the driver's attribute names (``weight_kg``, ``impedance_ohm``, ``device_time``, ``user_index``,
  ...: every attribute the decoder produces, no more), the shared ones in the platform's names through
  ``expected.SHARED_NAMES``; ``fields`` is a subset of ``Reading.fields``.
- ``frames`` (project vectors only): a list of ``{"hex", "characteristic" | "service_uuid",
  "address"?}`` fed in order to one decoder of the driver, then ``flush``; ``expect`` is then the list
  of every result emitted, and ``expect_dedupe_keys`` (mi_scale) the number of distinct
  ``dedupe_key`` values among the stable readings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from expected import Naming, difference

from drivers.model import DeviceReport, Reading
from drivers.registry import flush_decoder, get

REPO = Path(__file__).resolve().parents[2]
SHARED_VECTORS = REPO.parent / "shared" / "vectors"
OWN_VECTORS = REPO / "tests" / "vectors"


def load(path: Path, naming: Naming) -> list[dict[str, Any]]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            doc = json.loads(line)
            doc.setdefault("name", f"{path.stem}:{n}")
            doc["_where"] = f"{path.name}:{n}"
            doc["_naming"] = naming
            out.append(doc)
    return out


def shared(driver: str) -> list[dict[str, Any]]:
    path = SHARED_VECTORS / f"{driver}.jsonl"
    return load(path, Naming.SHARED) if path.exists() else []


def own(driver: str) -> list[dict[str, Any]]:
    folder = OWN_VECTORS / driver
    return [v for p in sorted(folder.glob("*.jsonl")) for v in load(p, Naming.DRIVER)]


def channel_of(doc: dict[str, Any]) -> str:
    return str(doc.get("characteristic") or doc.get("service_uuid") or doc.get("channel") or "")


def mismatch(result: Reading | DeviceReport | None, expect: Any, naming: Naming) -> str | None:
    """None when one decoded result matches one ``expect`` (in ``naming``); else a readable difference."""
    if expect is None or result is None:
        return None if result is expect else f"expected {expect!r}, got {result!r}"
    if not isinstance(expect, dict):
        return f"expected {expect!r}, got {result!r}"
    if "device_report" in expect:
        want = expect["device_report"]
        if not isinstance(result, DeviceReport):
            return f"expected a device report, got {result!r}"
        if result.code != want["code"] or result.is_error is not want.get("is_error", True):
            return f"device report {result.code!r}/{result.is_error}, expected {want!r}"
        return None
    if not isinstance(result, Reading):
        return f"expected a reading, got {result!r}"
    return difference(result, expect, naming)


def run_frames(driver: str, frames: list[dict[str, Any]]) -> list[Reading | DeviceReport]:
    decoder = get(driver).new_decoder()
    out: list[Reading | DeviceReport] = []
    for frame in frames:
        out.extend(decoder.decode(bytes.fromhex(frame["hex"]), channel_of(frame)))
    out.extend(flush_decoder(decoder))
    return out
