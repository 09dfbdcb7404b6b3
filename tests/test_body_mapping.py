"""bridge/body.py on its own: a driver's ``Reading`` -> the platform's ``CustomerWeighings`` body. The
driver tests compare whole ``Reading``s and never go through this mapping; here every mapped field, the
fields kept only in ``rawResults``, the segments, rounding and absence are pinned down once."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.body import measured_fields, raw_results, weighing_body
from drivers import Measurement, Reading, Segment
from drivers.model import SegmentValues

RECEIVED = datetime(2026, 11, 22, 15, 31, tzinfo=UTC)

WHOLE_BODY = {  # Measurement field -> CustomerWeighings name (docs/mapping.md)
    "weight_kg": "weight",
    "height_cm": "height",
    "fat_percent": "percentBodyFat",
    "fat_mass_kg": "bodyFatMass",
    "fat_free_mass_kg": "fatFreeMass",
    "skeletal_muscle_mass_kg": "skeletalMuscleMass",
    "skeletal_muscle_percent": "percentSkeletalMuscleMass",
    "total_body_water_kg": "totalBodyWater",
    "bmr_kcal": "basalMetabolicRate",
    "bmi": "bodyMassIndex",
    "visceral_fat_rating": "visceralFatLevel",
}
RAW_ONLY = {  # measured, but the platform has no field for it: kept in rawResults["unmapped"]
    "muscle_mass_kg": 60.1,
    "muscle_percent": 74.2,
    "soft_lean_mass_kg": 61.8,
    "bone_mass_kg": 3.2,
    "total_body_water_percent": 56.4,
    "metabolic_age_years": 31,
    "impedance_ohm": 512.3,
}
SEGMENTS = {
    Segment.LEFT_ARM: "LeftArm",
    Segment.RIGHT_ARM: "RightArm",
    Segment.LEFT_LEG: "LeftLeg",
    Segment.RIGHT_LEG: "RightLeg",
    Segment.TRUNK: "Trunk",
}


def reading(m: Measurement, **kw: Any) -> Reading:
    base: dict[str, Any] = {"driver": "tanita", "measurement": m, "stable": True, "raw": "{0,16,Wk,80.0}"}
    return Reading(**{**base, **kw})


def test_each_whole_body_field_has_its_platform_name() -> None:
    values = {attr: 10.0 + n for n, attr in enumerate(WHOLE_BODY)}
    body = measured_fields(Measurement(**values))
    assert body == {name: values[attr] for attr, name in WHOLE_BODY.items()}


def test_nothing_measured_is_nothing_sent_but_a_zero_is_a_measurement() -> None:
    assert measured_fields(Measurement()) == {}
    assert measured_fields(Measurement(weight_kg=0.0, fat_percent=0.0)) == {"weight": 0.0, "percentBodyFat": 0.0}


def test_numbers_round_to_three_decimals_and_the_visceral_level_to_an_integer() -> None:
    body = measured_fields(Measurement(weight_kg=80.12345, visceral_fat_rating=9.5, bmr_kcal=1870.0004))
    assert body == {"weight": 80.123, "visceralFatLevel": 10, "basalMetabolicRate": 1870.0}
    assert isinstance(body["visceralFatLevel"], int)


def test_segments_map_kg_and_percent_per_segment_and_muscle_mass_only_to_raw_results() -> None:
    segments = {s: SegmentValues(fat_percent=20.0 + n, fat_mass_kg=1.0 + n, fat_free_mass_kg=3.0 + n,
                                 fat_free_percent=80.0 + n, muscle_mass_kg=2.5 + n)
                for n, s in enumerate(SEGMENTS)}
    m = Measurement(weight_kg=80.0, segments=segments)
    expected: dict[str, Any] = {"weight": 80.0}
    for n, name in enumerate(SEGMENTS.values()):
        expected |= {f"bfmPercent{name}": 20.0 + n, f"bfm{name}": 1.0 + n, f"ffm{name}": 3.0 + n,
                     f"ffmPercent{name}": 80.0 + n}
    assert measured_fields(m) == expected
    raw = json.loads(raw_results(reading(m), received_at=RECEIVED))
    assert raw["unmapped"] == {"segment_muscle_mass_kg": {s.value: 2.5 + n for n, s in enumerate(SEGMENTS)}}


def test_a_segment_without_percentages_sends_no_percent_fields() -> None:
    m = Measurement(segments={Segment.RIGHT_ARM: SegmentValues(fat_free_mass_kg=3.5, fat_mass_kg=0.9)})
    assert measured_fields(m) == {"ffmRightArm": 3.5, "bfmRightArm": 0.9}


def test_fields_without_a_platform_name_go_to_raw_results_only() -> None:
    m = Measurement(weight_kg=80.5, skeletal_muscle_mass_kg=36.2, **RAW_ONLY)
    r = reading(m, raw='{"answers":{"x":"[{\\"ECW\\": 17.3}]"}}', device_time="2026-11-22T10:30:00",
                model="InBody (LookinBody Web)", driver="inbody")
    body = weighing_body(r, received_at=RECEIVED, scale="reception")
    assert {k: v for k, v in body.items() if k != "rawResults"} == {"weight": 80.5, "skeletalMuscleMass": 36.2}
    assert json.loads(body["rawResults"]) == {
        "format": "scale-bridge/1",
        "driver": "inbody",
        "model": "InBody (LookinBody Web)",
        "raw": r.raw,  # the device's text verbatim
        "deviceTime": "2026-11-22T10:30:00",
        "receivedAt": "2026-11-22T15:31:00+00:00",
        "scale": "reception",
        "unmapped": RAW_ONLY,
    }


def test_no_measured_field_is_silently_dropped() -> None:
    """Each Measurement field is either a platform field or kept in rawResults: a new field added to
    drivers/model.py without a place in the mapping fails here."""
    mapped_or_kept = set(WHOLE_BODY) | set(RAW_ONLY) | {"segments", "estimated"}
    assert {f.name for f in dataclasses.fields(Measurement)} == mapped_or_kept
    for attr, value in RAW_ONLY.items():
        m = Measurement(**{attr: value})
        assert measured_fields(m) == {}
        assert json.loads(raw_results(reading(m), received_at=RECEIVED))["unmapped"] == {attr: value}


def test_estimated_fields_are_listed_in_raw_results() -> None:
    m = Measurement(weight_kg=80.0, fat_percent=21.0, estimated=frozenset({"fat_percent"}))
    assert json.loads(raw_results(reading(m), received_at=RECEIVED))["estimated"] == ["fat_percent"]


finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(values=st.fixed_dictionaries({}, optional={attr: finite for attr in WHOLE_BODY}),
       segment=st.sampled_from(list(SEGMENTS)), seg_fat_kg=st.none() | finite)
def test_any_measurement_maps_to_a_json_body(values: dict[str, float], segment: Segment,
                                             seg_fat_kg: float | None) -> None:
    m = Measurement(**values, segments={segment: SegmentValues(fat_mass_kg=seg_fat_kg)})
    body = weighing_body(reading(m), received_at=RECEIVED)
    assert set(body) - {"rawResults"} == {WHOLE_BODY[a] for a in values} | (
        set() if seg_fat_kg is None else {f"bfm{SEGMENTS[segment]}"})
    json.dumps(body, allow_nan=False)  # what the platform client sends
