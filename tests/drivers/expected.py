"""A decoded ``Reading`` compared as a whole with a vector's ``expect``, in the driver's own terms.

The reading is flattened into a dict of its own attributes (``weight_kg``, ``bmr_kcal``,
``segments.right_arm.fat_percent``, ``estimated``, plus the reading's ``stable``, ``device_id``,
``device_time``, ``model``, ``user_index``); unset attributes (``None``, no segments, nothing estimated)
are left out. The expected values become the same kind of dict, and the two are compared once: a
missing attribute, an extra one or a different value is a difference.

Two namings of ``expect``:

* ``DRIVER`` (the project's own vectors, tests/vectors/**): ``Measurement`` and ``Reading`` attribute
  names. Every measurement attribute and every context attribute is in scope: the decoder must produce
  exactly what the vector states, nothing more (``stable`` defaults to true).
* ``SHARED`` (../shared/vectors, which the project does not edit): the platform's ``CustomerWeighings``
  names, plus snake_case ``stable`` / ``impedance_ohm`` (shared/vectors/README.md). They go through
  ``SHARED_NAMES``, the one translation table. That naming can only speak of the attributes it has a
  name for, so the scope is the table's attributes plus the snake_case keys a vector states: within it
  a missing or an extra attribute still fails. The table is written here on purpose, not taken from
  ``bridge.body``: the drivers' tests must not depend on the uploader's mapping (tested on its own in
  tests/test_body_mapping.py).

``fields`` in either naming is a subset of ``Reading.fields`` (the wire fields, values as text).

Precision (shared/vectors/README.md): numbers compare to 0.01, ``bmr_kcal`` to 1 kcal.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from drivers.model import Measurement, Reading, Segment, SegmentValues


class Naming(StrEnum):
    DRIVER = "driver"
    SHARED = "shared"


#: the absolute tolerance per attribute (README: 0.01, BMR 1 kcal)
DEFAULT_TOLERANCE = 0.01
TOLERANCE: Mapping[str, float] = {"bmr_kcal": 1.0}

#: the reading's own attributes compared besides the measurement (``raw`` is the wire text and
#: ``driver`` is the decoder's name; ``fields`` is compared as a subset)
CONTEXT = ("stable", "device_id", "device_time", "model", "user_index")

_SEGMENT_SHARED = {
    "RightArm": Segment.RIGHT_ARM,
    "LeftArm": Segment.LEFT_ARM,
    "RightLeg": Segment.RIGHT_LEG,
    "LeftLeg": Segment.LEFT_LEG,
    "Trunk": Segment.TRUNK,
}
_SEGMENT_PREFIX_SHARED = {
    "bfm": "fat_mass_kg",
    "bfmPercent": "fat_percent",
    "ffm": "fat_free_mass_kg",
    "ffmPercent": "fat_free_percent",
}

#: shared vector name -> flattened ``Measurement`` attribute
SHARED_NAMES: Mapping[str, str] = {
    "weight": "weight_kg",
    "height": "height_cm",
    "percentBodyFat": "fat_percent",
    "bodyFatMass": "fat_mass_kg",
    "fatFreeMass": "fat_free_mass_kg",
    "skeletalMuscleMass": "skeletal_muscle_mass_kg",
    "percentSkeletalMuscleMass": "skeletal_muscle_percent",
    "totalBodyWater": "total_body_water_kg",
    "visceralFatLevel": "visceral_fat_rating",
    "basalMetabolicRate": "bmr_kcal",
    "bodyMassIndex": "bmi",
    **{
        prefix + name: f"segments.{segment.value}.{attr}"
        for prefix, attr in _SEGMENT_PREFIX_SHARED.items()
        for name, segment in _SEGMENT_SHARED.items()
    },
}


def measurement_attributes(m: Measurement) -> dict[str, Any]:
    """The measurement as a flat dict of its set attributes."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(Measurement):
        value = getattr(m, f.name)
        if f.name == "segments":
            for segment, values in value.items():
                for sf in dataclasses.fields(SegmentValues):
                    part = getattr(values, sf.name)
                    if part is not None:
                        out[f"segments.{Segment(segment).value}.{sf.name}"] = part
        elif f.name == "estimated":
            if value:
                out["estimated"] = sorted(value)
        elif value is not None:
            out[f.name] = value
    return out


def reading_attributes(reading: Reading) -> dict[str, Any]:
    """The reading as a flat dict: its measurement's set attributes and its context attributes."""
    out = measurement_attributes(reading.measurement)
    for key in CONTEXT:
        value = getattr(reading, key)
        if value is not None:
            out[key] = value
    return out


def _all_measurement_attributes() -> frozenset[str]:
    names = {f.name for f in dataclasses.fields(Measurement)} - {"segments"}
    names |= {f"segments.{s.value}.{f.name}" for s in Segment for f in dataclasses.fields(SegmentValues)}
    return frozenset(names)


MEASUREMENT_ATTRIBUTES = _all_measurement_attributes()


def expected_attributes(expect: Mapping[str, Any], naming: Naming) -> tuple[dict[str, Any], frozenset[str]]:
    """The expected flat dict and the attributes in scope (those an absence in ``expect`` speaks of)."""
    want: dict[str, Any] = {}
    for key, value in expect.items():
        if key == "fields":
            continue
        name = SHARED_NAMES.get(key, key) if naming is Naming.SHARED else key
        assert name in MEASUREMENT_ATTRIBUTES or name in CONTEXT, f"expect names {key!r}: not a {naming} name"
        if value is not None:
            want[name] = value
    want.setdefault("stable", True)
    if naming is Naming.DRIVER:
        scope = MEASUREMENT_ATTRIBUTES | set(CONTEXT)
    else:
        scope = frozenset(SHARED_NAMES.values()) | {"stable"} | {SHARED_NAMES.get(k, k) for k in expect}
    return want, frozenset(scope)


def _same(name: str, got: Any, want: Any) -> bool:
    if isinstance(got, bool) or isinstance(want, bool):
        return got is want
    if isinstance(got, int | float) and isinstance(want, int | float):
        return math.isclose(got, want, abs_tol=TOLERANCE.get(name, DEFAULT_TOLERANCE) + 1e-9)
    return bool(got == want)


def difference(reading: Reading, expect: Mapping[str, Any], naming: Naming) -> str | None:
    """None when ``reading`` is what ``expect`` states, as a whole; else every difference, readable."""
    want, scope = expected_attributes(expect, naming)
    got = {k: v for k, v in reading_attributes(reading).items() if k in scope}
    missing = sorted(set(want) - set(got))
    extra = {k: got[k] for k in sorted(set(got) - set(want))}
    wrong = {k: (got[k], want[k]) for k in sorted(set(got) & set(want)) if not _same(k, got[k], want[k])}
    problems = []
    if missing:
        problems.append(f"missing {missing}")
    if extra:
        problems.append(f"extra {extra}")
    if wrong:
        problems.append(f"differ (got, expected) {wrong}")
    for key, value in expect.get("fields", {}).items():
        if reading.fields.get(key) != value:
            problems.append(f"fields[{key!r}] = {reading.fields.get(key)!r}, expected {value!r}")
    return "; ".join(problems) or None
