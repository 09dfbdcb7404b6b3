"""What a driver produces: readings (measurements with their context) and device reports.

Units are in the field names. Every field is optional: a driver fills only what the scale measured.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

_EMPTY: Mapping[str, str] = MappingProxyType({})


class Segment(StrEnum):
    RIGHT_ARM = "right_arm"
    LEFT_ARM = "left_arm"
    RIGHT_LEG = "right_leg"
    LEFT_LEG = "left_leg"
    TRUNK = "trunk"


@dataclass(frozen=True, slots=True)
class SegmentValues:
    fat_percent: float | None = None
    fat_mass_kg: float | None = None
    fat_free_mass_kg: float | None = None
    fat_free_percent: float | None = None
    muscle_mass_kg: float | None = None


@dataclass(frozen=True, slots=True)
class Measurement:
    weight_kg: float | None = None
    height_cm: float | None = None
    fat_percent: float | None = None
    fat_mass_kg: float | None = None
    fat_free_mass_kg: float | None = None
    #: Tanita/BLE "muscle mass" (soft lean tissue): NOT skeletal muscle mass.
    muscle_mass_kg: float | None = None
    muscle_percent: float | None = None
    skeletal_muscle_mass_kg: float | None = None
    skeletal_muscle_percent: float | None = None
    soft_lean_mass_kg: float | None = None
    bone_mass_kg: float | None = None
    total_body_water_kg: float | None = None
    total_body_water_percent: float | None = None
    visceral_fat_rating: float | None = None
    bmr_kcal: float | None = None
    bmi: float | None = None
    metabolic_age_years: int | None = None
    impedance_ohm: float | None = None
    segments: Mapping[Segment, SegmentValues] = field(default_factory=lambda: MappingProxyType({}))
    #: Names of fields computed by us (not measured by the scale), e.g. Mi v2 body composition.
    estimated: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Reading:
    """One decoded result from a scale."""

    driver: str
    measurement: Measurement
    #: The scale reports the value as final (settled). Only stable readings become weighings.
    stable: bool
    #: Raw wire representation: the text line verbatim, or the payload as hex.
    raw: str
    #: Member/ID number carried by the scale itself (Tanita ``ID``); None when absent or all zeros.
    device_id: str | None = None
    #: The scale's own clock, ISO-8601 without zone, as reported (often wrong; metadata only).
    device_time: str | None = None
    model: str | None = None
    #: BLE user index, where the scale reports one.
    user_index: int | None = None
    #: Every decoded field by its wire code/label, for ``rawResults`` (values as text).
    fields: Mapping[str, str] = field(default_factory=lambda: _EMPTY)

    @property
    def is_weighing(self) -> bool:
        """A stable reading with a positive weight: the only kind that becomes a weighing."""
        w = self.measurement.weight_kg
        return self.stable and w is not None and w > 0


@dataclass(frozen=True, slots=True)
class DeviceReport:
    """A valid frame that is not a measurement: an error code, an echo, a status."""

    driver: str
    code: str
    message: str
    raw: str
    is_error: bool = True


ParseResult = Reading | DeviceReport | None
