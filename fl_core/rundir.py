"""The run folder: config.toml, metrics.jsonl/.csv, summary.json, privacy.json, model.npz,
membership.json (and canaries.npz when the run had canary clients).

A run writes into `<dir>.partial` and is renamed to `<dir>` only when it completes, so a folder
named `<dir>` is always a complete run; a failed run keeps `<dir>.partial` with every round it
finished (metrics.jsonl is flushed per round) and `error.txt`. A `.partial` folder is never deleted
without `overwrite`: it may hold the only record of a long run.

`model.npz` holds the initial and final weights as flat float32 arrays (read with
`allow_pickle=False`: loading it can never run code); its SHA-256 is in summary.json. `membership.json`
says which training examples each client held (indices into the seeded train split), so an audit
knows what trained the model and what was held out. `read_run` loads a finished folder back.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import tomli_w

from fl_core import checkpoint
from fl_core.checkpoint import atomic_write
from fl_core.errors import RunDirectoryError
from fl_core.types import RoundRecord

if TYPE_CHECKING:
    from fl_core.config import RunConfig
    from fl_core.data import Dataset

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MODEL_FILE = "model.npz"
MEMBERSHIP_FILE = "membership.json"
CANARY_FILE = "canaries.npz"


def _clean(obj: Any) -> Any:
    """JSON-safe: NaN/Inf become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


