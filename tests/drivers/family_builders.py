"""Test-only builders for the consumer BLE vendor frames, written byte by byte from raw field values.

Independent of the drivers' code on purpose (a decoder bug must not be mirrored by its encoder): each
layout is spelled out here from shared/reference/ble-families.md §5.
"""

from __future__ import annotations

import struct


def _xor(data: bytes) -> int:
    out = 0
    for b in data:
        out ^= b
    return out


def qn(opcode: int, body: bytes) -> bytes:
    """QN frame: opcode, whole length, body, low byte of the sum."""
    head = bytes([opcode, len(body) + 3]) + body
    return head + bytes([sum(head) % 256])


def qn_info(protocol: int, weight_flag: int) -> bytes:
    """15-byte 0x12 scale info (the ES-CS20M's size): protocol at byte 2, the weight flag at byte 10."""
    return qn(0x12, bytes([protocol]) + bytes(7) + bytes([weight_flag]) + bytes(3))


def qn_weight10(protocol: int, weight_raw: int, stable: int, r1: int) -> bytes:
    return qn(0x10, bytes([protocol]) + struct.pack(">HBH", weight_raw, stable, r1) + b"\x00")


def qn_weight14(protocol: int, state: int, weight_raw: int, r1: int, r2: int) -> bytes:
    return qn(0x10, bytes([protocol, 0x01, state]) + struct.pack(">HHH", weight_raw, r1, r2) + b"\x00\x00")


def qn_stored(protocol: int, seconds: int, weight_raw: int, r1: int, r2: int) -> bytes:
    """19-byte 0x23 stored record: protocol, 3 zero bytes, time (u32 LE) at 6, weight (u16 BE) at 10, a
    zero byte, R1 and R2 (u16 LE) at 13 and 15, a zero byte, the sum."""
    body = bytes([protocol]) + bytes(3) + struct.pack("<I", seconds) + struct.pack(">H", weight_raw)
    return qn(0x23, body + b"\x00" + struct.pack("<HH", r1, r2) + b"\x00")


def qn_broadcast(weight_raw: int, status: int, mac: bytes = bytes(6)) -> bytes:
    """AA BB, MAC, bytes 8-14 zero, status at 15, 16 zero, weight LE at 17-18, 4 zero bytes (23 in all)."""
    return b"\xaa\xbb" + mac + bytes(7) + bytes([status, 0]) + struct.pack("<H", weight_raw) + bytes(4)


def cf(weight_raw: int, impedance_raw: int, status: int, middle: bytes = b"\x00\x00\x00\x00") -> bytes:
    body = bytes([0xCF]) + struct.pack("<HH", impedance_raw, weight_raw) + middle + bytes([status])
    return body + bytes([_xor(body)])


def eufy_p2(weight_raw: int, final: bool, *, b4_5: int = 0, b8_10: int = 0, extra: bytes = bytes(3)) -> bytes:
    """Eufy P2 FFF2 frame: CF 0E 00 CF, bytes 4-5, weight LE, bytes 8-10, byte 11, final flag (00 =
    final, 01 = live), bytes 13-14, XOR of bytes 2..14."""
    body = struct.pack("<HH", b4_5, weight_raw) + b8_10.to_bytes(3, "little") + extra[:1]
    body += bytes([0x00 if final else 0x01]) + extra[1:3]
    inner = b"\x00\xcf" + body
    return b"\xcf\x0e" + inner + bytes([_xor(inner)])


def yunmai(version: int, kind: int, payload: bytes) -> bytes:
    """0D, version, whole length, type, payload, XOR of every byte after 0D."""
    head = bytes([0x0D, version, len(payload) + 5, kind]) + payload
    return head + bytes([_xor(head[1:])])


def yunmai_measured(version: int, *, time_s: int, user: int, weight_raw: int, resistance: int, fat_raw: int) -> bytes:
    return yunmai(version, 0x02, b"\x00" + struct.pack(">IIHHH", time_s, user, weight_raw, resistance, fat_raw))


def medisana_weight(flags: int, weight_raw: int, timestamp: int, user: int) -> bytes:
    return bytes([flags]) + struct.pack("<HH", weight_raw, 0) + struct.pack("<I", timestamp) + bytes(4) + bytes([user])


def medisana_feature(fat: int, water: int, muscle: int, bone: int) -> bytes:
    return bytes(8) + struct.pack("<HHHH", fat, water, muscle, bone)


def lefu_weight(grams: int) -> bytes:
    return b"\xab\x2a\x80" + grams.to_bytes(3, "big")


def lefu_impedance(ohm: int) -> bytes:
    return b"\xab\x2a\x01\x00" + struct.pack(">H", ohm)


def beurer_weight(start: int, flag: int, weight_raw: int) -> bytes:
    """Beurer/Sanitas 0x58: start byte, 0x58, flag, weight in 50 g steps big-endian."""
    return bytes([start, 0x58, flag]) + struct.pack(">H", weight_raw)


def beurer_measurement(
    start: int, *, user_id: int, clock_s: int, weight_raw: int, impedance: int, fat: int, water: int, muscle: int
) -> list[bytes]:
    """Beurer/Sanitas 0x59 in three parts as the real SBF70 frames are cut: part 1 names the user
    (byte 4 = 01, then the 64-bit id), parts 2 and 3 carry 11 bytes each of the 22-byte block."""
    part1 = bytes([start, 0x59, 3, 1, 0x01]) + struct.pack(">Q", user_id)
    block = struct.pack(">IHHHHHH", clock_s, weight_raw, impedance, fat, water, muscle, 0) + bytes(6)
    return [part1, bytes([start, 0x59, 3, 2]) + block[:11], bytes([start, 0x59, 3, 3]) + block[11:]]


def lefu_ac02(d0: int, d1: int, d2: int, d3: int, channel: int) -> bytes:
    """Lefu ``AC 02`` 8-byte frame: AC 02, four data bytes, channel, low byte of the sum of bytes 2-6."""
    body = bytes([0xAC, 0x02, d0, d1, d2, d3, channel])
    return body + bytes([(d0 + d1 + d2 + d3 + channel) % 256])


def qn_extended_info(protocol: int, weight_flag: int) -> bytes:
    """20-byte 0x12 (the GE CS 10 G's size, the extended dialect): protocol at 2, the weight flag at 10."""
    return qn(0x12, bytes([protocol]) + bytes(7) + bytes([weight_flag]) + bytes(8))


def qn_result(weight_raw: int, tail: bytes = bytes(36)) -> bytes:
    """44-byte 0xB1 result record 03 01: 03 01 01, the weight (u16 LE, / 100 kg), 36 more bytes."""
    return qn(0xB1, b"\x03\x01\x01" + struct.pack("<H", weight_raw) + tail)
