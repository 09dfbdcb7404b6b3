"""The vector checker itself (tests/drivers/expected.py): a reading is compared as a whole, in the
driver's names for the project's vectors and through the one translation table for the shared ones."""

from __future__ import annotations

import re
from pathlib import Path
from types import MappingProxyType

import pytest
from expected import MEASUREMENT_ATTRIBUTES, SHARED_NAMES, Naming, difference

from drivers.model import Measurement, Reading, Segment, SegmentValues

TRUNK = MappingProxyType({Segment.TRUNK: SegmentValues(fat_percent=24.2, muscle_mass_kg=28.3)})
READING = Reading(
    driver="tanita",
    measurement=Measurement(weight_kg=80.2, fat_percent=21.5, bone_mass_kg=3.2, bmr_kcal=1876.0, segments=TRUNK),
    stable=True,
    raw="",
    model="MC-980",
    fields=MappingProxyType({"Wk": "80.2"}),
)
WHOLE = {
    "weight_kg": 80.2,
    "fat_percent": 21.5,
    "bone_mass_kg": 3.2,
    "bmr_kcal": 1876,
    "segments.trunk.fat_percent": 24.2,
    "segments.trunk.muscle_mass_kg": 28.3,
    "model": "MC-980",
}


def test_the_whole_reading_matches() -> None:
    assert difference(READING, WHOLE, Naming.DRIVER) is None
    assert difference(READING, {**WHOLE, "fields": {"Wk": "80.2"}, "stable": True}, Naming.DRIVER) is None


@pytest.mark.parametrize("key", sorted(WHOLE))
def test_a_missing_attribute_fails(key: str) -> None:
    """Leaving any attribute out of ``expect`` is a difference: the decoder produced more than stated."""
    expect = {k: v for k, v in WHOLE.items() if k != key}
    problem = difference(READING, expect, Naming.DRIVER)
    assert problem is not None and key in problem and "extra" in problem


def test_an_attribute_the_decoder_did_not_produce_fails() -> None:
    problem = difference(READING, {**WHOLE, "muscle_mass_kg": 59.8, "device_id": "12345"}, Naming.DRIVER)
    assert problem == "missing ['device_id', 'muscle_mass_kg']"


def test_numbers_compare_to_a_hundredth_and_bmr_to_one_kcal() -> None:
    assert difference(READING, {**WHOLE, "weight_kg": 80.21, "bmr_kcal": 1877}, Naming.DRIVER) is None
    assert difference(READING, {**WHOLE, "weight_kg": 80.22}, Naming.DRIVER) is not None
    assert difference(READING, {**WHOLE, "bmr_kcal": 1874.5}, Naming.DRIVER) is not None


def test_context_and_wire_fields_are_compared() -> None:
    assert difference(READING, {**WHOLE, "stable": False}, Naming.DRIVER) is not None
    assert difference(READING, {**WHOLE, "model": "MC-780"}, Naming.DRIVER) is not None
    assert difference(READING, {**WHOLE, "fields": {"Wk": "80.3"}}, Naming.DRIVER) is not None


def test_a_name_of_the_other_naming_is_rejected() -> None:
    with pytest.raises(AssertionError, match="weight"):
        difference(READING, {"weight": 80.2}, Naming.DRIVER)
    with pytest.raises(AssertionError, match="bogus"):
        difference(READING, {"bogus": 1}, Naming.SHARED)


def test_shared_names_go_through_the_table_and_speak_only_of_what_they_can_name() -> None:
    shared = {"weight": 80.2, "percentBodyFat": 21.5, "basalMetabolicRate": 1876, "bfmPercentTrunk": 24.2}
    # bone mass, segment muscle mass and the model have no shared name: out of the shared scope
    assert difference(READING, shared, Naming.SHARED) is None
    # ... but within the scope a missing or an extra attribute still fails
    problem = difference(READING, {k: v for k, v in shared.items() if k != "percentBodyFat"}, Naming.SHARED)
    assert problem is not None and "fat_percent" in problem
    assert difference(READING, {**shared, "bodyMassIndex": 24.9}, Naming.SHARED) == "missing ['bmi']"


def test_the_translation_table_names_measurement_attributes_only() -> None:
    assert set(SHARED_NAMES.values()) <= MEASUREMENT_ATTRIBUTES
    assert len(set(SHARED_NAMES.values())) == len(SHARED_NAMES)


def test_drivers_tests_do_not_lean_on_the_uploaders_mapping() -> None:
    here = Path(__file__).resolve().parent
    imports = re.compile(r"^\s*(from bridge(\.body)? import|import bridge\.body)", re.M)
    users = [p.name for p in sorted(here.glob("*.py")) if imports.search(p.read_text(encoding="utf-8"))]
    assert users == [], f"bridge.body is tested in tests/test_body_mapping.py, not by the drivers' tests: {users}"
