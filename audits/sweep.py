"""Sweeps: one base config, a grid of config keys and seeds, every point a normal run folder.

A sweep spec (TOML file or dict) holds:

- ``base``: the base run config, inline (``[base.data]``, ``[base.model]``, ...) or a path to a run
  config TOML (relative to the spec file);
- ``[grid]``: dotted config keys -> lists of values, crossed (cartesian product);
- ``[zip]`` (or ``[[zip]]`` for several): dotted keys -> lists of one length, varied together;
- ``seeds = [0, 1, 2]``: each setting is run once per seed (``run.seed``);
- ``[[group]]`` (optional): sub-sweeps, each with its own ``name``, fixed ``set`` keys and its own
  ``grid``/``zip``; the top-level grid and zip are crossed with every group. The sweep is the union of
  its groups (a config that two groups produce runs once).

Layout of the sweep folder ``OUT``: ``sweep.json`` (the spec, its hash, and every point with its status
and error), ``spec.toml`` (the resolved spec) and ``runs/NAME/`` (one run folder per point, written by
``fl_core.run_experiment(config, out=...)``). Every point's config is validated before anything runs. An
interrupted sweep resumes: a point whose folder is complete (no ``.partial``) is skipped; a failed or
interrupted point is run again. A folder made from a different spec is refused, so results of two specs
never mix.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import multiprocessing
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomli_w

from fl_core.config import build_config, set_dotted
from fl_core.errors import ConfigError, FLError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SWEEP_FILE = "sweep.json"
SPEC_FILE = "spec.toml"
RUNS_DIR = "runs"
#: Top-level keys a sweep spec may hold.
SPEC_KEYS: tuple[str, ...] = ("name", "description", "base", "seeds", "grid", "zip", "group")
GROUP_KEYS: tuple[str, ...] = ("name", "set", "grid", "zip")
#: Longest folder name of a point; longer names are cut and given a hash suffix.
MAX_NAME = 120
PointStatus = Literal["done", "skipped", "failed"]


class SweepError(FLError):
    """Root of the sweep's errors (a FLError, so `privagg` prints it as one line and exits 2)."""


class SweepSpecError(SweepError, ValueError):
    """The sweep spec is malformed: an unknown key, an empty grid, lists of unequal length, a bad point."""


class SweepFolderError(SweepError):
    """The output folder holds something else: another sweep's results, or files that are not a sweep."""


# ---------------------------------------------------------------- the spec


@dataclass(frozen=True)
class SweepPoint:
    """One run of the sweep: its folder name, its group, the keys it sets, its seed and resolved config."""

    name: str
    group: str
    assignments: tuple[tuple[str, Any], ...]
    seed: int
    config: dict[str, Any] = field(hash=False, compare=False)

    @property
    def setting(self) -> tuple[tuple[str, Any], ...]:
        """The assignments without the seed: points with equal settings are repeats over seeds."""
        return tuple((k, v) for k, v in self.assignments if k != "run.seed")


@dataclass(frozen=True)
class SweepSpec:
    """A validated, expanded sweep: its name, resolved spec (what the hash covers) and every point."""

    name: str
    spec: dict[str, Any] = field(hash=False, compare=False)
    spec_hash: str
    points: tuple[SweepPoint, ...]
    varying: tuple[str, ...]


@dataclass(frozen=True)
class PointResult:
    """What happened to one point: done (ran now), skipped (already complete) or failed (with its error)."""

    name: str
    status: PointStatus
    run_dir: Path
    error: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class SweepResult:
    """A finished sweep: its folder and one result per point, in spec order."""

    out: Path
    spec_hash: str
    points: tuple[PointResult, ...]

    @property
    def ran(self) -> tuple[str, ...]:
        """Names of the points run by this call (successfully)."""
        return tuple(p.name for p in self.points if p.status == "done")

    @property
    def skipped(self) -> tuple[str, ...]:
        """Names of the points found complete and not run again."""
        return tuple(p.name for p in self.points if p.status == "skipped")

    @property
    def failed(self) -> tuple[str, ...]:
        """Names of the points whose run raised (their errors are in sweep.json)."""
        return tuple(p.name for p in self.points if p.status == "failed")


@dataclass(frozen=True)
class SweepProgress:
    """Reported after each point: how many of `total` are finished, and the one that just finished."""

    finished: int
    total: int
    point: PointResult


ProgressFn = Callable[[SweepProgress], None]


