"""Primitives without protocol guarantees: PRG (AES-CTR), X25519+HKDF, AES-GCM, Shamir, Ed25519.

Use them only through `secagg`'s sessions unless you know what each guarantee does not cover.
"""

from secagg.hazmat import aead, drbg, kex, prg, shamir, sign

__all__ = ["aead", "drbg", "kex", "prg", "shamir", "sign"]
