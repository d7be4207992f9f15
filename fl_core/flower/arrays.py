"""Flower `ArrayRecord` <-> one flat float vector, and the model hash both sides bind into secagg."""

from __future__ import annotations

import hashlib

import numpy as np
from flwr.app import Array, ArrayRecord

from fl_core.errors import ConfigError


def flatten(record: ArrayRecord) -> np.ndarray:
    """The record's arrays, in their order, as one float32 vector (what privagg clips, noises and masks)."""
    parts = [np.asarray(a.numpy(), dtype=np.float32).ravel() for a in record.values()]
    if not parts:
        raise ConfigError("the model ArrayRecord is empty")
    return np.concatenate(parts)


def unflatten(vector: np.ndarray, like: ArrayRecord) -> ArrayRecord:
    """A record with `like`'s keys, shapes and dtypes holding `vector`'s values."""
    out: dict[str, Array] = {}
    at = 0
    for key, arr in like.items():
        ref = arr.numpy()
        n = int(np.prod(ref.shape, dtype=np.int64))
        out[key] = Array(np.asarray(vector[at : at + n], dtype=ref.dtype).reshape(ref.shape))
        at += n
    if at != vector.size:
        raise ConfigError(f"vector has {vector.size} entries, the model {at}")
    return ArrayRecord(array_dict=out)


def model_hash(record: ArrayRecord) -> bytes:
    """SHA-256 over every array's name, shape, dtype and bytes: the model a round trains, bound into every
    secagg message (a server that sends clients different models cannot get them summed)."""
    h = hashlib.sha256(b"privagg/flower-model/v1")
    for key, arr in record.items():
        a = np.ascontiguousarray(arr.numpy())
        head = f"{key}|{a.shape}|{a.dtype.str}|".encode()
        h.update(len(head).to_bytes(4, "little") + head)
        h.update(a.tobytes())
    return h.digest()
