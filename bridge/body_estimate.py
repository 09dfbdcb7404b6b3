"""Estimated body composition for impedance-only scales (Xiaomi Mi Body Composition Scale v2).

Off by default. The scale measures only weight and foot-to-foot impedance; everything else here is a
*regression estimate* from weight, impedance, height, age and sex, marked as such in
``Measurement.estimated`` (and so in ``rawResults``). Constants and their sources: docs/body-composition.md.
Written from the published constants, not from any implementation's code.

- Xiaomi/Holtek approximations (constants as published in lolouk44/xiaomi_mi_scale, MIT): the
  "LBM coefficient", body fat %, water %, bone mass, BMR and visceral fat rating, with the same
  clamping ranges.
- Skeletal muscle mass: Janssen et al., J Appl Physiol 89:465-471 (2000), the BIA equation
  SMM = 0.401 Ht^2/R + 3.825 (men) - 0.071 age + 5.102. (The Mi formulas have no skeletal muscle.)

Refuses (returns None) outside the validity ranges of the source: height above 220 cm, weight outside
10-200 kg, age above 99, impedance above 3000 ohm; and for non-positive height or impedance or a
negative age.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from drivers.model import Measurement

MAX_HEIGHT_CM = 220.0
MIN_WEIGHT_KG = 10.0
MAX_WEIGHT_KG = 200.0
MAX_AGE_YEARS = 99
MAX_IMPEDANCE_OHM = 3000.0


class Sex(StrEnum):
    MALE = "male"
    FEMALE = "female"


@dataclass(frozen=True, slots=True)
class Subject:
    weight_kg: float
    impedance_ohm: float
    height_cm: float
    age_years: int
    sex: Sex

    @property
    def male(self) -> bool:
        return self.sex is Sex.MALE


def _clamp(value: float, low: float, high: float) -> float:
    return low if value < low else high if value > high else value


def valid(s: Subject) -> bool:
    return (
        0 < s.height_cm <= MAX_HEIGHT_CM
        and MIN_WEIGHT_KG <= s.weight_kg <= MAX_WEIGHT_KG
        and 0 <= s.age_years <= MAX_AGE_YEARS
        and 0 < s.impedance_ohm <= MAX_IMPEDANCE_OHM
    )


def lbm_coefficient(s: Subject) -> float:
    """scales.md §B4: (H*9.058/100)*(H/100) + W*0.32 + 12.226 - Z*0.0068 - A*0.0542."""
    h = s.height_cm
    return h * 9.058 / 100 * (h / 100) + s.weight_kg * 0.32 + 12.226 - s.impedance_ohm * 0.0068 - s.age_years * 0.0542


def fat_percent(s: Subject) -> float:
    if s.male:
        offset = 0.8
        factor = 0.98 if s.weight_kg < 61 else 1.0
    else:
        offset = 9.25 if s.age_years <= 49 else 7.25
        if s.weight_kg > 60:
            factor = 0.96 * (1.03 if s.height_cm > 160 else 1.0)
        elif s.weight_kg < 50:
            factor = 1.02 * (1.03 if s.height_cm > 160 else 1.0)
        else:
            factor = 1.0
    value = 100.0 * (1.0 - (lbm_coefficient(s) - offset) * factor / s.weight_kg)
    if value > 63:
        value = 75.0
    return _clamp(value, 5.0, 75.0)


def water_percent(fat: float) -> float:
    base = (100.0 - fat) * 0.7
    value = base * (1.02 if base <= 50 else 0.98)
    if value >= 65:
        value = 75.0
    return _clamp(value, 35.0, 75.0)


def bone_mass_kg(s: Subject) -> float:
    base = 0.18016894 if s.male else 0.245691014
    value = lbm_coefficient(s) * 0.05158 - base
    value += 0.1 if value > 2.2 else -0.1
    if value > (5.2 if s.male else 5.1):
        value = 8.0
    return _clamp(value, 0.5, 8.0)


def soft_lean_mass_kg(s: Subject, fat: float, bone: float) -> float:
    """What the Mi app calls muscle mass: weight - fat mass - bone mass (scales.md fixtures "lbm")."""
    value = s.weight_kg * (1.0 - fat / 100.0) - bone
    if value >= (93.5 if s.male else 84.0):
        value = 120.0
    return _clamp(value, 10.0, 120.0)


def skeletal_muscle_mass_kg(s: Subject) -> float:
    """Janssen et al. 2000: 0.401*H^2/R + 3.825*(1 if man) - 0.071*age + 5.102 (H cm, R ohm)."""
    return 0.401 * s.height_cm**2 / s.impedance_ohm + (3.825 if s.male else 0.0) - 0.071 * s.age_years + 5.102


def bmr_kcal(s: Subject) -> float:
    if s.male:
        value = 877.8 + 14.916 * s.weight_kg - 0.726 * s.height_cm - 8.976 * s.age_years
        if value > 2322:
            value = 5000.0
    else:
        value = 864.6 + 10.2036 * s.weight_kg - 0.39336 * s.height_cm - 6.204 * s.age_years
        if value > 2996:
            value = 5000.0
    return _clamp(value, 500.0, 10000.0)


def visceral_fat_raw(s: Subject) -> float:
    """The visceral fat rating before clamping (openScale's port does not clamp; fixtures use this)."""
    h, w, a = s.height_cm, s.weight_kg, s.age_years
    if s.male:
        if h < w * 1.6:
            denominator = h * h * 0.0826 - h * 0.4 + 48
            return w * 305 / denominator - 2.9 + a * 0.15
        return w * (0.765 - 0.0015 * h) - h * 0.143 + a * 0.15 - 5.0
    if w > h * 0.5 - 13:
        denominator = h * 1.45 + 0.1158 * h * h - 120
        return w * 500 / denominator - 6 + a * 0.07
    return w * (0.691 - 0.0048 * h) - h * 0.027 + a * 0.07 - a


def visceral_fat(s: Subject) -> float:
    return _clamp(visceral_fat_raw(s), 1.0, 50.0)


def bmi(s: Subject) -> float:
    return _clamp(s.weight_kg / (s.height_cm / 100) ** 2, 10.0, 90.0)


ESTIMATED_FIELDS = frozenset(
    {
        "fat_percent",
        "fat_mass_kg",
        "fat_free_mass_kg",
        "muscle_mass_kg",
        "skeletal_muscle_mass_kg",
        "skeletal_muscle_percent",
        "bone_mass_kg",
        "total_body_water_kg",
        "total_body_water_percent",
        "visceral_fat_rating",
        "bmr_kcal",
        "bmi",
    }
)


def estimate(
    *, weight_kg: float, impedance_ohm: float, height_cm: float, age_years: int, sex: Sex | str
) -> Measurement | None:
    """Weight and impedance (measured) plus the member's height, age and sex -> a Measurement whose
    derived fields are listed in ``estimated``. None outside the validity ranges."""
    subject = Subject(float(weight_kg), float(impedance_ohm), float(height_cm), int(age_years), Sex(sex))
    if not valid(subject):
        return None
    w = subject.weight_kg
    fat = fat_percent(subject)
    bone = bone_mass_kg(subject)
    water = water_percent(fat)
    smm = skeletal_muscle_mass_kg(subject)

    def r(value: float) -> float:
        return round(value, 3)

    return Measurement(
        weight_kg=w,
        impedance_ohm=subject.impedance_ohm,
        fat_percent=r(fat),
        fat_mass_kg=r(w * fat / 100),
        fat_free_mass_kg=r(w - w * fat / 100),
        muscle_mass_kg=r(soft_lean_mass_kg(subject, fat, bone)),
        skeletal_muscle_mass_kg=r(smm),
        skeletal_muscle_percent=r(smm / w * 100),
        bone_mass_kg=r(bone),
        total_body_water_percent=r(water),
        total_body_water_kg=r(w * water / 100),
        visceral_fat_rating=r(visceral_fat(subject)),
        bmr_kcal=r(bmr_kcal(subject)),
        bmi=r(bmi(subject)),
        estimated=ESTIMATED_FIELDS,
    )