def _flatten(table: Mapping[str, Any], where: str, prefix: str = "") -> dict[str, Any]:
    """{"dp": {"clip_norm": [..]}} and {"dp.clip_norm": [..]} both become {"dp.clip_norm": [..]}.

    Nested tables are unfolded down to `section.key` (two parts); a value under a longer dotted key is kept
    whole, so ``"devices.mix" = [{...}, {...}]`` stays a list of mixes.
    """
    out: dict[str, Any] = {}
    for key, value in table.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and full.count(".") == 0:
            out.update(_flatten(value, where, full))
        else:
            if full in out:
                raise SweepSpecError(f"{where}: key {full!r} is given twice")
            out[full] = value
    return out


def _axis_lists(table: Mapping[str, Any], where: str) -> dict[str, list[Any]]:
    flat = _flatten(table, where)
    for key, values in flat.items():
        if not isinstance(values, list):
            raise SweepSpecError(f"{where}: {key!r} must be a list of values, got {values!r}")
        if not values:
            raise SweepSpecError(f"{where}: {key!r} has an empty list of values")
    return flat


def _zip_axes(value: Any, where: str) -> list[dict[str, list[Any]]]:
    """`[zip]` (one table) or `[[zip]]` (several): each table is one axis of lists varied together."""
    tables = value if isinstance(value, list) else [value]
    axes: list[dict[str, list[Any]]] = []
    for i, table in enumerate(tables):
        here = f"{where}[{i}]" if isinstance(value, list) else where
        if not isinstance(table, Mapping):
            raise SweepSpecError(f"{here}: must be a table of key = [values], got {table!r}")
        lists = _axis_lists(table, here)
        if not lists:
            raise SweepSpecError(f"{here}: is empty")
        lengths = {k: len(v) for k, v in lists.items()}
        if len(set(lengths.values())) > 1:
            raise SweepSpecError(f"{here}: zipped lists must have one length, got {lengths}")
        axes.append(lists)
    return axes


def _axes_of(table: Mapping[str, Any], where: str) -> list[list[dict[str, Any]]]:
    """The grid and zip of one table as axes: each axis a list of alternative assignment dicts."""
    axes: list[list[dict[str, Any]]] = []
    if "grid" in table:
        if not isinstance(table["grid"], Mapping):
            raise SweepSpecError(f"{where}grid must be a table of key = [values]")
        grid = _axis_lists(table["grid"], f"{where}grid")
        if not grid:
            raise SweepSpecError(f"{where}grid is empty: give at least one key = [values]")
        axes.extend([{k: v} for v in values] for k, values in grid.items())
    if "zip" in table:
        for lists in _zip_axes(table["zip"], f"{where}zip"):
            n = len(next(iter(lists.values())))
            axes.append([{k: v[i] for k, v in lists.items()} for i in range(n)])
    return axes


def _set_path(data: dict[str, Any], key: str, value: Any) -> None:
    try:
        set_dotted(data, key, value)
    except ConfigError as exc:
        raise SweepSpecError(str(exc)) from None


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def _read_spec(spec: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], Path | None]:
    if isinstance(spec, Mapping):
        return dict(spec), None
    path = Path(spec)
    if not path.is_file():
        raise SweepSpecError(f"sweep spec {str(path)!r} does not exist")
    try:
        return tomllib.loads(path.read_text()), path.parent
    except tomllib.TOMLDecodeError as exc:
        raise SweepSpecError(f"sweep spec {str(path)!r} is not valid TOML: {exc}") from None


def _resolve_base(raw: Any, root: Path | None) -> dict[str, Any]:
    if raw is None:
        return {}
    if isinstance(raw, Mapping):
        return json.loads(_canonical(raw))
    if isinstance(raw, str):
        path = Path(raw)
        if not path.is_absolute() and root is not None:
            path = root / path
        if not path.is_file():
            raise SweepSpecError(f"base config {str(path)!r} does not exist")
        try:
            return tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise SweepSpecError(f"base config {str(path)!r} is not valid TOML: {exc}") from None
    raise SweepSpecError(f"base must be a table or a config file path, got {raw!r}")


_SAFE = re.compile(r"[^A-Za-z0-9._+=-]+")


