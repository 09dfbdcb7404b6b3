"""Unit conversions (exact factors)."""

from __future__ import annotations

KG_PER_LB = 0.45359237
CM_PER_INCH = 2.54
KJ_PER_KCAL = 4.184  # thermochemical calorie: Tanita rb/rB pairs agree (8255 kJ / 1973 kcal)
KJ_PER_KCAL_IT = 4.1868  # international-table calorie: Bluetooth SIG GATT supplement
KG_PER_CATTY = 0.5
LB_PER_STONE = 14


def lb_to_kg(lb: float) -> float:
    return lb * KG_PER_LB


def inch_to_cm(inch: float) -> float:
    return inch * CM_PER_INCH
