"""Reading -> the platform's ``CustomerWeighings`` body.

Only fields the scale really measured are sent (never invented zeros). Mapping table (also in
docs/mapping.md):

| Measurement field            | CustomerWeighings field      | note                                   |
|------------------------------|------------------------------|----------------------------------------|
| weight_kg                    | weight                       |                                        |
| height_cm                    | height                       |                                        |
| fat_percent                  | percentBodyFat               |                                        |
| fat_mass_kg                  | bodyFatMass                  |                                        |
| fat_free_mass_kg             | fatFreeMass                  |                                        |
| skeletal_muscle_mass_kg      | skeletalMuscleMass           | only where the scale reports SMM       |
| skeletal_muscle_percent      | percentSkeletalMuscleMass    |                                        |
| total_body_water_kg          | totalBodyWater               | litres (1 kg water = 1 l)              |
| visceral_fat_rating          | visceralFatLevel             | rounded to an integer (int32)          |
| bmr_kcal                     | basalMetabolicRate           | kcal                                   |
| bmi                          | bodyMassIndex                |                                        |
| segment fat_mass_kg          | bfm<Segment>                 | kg                                     |
| segment fat_percent          | bfmPercent<Segment>          | %                                      |
| segment fat_free_mass_kg     | ffm<Segment>                 | kg                                     |
| segment fat_free_percent     | ffmPercent<Segment>          | %                                      |
| muscle_mass_kg, muscle_percent, soft_lean_mass_kg, bone_mass_kg, water %, metabolic age,
  impedance, segment muscle mass — no matching platform field: kept in ``rawResults``.            |
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from drivers.model import Measurement, Reading, Segment

RAW_FORMAT = "scale-bridge/1"
#: fields that carry a card or member number (Tanita ID / CC, a serial number): masked in
#: ``rawResults`` like the logs' card mask (M6, issue 14); RFID numbers are often door credentials
MASKED_FIELDS = ("ID", "CC", "SN")
_SEGMENT_NAMES = {
    Segment.LEFT_ARM: "LeftArm",
    Segment.RIGHT_ARM: "RightArm",
    Segment.LEFT_LEG: "LeftLeg",
    Segment.RIGHT_LEG: "RightLeg",
    Segment.TRUNK: "Trunk",
}
_WHOLE_BODY = (
    ("weight_kg", "weight"),
    ("height_cm", "height"),
    ("fat_percent", "percentBodyFat"),
    ("fat_mass_kg", "bodyFatMass"),
    ("fat_free_mass_kg", "fatFreeMass"),
    ("skeletal_muscle_mass_kg", "skeletalMuscleMass"),
    ("skeletal_muscle_percent", "percentSkeletalMuscleMass"),
    ("total_body_water_kg", "totalBodyWater"),
    ("bmr_kcal", "basalMetabolicRate"),
    ("bmi", "bodyMassIndex"),
)
_SEGMENTAL = (
    ("fat_mass_kg", "bfm"),
    ("fat_percent", "bfmPercent"),
    ("fat_free_mass_kg", "ffm"),
    ("fat_free_percent", "ffmPercent"),
)
_UNMAPPED = (
    "muscle_mass_kg",
    "muscle_percent",
    "soft_lean_mass_kg",
    "bone_mass_kg",
    "total_body_water_percent",
    "metabolic_age_years",
    "impedance_ohm",
)


def _num(value: float) -> float:
    return round(float(value), 3)


def measured_fields(m: Measurement) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for attr, name in _WHOLE_BODY:
        value = getattr(m, attr)
        if value is not None:
            body[name] = _num(value)
    if m.visceral_fat_rating is not None:
        body["visceralFatLevel"] = round(m.visceral_fat_rating)
    for segment, values in m.segments.items():
        for attr, prefix in _SEGMENTAL:
            value = getattr(values, attr)
            if value is not None:
                body[prefix + _SEGMENT_NAMES[segment]] = _num(value)
    return body


def _mask(value: str) -> str:
    """Keep the last 4 characters (``0000003220338716`` -> ``************8716``); all zeros
    (Tanita's "no ID") and empty values stay as they are: nothing personal."""
    v = value.strip().strip('"')
    if not v or set(v) <= {"0"}:
        return value
    return value.replace(v, "*" * max(0, len(v) - 4) + v[-4:] if len(v) > 4 else "*" * len(v))


def _masked(reading: Reading) -> tuple[str, dict[str, str]]:
    """The raw line and the fields with ``MASKED_FIELDS`` masked."""
    fields = dict(reading.fields)
    raw = reading.raw
    for key in MASKED_FIELDS:
        value = fields.get(key)
        if value is None:
            continue
        masked = _mask(value)
        if masked != value:
            fields[key] = masked
            secret = value.strip().strip('"')
            raw = raw.replace(secret, masked.strip().strip('"'))
    return raw, fields


def raw_results(reading: Reading, *, received_at: datetime, scale: str = "") -> str:
    m = reading.measurement
    raw, fields = _masked(reading)
    doc: dict[str, Any] = {
        "format": RAW_FORMAT,
        "driver": reading.driver,
        "model": reading.model,
        "raw": raw,
        "deviceTime": reading.device_time,
        "receivedAt": received_at.isoformat(),
    }
    if scale:
        doc["scale"] = scale
    unmapped = {k: getattr(m, k) for k in _UNMAPPED if getattr(m, k) is not None}
    seg_muscle = {s.value: v.muscle_mass_kg for s, v in m.segments.items() if v.muscle_mass_kg is not None}
    if seg_muscle:
        unmapped["segment_muscle_mass_kg"] = seg_muscle
    if unmapped:
        doc["unmapped"] = unmapped
    if m.estimated:
        doc["estimated"] = sorted(m.estimated)
    if fields:
        doc["fields"] = fields
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True)


