"""Ed25519 identity signatures for advertised keys and the consistency round (Bonawitz et al. 2017, 4.4)."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from secagg.errors import InvalidMessageError

__all__ = ["SIGNATURE_BYTES", "sign", "verify", "load_identity"]

SIGNATURE_BYTES = 64


def sign(key: Ed25519PrivateKey, payload: bytes) -> bytes:
    """Ed25519 signature of `payload`."""
    return key.sign(payload)


def load_identity(key: Ed25519PublicKey | bytes) -> Ed25519PublicKey:
    """Accept a public key object or its 32 raw bytes."""
    if isinstance(key, Ed25519PublicKey):
        return key
    if len(key) != 32:
        raise InvalidMessageError(f"Ed25519 public key must be 32 bytes, got {len(key)}")
    return Ed25519PublicKey.from_public_bytes(bytes(key))


def verify(key: Ed25519PublicKey, signature: bytes, payload: bytes, who: int) -> None:
    """Raise InvalidMessageError unless `signature` is `who`'s valid signature on `payload`."""
    if len(signature) != SIGNATURE_BYTES:
        raise InvalidMessageError(f"signature of client {who} must be 64 bytes, got {len(signature)}")
    try:
        key.verify(signature, payload)
    except InvalidSignature as exc:
        raise InvalidMessageError(f"invalid signature from client {who}") from exc
