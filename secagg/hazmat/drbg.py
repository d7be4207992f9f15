"""A keyed deterministic random bit generator: AES-256-CTR keystream from a secret 32-byte key.

A client session draws its Shamir coefficients and AES-GCM nonces from one of these, keyed by a per-session
secret from `secrets`: the randomness is as good as the key, and a session resumed from its exported state
(`ClientSession.export_state`) sends byte-identical messages (NIST SP 800-90A's CTR_DRBG without
reseeding; the key never leaves the session's secret state).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from secagg.errors import SecAggConfigError
from secagg.hazmat.kex import hkdf_sha256

__all__ = ["Drbg", "derive"]

_LABEL = b"privagg-secagg/v1/drbg/"


def derive(seed: bytes, purpose: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 of the session seed for one named purpose (domain-separated sub-keys)."""
    if len(seed) != 32:
        raise SecAggConfigError(f"DRBG seed must be 32 bytes, got {len(seed)}")
    return hkdf_sha256(seed, _LABEL + purpose, length)


class Drbg:
    """AES-256-CTR keystream reader; `randbelow(p)` is uniform on [0, p) by rejection (no modulo bias)."""

    __slots__ = ("_enc",)

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise SecAggConfigError(f"DRBG key must be 32 bytes, got {len(key)}")
        self._enc = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()

    def read(self, n: int) -> bytes:
        """The next n keystream bytes."""
        return self._enc.update(bytes(n))

    def randbelow(self, bound: int) -> int:
        """A uniform integer in [0, bound): draw bit_length(bound) bits, reject values >= bound."""
        if bound < 1:
            raise SecAggConfigError(f"bound must be >= 1, got {bound}")
        bits = (bound - 1).bit_length()
        nbytes = max(1, (bits + 7) // 8)
        mask = (1 << bits) - 1
        while True:
            v = int.from_bytes(self.read(nbytes), "little") & mask
            if v < bound:
                return v