class RunDirectory:
    """Owns one run's output folder; see the module docstring for the completion protocol."""

    def __init__(self, path: str | Path, *, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.staging = self.path.with_name(self.path.name + ".partial")
        self.overwrite = overwrite
        self.rows: list[dict[str, Any]] = []

    def create(self) -> None:
        if self.path.exists() and not self.overwrite:
            what = "folder" if self.path.is_dir() else "file (not a folder)"
            raise RunDirectoryError(
                f"output {what} {str(self.path)!r} exists; pass --overwrite to replace it"
            )
        if self.staging.exists() and not self.overwrite:
            raise RunDirectoryError(
                f"an unfinished run is in {str(self.staging)!r}; resume it, or pass --overwrite to replace it"
            )
        if self.staging.exists():
            shutil.rmtree(self.staging)
        try:
            self.staging.mkdir(parents=True)
        except OSError as exc:
            raise RunDirectoryError(f"cannot create {str(self.staging)!r}: {exc}") from None
        (self.staging / "metrics.jsonl").touch()

    def reopen(self, config: Mapping[str, Any]) -> None:
        """Continue an unfinished run: its `.partial` folder must exist and hold this very config."""
        if not self.staging.is_dir():
            raise RunDirectoryError(f"nothing to resume: {str(self.staging)!r} does not exist")
        if self.path.exists():
            raise RunDirectoryError(f"{str(self.path)!r} exists already: that run completed")
        saved = self.staging / "config.toml"
        if not saved.is_file() or saved.read_text(encoding="utf-8") != tomli_w.dumps(dict(config)):
            raise RunDirectoryError(f"{str(saved)!r} is missing or differs from the config to resume")
        (self.staging / "error.txt").unlink(missing_ok=True)

    def config_text(self) -> str:
        return (self.staging / "config.toml").read_text(encoding="utf-8")

    def rewrite_rounds(self, records: Sequence[RoundRecord]) -> None:
        """metrics.jsonl as of the checkpoint (drops a line written after it, before a crash)."""
        self.rows = [_clean(r.as_row()) for r in records]
        text = "".join(json.dumps(row) + "\n" for row in self.rows)
        atomic_write(self.staging / "metrics.jsonl", text.encode())

    def write_config(self, config: Mapping[str, Any]) -> None:
        atomic_write(self.staging / "config.toml", tomli_w.dumps(dict(config)).encode())

    def append_round(self, record: RoundRecord) -> None:
        row = _clean(record.as_row())
        self.rows.append(row)
        with open(self.staging / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
            fh.flush()

    def write_json(self, name: str, data: Mapping[str, Any]) -> None:
        atomic_write(self.staging / name, (json.dumps(_clean(data), indent=2) + "\n").encode())

    def write_model(self, initial: np.ndarray, final: np.ndarray) -> str:
        """model.npz (flat float32 initial and final weights, no pickle); returns its SHA-256 (hex)."""
        path = self.staging / MODEL_FILE
        atomic_write(path, _npz_bytes(initial=initial, final=final))
        return hashlib.sha256(path.read_bytes()).hexdigest()

    def write_canaries(self, directions: np.ndarray, inserted: np.ndarray, norm: float) -> None:
        path = self.staging / CANARY_FILE
        atomic_write(path, _npz_bytes(directions=directions, inserted=inserted, norm=np.float64(norm)))

    def finish(self, summary: Mapping[str, Any]) -> Path:
        """Write metrics.csv and summary.json, then atomically publish the folder."""
        self._write_csv()
        self.write_json("summary.json", summary)
        checkpoint.remove(self.staging)  # a finished run needs no resume point
        if self.path.is_dir():
            shutil.rmtree(self.path)
        elif self.path.exists():
            self.path.unlink()
        self.staging.rename(self.path)
        return self.path

    def fail(self, error: BaseException) -> Path:
        """Keep what was produced, marked incomplete, with the error."""
        if self.staging.exists():
            self._write_csv()
            (self.staging / "error.txt").write_text(f"{type(error).__name__}: {error}\n")
        return self.staging

    def _write_csv(self) -> None:
        columns: list[str] = []
        for row in self.rows:
            columns.extend(k for k in row if k not in columns)
        with open(self.staging / "metrics.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


@dataclass(frozen=True)
class Canaries:
    """Canary clients of a run (Andrew et al. 2024): unit directions, which were inserted, their norm."""

    directions: np.ndarray
    inserted: np.ndarray
    norm: float


@dataclass(frozen=True)
class RunFolder:
    """A finished run folder, read back (`read_run`): what an audit or a report needs."""

    path: Path
    config: RunConfig
    summary: dict[str, Any]
    privacy: dict[str, Any]
    metrics: list[dict[str, Any]]
    initial: np.ndarray
    final: np.ndarray
    membership: dict[str, Any]
    canaries: Canaries | None

    @property
    def client_indices(self) -> list[np.ndarray]:
        """Each client's training examples, as indices into the run's train split."""
        return [np.asarray(ix, dtype=np.int64) for ix in self.membership["clients"]]

    def load_dataset(self) -> Dataset:
        """The run's dataset with the exact train/test split it used."""
        from fl_core.experiment import resolve_dataset

        return resolve_dataset(self.config)

    def build_model(self, weights: np.ndarray | None = None) -> Any:
        """The run's model (a torch module) holding `weights` (default: the final weights), in eval mode."""
        from fl_core.experiment import resolve_model
        from fl_core.models import set_flat

        ds = self.load_dataset()
        model = resolve_model(self.config, ds)
        set_flat(model, self.final if weights is None else weights)
        return model.eval()


def read_run(path: str | Path) -> RunFolder:
    """Load a finished run folder; a missing or tampered file is a RunDirectoryError with the reason."""
    from fl_core.config import build_config

    p = Path(path)
    if not p.is_dir():
        raise RunDirectoryError(f"{str(p)!r} is not a run folder")
    for name in ("config.toml", "summary.json", "privacy.json", "metrics.jsonl"):
        if not (p / name).is_file():
            raise RunDirectoryError(f"{str(p)!r} is not a finished run folder: {name} is missing")
    if not (p / MODEL_FILE).is_file():
        raise RunDirectoryError(f"{str(p)!r} holds no {MODEL_FILE} (a run from before models were kept)")
    try:
        config = build_config(tomllib.loads((p / "config.toml").read_text(encoding="utf-8")))
        summary = json.loads((p / "summary.json").read_text(encoding="utf-8"))
        privacy = json.loads((p / "privacy.json").read_text(encoding="utf-8"))
        metrics = [json.loads(line) for line in (p / "metrics.jsonl").read_text().splitlines() if line]
        membership = json.loads((p / MEMBERSHIP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise RunDirectoryError(f"{str(p)!r}: cannot read the run folder: {exc}") from None
    digest = hashlib.sha256((p / MODEL_FILE).read_bytes()).hexdigest()
    if summary.get("model_sha256") != digest:
        raise RunDirectoryError(f"{str(p / MODEL_FILE)!r} does not match the SHA-256 in summary.json")
    initial, final = _load_arrays(p / MODEL_FILE, ("initial", "final"))
    canaries = None
    if (p / CANARY_FILE).is_file():
        directions, inserted, norm = _load_arrays(p / CANARY_FILE, ("directions", "inserted", "norm"))
        canaries = Canaries(directions, inserted.astype(bool), float(norm))
    return RunFolder(p, config, summary, privacy, metrics, initial, final, membership, canaries)


def _load_arrays(path: Path, names: Sequence[str]) -> list[np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return [np.array(data[n]) for n in names]
    except (OSError, ValueError, KeyError) as exc:
        raise RunDirectoryError(f"{str(path)!r} is not a valid array file: {exc}") from None
