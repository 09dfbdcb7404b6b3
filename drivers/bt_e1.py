"""The Bluetooth BR/EDR authentication function E1 (Core specification Vol 2 Part H §6), built on
SAFER+, and the two block functions it uses, Ar and Ar'. Pure and stdlib-only.

Why a scale driver needs it: newer QN firmware on a Jieli chip (drivers/qn_scale.py) gates its
weighings behind Jieli's "RCSP" challenge, which answers a 16-byte challenge with E1 keyed by two
constants of the vendor library (see :func:`jieli_answer`).

Written from the specification's description, not from any implementation:

- SAFER+ with a 128-bit key: 8 rounds, each a key addition (XOR on bytes 0, 3, 4, 7, 8, 11, 12, 15,
  addition mod 256 on the others), the non-linear layer (``45**x mod 257`` on the XOR bytes, its
  logarithm on the others), a second key addition with the operations swapped, and the linear layer
  (four pseudo-Hadamard layers ``(2a + b, a + b)`` with the "Armenian shuffle" between them); after
  round 8 a last key addition like the first.
- Key schedule: 17 round keys; a 17-byte register holds the key and the XOR of its bytes; before
  each key after the first, every register byte is rotated left by 3 bits; key ``p`` takes 16
  register bytes starting at position ``p - 1`` (cyclically) plus the bias vector
  ``B_p[i] = 45**(45**(17p + i) mod 257) mod 257`` (i = 1..16, 256 read as 0).
- Ar' is Ar with the block's input added again (same XOR/add pattern) at the input of round 3.
- ``E1(K, RAND, address) = Ar'(K~, (Ar(K, RAND) xor RAND) +16 E(address))``, where ``E`` repeats the
  6-byte address to 16 bytes and ``K~`` is the key offset (+233, ^229, +223, ^193, +179, ^167,
  +149, ^131, then ^233, +229, ^223, +193, ^179, +167, ^149, +131). Its 16 output bytes are SRES (the
  first 4) and ACO (the other 12).

Checked against the specification's four E1 sample data sets (Vol 2 Part G) and ten challenge /
response pairs captured from a Jieli-gated QN scale: tests/drivers/test_bt_e1.py.
"""

from __future__ import annotations

#: 45**i mod 257 for i = 0..255, with 256 (i = 128) stored as 0
_EXP = [0] * 256
_LOG = [0] * 256
_value = 1
for _i in range(256):
    _EXP[_i] = _value % 256
    _LOG[_value % 256] = _i
    _value = _value * 45 % 257

#: the bytes whose key addition is XOR in the odd layers (and addition in the even ones)
_XOR_FIRST = (True, False, False, True) * 4
#: new[i] = old[_SHUFFLE[i]] between the pseudo-Hadamard layers
_SHUFFLE = (8, 11, 12, 15, 2, 1, 6, 5, 10, 9, 14, 13, 0, 7, 4, 3)
#: the key offset K~: (add?, constant) per byte
_OFFSET = tuple(
    zip(
        (True, False, True, False, True, False, True, False, False, True, False, True, False, True, False, True),
        (233, 229, 223, 193, 179, 167, 149, 131, 233, 229, 223, 193, 179, 167, 149, 131),
        strict=True,
    )
)
#: B_p for p = 2..17 (index p - 2)
_BIAS = tuple(tuple(_EXP[_EXP[(17 * p + i + 1) % 256]] for i in range(16)) for p in range(2, 18))

#: Jieli RCSP constants (the link key and the address handed to E1), see :func:`jieli_answer`
JIELI_LINK_KEY = bytes.fromhex("06775f87918dd423005df1d8cf0c142b")
JIELI_ADDRESS = bytes.fromhex("112233332211")


def _need(value: bytes, size: int, what: str) -> bytes:
    data = bytes(value)
    if len(data) != size:
        raise ValueError(f"E1 {what} must be {size} bytes, not {len(data)}")
    return data


def round_keys(key: bytes) -> list[bytes]:
    """The 17 SAFER+ round keys of a 16-byte key."""
    register = list(_need(key, 16, "key"))
    parity = 0
    for byte in register:
        parity ^= byte
    register.append(parity)
    keys = [bytes(register[:16])]
    for p in range(2, 18):
        register = [((b << 3) | (b >> 5)) & 0xFF for b in register]
        bias = _BIAS[p - 2]
        keys.append(bytes((register[(p - 1 + i) % 17] + bias[i]) & 0xFF for i in range(16)))
    return keys


def _add_key(block: list[int], key: bytes, xor_first: bool) -> None:
    for i in range(16):
        if _XOR_FIRST[i] == xor_first:
            block[i] ^= key[i]
        else:
            block[i] = (block[i] + key[i]) & 0xFF


def _mix(block: list[int]) -> list[int]:
    for layer in range(4):
        if layer:
            block = [block[j] for j in _SHUFFLE]
        for i in range(0, 16, 2):
            a, b = block[i], block[i + 1]
            block[i], block[i + 1] = (2 * a + b) & 0xFF, (a + b) & 0xFF
    return block


def _encrypt(key: bytes, data: bytes, *, prime: bool) -> bytes:
    keys = round_keys(key)
    original = _need(data, 16, "block")
    block = list(original)
    for r in range(8):
        if prime and r == 2:
            _add_key(block, original, True)
        _add_key(block, keys[2 * r], True)
        block = [_EXP[b] if _XOR_FIRST[i] else _LOG[b] for i, b in enumerate(block)]
        _add_key(block, keys[2 * r + 1], False)
        block = _mix(block)
    _add_key(block, keys[16], True)
    return bytes(block)


def ar(key: bytes, data: bytes) -> bytes:
    """SAFER+ encryption of one 16-byte block (the specification's Ar)."""
    return _encrypt(key, data, prime=False)


def ar_prime(key: bytes, data: bytes) -> bytes:
    """Ar': Ar with its input added again at the input of round 3."""
    return _encrypt(key, data, prime=True)


def offset_key(key: bytes) -> bytes:
    """The key offset K~ that E1 keys its second block with."""
    k = _need(key, 16, "key")
    return bytes((b + c) & 0xFF if add else b ^ c for b, (add, c) in zip(k, _OFFSET, strict=True))


def e1(key: bytes, rand: bytes, address: bytes) -> bytes:
    """E1(K, RAND, address): 16 bytes, SRES (``[:4]``) then ACO (``[4:]``)."""
    k = _need(key, 16, "key")
    r = _need(rand, 16, "rand")
    a = _need(address, 6, "address")
    first = ar(k, r)
    mixed = bytes(((first[i] ^ r[i]) + a[i % 6]) & 0xFF for i in range(16))
    return ar_prime(offset_key(k), mixed)


def jieli_answer(challenge: bytes) -> bytes:
    """The 16-byte answer of Jieli's RCSP authentication to a 16-byte challenge: the whole E1 output
    (SRES and ACO) keyed with :data:`JIELI_LINK_KEY`, the challenge as RAND and :data:`JIELI_ADDRESS`.

    The constants are the vendor's: the same link key is Jieli's own SDK ``link_key_data`` for RCSP,
    and both (with the mechanism) were published from a capture of a QN scale in
    KristianP26/ble-scale-sync#235; the ten challenge/response pairs of that capture are our tests."""
    return e1(JIELI_LINK_KEY, _need(challenge, 16, "challenge"), JIELI_ADDRESS)
