"""Loading and comparing BLE test vectors (shared/vectors/*.jsonl and tests/vectors/<driver>/*.jsonl).

Vector format: shared/vectors/README.md, one JSON object per line, with ``hex`` and ``characteristic``
(ble_standard) or ``service_uuid`` (mi_scale). The same conventions as the serial drivers' vectors
(tests/drivers/vectorlib.py):

- ``expect``: ``null`` (valid, not a result), ``"FrameError"``, ``{"device_report": {"code", "is_error"}}``
  or an object of weighing-body fields (``bridge.body.measured_fields`` names) that must equal the
  decoded body as a whole (no key missing, none extra; numbers within 0.01, BMR within 1 kcal), plus
  snake_case keys compared when present: ``stable`` (default true), ``impedance_ohm``,
  ``device_time``, ``user_index``, ``model``, ``fields`` (a subset of ``Reading.fields``).
- ``frames`` (project vectors only): a list of ``{"hex", "characteristic" | "service_uuid",
  "address"?}`` fed in order to one decoder of the driver, then ``flush``; ``expect`` is then the list
  of every result emitted, and ``expect_dedupe_keys`` (mi_scale) the number of distinct
  ``dedupe_key`` values among the stable readings.

The project's own vectors give ``impedance_ohm`` whenever the scale reported one (checked).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bridge.body import measured_fields
from drivers.model import DeviceReport, Reading
from drivers.registry import flush_decoder, get

REPO = Path(__file__).resolve().parents[2]
SHARED_VECTORS = REPO.parent / "shared" / "vectors"
OWN_VECTORS = REPO / "tests" / "vectors"
EXTRA_KEYS = frozenset({"stable", "impedance_ohm", "device_time", "user_index", "device_id", "model", "fields"})


def load(path: Path) -> list[dict[str, Any]]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            doc = json.loads(line)
            doc.setdefault("name", f"{path.stem}:{n}")
            doc["_where"] = f"{path.name}:{n}"
            out.append(doc)
    return out


def shared(driver: str) -> list[dict[str, Any]]:
    path = SHARED_VECTORS / f"{driver}.jsonl"
    return load(path) if path.exists() else []


def own(driver: str) -> list[dict[str, Any]]:
    folder = OWN_VECTORS / driver
    return [v for p in sorted(folder.glob("*.jsonl")) for v in load(p)]


def channel_of(doc: dict[str, Any]) -> str:
    return str(doc.get("characteristic") or doc.get("service_uuid") or doc.get("channel") or "")


def _close(key: str, a: Any, e: Any) -> bool:
    if isinstance(e, bool) or isinstance(a, bool):
        return a is e
    if isinstance(e, int | float) and isinstance(a, int | float):
        return abs(a - e) <= (1.0 if key == "basalMetabolicRate" else 0.01) + 1e-9
    return bool(a == e)


def mismatch(result: Reading | DeviceReport | None, expect: Any) -> str | None:
    """None when one decoded result matches one ``expect``; else a readable difference."""
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
    body: dict[str, Any] = dict(measured_fields(result.measurement))
    wanted = {k: v for k, v in expect.items() if k not in EXTRA_KEYS}
    if set(body) != set(wanted):
        return f"body keys differ: missing {sorted(set(wanted) - set(body))}, extra {sorted(set(body) - set(wanted))}"
    bad = [(k, body[k], wanted[k]) for k in wanted if not _close(k, body[k], wanted[k])]
    if bad:
        return f"body values differ (got, expected): {bad}"
    if result.stable is not expect.get("stable", True):
        return f"stable = {result.stable}, expected {expect.get('stable', True)}"
    extra = {
        "impedance_ohm": result.measurement.impedance_ohm,
        "device_time": result.device_time,
        "user_index": result.user_index,
        "device_id": result.device_id,
        "model": result.model,
    }
    for key, got in extra.items():
        if (
            key in expect
            and not (got is None and expect[key] is None)
            and (got is None or expect[key] is None or not _close(key, got, expect[key]))
        ):
            return f"{key} = {got!r}, expected {expect[key]!r}"
    for key, value in expect.get("fields", {}).items():
        if result.fields.get(key) != value:
            return f"fields[{key!r}] = {result.fields.get(key)!r}, expected {value!r}"
    return None


def run_frames(driver: str, frames: list[dict[str, Any]]) -> list[Reading | DeviceReport]:
    decoder = get(driver).new_decoder()
    out: list[Reading | DeviceReport] = []
    for frame in frames:
        out.extend(decoder.decode(bytes.fromhex(frame["hex"]), channel_of(frame)))
    out.extend(flush_decoder(decoder))
    return out
