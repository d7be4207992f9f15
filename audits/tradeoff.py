"""The privacy-utility tradeoff from run folders: one row per run, settings aggregated over seeds, the Pareto
frontier of (epsilon down, utility up), and a recommended setting for an accuracy or epsilon target.

Everything here reads run folders (config.toml, summary.json, privacy.json, metrics.jsonl, and audit.json
when an audit wrote one) and does plain arithmetic: no torch, no plotting (audits.report draws).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fl_core.errors import FLError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: Config keys that set the amount of DP noise: settings that differ only in these form one curve.
PRIVACY_KNOBS: tuple[str, ...] = ("dp.noise_multiplier", "dp.target_epsilon")
#: Keys that make a (dataset, model) context: labels inside a context leave them out.
CONTEXT_KEYS: tuple[str, ...] = ("data.dataset", "model.name")
#: Keys never used to tell settings apart.
IGNORED_KEYS: tuple[str, ...] = ("run.seed", "run.name", "run.threads")
#: Keys of audit.json read as the empirical epsilon (the largest found wins), top level first.
AUDIT_EPSILON_KEYS: tuple[str, ...] = ("empirical_epsilon", "epsilon_lower_bound", "epsilon_lb")

#: results.csv columns, in order (the sweep's varying config keys follow them).
COLUMNS: tuple[str, ...] = (
    "run",
    "path",
    "group",
    "setting",
    "setting_id",
    "seed",
    "dataset",
    "task",
    "model",
    "num_clients",
    "partition",
    "alpha",
    "distribution",
    "devices",
    "dp_mode",
    "secagg",
    "noise_multiplier",
    "clip_norm",
    "rounds",
    "metric",
    "fl_metric",
    "centralized_metric",
    "epsilon",
    "delta",
    "empirical_epsilon",
    "bytes_up_per_round",
    "bytes_down_per_round",
    "bytes_total",
    "sim_round_s",
    "wall_s",
    "dropped_total",
    "stopped",
)


class TradeoffError(FLError, ValueError):
    """No run folders where some were expected, or a run folder that cannot be read (one line)."""


# ---------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Interval:
    """Mean of n values with a two-sided t confidence interval (low, high); NaN bounds when n < 2."""

    mean: float
    low: float
    high: float
    n: int
    std: float

    @property
    def half_width(self) -> float:
        """(high - low) / 2: the error bar."""
        return (self.high - self.low) / 2.0


def mean_interval(values: Iterable[float], level: float = 0.95) -> Interval:
    """Mean and the Student-t interval mean +- t_{(1+level)/2, n-1} * s / sqrt(n) (s: sample std, ddof 1).

    Seeds are few (3-5), so the t quantile, not the normal one, is what keeps the interval honest. With one
    value the spread is unknown: the bounds are NaN. Infinite values (epsilon of a non-private run) give
    an infinite mean and bounds.
    """
    from scipy import stats

    xs = [float(v) for v in values]
    if not xs:
        raise TradeoffError("mean_interval needs at least one value")
    if not 0.0 < level < 1.0:
        raise TradeoffError(f"level must lie strictly between 0 and 1, got {level}")
    if any(math.isnan(x) for x in xs):
        return Interval(math.nan, math.nan, math.nan, len(xs), math.nan)
    n = len(xs)
    mean = math.fsum(xs) / n
    if math.isinf(mean):
        return Interval(mean, mean, mean, n, math.nan)
    if n < 2:
        return Interval(mean, math.nan, math.nan, 1, math.nan)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(stats.t.ppf((1.0 + level) / 2.0, n - 1)) * std / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, std)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the (epsilon, utility) points no other point beats: lower or equal epsilon AND higher or
    equal utility, strictly better in one. Sorted by epsilon (then utility, descending). Points with a NaN
    coordinate are never on the frontier; an infinite epsilon (no DP) is on it only as the most useful.
    """
    valid = [i for i, (e, u) in enumerate(points) if not (math.isnan(e) or math.isnan(u))]
    front = []
    for i in valid:
        e_i, u_i = points[i]
        dominated = any(
            points[j][0] <= e_i and points[j][1] >= u_i and (points[j][0] < e_i or points[j][1] > u_i)
            for j in valid
            if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], -points[i][1], i))


# ---------------------------------------------------------------- reading run folders


@dataclass(frozen=True)
class RunRecord:
    """One finished run folder as read from disk."""

    name: str
    path: Path
    config: dict[str, Any] = field(compare=False)
    summary: dict[str, Any] = field(compare=False)
    privacy: dict[str, Any] = field(compare=False)
    metrics: tuple[dict[str, Any], ...] = field(compare=False)
    audit: dict[str, Any] | None = field(default=None, compare=False)
    group: str = ""


