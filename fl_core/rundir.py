"""The run folder: config.toml, metrics.jsonl/.csv, summary.json.

A run writes into `<dir>.partial` and is renamed to `<dir>` only when it completes, so a folder
named `<dir>` is always a complete run; a failed run keeps `<dir>.partial` with every round it
finished (metrics.jsonl is flushed per round) and `error.txt`.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w

from fl_core.errors import RunDirectoryError
from fl_core.types import RoundRecord


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
            raise RunDirectoryError(
                f"output folder {str(self.path)!r} exists; pass --overwrite to replace it"
            )
        if self.staging.exists():
            shutil.rmtree(self.staging)
        try:
            self.staging.mkdir(parents=True)
        except OSError as exc:
            raise RunDirectoryError(f"cannot create {str(self.staging)!r}: {exc}") from None
        (self.staging / "metrics.jsonl").touch()

    def write_config(self, config: Mapping[str, Any]) -> None:
        (self.staging / "config.toml").write_text(tomli_w.dumps(dict(config)))

    def append_round(self, record: RoundRecord) -> None:
        row = _clean(record.as_row())
        self.rows.append(row)
        with open(self.staging / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
            fh.flush()

    def write_json(self, name: str, data: Mapping[str, Any]) -> None:
        (self.staging / name).write_text(json.dumps(_clean(data), indent=2) + "\n")

    def finish(self, summary: Mapping[str, Any]) -> Path:
        """Write metrics.csv and summary.json, then atomically publish the folder."""
        self._write_csv()
        self.write_json("summary.json", summary)
        if self.path.exists():
            shutil.rmtree(self.path)
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
