"""bridge.body_estimate: the regression fixtures of shared/reference/scales.md §B4, validity ranges,
clamping ranges and the ``estimated`` marking."""

from __future__ import annotations

from dataclasses import fields

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import body_estimate as be
from bridge.body import measured_fields, raw_results
from drivers.model import Measurement, Reading

# scales.md §B4 (openScale MiScaleLibTest.kt, numbers only):
# (sex, age, height, weight, impedance) -> bmi, fat %, bone, lbm, muscle %, water %, visceral (unclamped)
FIXTURES = [
    (("male", 30, 180, 80, 500), (24.691359, 23.315107, 3.1254203, 58.222496, 40.977253, 52.605835, 13.359997)),
    (("female", 28, 165, 60, 520), (22.038567, 30.361998, 2.4865808, 39.29622, 40.181103, 49.72153, -36.555004)),
    (("male", 45, 175, 95, 430), (31.020409, 32.41778, 3.2726917, 60.93042, 36.096416, 48.2537, 24.462498)),
]


def _estimate(sex: str, age: int, height: float, weight: float, impedance: float) -> Measurement | None:
    return be.estimate(weight_kg=weight, impedance_ohm=impedance, height_cm=height, age_years=age, sex=sex)


@pytest.mark.parametrize(("subject", "expected"), FIXTURES, ids=["male30", "female28", "male45"])
def test_regression_fixtures(subject: tuple[str, int, float, float, float], expected: tuple[float, ...]) -> None:
    m = _estimate(*subject)
    assert m is not None
    bmi, fat, bone, lbm, muscle_pct, water, visceral = expected
    assert m.bmi == pytest.approx(bmi, abs=0.01)
    assert m.fat_percent == pytest.approx(fat, abs=0.01)
    assert m.bone_mass_kg == pytest.approx(bone, abs=0.01)
    assert m.muscle_mass_kg == pytest.approx(lbm, abs=0.01)  # the fixtures' "lbm": weight - fat - bone
    assert m.skeletal_muscle_percent == pytest.approx(muscle_pct, abs=0.01)  # Janssen SMM / weight
    assert m.total_body_water_percent == pytest.approx(water, abs=0.01)
    sex, age, height, weight, impedance = subject
    raw = be.visceral_fat_raw(be.Subject(weight, impedance, height, age, be.Sex(sex)))
    assert raw == pytest.approx(visceral, abs=0.01)
    assert m.visceral_fat_rating == pytest.approx(min(max(visceral, 1.0), 50.0), abs=0.01)


def test_female_visceral_is_clamped_like_the_source() -> None:
    m = _estimate("female", 28, 165, 60, 520)
    assert m is not None and m.visceral_fat_rating == 1.0


def test_measured_inputs_kept_and_derived_fields_marked() -> None:
    m = _estimate("male", 30, 180, 80, 500)
    assert m is not None
    assert m.weight_kg == 80.0 and m.impedance_ohm == 500.0
    assert "weight_kg" not in m.estimated and "impedance_ohm" not in m.estimated
    filled = {f.name for f in fields(Measurement) if getattr(m, f.name) not in (None, frozenset())} - {"segments"}
    assert filled - {"weight_kg", "impedance_ohm", "estimated"} == set(m.estimated)
    assert m.height_cm is None  # the member's profile height is an input, not a measurement


def test_estimate_marked_in_raw_results() -> None:
    from datetime import UTC, datetime

    m = _estimate("female", 28, 165, 60, 520)
    assert m is not None
    reading = Reading(driver="mi_scale", measurement=m, stable=True, raw="0226")
    text = raw_results(reading, received_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert '"estimated":[' in text and "fat_percent" in text
    assert measured_fields(m)["percentBodyFat"] == pytest.approx(30.362, abs=0.01)


@pytest.mark.parametrize(
    "subject",
    [
        ("male", 30, 221, 80, 500),  # height > 220 cm
        ("male", 30, 180, 9.9, 500),  # weight < 10 kg
        ("male", 30, 180, 200.1, 500),  # weight > 200 kg
        ("male", 100, 180, 80, 500),  # age > 99
        ("male", 30, 180, 80, 3001),  # impedance > 3000 ohm
        ("male", 30, 180, 80, 0),  # no impedance (shoes on, sleeping scale)
        ("female", -1, 165, 60, 500),
        ("female", 30, 0, 60, 500),
    ],
)
def test_refuses_outside_the_validity_ranges(subject: tuple[str, int, float, float, float]) -> None:
    assert _estimate(*subject) is None


def test_bounds_are_inclusive() -> None:
    assert _estimate("male", 99, 220, 200, 3000) is not None
    assert _estimate("female", 0, 100, 10, 1) is not None


def test_unknown_sex_is_an_error() -> None:
    with pytest.raises(ValueError):
        _estimate("other", 30, 180, 80, 500)


@settings(max_examples=500, deadline=None)
@given(
    sex=st.sampled_from(["male", "female"]),
    age=st.integers(0, 99),
    height=st.floats(50, 220),
    weight=st.floats(10, 200),
    impedance=st.floats(1, 3000),
)
def test_outputs_stay_in_their_ranges(sex: str, age: int, height: float, weight: float, impedance: float) -> None:
    m = _estimate(sex, age, height, weight, impedance)
    assert m is not None
    assert m.fat_percent is not None and 5 <= m.fat_percent <= 75
    assert m.total_body_water_percent is not None and 35 <= m.total_body_water_percent <= 75
    assert m.bone_mass_kg is not None and 0.5 <= m.bone_mass_kg <= 8
    assert m.muscle_mass_kg is not None and 10 <= m.muscle_mass_kg <= 120
    assert m.visceral_fat_rating is not None and 1 <= m.visceral_fat_rating <= 50
    assert m.bmr_kcal is not None and 500 <= m.bmr_kcal <= 10000
    assert m.bmi is not None and 10 <= m.bmi <= 90
    assert m.fat_mass_kg is not None and m.fat_free_mass_kg is not None
    assert m.fat_mass_kg + m.fat_free_mass_kg == pytest.approx(weight, abs=0.002)
    assert m.estimated == be.ESTIMATED_FIELDS


@settings(max_examples=300, deadline=None)
@given(
    weight=st.floats(-1e6, 1e6, allow_nan=False) | st.just(float("nan")),
    impedance=st.floats(-1e6, 1e6, allow_nan=False),
    height=st.floats(-1e3, 1e3, allow_nan=False),
    age=st.integers(-10, 200),
)
def test_any_input_estimates_or_refuses(weight: float, impedance: float, height: float, age: int) -> None:
    m = _estimate("male", age, height, weight, impedance)
    in_range = 0 < height <= 220 and 10 <= weight <= 200 and 0 <= age <= 99 and 0 < impedance <= 3000
    assert (m is not None) is in_range