@dataclass(frozen=True)
class FailedPoint:
    """A sweep point that failed, as sweep.json records it."""

    name: str
    error: str


def _is_run(folder: Path) -> bool:
    return (
        folder.is_dir()
        and not folder.name.endswith(".partial")
        and (folder / "summary.json").is_file()
        and (folder / "config.toml").is_file()
    )


def read_run_folder(folder: str | Path, *, group: str = "") -> RunRecord:
    """Read one finished run folder (TradeoffError naming the file when something is missing or broken)."""
    p = Path(folder)
    if not _is_run(p):
        raise TradeoffError(f"{p} is not a finished run folder (needs config.toml and summary.json)")
    try:
        config = tomllib.loads((p / "config.toml").read_text(encoding="utf-8"))
        summary = json.loads((p / "summary.json").read_text(encoding="utf-8"))
        privacy_file = p / "privacy.json"
        privacy = (
            json.loads(privacy_file.read_text()) if privacy_file.is_file() else summary.get("privacy", {})
        )
        metrics_file = p / "metrics.jsonl"
        lines = metrics_file.read_text().splitlines() if metrics_file.is_file() else []
        metrics = tuple(json.loads(line) for line in lines if line.strip())
        audit_file = p / "audit.json"
        audit = json.loads(audit_file.read_text()) if audit_file.is_file() else None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise TradeoffError(f"{p}: cannot read the run folder: {' '.join(str(exc).split())}") from None
    return RunRecord(p.name, p, config, summary, privacy, metrics, audit, group)


def collect_runs(paths: Iterable[str | Path]) -> tuple[tuple[RunRecord, ...], tuple[FailedPoint, ...]]:
    """Every finished run under ``paths`` (run folders, sweep folders, or folders holding either), once
    each, in path order; and the failed points that sweep folders recorded. TradeoffError if none."""
    runs: dict[Path, RunRecord] = {}
    failed: list[FailedPoint] = []
    given = [Path(p) for p in paths]
    if not given:
        raise TradeoffError("give at least one run or sweep folder")
    for root in given:
        if not root.exists():
            raise TradeoffError(f"{root} does not exist")
        sweep_file = root / "sweep.json"
        groups: dict[str, str] = {}
        if sweep_file.is_file():
            try:
                state = json.loads(sweep_file.read_text())
            except ValueError as exc:
                raise TradeoffError(f"{sweep_file} is not valid JSON: {exc}") from None
            for entry in state.get("points", []):
                groups[str(entry.get("name"))] = str(entry.get("group", ""))
                if entry.get("status") == "failed":
                    failed.append(FailedPoint(str(entry["name"]), str(entry.get("error"))))
        candidates = [root] if _is_run(root) else sorted(p.parent for p in root.rglob("summary.json"))
        for folder in candidates:
            if _is_run(folder) and folder.resolve() not in runs:
                runs[folder.resolve()] = read_run_folder(folder, group=groups.get(folder.name, ""))
    if not runs:
        raise TradeoffError(f"no finished run folders under {', '.join(str(p) for p in given)}")
    return tuple(runs.values()), tuple(failed)


# ---------------------------------------------------------------- one row per run


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"dp": {"clip_norm": 1.0}} -> {"dp.clip_norm": 1.0}; a device mix stays one value."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and full.count(".") == 0:
            out.update(flatten_config(value, full))
        else:
            out[full] = value
    return out


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def empirical_epsilon(audit: Mapping[str, Any] | None) -> float | None:
    """The largest empirical epsilon lower bound in an audit.json, or None when there is none.

    `privagg audit` writes ``empirical``: a list of ``{source, epsilon, kind, rigorous}``; the entries whose
    ``kind`` says "lower bound" count (estimates such as the GDP or one-shot numbers do not). Other
    producers may give a number under a top-level key of AUDIT_EPSILON_KEYS, or under those keys in nested
    tables (one per attack): the largest wins.
    """
    if not audit:
        return None
    entries = audit.get("empirical")
    if isinstance(entries, list):
        bounds = [
            float(e["epsilon"])
            for e in entries
            if isinstance(e, Mapping)
            and "lower bound" in str(e.get("kind", ""))
            and _finite(e.get("epsilon"))
        ]
        return max(bounds) if bounds else None
    top = [float(audit[k]) for k in AUDIT_EPSILON_KEYS if _finite(audit.get(k))]
    if top:
        return max(top)
    found: list[float] = []

    def visit(node: Any) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key in AUDIT_EPSILON_KEYS and _finite(value):
                    found.append(float(value))
                else:
                    visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    visit(audit)
    return max(found) if found else None


