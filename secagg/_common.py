"""Small helpers shared by the client and server sessions (signed payloads, key derivation, masks)."""

from __future__ import annotations

import hashlib
import struct

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from secagg.config import SecAggConfig
from secagg.hazmat import kex

_ADVERTISE = b"advertise-keys"
_CONSISTENCY = b"consistency"
_MASK_SET = b"mask-neighbours"
_CONFIG = b"round-config"


def _framed(config: SecAggConfig, purpose: bytes) -> bytes:
    return b"".join(
        (
            kex.PROTOCOL_LABEL,
            bytes([len(purpose)]),
            purpose,
            bytes([len(config.round_id)]),
            config.round_id,
            bytes([len(config.model_hash)]),
            config.model_hash,
        )
    )


def config_digest(config: SecAggConfig) -> bytes:
    """SHA-256 of every field of the round's config: what an exported client state is bound to."""
    h = hashlib.sha256(_framed(config, _CONFIG))
    h.update(
        struct.pack(
            "<IIIII",
            config.vector_length,
            config.threshold,
            config.neighbours,
            config.min_survivors or 0,
            config.max_corrupt,
        )
    )
    h.update(struct.pack(f"<I{config.n}I", config.n, *config.client_ids))
    return h.digest()


def advertise_payload(config: SecAggConfig, cid: int, c_pk: bytes, s_pk: bytes) -> bytes:
    """What a client signs when it advertises its keys."""
    return _framed(config, _ADVERTISE) + struct.pack("<I", cid) + c_pk + s_pk


def consistency_payload(config: SecAggConfig, survivors: tuple[int, ...], seed: bytes) -> bytes:
    """What a client signs in the consistency round: the survivor list of this round and model, and the
    graph seed it used (so a majority-signed list also certifies one graph for the whole round)."""
    return (
        _framed(config, _CONSISTENCY) + seed + struct.pack(f"<I{len(survivors)}I", len(survivors), *survivors)
    )


def mask_set_payload(config: SecAggConfig, cid: int, neighbours: tuple[int, ...], seed: bytes) -> bytes:
    """What a client signs with its masked input: the neighbours it masked with (issue 13 finding 1),
    under the graph seed whose neighbourhood they come from."""
    return (
        _framed(config, _MASK_SET)
        + seed
        + struct.pack(f"<II{len(neighbours)}I", cid, len(neighbours), *neighbours)
    )


def share_key(
    config: SecAggConfig, me: int, private: X25519PrivateKey, peer: int, peer_pk: X25519PublicKey
) -> bytes:
    """AES-256-GCM key for the shares exchanged between `me` and `peer`."""
    info = kex.pair_info(kex.PURPOSE_SHARE_KEY, config.round_id, config.model_hash, me, peer)
    return kex.agree(private, peer_pk, info, 32)


def mask_seed(
    config: SecAggConfig, me: int, private: X25519PrivateKey, peer: int, peer_pk: X25519PublicKey
) -> bytes:
    """The 128-bit AES-CTR key of the pairwise mask between `me` and `peer`."""
    info = kex.pair_info(kex.PURPOSE_MASK_SEED, config.round_id, config.model_hash, me, peer)
    return kex.agree(private, peer_pk, info, 16)
