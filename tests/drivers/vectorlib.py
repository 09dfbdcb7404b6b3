"""Loading and checking test vectors (shared/vectors/README.md format).

One JSON object per line: ``driver``, ``name``, ``source``, ``text`` (exact serial bytes incl. CR LF) and
``expect``:

* ``null`` - a valid frame that is not a weighing (the decoder yields nothing, raises nothing);
* ``"FrameError"`` - rejected (one FrameError per copy, nothing decoded);
* the expected reading, compared as a whole by tests/drivers/expected.py (``Vector.naming``): the
  project's vectors (tests/vectors/<driver>/) in the driver's attribute names, every attribute the
  decoder must produce and no more (``weight_kg``, ``segments.trunk.fat_percent``, ``stable``
  (default true), ``device_time``, ``device_id``, ``model``, ...); the shared ones in the platform's
  names, through ``expected.SHARED_NAMES``. ``fields`` is a subset of the reading's wire fields.
  Numbers compare to 0.01, ``bmr_kcal`` to 1 kcal;
* ``{"device_report": {"code": ..., "is_error": ...}}`` - a device report (error code, PC-mode reply).

``expect_count`` instead of ``expect``: the number of readings the text must yield (noise allowed).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from expected import Naming, difference

from drivers import DeviceReport, FrameError, Reading
from drivers.registry import DriverSpec

HERE = Path(__file__).resolve()
REPO = HERE.parents[2]
SHARED_VECTORS = REPO / ".." / "shared" / "vectors"
OWN_VECTORS = REPO / "tests" / "vectors"
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
    #: the shared vectors state the platform's names; the project's, the driver's
    naming: Naming

    @property
    def id(self) -> str:
        return f"{self.origin}:{self.name}"


def _load(path: Path, origin: str, naming: Naming) -> list[Vector]:
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
                naming=naming,
            )
        )
    return out


def shared_vectors(driver: str) -> list[Vector]:
    path = SHARED_VECTORS / f"{driver}.jsonl"
    return _load(path, "shared", Naming.SHARED) if path.is_file() else []


def own_vectors(driver: str) -> list[Vector]:
    folder = OWN_VECTORS / driver
    out: list[Vector] = []
    for path in sorted(folder.glob("*.jsonl")):
        out.extend(_load(path, path.stem, Naming.DRIVER))
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


def assert_reading(expect: dict[str, Any], reading: Reading, label: str, naming: Naming) -> None:
    problem = difference(reading, expect, naming)
    assert problem is None, f"{label}: {problem}"


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
            assert_reading(expect, result, label, vector.naming)


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