def device_label(mix: Mapping[str, Any] | None) -> str:
    """'ideal' (no mix), the profile name (one class), or 'mix:a+b' (several)."""
    if not mix:
        return "ideal"
    names = sorted(k for k, w in mix.items() if float(w) > 0)
    return names[0] if len(names) == 1 else "mix:" + "+".join(names)


def distribution_label(partition: str, alpha: Any, shards_per_client: Any = None) -> str:
    """'iid', 'dirichlet(0.1)', 'shards(2)', 'natural', 'quantity'."""
    if partition == "dirichlet":
        return f"dirichlet({_num(alpha)})"
    if partition == "shards":
        return f"shards({_num(shards_per_client)})"
    return str(partition)


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _mean(values: Iterable[float]) -> float:
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return math.fsum(xs) / len(xs) if xs else math.nan


def setting_id(config: Mapping[str, Any]) -> str:
    """The same for runs that differ only in their seed (and name): a short hash of the rest."""
    flat = {k: v for k, v in flatten_config(config).items() if k not in IGNORED_KEYS}
    return hashlib.sha256(_canonical(flat).encode()).hexdigest()[:12]


def varying_keys(records: Sequence[RunRecord]) -> list[str]:
    """Config keys whose value differs between the runs (seed and name excluded), in first-seen order."""
    flats = [flatten_config(r.config) for r in records]
    keys: list[str] = []
    for f in flats:
        keys.extend(k for k in f if k not in keys and k not in IGNORED_KEYS)
    return [k for k in keys if len({_canonical(f.get(k)) for f in flats}) > 1]


def _short(key: str) -> str:
    parts = key.split(".")
    return parts[-2] if parts[-1] in ("name", "mode", "enabled") and len(parts) > 1 else parts[-1]


def _label(flat: Mapping[str, Any], keys: Sequence[str]) -> str:
    if not keys:
        return "base config"
    parts = [f"{_short(k)}={_value_text(flat.get(k))}" for k in keys if flat.get(k) is not None]
    return " ".join(parts) or "base config"


def _value_text(value: Any) -> str:
    if isinstance(value, Mapping):
        return device_label(value)
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return _num(value)
    return str(value)


def run_rows(records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """One row per run: the COLUMNS, then the varying config keys (`cfg:KEY`). Epsilon is +inf without DP."""
    keys = varying_keys(records)
    rows = []
    for r in records:
        flat = flatten_config(r.config)
        s = r.summary
        metric = str(s.get("primary_metric", "accuracy"))
        fl = s.get("fl", {}) or {}
        cen = s.get("centralized", {}) or {}
        priv = s.get("privacy", {}) or r.privacy
        dp_mode = str(flat.get("dp.mode", priv.get("dp_mode", "none")))
        eps = priv.get("epsilon", r.privacy.get("epsilon")) if dp_mode != "none" else math.inf
        n_rounds = int(s.get("rounds", len(r.metrics)) or 0)
        per_round = max(n_rounds, 1)
        row: dict[str, Any] = {
            "run": r.name,
            "path": str(r.path),
            "group": r.group,
            "setting": _label(flat, [k for k in keys if k not in IGNORED_KEYS]),
            "setting_id": setting_id(r.config),
            "seed": flat.get("run.seed"),
            "dataset": s.get("dataset", flat.get("data.dataset")),
            "task": s.get("task", "regression" if metric == "r2" else "classification"),
            "model": s.get("model", flat.get("model.name")),
            "num_clients": s.get("num_clients", flat.get("data.num_clients")),
            "partition": flat.get("data.partition"),
            "alpha": flat.get("data.alpha"),
            "distribution": distribution_label(
                str(flat.get("data.partition")), flat.get("data.alpha"), flat.get("data.shards_per_client")
            ),
            "devices": device_label(flat.get("devices.mix")),
            "dp_mode": dp_mode,
            "secagg": bool(flat.get("secagg.enabled", priv.get("secagg", False))),
            "noise_multiplier": priv.get("noise_multiplier") if dp_mode != "none" else None,
            "clip_norm": flat.get("dp.clip_norm") if dp_mode != "none" else None,
            "rounds": n_rounds,
            "metric": metric,
            "fl_metric": fl.get(metric),
            "centralized_metric": cen.get(metric),
            "epsilon": float(eps) if eps is not None else math.nan,
            "delta": priv.get("delta") if dp_mode != "none" else None,
            "empirical_epsilon": empirical_epsilon(r.audit),
            "bytes_up_per_round": s.get("bytes_up_total", 0) / per_round,
            "bytes_down_per_round": s.get("bytes_down_total", 0) / per_round,
            "bytes_total": s.get("bytes_up_total", 0) + s.get("bytes_down_total", 0),
            "sim_round_s": _mean(m.get("sim_round_s") for m in r.metrics),
            "wall_s": math.fsum(float(m.get("wall_s") or 0.0) for m in r.metrics),
            "dropped_total": s.get("clients_dropped_total", 0),
            "stopped": s.get("stopped"),
        }
        for k in keys:
            row[f"cfg:{k}"] = _value_text(flat.get(k)) if isinstance(flat.get(k), Mapping) else flat.get(k)
        rows.append(row)
    return rows


def write_results_csv(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """results.csv: COLUMNS then the `cfg:` columns; None is an empty cell, +inf is 'inf'."""
    columns = list(COLUMNS)
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    out = Path(path)
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(row.get(k)) for k in columns})
    return out


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


