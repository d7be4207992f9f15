"""X25519 key agreement + HKDF-SHA256 whose `info` binds version, round, model, ordered pair and purpose.

Binding the round id and model hash into every derived key stops a key from being replayed into another
round or another model (DESIGN 3); binding the purpose separates share-encryption keys from mask seeds.
"""

from __future__ import annotations

import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from secagg.errors import InvalidMessageError, SecAggConfigError

__all__ = [
    "PROTOCOL_LABEL",
    "PURPOSE_SHARE_KEY",
    "PURPOSE_MASK_SEED",
    "KeyPair",
    "hkdf_sha256",
    "pair_info",
    "agree",
    "load_public",
    "load_private",
]

PROTOCOL_LABEL = b"privagg-secagg/v1"
PURPOSE_SHARE_KEY = b"share-encryption-key"
PURPOSE_MASK_SEED = b"pairwise-mask-seed"
_PURPOSES = (PURPOSE_SHARE_KEY, PURPOSE_MASK_SEED)


class KeyPair:
    """An X25519 key pair from the OS CSPRNG; `private_bytes` is what gets Shamir-shared for mask keys."""

    __slots__ = ("private", "public_bytes")

    def __init__(self, private: X25519PrivateKey | None = None) -> None:
        self.private = private if private is not None else X25519PrivateKey.generate()
        self.public_bytes = self.private.public_key().public_bytes_raw()

    def private_bytes(self) -> bytes:
        """The raw 32-byte private scalar."""
        return self.private.private_bytes_raw()


def hkdf_sha256(ikm: bytes, info: bytes, length: int, salt: bytes | None = None) -> bytes:
    """HKDF-SHA256 (RFC 5869)."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def pair_info(purpose: bytes, round_id: bytes, model_hash: bytes, a: int, b: int) -> bytes:
    """The HKDF `info` for the unordered pair {a, b}: label, purpose, round, model hash, (min, max) ids."""
    if purpose not in _PURPOSES:
        raise SecAggConfigError(f"unknown key purpose {purpose!r}")
    lo, hi = (a, b) if a < b else (b, a)
    return b"".join(
        (
            PROTOCOL_LABEL,
            struct.pack("<B", len(purpose)),
            purpose,
            struct.pack("<B", len(round_id)),
            round_id,
            struct.pack("<B", len(model_hash)),
            model_hash,
            struct.pack("<II", lo, hi),
        )
    )


def load_public(raw: bytes) -> X25519PublicKey:
    """Parse a raw 32-byte X25519 public key, raising InvalidMessageError on anything else."""
    if len(raw) != 32:
        raise InvalidMessageError(f"X25519 public key must be 32 bytes, got {len(raw)}")
    return X25519PublicKey.from_public_bytes(raw)


def load_private(raw: bytes) -> X25519PrivateKey:
    """Parse a raw 32-byte X25519 private key (as reconstructed from Shamir shares)."""
    if len(raw) != 32:
        raise InvalidMessageError(f"X25519 private key must be 32 bytes, got {len(raw)}")
    return X25519PrivateKey.from_private_bytes(raw)


def agree(private: X25519PrivateKey, peer_public: X25519PublicKey, info: bytes, length: int = 16) -> bytes:
    """Shared secret of the pair -> HKDF-SHA256(info) -> `length` key bytes.

    Raises InvalidMessageError when the peer key is a low-order point (all-zero shared secret).
    """
    try:
        shared = private.exchange(peer_public)
    except ValueError as exc:
        raise InvalidMessageError(f"X25519 exchange failed (low-order peer key?): {exc}") from exc
    return hkdf_sha256(shared, info, length)