def weighing_body(reading: Reading, *, received_at: datetime, scale: str = "") -> dict[str, Any]:
    """The body the bridge posts (without the benefit key, which is a query parameter)."""
    body = measured_fields(reading.measurement)
    body["rawResults"] = raw_results(reading, received_at=received_at, scale=scale)
    return body


ESTIMATE_SOURCE = "scale-bridge body_estimate (published Xiaomi bio-impedance formulas; see docs/body-composition.md)"


def with_estimate(body: dict[str, Any], profile: dict[str, Any] | None) -> tuple[dict[str, Any], str | None]:
    """Add estimated body composition to a weighing that has weight and impedance but no composition
    (impedance-only scales such as the Mi v2), from the member's profile. Measured fields are never
    overwritten; added fields are listed under ``estimated`` in ``rawResults``. Returns the body and,
    when nothing was added, the reason."""
    from .body_estimate import estimate

    try:
        raw = json.loads(body.get("rawResults", ""))
    except ValueError:
        return body, "rawResults is not ours"
    impedance = (raw.get("unmapped") or {}).get("impedance_ohm")
    weight = body.get("weight")
    if impedance is None or weight is None:
        return body, "no weight or impedance"
    if not profile or not profile.get("height_cm") or profile.get("age") is None:
        return body, "member profile lacks height or age"
    gender = str(profile.get("gender") or "").upper()
    if gender not in ("MALE", "FEMALE"):
        return body, "the formulas need a male or female profile"
    m = estimate(
        weight_kg=weight,
        impedance_ohm=impedance,
        height_cm=profile["height_cm"],
        age_years=int(profile["age"]),
        sex=gender.lower(),
    )
    if m is None:
        return body, "outside the formulas' validity range"
    added = {k: v for k, v in measured_fields(m).items() if k not in body}
    if not added:
        return body, "the scale measured these fields already"
    raw["estimated"] = sorted(set(raw.get("estimated", [])) | set(added))
    raw["estimateSource"] = ESTIMATE_SOURCE
    raw["estimateProfile"] = {"height_cm": profile["height_cm"], "age": profile["age"], "gender": gender}
    return {**body, **added, "rawResults": json.dumps(raw, separators=(",", ":"), ensure_ascii=True)}, None