# ---------------------------------------------------------------- settings aggregated over seeds


@dataclass(frozen=True)
class Setting:
    """Runs that differ only in their seed, aggregated: utility, epsilon and costs with 95% intervals."""

    setting_id: str
    label: str
    dataset: str
    model: str
    task: str
    metric: str
    dp_mode: str
    secagg: bool
    devices: str
    distribution: str
    num_clients: int
    utility: Interval
    centralized: Interval | None
    epsilon: Interval
    empirical_epsilon: Interval | None
    bytes_up_per_round: float
    bytes_down_per_round: float
    sim_round_s: float
    runs: tuple[str, ...]
    curve_key: str
    config: tuple[tuple[str, Any], ...] = ()

    @property
    def private(self) -> bool:
        """True when the setting has a DP guarantee (a finite epsilon)."""
        return self.dp_mode != "none" and math.isfinite(self.epsilon.mean)

    @property
    def context(self) -> tuple[str, str]:
        """(dataset, model): settings are compared, and baselines drawn, within one context."""
        return self.dataset, self.model


def aggregate(rows: Sequence[Mapping[str, Any]], level: float = 0.95) -> list[Setting]:
    """Group run rows by setting (everything but the seed) and aggregate each group over its seeds.

    A setting's label names only the config keys that vary within its (dataset, model) context.
    `curve_key` groups settings that differ only in the noise (PRIVACY_KNOBS), i.e. one line of the
    accuracy-against-epsilon plot.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(str(row["setting_id"]), []).append(row)
    configs = {
        sid: tuple((k[4:], m[0][k]) for k in m[0] if k.startswith("cfg:")) for sid, m in groups.items()
    }
    by_context: dict[tuple[str, str], list[str]] = {}
    for sid, members in groups.items():
        by_context.setdefault((str(members[0]["dataset"]), str(members[0]["model"])), []).append(sid)
    label_keys: dict[tuple[str, str], list[str]] = {}
    for ctx, sids in by_context.items():
        keys = [k for k, _ in configs[sids[0]] if k not in CONTEXT_KEYS]
        label_keys[ctx] = [k for k in keys if len({_canonical(dict(configs[s]).get(k)) for s in sids}) > 1]
    out = []
    for sid, members in groups.items():
        first = members[0]
        ctx = (str(first["dataset"]), str(first["model"]))
        cfg = dict(configs[sid])
        cen = [float(m["centralized_metric"]) for m in members if _finite(m.get("centralized_metric"))]
        emp = [float(m["empirical_epsilon"]) for m in members if _finite(m.get("empirical_epsilon"))]
        utility = [float(m["fl_metric"]) if _finite(m.get("fl_metric")) else math.nan for m in members]
        out.append(
            Setting(
                setting_id=sid,
                label=_label(cfg, label_keys[ctx]),
                dataset=ctx[0],
                model=ctx[1],
                task=str(first["task"]),
                metric=str(first["metric"]),
                dp_mode=str(first["dp_mode"]),
                secagg=bool(first["secagg"]),
                devices=str(first["devices"]),
                distribution=str(first["distribution"]),
                num_clients=int(first["num_clients"] or 0),
                utility=mean_interval(utility, level),
                centralized=mean_interval(cen, level) if cen else None,
                epsilon=mean_interval([float(m["epsilon"]) for m in members], level),
                empirical_epsilon=mean_interval(emp, level) if emp else None,
                bytes_up_per_round=_mean(float(m["bytes_up_per_round"]) for m in members),
                bytes_down_per_round=_mean(float(m["bytes_down_per_round"]) for m in members),
                sim_round_s=_mean(float(m["sim_round_s"]) for m in members),
                runs=tuple(str(m["run"]) for m in members),
                curve_key=_label(
                    {k: v for k, v in cfg.items() if k not in PRIVACY_KNOBS},
                    [k for k in label_keys[ctx] if k not in PRIVACY_KNOBS],
                ),
                config=configs[sid],
            )
        )
    return out


def _without(config: Sequence[tuple[str, Any]], prefix: str) -> str:
    return _canonical({k: v for k, v in config if not k.startswith(prefix)})


def nonprivate_twin(setting: Setting, settings: Sequence[Setting]) -> Setting | None:
    """The setting that differs from `setting` only in its DP keys and has no DP (its utility baseline)."""
    key = _without(setting.config, "dp.")
    for other in settings:
        if (
            other.dp_mode == "none"
            and other.context == setting.context
            and _without(other.config, "dp.") == key
        ):
            return other
    return None


def secagg_pairs(settings: Sequence[Setting]) -> list[tuple[Setting, Setting]]:
    """(without, with) secure aggregation: settings without DP that differ only in secagg's keys."""
    plain = [s for s in settings if s.dp_mode == "none"]
    off = {_without(s.config, "secagg."): s for s in plain if not s.secagg}
    return [(off[k], s) for s in plain if s.secagg and (k := _without(s.config, "secagg.")) in off]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))


