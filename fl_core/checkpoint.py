"""Checkpoints: the server's whole state after every completed round, written so a crash loses nothing.

Two files in the run folder: `checkpoint-<round>.npz` (arrays: weights, optimizer moments; read without
pickle) and `checkpoint.json` (everything else, with the npz file's name and SHA-256 and the SHA-256 of
the run's config). Each is written to a temporary file, fsynced and renamed: first the new round's npz
under its own name, then the json that points at it, and only then is the previous npz deleted, so a
crash at any point leaves a complete pair (the json names an npz that exists). A checkpoint whose hashes
do not match, that does not parse, or that was written for another config is refused, never loaded.

Noise generator states are saved only when the run's noise is seeded (`dp.seed`, reproducible, not for
production): an OS-seeded generator's state on disk would let its reader recompute past noise and
subtract it from a released model, so a resumed OS-seeded run draws fresh OS noise instead.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fl_core.errors import RunDirectoryError

VERSION = 2
STATE_FILE = "checkpoint.json"
ARRAYS_PATTERN = "checkpoint-*.npz"


def atomic_write(path: Path, data: bytes) -> None:
    """Write via a temporary file, fsync and rename: a crash leaves the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def split_arrays(state: Any, prefix: str = "") -> tuple[Any, dict[str, np.ndarray]]:
    """Replace every ndarray in a nested dict by {"__array__": key}; return (json part, arrays)."""
    arrays: dict[str, np.ndarray] = {}

    def walk(obj: Any, path: str) -> Any:
        if isinstance(obj, np.ndarray):
            arrays[path] = obj
            return {"__array__": path}
        if isinstance(obj, Mapping):
            return {str(k): walk(v, f"{path}/{k}") for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [walk(v, f"{path}/{i}") for i, v in enumerate(obj)]
        if isinstance(obj, np.generic):
            return obj.item()
        return obj

    return walk(state, prefix), arrays


def join_arrays(state: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    if isinstance(state, dict):
        if set(state) == {"__array__"}:
            key = state["__array__"]
            if key not in arrays:
                raise RunDirectoryError(f"checkpoint is corrupt: array {key!r} is missing")
            return arrays[key]
        return {k: join_arrays(v, arrays) for k, v in state.items()}
    if isinstance(state, list):
        return [join_arrays(v, arrays) for v in state]
    return state


def save(folder: Path, state: Mapping[str, Any], config_text: str) -> None:
    """Write the checkpoint pair for `state` (nested dicts, lists, scalars and ndarrays)."""
    plain, arrays = split_arrays(dict(state))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    blob = buf.getvalue()
    name = f"checkpoint-{int(state.get('round', 0))}.npz"
    atomic_write(folder / name, blob)
    doc = {
        "version": VERSION,
        "config_sha256": hashlib.sha256(config_text.encode()).hexdigest(),
        "arrays_file": name,
        "arrays_sha256": hashlib.sha256(blob).hexdigest(),
        "state": plain,
    }
    atomic_write(folder / STATE_FILE, json.dumps(doc, allow_nan=True).encode())
    for old in folder.glob(ARRAYS_PATTERN):  # the json no longer points at them
        if old.name != name:
            old.unlink(missing_ok=True)


def remove(folder: Path) -> None:
    """Delete the checkpoint (a finished run needs no resume point)."""
    (folder / STATE_FILE).unlink(missing_ok=True)
    for old in folder.glob(ARRAYS_PATTERN):
        old.unlink(missing_ok=True)


def load(folder: Path, config_text: str) -> dict[str, Any]:
    """The state of the last checkpoint in `folder`; RunDirectoryError (with the reason) if it is absent,
    corrupt, or was written for another config."""
    spath = folder / STATE_FILE
    if not spath.is_file():
        raise RunDirectoryError(f"{str(folder)!r} holds no checkpoint: nothing to resume (start a new run)")
    try:
        doc = json.loads(spath.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise RunDirectoryError(f"checkpoint {str(spath)!r} is corrupt ({exc}); refusing to resume") from None
    if not isinstance(doc, dict) or doc.get("version") != VERSION or "state" not in doc:
        raise RunDirectoryError(f"checkpoint {str(spath)!r} is not a version-{VERSION} privagg checkpoint")
    name = doc.get("arrays_file")
    if not isinstance(name, str) or Path(name).name != name or not (folder / name).is_file():
        raise RunDirectoryError(f"checkpoint {str(spath)!r} names arrays {name!r} that are not there")
    apath = folder / name
    if doc.get("config_sha256") != hashlib.sha256(config_text.encode()).hexdigest():
        raise RunDirectoryError(
            f"checkpoint {str(spath)!r} was written for another config than the run's config.toml; "
            "refusing to resume"
        )
    blob = apath.read_bytes()
    if doc.get("arrays_sha256") != hashlib.sha256(blob).hexdigest():
        raise RunDirectoryError(
            f"checkpoint arrays {str(apath)!r} do not match their hash; refusing to resume"
        )
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as data:
            arrays = {k: np.array(data[k]) for k in data.files}
    except (OSError, ValueError) as exc:
        raise RunDirectoryError(f"checkpoint arrays {str(apath)!r} are corrupt: {exc}") from None
    state = join_arrays(doc["state"], arrays)
    if not isinstance(state, dict):
        raise RunDirectoryError(f"checkpoint {str(spath)!r} is corrupt: its state is not an object")
    return state


def generator_state(gen: np.random.Generator) -> dict[str, Any]:
    return dict(gen.bit_generator.state)


def set_generator_state(gen: np.random.Generator, state: Mapping[str, Any]) -> None:
    try:
        gen.bit_generator.state = dict(state)
    except (TypeError, ValueError, KeyError) as exc:
        raise RunDirectoryError(f"checkpoint is corrupt: a generator state does not load ({exc})") from None
