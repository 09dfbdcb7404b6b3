"""M1 (issue 14): per-field physiological ranges. A table of the bounds (each checked just inside and
just outside), the audit's absurd values, and every driver's real vectors still plausible."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import MappingProxyType

import pytest

from bridge.plausibility import RANGES, SEGMENT_RANGES, check, park_reason
from drivers.model import Measurement, Segment, SegmentValues
from drivers.registry import LinkKind, get

REPO = Path(__file__).resolve().parents[1]

#: field -> (a value just inside, a value just outside) for a 80 kg person
TABLE = {
    "weight_kg": [(2.0, True), (400.0, True), (1.99, False), (400.1, False), (0.0, False), (10_000.0, False)],
    "height_cm": [(50.0, True), (272.0, True), (49.9, False), (999.0, False)],
    "fat_percent": [(1.0, True), (75.0, True), (0.9, False), (150.0, False), (-150.0, False)],
    "fat_mass_kg": [(0.0, True), (60.0, True), (60.1, False), (-1.0, False)],
    "fat_free_mass_kg": [(20.0, True), (80.0, True), (19.9, False), (80.1, False)],
    "muscle_mass_kg": [(8.0, True), (80.0, True), (7.9, False)],
    "muscle_percent": [(10.0, True), (100.0, True), (100.1, False)],
    "skeletal_muscle_mass_kg": [(4.0, True), (56.0, True), (56.1, False)],
    "skeletal_muscle_percent": [(5.0, True), (70.0, True), (70.1, False)],
    "soft_lean_mass_kg": [(8.0, True), (80.0, True), (80.5, False)],
    "bone_mass_kg": [(0.4, True), (16.0, True), (16.1, False), (0.3, False)],
    "total_body_water_kg": [(12.0, True), (68.0, True), (68.1, False), (11.9, False)],
    "total_body_water_percent": [(15.0, True), (85.0, True), (85.1, False), (14.9, False)],
    "visceral_fat_rating": [
        (1, True),
        (59, True),
        (0, False),
        (60, False),
        (99_999, False),
        (999_999_999_999, False),
        (5.5, False),
    ],
    "bmr_kcal": [(300.0, True), (6000.0, True), (-2000.0, False), (6001.0, False)],
    "bmi": [(7.0, True), (150.0, True), (6.9, False), (150.1, False)],
    "metabolic_age_years": [(5, True), (120, True), (4, False), (121, False)],
    "impedance_ohm": [(50.0, True), (3000.0, True), (49.0, False), (65533.0, False)],
}


def test_the_table_covers_every_range() -> None:
    assert set(TABLE) == set(RANGES)


@pytest.mark.parametrize(("field", "value", "ok"), [(f, v, ok) for f, rows in TABLE.items() for v, ok in rows])
def test_range_table(field: str, value: float, ok: bool) -> None:
    base = {} if field == "weight_kg" else {"weight_kg": 80.0}
    m = Measurement(**{**base, field: value})
    problems = check(m)
    assert (problems == []) is ok, problems
    if not ok:
        assert [p.field for p in problems] == [field]
        assert problems[0].value == value and problems[0].range is RANGES[field] and problems[0].reason


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_problems(value: float) -> None:
    for field in RANGES:
        problems = check(Measurement(**{"weight_kg": 80.0, field: value} if field != "weight_kg" else {field: value}))
        assert any(p.field == field and p.reason == "not a finite number" for p in problems), field


def test_segment_ranges() -> None:
    good = SegmentValues(fat_percent=20.0, fat_mass_kg=2.0, fat_free_mass_kg=9.0, fat_free_percent=80.0)
    bad = SegmentValues(fat_percent=120.0, fat_mass_kg=50.0, fat_free_percent=5.0)
    m = Measurement(weight_kg=80.0, segments=MappingProxyType({Segment.LEFT_LEG: good, Segment.TRUNK: bad}))
    fields = sorted(p.field for p in check(m))
    assert fields == ["segments.trunk.fat_free_percent", "segments.trunk.fat_mass_kg", "segments.trunk.fat_percent"]
    assert set(SEGMENT_RANGES) >= {"fat_percent", "fat_mass_kg", "fat_free_mass_kg", "fat_free_percent"}


def test_masses_are_judged_against_the_weight_each_on_its_own() -> None:
    # no sum rule (fat + fat-free = weight): the per-field bounds relative to the weight catch
    # corruption; a sum rule would also reject rounded or synthetic records
    assert check(Measurement(weight_kg=80.0, fat_mass_kg=40.0, fat_free_mass_kg=60.0)) == []
    assert [p.field for p in check(Measurement(weight_kg=50.0, fat_free_mass_kg=66.3))] == ["fat_free_mass_kg"]


def test_the_audits_absurd_weighing_gives_a_park_reason() -> None:
    m = Measurement(
        weight_kg=10_000.0, height_cm=999.0, fat_percent=150.0, bmr_kcal=-2000.0, visceral_fat_rating=99_999
    )
    reason = park_reason(m)
    assert reason is not None and reason.startswith("implausible: ")
    for field in ("weight_kg", "height_cm", "fat_percent", "visceral_fat_rating"):
        assert field in reason
    assert "(+1 more)" in reason
    assert park_reason(Measurement(weight_kg=70.5, fat_percent=20.1)) is None


def _vector_files() -> list[Path]:
    own = sorted((REPO / "tests" / "vectors").glob("*/*.jsonl"))
    return own + sorted((REPO.parent / "shared" / "vectors").glob("*.jsonl"))


#: real vectors that are not people: these may be implausible as a *body*, and are named here
NOT_A_PERSON = {
    "manual_stable_100g",  # MT-SICS manual example, 100 g on a lab balance
    "ekl_stable_grams",  # A&D EK-L balance manual figure, 1.2345 kg
}


def _readings(vec: dict[str, object]) -> list[Measurement]:
    spec = get(str(vec["driver"]))
    dec = spec.new_decoder()
    out: list[Measurement] = []
    if "text" in vec and spec.link is LinkKind.SERIAL:
        framer = spec.make_framer()
        frames = framer.feed(str(vec["text"]).encode("latin-1") + b"\n")
        payloads = [(f, "") for f in frames]
    elif "hex" in vec:
        channel = str(vec.get("characteristic") or vec.get("service_uuid") or "")
        payloads = [(bytes.fromhex(str(vec["hex"])), channel)]
    else:
        return out
    for frame, channel in payloads:
        try:
            results = dec.decode(frame, channel)
        except Exception:  # noqa: BLE001 - vectors that expect a FrameError
            continue
        out += [r.measurement for r in results if getattr(r, "is_weighing", False)]
    return out


SCALE_DRIVERS = {"tanita", "tanita_bc418", "ad_indicator", "mt_sics", "ble_standard", "mi_scale"}


def test_every_real_vector_that_is_a_weighing_is_plausible() -> None:
    seen = 0
    implausible: list[str] = []
    for path in _vector_files():
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            vec = json.loads(line)
            if vec.get("driver") not in SCALE_DRIVERS:
                continue
            for m in _readings(vec):
                seen += 1
                if check(m) and vec.get("name") not in NOT_A_PERSON:
                    implausible.append(f"{path.name}:{vec.get('name')}: {park_reason(m)}")
    assert seen >= 20
    assert implausible == []