def frontier(settings: Sequence[Setting]) -> list[Setting]:
    """The Pareto frontier of private settings (epsilon down, mean utility up), by epsilon."""
    private = [s for s in settings if s.private]
    idx = pareto_front([(s.epsilon.mean, s.utility.mean) for s in private])
    return [private[i] for i in idx]


# ---------------------------------------------------------------- recommendation in plain words


@dataclass(frozen=True)
class Recommendation:
    """The setting recommended for a target (None when nothing meets it) and the sentence that says so."""

    setting: Setting | None
    text: str


def _metric_name(metric: str) -> str:
    return "R^2" if metric == "r2" else metric


def describe(s: Setting) -> str:
    """'accuracy 0.912 (95% interval 0.90-0.92, 3 seeds) at epsilon 3.9' for one setting."""
    m = _metric_name(s.metric)
    u = s.utility
    text = f"{m} {u.mean:.3f}"
    if u.n >= 2 and math.isfinite(u.low):
        text += f" (95% interval {u.low:.3f} to {u.high:.3f}, {u.n} seeds)"
    elif u.n == 1:
        text += " (1 seed, no interval)"
    if s.private:
        text += f" at epsilon {s.epsilon.mean:.3g}"
    else:
        text += " without differential privacy"
    return text


def recommend(
    settings: Sequence[Setting], *, target_accuracy: float | None = None, target_epsilon: float | None = None
) -> Recommendation:
    """The setting to use for a target, among private settings of one context:

    - an accuracy (or R^2) target: the smallest epsilon whose mean utility reaches it;
    - an epsilon target: the highest mean utility with epsilon at most the target;
    - both: the smallest epsilon meeting both. Means are over seeds; the sentence gives the interval.
    """
    private = [s for s in settings if s.private]
    if target_accuracy is None and target_epsilon is None:
        raise TradeoffError("recommend needs target_accuracy or target_epsilon")
    if not private:
        return Recommendation(None, "no private setting among these runs: nothing to recommend")
    metric = _metric_name(private[0].metric)
    ok = private
    if target_accuracy is not None:
        ok = [s for s in ok if s.utility.mean >= target_accuracy]
    if target_epsilon is not None:
        ok = [s for s in ok if s.epsilon.mean <= target_epsilon]
    want = " and ".join(
        part
        for part in (
            f"{metric} >= {target_accuracy:g}" if target_accuracy is not None else "",
            f"epsilon <= {target_epsilon:g}" if target_epsilon is not None else "",
        )
        if part
    )
    if not ok:
        best = max(private, key=lambda s: s.utility.mean)
        if target_epsilon is not None:
            within = [s for s in private if s.epsilon.mean <= target_epsilon]
            if within:
                best = max(within, key=lambda s: s.utility.mean)
        return Recommendation(
            None,
            f"no private setting reaches {want}; the closest is {best.label}: {describe(best)}",
        )
    if target_accuracy is not None:
        pick = min(ok, key=lambda s: (s.epsilon.mean, -s.utility.mean))
        why = "the smallest epsilon that reaches it"
    else:
        pick = max(ok, key=lambda s: (s.utility.mean, -s.epsilon.mean))
        why = f"the most accurate within it ({metric})"
    return Recommendation(pick, f"for {want}, use {pick.label}: {describe(pick)}; {why}")
