"""The scale's side of the Eufy P2 / P2 Pro handshake, for tests (unit tests drive it directly; the
fake BlueZ runs it as a device ``model``, see tests/fakes/fake_bluez.py).

Written from the protocol facts (docs/ble.md "Eufy P2 / P2 Pro"), independently of drivers/eufy_p2.py
on purpose, with the real ``cryptography`` AES and its own PKCS#7: it decrypts the host's C0 (the
client id), answers with its own id in C1 segments, checks that C2 decrypts to
``<client id>_<scale id>`` and answers C3 (status 0 only for a correct C2). After a C3 with status 0
it sends ``weights`` (16-byte frames, as hex) on FFF2, and then sleeps (disconnects) when
``sleep_after`` is set.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

IV = b"0000000000000000"
WRITE, WEIGHT, AUTH = "fff1", "fff2", "fff4"


def _x(data: bytes) -> int:
    out = 0
    for b in data:
        out ^= b
    return out


def scale_segments(kind: int, text: bytes) -> list[bytes]:
    """``kind count index total data(<=15) xor`` with total = len(text)."""
    chunks = [text[i : i + 15] for i in range(0, len(text), 15)]
    out = []
    for i, chunk in enumerate(chunks):
        head = bytes([kind, len(chunks), i, len(text)]) + chunk
        out.append(head + bytes([_x(head)]))
    return out


class EufyP2Scale:
    def __init__(
        self,
        address: str,
        scale_id: str = "T9149A0B1C2D3E4",
        *,
        weights: list[str] | None = None,
        reject_status: int = 0x01,
        refuse: bool = False,
        sleep_after: bool = False,
    ) -> None:
        self.key = hashlib.md5(address.replace(":", "").upper().encode()).digest()
        self.scale_id = scale_id
        self.weights = list(weights or [])
        self.reject_status = reject_status
        self.refuse = refuse  # answer every C2 with reject_status
        self.sleep_after = sleep_after
        self.client_id: str | None = None
        self.authenticated = False
        self.c2_text: str | None = None
        self.undecryptable = 0
        self._parts: dict[int, list[bytes]] = {0xC0: [], 0xC2: []}

    def _crypt(self, data: bytes, *, encrypt: bool) -> bytes:
        cipher = Cipher(algorithms.AES(self.key), modes.CBC(IV))
        if encrypt:
            padder = padding.PKCS7(128).padder()
            enc = cipher.encryptor()
            return enc.update(padder.update(data) + padder.finalize()) + enc.finalize()
        dec = cipher.decryptor()
        unpadder = padding.PKCS7(128).unpadder()
        return unpadder.update(dec.update(data) + dec.finalize()) + unpadder.finalize()

    def _collect(self, value: bytes) -> bytes | None:
        """The whole base64 text once the last segment of a C0 / C2 is in; checks the host's framing."""
        kind, count, index, total = value[0], value[1], value[2], value[3]
        assert _x(value[:-1]) == value[-1], f"host segment with a bad XOR: {value.hex()}"
        parts = self._parts[kind]
        assert index == len(parts), f"host segment {index} out of order"
        parts.append(value[4:-1])
        if index + 1 < count:
            return None
        text = b"".join(parts)
        assert len(text) == total, f"host said {total} bytes, sent {len(text)}"
        parts.clear()
        return text

    def on_write(self, char: str, value: bytes) -> list[tuple[str, bytes]]:
        """FFF1 writes in, notifications out: ``[(characteristic, value), ...]``."""
        if char.lower() not in (WRITE, f"0000{WRITE}-0000-1000-8000-00805f9b34fb") or len(value) < 5:
            return []
        if value[0] not in (0xC0, 0xC2):
            return []
        text = self._collect(value)
        if text is None:
            return []
        try:
            plain = self._crypt(base64.b64decode(text), encrypt=False).decode()
        except ValueError:  # another key (UnicodeDecodeError is one too): a scale would not answer
            self.undecryptable += 1
            return []
        if value[0] == 0xC0:
            self.client_id = plain
            encrypted = base64.b64encode(self._crypt(self.scale_id.encode(), encrypt=True))
            return [(AUTH, seg) for seg in scale_segments(0xC1, encrypted)]
        self.c2_text = plain
        ok = not self.refuse and self.client_id is not None and plain == f"{self.client_id}_{self.scale_id}"
        self.authenticated = ok
        status = 0x00 if ok else self.reject_status
        c3 = bytes([0xC3, 0x01, 0x00, 0x01, status])
        out = [(AUTH, c3 + bytes([_x(c3)]))]
        if ok:
            out += [(WEIGHT, bytes.fromhex(h)) for h in self.weights]
        return out

    # ------------------------------------------------------------------ fake BlueZ device model

    def respond(self, char: str, value: bytes) -> dict[str, Any] | None:
        """The fake BlueZ's model hook: a responder rule (``push`` list, ``disconnect``) or None."""
        out = self.on_write(char, value)
        if not out:
            return None
        weighed = any(c == WEIGHT for c, _ in out)
        return {
            "push": [{"char": c, "hex": v.hex()} for c, v in out],
            "disconnect": self.sleep_after and weighed,
        }
