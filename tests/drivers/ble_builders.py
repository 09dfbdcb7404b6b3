"""Test-only builders: BLE scale payloads written byte by byte from raw field values.

Independent of the drivers' code on purpose (a decoder bug must not be mirrored by its encoder): every
layout is spelled out here from shared/reference/scales.md §B1-§B3.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Body Composition Measurement optional fields, in wire order: (name, flag bit)
BCM_ORDER: tuple[tuple[str, int], ...] = (
    ("bmr", 3),
    ("muscle_percent", 4),
    ("muscle_mass", 5),
    ("fat_free_mass", 6),
    ("soft_lean_mass", 7),
    ("body_water_mass", 8),
    ("impedance", 9),
    ("weight", 10),
    ("height", 11),
)
BCM_BITS = dict(BCM_ORDER)
MULTI_PACKET = 1 << 12

Time = tuple[int, int, int, int, int, int]  # year, month, day, hour, minute, second


def date_time(t: Time) -> bytes:
    year, month, day, hour, minute, second = t
    return struct.pack("<HBBBBB", year, month, day, hour, minute, second)


def u16(value: int) -> bytes:
    return struct.pack("<H", value)


def wsm(
    weight_raw: int,
    *,
    imperial: bool = False,
    time: Time | None = None,
    user: int | None = None,
    bmi_raw: int | None = None,
    height_raw: int | None = None,
) -> bytes:
    """Weight Measurement 0x2A9D. ``bmi_raw`` and ``height_raw`` go together (flag bit 3)."""
    flags = (1 if imperial else 0) | (2 if time is not None else 0) | (4 if user is not None else 0)
    body = u16(weight_raw)
    if time is not None:
        body += date_time(time)
    if user is not None:
        body += bytes([user])
    if bmi_raw is not None or height_raw is not None:
        flags |= 8
        body += u16(0xFFFF if bmi_raw is None else bmi_raw) + u16(0xFFFF if height_raw is None else height_raw)
    return bytes([flags]) + body


@dataclass(frozen=True)
class BcmRecord:
    """One body-composition record as raw wire values (units as on the wire)."""

    fat_raw: int
    values: Mapping[str, int]  # names of BCM_ORDER -> raw uint16
    imperial: bool = False
    time: Time | None = None
    user: int | None = None

    def present(self) -> list[str]:
        return [name for name, _ in BCM_ORDER if name in self.values]


def bcm_packet(
    record: BcmRecord,
    names: Sequence[str],
    *,
    multi: bool,
    with_time: bool = True,
    with_user: bool = True,
) -> bytes:
    """One 0x2A9C value holding the body fat % (always) and the given optional fields."""
    flags = 1 if record.imperial else 0
    body = u16(record.fat_raw)
    if with_time and record.time is not None:
        flags |= 2
        body += date_time(record.time)
    if with_user and record.user is not None:
        flags |= 4
        body += bytes([record.user])
    for name, bit in BCM_ORDER:
        if name in names:
            flags |= 1 << bit
            body += u16(record.values[name])
    if multi:
        flags |= MULTI_PACKET
    return u16(flags) + body


def bcm(record: BcmRecord) -> bytes:
    """The whole record in one packet (bit 12 clear)."""
    return bcm_packet(record, record.present(), multi=False)


def bcm_split(
    record: BcmRecord, cut: int, *, last_marked: bool = True, repeat_user: bool = False
) -> tuple[bytes, bytes]:
    """The record in two packets: the first ``cut`` optional fields (with time and user id), then the
    rest. Both carry bit 12 unless ``last_marked`` is False (the last packet then ends the record)."""
    names = record.present()
    first = bcm_packet(record, names[:cut], multi=True)
    second = bcm_packet(record, names[cut:], multi=last_marked, with_time=False, with_user=repeat_user)
    return first, second


def mi_v1(
    weight_raw: int,
    *,
    lb: bool = False,
    catty: bool = False,
    stabilised: bool = True,
    removed: bool = False,
    object_mode: bool = False,
    time: Time = (2024, 5, 17, 8, 30, 0),
) -> bytes:
    """Mi Scale v1 service data (UUID 0x181D stripped), 10 bytes."""
    control = 0x02  # bit1: set in every published sample
    control |= 0x01 if lb else 0
    control |= 0x10 if catty else 0
    control |= 0x20 if stabilised else 0
    control |= 0x40 if object_mode else 0
    control |= 0x80 if removed else 0
    return bytes([control]) + u16(weight_raw) + date_time(time)


def mi_v2(
    weight_raw: int,
    *,
    impedance: int | None = None,
    impedance_raw: int = 0,
    lb: bool = False,
    catty: bool = False,
    stabilised: bool = True,
    removed: bool = False,
    object_mode: bool = False,
    time: Time = (2024, 5, 17, 8, 30, 0),
) -> bytes:
    """Mi Body Composition Scale v2 service data (UUID 0x181B stripped), 13 bytes.

    ``impedance`` sets the impedance bit and value; ``impedance_raw`` writes a value without the bit.
    """
    control0 = 0x02 | (0x01 if lb else 0) | (0x04 if object_mode else 0)
    control1 = 0x04
    control1 |= 0x02 if impedance is not None else 0
    control1 |= 0x20 if stabilised else 0
    control1 |= 0x40 if catty else 0
    control1 |= 0x80 if removed else 0
    z = impedance if impedance is not None else impedance_raw
    return bytes([control0, control1]) + date_time(time) + u16(z) + u16(weight_raw)
