"""Physiological plausibility of a measurement (issue 14, M1). Pure: no I/O, no clock.

BC-418, A&D and MT-SICS lines carry no checksum and Tanita's is a mod-256 sum, so a well-formed line
can still say 10,000 kg or 150 % fat. ``check`` lists every field outside the range a human body can
have (ranges and their sources: docs/plausibility.md); a weighing with any problem is parked with
the reason and never posted (``park_reason``), and ``decode`` reports it as rejected.

Ranges are deliberately wide (they catch corruption, not unusual people): the bounds are records or
device measuring ranges, not population percentiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType

from drivers.model import Measurement, Segment, SegmentValues


@dataclass(frozen=True, slots=True)
class Range:
    low: float
    high: float
    unit: str
    #: values must be whole numbers (a level or an age)
    integer: bool = False
    #: ``low``/``high`` are fractions of the measured body weight (a mass that is part of the body)
    of_weight: bool = False

    def describe(self) -> str:
        if self.of_weight:
            return f"{self.low:g}-{self.high:g} x weight"
        return f"{self.low:g}-{self.high:g} {self.unit}".rstrip()


@dataclass(frozen=True, slots=True)
class Problem:
    """One implausible field: its Measurement name, the value, the range it broke and why."""

    field: str
    value: float
    range: Range
    reason: str

    def __str__(self) -> str:
        return f"{self.field} = {_fmt(self.value)}: {self.reason}"


#: whole-body fields (Measurement attribute -> range). Sources per row in docs/plausibility.md.
RANGES: MappingProxyType[str, Range] = MappingProxyType(
    {
        "weight_kg": Range(2.0, 400.0, "kg"),
        "height_cm": Range(50.0, 272.0, "cm"),
        "fat_percent": Range(1.0, 75.0, "%"),
        "fat_mass_kg": Range(0.0, 0.75, "kg", of_weight=True),
        "fat_free_mass_kg": Range(0.25, 1.0, "kg", of_weight=True),
        "muscle_mass_kg": Range(0.1, 1.0, "kg", of_weight=True),
        "muscle_percent": Range(10.0, 100.0, "%"),
        "skeletal_muscle_mass_kg": Range(0.05, 0.7, "kg", of_weight=True),
        "skeletal_muscle_percent": Range(5.0, 70.0, "%"),
        "soft_lean_mass_kg": Range(0.1, 1.0, "kg", of_weight=True),
        "bone_mass_kg": Range(0.005, 0.2, "kg", of_weight=True),
        "total_body_water_kg": Range(0.15, 0.85, "kg", of_weight=True),
        "total_body_water_percent": Range(15.0, 85.0, "%"),
        "visceral_fat_rating": Range(1, 59, "", integer=True),
        "bmr_kcal": Range(300.0, 6000.0, "kcal"),
        "bmi": Range(7.0, 150.0, "kg/m2"),
        "metabolic_age_years": Range(5, 120, "years", integer=True),
        "impedance_ohm": Range(50.0, 3000.0, "ohm"),
    }
)
#: segmental fields (SegmentValues attribute -> range)
SEGMENT_RANGES: MappingProxyType[str, Range] = MappingProxyType(
    {
        "fat_percent": Range(0.0, 80.0, "%"),
        "fat_mass_kg": Range(0.0, 0.5, "kg", of_weight=True),
        "fat_free_mass_kg": Range(0.0, 0.6, "kg", of_weight=True),
        "fat_free_percent": Range(20.0, 100.0, "%"),
        "muscle_mass_kg": Range(0.0, 0.6, "kg", of_weight=True),
    }
)


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _check_one(name: str, value: float, rng: Range, weight_kg: float | None) -> Problem | None:
    v = float(value)
    if not math.isfinite(v):
        return Problem(name, v, rng, "not a finite number")
    if rng.integer and v != round(v):
        return Problem(name, v, rng, f"must be a whole number ({rng.describe()})")
    low, high = rng.low, rng.high
    if rng.of_weight:
        if weight_kg is None or not math.isfinite(weight_kg) or weight_kg <= 0:
            return None  # no weight to relate to: the weight's own check (or its absence) decides
        low, high = low * weight_kg, high * weight_kg
    if not low <= v <= high:
        bound = f"{_fmt(low)}-{_fmt(high)} {rng.unit}".rstrip() if rng.of_weight else rng.describe()
        return Problem(name, v, rng, f"outside the plausible range {bound}")
    return None


def check(measurement: Measurement) -> list[Problem]:
    """Every implausible field of ``measurement`` (empty: plausible). Absent fields are not checked."""
    problems: list[Problem] = []
    weight = measurement.weight_kg
    for name, rng in RANGES.items():
        value = getattr(measurement, name)
        if value is not None:
            p = _check_one(name, value, rng, weight)
            if p is not None:
                problems.append(p)
    for segment, values in measurement.segments.items():
        problems.extend(_check_segment(segment, values, weight))
    return problems


def _check_segment(segment: Segment, values: SegmentValues, weight_kg: float | None) -> list[Problem]:
    out: list[Problem] = []
    for name, rng in SEGMENT_RANGES.items():
        value = getattr(values, name)
        if value is not None:
            p = _check_one(f"segments.{segment.value}.{name}", value, rng, weight_kg)
            if p is not None:
                out.append(p)
    return out


def park_reason(measurement: Measurement) -> str | None:
    """For the journey: ``None`` if the weighing may be posted, else one line to park it with
    (``"implausible: weight_kg = 10000: outside the plausible range 2-400 kg; ..."``)."""
    problems = check(measurement)
    if not problems:
        return None
    text = "; ".join(str(p) for p in problems[:4])
    more = f" (+{len(problems) - 4} more)" if len(problems) > 4 else ""
    return f"implausible: {text}{more}"
