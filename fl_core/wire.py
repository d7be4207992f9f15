"""Canonical byte encoding of the plaintext FL messages, so communication is counted from real bytes.

Layout (little-endian): magic (4 bytes), version (u8), header fields, a float32 array with an explicit
length, then a JSON object (UTF-8, sorted keys) with an explicit length. Never pickle.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import numpy as np

from fl_core.errors import UpdateRejectedError
from fl_core.types import ClientUpdate, ModelVector, RoundConfig

VERSION = 1
_GLOBAL = b"PAGM"
_UPDATE = b"PAGU"
_GLOBAL_HDR = struct.Struct("<4sBII")  # magic, version, round, n_params
_UPDATE_HDR = struct.Struct(
    "<4sBIIQIBd"
)  # magic, version, round, client_id, num_examples, n_params, bits, scale
_INT_TYPES = {16: "<i2", 8: "<i1"}
UPLOAD_BITS = (32, 16, 8)
_LEN = struct.Struct("<I")


def _json_bytes(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _read_body(data: bytes, off: int, what: str) -> Any:
    """The length-prefixed JSON trailer at `off`, which must end the message exactly."""
    (blen,) = _LEN.unpack_from(data, off)
    off += _LEN.size
    if off + blen != len(data):
        raise UpdateRejectedError(f"{what} message length mismatch: {len(data)} bytes")
    return json.loads(data[off:].decode())


def _floats(vec: np.ndarray) -> bytes:
    return np.ascontiguousarray(vec, dtype="<f4").tobytes()


def encode_global(weights: ModelVector, config: RoundConfig) -> bytes:
    """Server -> client: the global model and the round's config."""
    body = _json_bytes(asdict(config) | {"extra": dict(config.extra)})
    return (
        _GLOBAL_HDR.pack(_GLOBAL, VERSION, config.round, weights.size)
        + _floats(weights)
        + _LEN.pack(len(body))
        + body
    )


def decode_global(data: bytes) -> tuple[ModelVector, RoundConfig]:
    """Inverse of `encode_global`; raises UpdateRejectedError on any malformed input."""
    try:
        magic, version, rnd, n = _GLOBAL_HDR.unpack_from(data, 0)
        if magic != _GLOBAL or version != VERSION:
            raise UpdateRejectedError(f"not a v{VERSION} global-model message (magic={magic!r}, v={version})")
        off = _GLOBAL_HDR.size
        weights = np.frombuffer(data, dtype="<f4", count=n, offset=off).astype(np.float32)
        cfg = _read_body(data, off + 4 * n, "global-model")
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise UpdateRejectedError(f"malformed global-model message: {exc}") from None
    return weights, RoundConfig(**cfg)


def quantize(delta: np.ndarray, bits: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """b-bit update compression: scale by max|x| / (2^(b-1) - 1), unbiased stochastic rounding.

    The decoded value differs from the input by less than `scale` per coordinate, with zero mean.
    """
    top = 2 ** (bits - 1) - 1
    peak = float(np.max(np.abs(delta))) if delta.size else 0.0
    scale = peak / top if peak > 0 else 1.0
    x = delta.astype(np.float64) / scale
    low = np.floor(x)
    q = low + (rng.random(x.shape) < (x - low))
    return np.clip(q, -top, top).astype(_INT_TYPES[bits]), scale


def encode_update(
    update: ClientUpdate, round_: int, *, bits: int = 32, rng: np.random.Generator | None = None
) -> bytes:
    """Client -> server: the model delta (float32, or b-bit quantized), example count and metrics."""
    if bits not in UPLOAD_BITS:
        raise UpdateRejectedError(f"upload bits must be one of {UPLOAD_BITS}, got {bits}")
    # compute_s is a simulation measurement, not something a client sends.
    body = _json_bytes({"metrics": {k: float(v) for k, v in update.metrics.items()}})
    if bits == 32:
        payload, scale = _floats(update.delta), 1.0
    else:
        q, scale = quantize(update.delta, bits, rng if rng is not None else np.random.default_rng())
        payload = q.tobytes()
    hdr = _UPDATE_HDR.pack(
        _UPDATE, VERSION, round_, update.client_id, update.num_examples, update.delta.size, bits, scale
    )
    return hdr + payload + _LEN.pack(len(body)) + body


def decode_update(data: bytes, *, expected_round: int, expected_size: int) -> ClientUpdate:
    """Inverse of `encode_update`, validating round, length and finiteness before anything is averaged."""
    try:
        magic, version, rnd, cid, n_ex, n, bits, scale = _UPDATE_HDR.unpack_from(data, 0)
        if magic != _UPDATE or version != VERSION:
            raise UpdateRejectedError(f"not a v{VERSION} update message (magic={magic!r}, v={version})")
        if bits not in UPLOAD_BITS or not (np.isfinite(scale) and scale > 0):
            raise UpdateRejectedError(f"update message has bits={bits}, scale={scale}")
        off = _UPDATE_HDR.size
        width = bits // 8
        if width * n + off + _LEN.size > len(data):
            raise UpdateRejectedError(f"update message truncated: {len(data)} bytes for {n} parameters")
        if bits == 32:
            delta = np.frombuffer(data, dtype="<f4", count=n, offset=off).astype(np.float32)
        else:
            raw = np.frombuffer(data, dtype=_INT_TYPES[bits], count=n, offset=off)
            delta = (raw.astype(np.float64) * scale).astype(np.float32)
        body = _read_body(data, off + width * n, "update")
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise UpdateRejectedError(f"malformed update message: {exc}") from None
    if rnd != expected_round:
        raise UpdateRejectedError(f"client {cid}: update for round {rnd}, expected round {expected_round}")
    update = ClientUpdate(cid, delta, n_ex, body.get("metrics", {}))
    validate_update(update, expected_size)
    return update


def validate_update(update: ClientUpdate, expected_size: int) -> None:
    """Reject an update that must not be averaged in: wrong length, NaN/Inf, or no examples."""
    if update.delta.ndim != 1 or update.delta.size != expected_size:
        raise UpdateRejectedError(
            f"client {update.client_id}: update has {update.delta.size} values, expected {expected_size}"
        )
    if update.num_examples < 1:
        raise UpdateRejectedError(f"client {update.client_id}: num_examples={update.num_examples} (< 1)")
    if not np.all(np.isfinite(update.delta)):
        bad = int(np.count_nonzero(~np.isfinite(update.delta)))
        raise UpdateRejectedError(f"client {update.client_id}: update has {bad} non-finite values")
