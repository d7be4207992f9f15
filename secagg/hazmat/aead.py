"""AES-GCM for Shamir shares in transit, with the round id, sender and recipient bound as associated data."""

from __future__ import annotations

import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from secagg.errors import InvalidMessageError, SecAggConfigError

__all__ = ["NONCE_BYTES", "TAG_BYTES", "associated_data", "seal", "open_sealed"]

NONCE_BYTES = 12
TAG_BYTES = 16


def associated_data(round_id: bytes, sender: int, recipient: int) -> bytes:
    """AAD = label || round id || sender || recipient: valid for one direction of one round."""
    return (
        b"privagg-secagg/v1/shares"
        + struct.pack("<B", len(round_id))
        + round_id
        + struct.pack("<II", sender, recipient)
    )


def seal(key: bytes, plaintext: bytes, aad: bytes, nonce: bytes | None = None) -> bytes:
    """Encrypt under a 96-bit nonce (fresh from the OS unless given); returns nonce || ciphertext || tag.

    A caller that passes `nonce` must never reuse it under the same key with another plaintext (the
    client session derives it from its secret seed and the recipient, for one fixed plaintext)."""
    if len(key) not in (16, 32):
        raise SecAggConfigError(f"AES-GCM key must be 16 or 32 bytes, got {len(key)}")
    if nonce is None:
        nonce = os.urandom(NONCE_BYTES)
    elif len(nonce) != NONCE_BYTES:
        raise SecAggConfigError(f"AES-GCM nonce must be {NONCE_BYTES} bytes, got {len(nonce)}")
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    """Decrypt nonce || ciphertext || tag, raising InvalidMessageError if tampered or misaddressed."""
    if len(sealed) < NONCE_BYTES + TAG_BYTES:
        raise InvalidMessageError(f"sealed share too short: {len(sealed)} bytes")
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except InvalidTag as exc:
        raise InvalidMessageError(
            "share ciphertext failed authentication (tampered or misaddressed)"
        ) from exc
