"""Loading and checking test vectors (shared/vectors/README.md format).

One JSON object per line: ``driver``, ``name``, ``source``, ``text`` (exact serial bytes incl. CR LF) and
``expect``:

* ``null`` - a valid frame that is not a weighing (the decoder yields nothing, raises nothing);
* ``"FrameError"`` - rejected (one FrameError per copy, nothing decoded);
* an object of weighing-body fields (the platform's ``CustomerWeighings`` names, as produced by
  ``bridge.body.measured_fields``): the decoded body must have exactly these keys; numbers compare to
  0.01, ``basalMetabolicRate`` to 1 kcal. Extra snake_case keys are compared when present:
  ``stable`` (default true), ``impedance_ohm``, ``device_time``, ``device_id``, ``model`` and
  ``fields`` (a subset of the reading's wire fields);
* ``{"device_report": {"code": ..., "is_error": ...}}`` - a device report (error code, PC-mode reply).

``expect_count`` instead of ``expect``: the number of readings the text must yield (noise allowed).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.body import measured_fields
from drivers import DeviceReport, FrameError, Reading
from drivers.registry import DriverSpec

HERE = Path(__file__).resolve()
REPO = HERE.parents[2]
SHARED_VECTORS = REPO / ".." / "shared" / "vectors"
OWN_VECTORS = REPO / "tests" / "vectors"
EXTRA_KEYS = frozenset({"stable", "impedance_ohm", "device_time", "device_id", "model", "fields"})
MODES = ("whole", "bytewise", "five_joined")


@dataclass(frozen=True)
class Vector:
    driver: str
    name: str
    source: str
    text: bytes
    expect: Any
    expect_count: int | None
    origin: str

    @property
    def id(self) -> str:
        return f"{self.origin}:{self.name}"


def _load(path: Path, origin: str) -> list[Vector]:
    out: list[Vector] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        doc = json.loads(line)
        for key in ("driver", "name", "source", "text"):
            assert key in doc, f"{path}:{n} lacks {key!r}"
        assert "expect" in doc or "expect_count" in doc, f"{path}:{n} lacks expect"
        out.append(
            Vector(
                driver=doc["driver"],
                name=doc["name"],
                source=doc["source"],
                text=doc["text"].encode("latin-1"),
                expect=doc.get("expect"),
                expect_count=doc.get("expect_count"),
                origin=origin,
            )
        )
    return out


def shared_vectors(driver: str) -> list[Vector]:
    path = SHARED_VECTORS / f"{driver}.jsonl"
    return _load(path, "shared") if path.is_file() else []


def own_vectors(driver: str) -> list[Vector]:
    folder = OWN_VECTORS / driver
    out: list[Vector] = []
    for path in sorted(folder.glob("*.jsonl")):
        out.extend(_load(path, path.stem))
    return out


def feed(spec: DriverSpec, data: bytes, mode: str) -> tuple[list[Reading | DeviceReport], list[FrameError]]:
    """Frame and decode ``data`` (five copies for ``five_joined``) the way a link would."""
    framer = spec.make_framer()
    decoder = spec.new_decoder()
    if mode == "whole":
        chunks: Iterable[bytes] = [data]
    elif mode == "bytewise":
        chunks = [data[i : i + 1] for i in range(len(data))]
    elif mode == "five_joined":
        chunks = [data * 5]
    else:
        raise ValueError(mode)
    results: list[Reading | DeviceReport] = []
    errors: list[FrameError] = []
    for chunk in chunks:
        for frame in framer.feed(chunk):
            try:
                results.extend(decoder.decode(frame, ""))
            except FrameError as exc:
                errors.append(exc)
    return results, errors


def copies(mode: str) -> int:
    return 5 if mode == "five_joined" else 1


def reading_view(reading: Reading) -> dict[str, Any]:
    view: dict[str, Any] = dict(measured_fields(reading.measurement))
    view["stable"] = reading.stable
    view["impedance_ohm"] = reading.measurement.impedance_ohm
    view["device_time"] = reading.device_time
    view["device_id"] = reading.device_id
    view["model"] = reading.model
    view["fields"] = dict(reading.fields)
    return view


def _close(key: str, actual: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual is expected
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        tolerance = 1.0 if key == "basalMetabolicRate" else 0.01
        return math.isclose(actual, expected, abs_tol=tolerance + 1e-9)
    return bool(actual == expected)


def assert_reading(expect: dict[str, Any], reading: Reading, label: str) -> None:
    view = reading_view(reading)
    body_keys = {k for k in view if k not in EXTRA_KEYS}
    expected_keys = {k for k in expect if k not in EXTRA_KEYS}
    missing, extra = sorted(expected_keys - body_keys), sorted(body_keys - expected_keys)
    assert body_keys == expected_keys, f"{label}: body keys differ: missing {missing}, extra {extra}"
    for key in expected_keys:
        assert _close(key, view[key], expect[key]), f"{label}: {key} = {view[key]!r}, expected {expect[key]!r}"
    assert view["stable"] is expect.get("stable", True), f"{label}: stable = {view['stable']}"
    for key in ("impedance_ohm", "device_time", "device_id", "model"):
        if key in expect:
            assert _close(key, view[key], expect[key]), f"{label}: {key} = {view[key]!r}, expected {expect[key]!r}"
    for key, value in expect.get("fields", {}).items():
        assert view["fields"].get(key) == value, f"{label}: fields[{key}] = {view['fields'].get(key)!r}"


def check_vector(spec: DriverSpec, vector: Vector, mode: str) -> None:
    results, errors = feed(spec, vector.text, mode)
    n = copies(mode)
    label = f"{vector.id} ({mode})"
    if vector.expect_count is not None:
        readings = [r for r in results if isinstance(r, Reading)]
        assert len(readings) == vector.expect_count * n, f"{label}: {len(readings)} readings"
        return
    expect = vector.expect
    if expect == "FrameError":
        assert results == [], f"{label}: decoded {results!r}"
        assert len(errors) == n, f"{label}: {len(errors)} FrameErrors, expected {n}"
        return
    assert errors == [], f"{label}: unexpected {errors!r}"
    if expect is None:
        assert results == [], f"{label}: expected nothing, decoded {results!r}"
        return
    assert len(results) == n, f"{label}: {len(results)} results, expected {n}"
    for result in results:
        if "device_report" in expect:
            assert isinstance(result, DeviceReport), f"{label}: {result!r}"
            want = expect["device_report"]
            assert result.code == want["code"], f"{label}: code {result.code!r}"
            assert result.is_error is want.get("is_error", True), f"{label}: is_error {result.is_error}"
        else:
            assert isinstance(result, Reading), f"{label}: {result!r}"
            assert_reading(expect, result, label)


def vector_params(driver: str, *, shared: bool) -> list[Any]:
    """pytest params for a driver's vectors; a clear skip when the shared folder is absent."""
    import pytest

    if shared:
        if not SHARED_VECTORS.is_dir():
            reason = f"shared vectors folder absent: {SHARED_VECTORS}"
            return [pytest.param(None, marks=pytest.mark.skip(reason=reason))]
        vectors = shared_vectors(driver)
    else:
        vectors = own_vectors(driver)
    return [pytest.param(v, id=v.id) for v in vectors]


def require_slow(request: Any) -> None:
    """Long profiles run only when selected: ``pytest -m slow``."""
    import pytest

    expr = (request.config.getoption("markexpr") or "").replace("not slow", "")
    if "slow" not in expr:
        pytest.skip("long profile: run with -m slow")
