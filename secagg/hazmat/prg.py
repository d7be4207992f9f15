"""AES-128-CTR pseudo-random generator writing masks in Z_{2^32} straight into numpy uint32 buffers.

Every 32-bit word of keystream is uniform on [0, 2^32), so masks carry no modulo bias (DESIGN 4).
"""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from secagg.errors import SecAggConfigError

__all__ = ["SEED_BYTES", "PrgBuffer", "expand"]

SEED_BYTES = 16
_ZERO_BLOCK = bytes(16)
_zeros = np.zeros(0, dtype=np.uint8)


def _zero_bytes(nbytes: int) -> memoryview:
    """A read-only run of `nbytes` zero bytes, reused between calls (keystream = AES-CTR of zeros)."""
    global _zeros
    if _zeros.size < nbytes:
        _zeros = np.zeros(max(nbytes, 2 * _zeros.size), dtype=np.uint8)
        _zeros.setflags(write=False)
    return memoryview(_zeros)[:nbytes]


class PrgBuffer:
    """A reusable buffer of `length` uint32 words, with the 15 spare bytes AES `update_into` requires."""

    __slots__ = ("_backing", "_view", "words", "length")

    def __init__(self, length: int) -> None:
        if not isinstance(length, int) or length < 0:
            raise SecAggConfigError(f"buffer length must be an int >= 0, got {length!r}")
        self.length = length
        self._backing = np.empty(4 * length + 16, dtype=np.uint8)
        self._view = memoryview(self._backing)
        self.words = self._backing[: 4 * length].view("<u4")

    def expand(self, key: bytes, counter_block: bytes = _ZERO_BLOCK) -> np.ndarray:
        """Fill the buffer with the AES-CTR keystream of (key, counter block) and return it.

        The returned array is the buffer itself: valid until the next call. Keys are full-length
        (16 bytes for masks); the counter block is all zeros for masks, since each key is used once.
        """
        if len(key) not in (16, 24, 32):
            raise SecAggConfigError(f"PRG key must be 16, 24 or 32 bytes, got {len(key)}")
        if len(counter_block) != 16:
            raise SecAggConfigError(f"AES-CTR counter block must be 16 bytes, got {len(counter_block)}")
        if self.length:
            enc = Cipher(algorithms.AES(key), modes.CTR(counter_block)).encryptor()
            enc.update_into(_zero_bytes(4 * self.length), self._view)
        return self.words


def expand(key: bytes, length: int) -> np.ndarray:
    """Return a fresh uint32 array of `length` mask words PRG(key) (convenience; hot paths use PrgBuffer)."""
    return PrgBuffer(length).expand(key).copy()
