"""AES-128-CBC for GATT exchanges that need it (drivers/gatt.py ``ExchangeContext.aes_cbc_*``).

The pure drivers are stdlib-only; this edge module uses the ``cryptography`` package, imported
lazily so a site without it still runs every other driver.
"""

from __future__ import annotations


def _check(key: bytes, iv: bytes, data: bytes) -> None:
    if len(key) != 16 or len(iv) != 16:
        raise ValueError("AES-128-CBC needs a 16-byte key and a 16-byte IV")
    if len(data) % 16:
        raise ValueError(f"AES-CBC without padding needs whole 16-byte blocks, got {len(data)} bytes")


def aes_cbc_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    _check(key, iv, data)
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def aes_cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    _check(key, iv, data)
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return dec.update(data) + dec.finalize()