def _value_label(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e6:
        return str(int(value)) if value != 0 else "0"
    if isinstance(value, Mapping):
        if not value:
            return "ideal"  # the only table-valued config key is devices.mix; empty means this machine
        weights = {float(v) for v in value.values() if isinstance(v, (int, float))}
        if weights == {1.0} or len(value) == 1:
            return "+".join(str(k) for k in value)
        return "+".join(f"{k}{_value_label(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "+".join(_value_label(v) for v in value)
    return str(value)


def _key_labels(keys: Sequence[str]) -> dict[str, str]:
    """Short, unambiguous labels: the last part of a dotted key, or the section for the generic ones
    (`model.name` -> `model`, `dp.mode` -> `dp`, `secagg.enabled` -> `secagg`); the full key on a clash."""

    def short(key: str) -> str:
        parts = key.split(".")
        return parts[-2] if parts[-1] in ("name", "mode", "enabled") and len(parts) > 1 else parts[-1]

    shorts = [short(k) for k in keys]
    return {k: (s if shorts.count(s) == 1 else k) for k, s in zip(keys, shorts, strict=True)}


def _point_name(group: str, labels: Mapping[str, str], assignments: Mapping[str, Any], seed: int) -> str:
    parts = [group] if group else []
    parts += [f"{labels[k]}={_value_label(v)}" for k, v in assignments.items() if k in labels]
    parts.append(f"seed={seed}")
    name = _SAFE.sub("-", "_".join(parts))
    if len(name) > MAX_NAME:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[: MAX_NAME - 9]}~{digest}"
    return name


def load_spec(spec: str | Path | Mapping[str, Any]) -> SweepSpec:
    """Read, expand and validate a sweep spec; raises SweepSpecError (one line) before anything runs."""
    raw, root = _read_spec(spec)
    unknown = sorted(set(raw) - set(SPEC_KEYS))
    if unknown:
        raise SweepSpecError(f"unknown sweep key(s) {unknown}; a sweep spec holds {', '.join(SPEC_KEYS)}")
    base = _resolve_base(raw.get("base"), root)
    seeds = raw.get("seeds", [base.get("run", {}).get("seed", 0)])
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise SweepSpecError(f"seeds must be a non-empty list of distinct integers >= 0, got {seeds!r}")
    top_axes = _axes_of(raw, "")
    groups_raw = raw.get("group", [])
    if not isinstance(groups_raw, list) or not all(isinstance(g, Mapping) for g in groups_raw):
        raise SweepSpecError("group must be an array of tables ([[group]])")
    groups: list[tuple[str, dict[str, Any], list[list[dict[str, Any]]]]] = []
    for i, g in enumerate(groups_raw):
        bad = sorted(set(g) - set(GROUP_KEYS))
        if bad:
            raise SweepSpecError(f"group[{i}]: unknown key(s) {bad}; a group holds {', '.join(GROUP_KEYS)}")
        gname = g.get("name", f"g{i}")
        if not isinstance(gname, str) or not gname or _SAFE.search(gname):
            raise SweepSpecError(
                f"group[{i}]: name must be letters, digits, '.', '_', '+' or '-', got {gname!r}"
            )
        if gname in {n for n, _, _ in groups}:
            raise SweepSpecError(f"group name {gname!r} is used twice")
        fixed = _flatten(g.get("set", {}), f"group {gname!r} set")
        groups.append((gname, fixed, _axes_of(g, f"group {gname!r} ")))
    if not groups:
        groups = [("", {}, [])]
    if not top_axes and all(not axes and not fixed for _, fixed, axes in groups) and len(seeds) < 2:
        raise SweepSpecError(
            "the sweep is empty: give a [grid] or [zip] of config keys, groups, or several seeds"
        )

    combos: list[tuple[str, dict[str, Any]]] = []
    for gname, fixed, axes in groups:
        for pick in itertools.product(*(top_axes + axes)):
            assignment = dict(fixed)
            for part in pick:
                for key, value in part.items():
                    if key in assignment and _canonical(assignment[key]) != _canonical(value):
                        raise SweepSpecError(f"group {gname or 'top'!r}: key {key!r} is set twice")
                    assignment[key] = value
            combos.append((gname, assignment))
    if any(k == "run.seed" for _, a in combos for k in a):
        raise SweepSpecError("set seeds with the top-level 'seeds = [...]', not as a grid key")

    keys: list[str] = []
    for _, a in combos:
        keys.extend(k for k in a if k not in keys)
    varying = [k for k in keys if len({_canonical(a.get(k)) for _, a in combos}) > 1]
    labels = _key_labels(varying)
    named_groups = len({g for g, _ in combos}) > 1

    points: list[SweepPoint] = []
    seen_configs: set[str] = set()
    names: set[str] = set()
    for gname, assignment in combos:
        for seed in seeds:
            data = json.loads(_canonical(base))
            for key, value in assignment.items():
                _set_path(data, key, value)
            _set_path(data, "run.seed", seed)
            name = _point_name(gname if named_groups else "", labels, assignment, seed)
            try:
                resolved = build_config(data).to_dict()
            except (ConfigError, FLError) as exc:
                raise SweepSpecError(f"point {name}: {exc}") from None
            resolved_key = _canonical(resolved)
            if resolved_key in seen_configs:  # two groups made the same run: it runs once
                continue
            seen_configs.add(resolved_key)
            if name in names:
                name = f"{name}~{hashlib.sha256(resolved_key.encode()).hexdigest()[:8]}"
            names.add(name)
            items = tuple(sorted(assignment.items())) + (("run.seed", seed),)
            points.append(SweepPoint(name, gname, items, seed, resolved))
    resolved_spec = {
        "name": raw.get("name", "sweep"),
        "description": raw.get("description", ""),
        "base": base,
        "seeds": seeds,
        "grid": raw.get("grid", {}),
        "zip": raw.get("zip", {}),
        "group": [dict(g) for g in groups_raw],
    }
    spec_hash = hashlib.sha256(_canonical(resolved_spec).encode()).hexdigest()
    return SweepSpec(str(resolved_spec["name"]), resolved_spec, spec_hash, tuple(points), tuple(varying))


# ---------------------------------------------------------------- running


def _execute(config: Any, folder: Path) -> None:
    """Run one point into its run folder: the one place the sweep calls fl_core."""
    from fl_core.experiment import run_experiment

    run_experiment(config, out=folder)


def _init_worker() -> None:
    """Worker processes: one torch thread each, so N workers use N cores and never oversubscribe."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    import torch

    torch.set_num_threads(1)


def run_point(config: dict[str, Any], folder: str) -> tuple[str | None, float]:
    """Run one point (in a worker process): (None, seconds) on success, (one-line error, seconds) on failure.

    Errors are returned, never raised, so one failing point cannot stop the sweep; the failed run keeps
    its `.partial` folder with error.txt (fl_core's completion protocol).
    """
    start = time.perf_counter()
    try:
        _execute(build_config(config), Path(folder))
    except Exception as exc:  # a point's failure is data for the report, not the sweep's end
        message = " ".join(str(exc).split()) or repr(exc)
        return f"{type(exc).__name__}: {message}", time.perf_counter() - start
    return None, time.perf_counter() - start


def is_complete_run(folder: Path) -> bool:
    """A complete run folder: it exists under its final name (not .partial) and holds summary.json."""
    return folder.is_dir() and not folder.name.endswith(".partial") and (folder / "summary.json").is_file()


def _check_folder(out: Path, spec: SweepSpec) -> dict[str, Any] | None:
    """The previous sweep.json when resuming the same spec; refuse a different spec or a foreign folder."""
    state_file = out / SWEEP_FILE
    if state_file.is_file():
        try:
            state = json.loads(state_file.read_text())
        except json.JSONDecodeError:
            raise SweepFolderError(
                f"{state_file} is not valid JSON; remove the folder or use another --out"
            ) from None
        if state.get("spec_hash") != spec.spec_hash:
            raise SweepFolderError(
                f"{out} holds a sweep made from a different spec (hash {str(state.get('spec_hash'))[:12]}, "
                f"this spec {spec.spec_hash[:12]}); use another --out"
            )
        return state
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SweepFolderError(f"{out} exists and is not a sweep folder (no {SWEEP_FILE}); use another --out")
    return None


def _write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)


def _state(spec: SweepSpec, results: Mapping[str, PointResult], previous: Mapping[str, Any] | None) -> dict:
    before = {p["name"]: p for p in (previous or {}).get("points", [])}
    points = []
    for p in spec.points:
        r = results.get(p.name)
        entry: dict[str, Any] = {
            "name": p.name,
            "group": p.group,
            "seed": p.seed,
            "assignments": {k: v for k, v in p.assignments},
            "run": f"{RUNS_DIR}/{p.name}",
        }
        if r is not None:
            entry["status"] = "done" if r.status in ("done", "skipped") else "failed"
            entry["error"] = r.error
            entry["seconds"] = r.seconds if r.status == "done" else before.get(p.name, {}).get("seconds")
        else:
            entry["status"] = "pending"
        points.append(entry)
    return {
        "format": 1,
        "name": spec.name,
        "spec_hash": spec.spec_hash,
        "varying": list(spec.varying),
        "spec": spec.spec,
        "points": points,
        "failed": [e["name"] for e in points if e["status"] == "failed"],
    }


def default_jobs() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def run_sweep(
    spec: str | Path | Mapping[str, Any],
    out: str | Path,
    *,
    jobs: int | None = None,
    progress: ProgressFn | None = None,
) -> SweepResult:
    """Run every point of a sweep spec into ``out`` (see the module docstring), resuming finished work.

    ``jobs`` worker processes (default: one per core; spawned, one torch thread each) run the points;
    ``jobs=1`` runs them in this process. A point that fails is recorded with its error in sweep.json
    and the sweep goes on. ``progress`` is called after every point, including skipped ones.
    """
    parsed = load_spec(spec)
    if jobs is None:
        jobs = default_jobs()
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise SweepSpecError(f"jobs must be an integer >= 1, got {jobs!r}")
    out = Path(out)
    previous = _check_folder(out, parsed)
    runs = out / RUNS_DIR
    runs.mkdir(parents=True, exist_ok=True)
    (out / SPEC_FILE).write_text(tomli_w.dumps(_toml_safe(parsed.spec)))
    results: dict[str, PointResult] = {}
    total = len(parsed.points)

    def record(result: PointResult) -> None:
        results[result.name] = result
        _write_json_atomic(out / SWEEP_FILE, _state(parsed, results, previous))
        if progress is not None:
            progress(SweepProgress(len(results), total, result))

    todo: list[SweepPoint] = []
    for point in parsed.points:
        folder = runs / point.name
        if is_complete_run(folder):
            record(PointResult(point.name, "skipped", folder))
            continue
        if folder.exists():  # a folder without summary.json is not a finished run: start it again
            shutil.rmtree(folder)
        partial = folder.with_name(folder.name + ".partial")
        if partial.exists():
            shutil.rmtree(partial)
        todo.append(point)
    _write_json_atomic(out / SWEEP_FILE, _state(parsed, results, previous))

    def finished(point: SweepPoint, error: str | None, seconds: float) -> PointResult:
        folder = runs / point.name
        if error is None:
            return PointResult(point.name, "done", folder, None, seconds)
        return PointResult(point.name, "failed", folder.with_name(folder.name + ".partial"), error, seconds)

    if jobs == 1 or len(todo) <= 1:
        for point in todo:
            error, seconds = run_point(point.config, str(runs / point.name))
            record(finished(point, error, seconds))
    else:
        for point, error, seconds in _run_parallel(todo, runs, min(jobs, len(todo))):
            record(finished(point, error, seconds))
    ordered = tuple(results[p.name] for p in parsed.points)
    return SweepResult(out, parsed.spec_hash, ordered)


def _run_parallel(
    todo: Sequence[SweepPoint], runs: Path, jobs: int
) -> Iterator[tuple[SweepPoint, str | None, float]]:
    """Points in `jobs` spawned worker processes, yielded as they finish (a crashed worker is an error)."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker) as pool:
        pending: dict[Future[tuple[str | None, float]], SweepPoint] = {
            pool.submit(run_point, p.config, str(runs / p.name)): p for p in todo
        }
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    point = pending.pop(fut)
                    try:
                        error, seconds = fut.result()
                    except Exception as exc:  # the worker process died (out of memory, a crash)
                        error, seconds = f"{type(exc).__name__}: {exc}", math.nan
                    yield point, error, seconds
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise


def _toml_safe(obj: Any) -> Any:
    """TOML has no null: drop None values so spec.toml can always be written."""
    if isinstance(obj, Mapping):
        return {str(k): _toml_safe(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_toml_safe(v) for v in obj if v is not None]
    return obj


def read_sweep(folder: str | Path) -> dict[str, Any]:
    """A sweep folder's sweep.json (for reports); SweepFolderError when the folder is not a sweep."""
    path = Path(folder) / SWEEP_FILE
    if not path.is_file():
        raise SweepFolderError(f"{folder} is not a sweep folder (no {SWEEP_FILE})")
    return json.loads(path.read_text())
