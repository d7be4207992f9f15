"""The privacy-utility tradeoff report: report.html (self-contained, plots embedded), report.md (plots as
PNG files beside it) and results.csv, from a sweep folder or any run folders.

What it shows: accuracy (or R^2) against epsilon with 95% intervals over seeds and the non-private and
centralized baselines drawn in; the Pareto frontier; empirical against proven epsilon (when audit.json
files exist); convergence curves; the effect of data heterogeneity and client count; bytes per round and
simulated round time per device class; and a summary in plain words with the recommended setting for an
accuracy or epsilon target. Plots use matplotlib's Agg backend (no display).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audits.tradeoff import (
    FailedPoint,
    RunRecord,
    Setting,
    TradeoffError,
    aggregate,
    collect_runs,
    describe,
    frontier,
    nonprivate_twin,
    recommend,
    run_rows,
    secagg_pairs,
    write_results_csv,
)

#: Most panels in one figure, and most lines in one panel (the rest are listed in the tables).
MAX_PANELS = 12
MAX_LINES = 8
DPI = 90


@dataclass(frozen=True)
class Figure:
    """One plot: a file name stem, a title, a caption, and the PNG bytes."""

    stem: str
    title: str
    caption: str
    png: bytes


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def _contexts(settings: Sequence[Setting]) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for s in settings:
        if s.context not in seen:
            seen.append(s.context)
    return seen


def _grid(n: int) -> tuple[Any, list[Any]]:
    plt = _plt()
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 4.0 * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _metric_label(metric: str) -> str:
    return "R^2" if metric == "r2" else metric


def _baselines(settings: Sequence[Setting]) -> tuple[float | None, float | None]:
    """The non-private FL utility and the mean centralized utility of one context.

    The non-private line is the mean over the private settings' non-private twins (the same config
    without DP) when the runs hold them, so the gap drawn is the cost of DP alone; otherwise the best
    non-private setting of the context.
    """
    twins = {
        t.setting_id: t for s in settings if s.private if (t := nonprivate_twin(s, settings)) is not None
    }
    plain = [t.utility.mean for t in twins.values() if math.isfinite(t.utility.mean)]
    if not plain:
        best = [s.utility.mean for s in settings if s.dp_mode == "none" and math.isfinite(s.utility.mean)]
        plain = [max(best)] if best else []
    cen = [s.centralized.mean for s in settings if s.centralized is not None]
    cen = [c for c in cen if math.isfinite(c)]
    return (sum(plain) / len(plain) if plain else None), (sum(cen) / len(cen) if cen else None)


def _err(interval: Any) -> float:
    h = interval.half_width
    return h if math.isfinite(h) else 0.0


def plot_tradeoff(settings: Sequence[Setting]) -> Figure | None:
    """Utility against epsilon (log x), 95% intervals, baselines; the Pareto frontier in black."""
    contexts = [c for c in _contexts(settings) if any(s.private for s in settings if s.context == c)]
    if not contexts:
        return None
    contexts = contexts[:MAX_PANELS]
    fig, axes = _grid(len(contexts))
    for ax, ctx in zip(axes, contexts, strict=True):
        here = [s for s in settings if s.context == ctx]
        private = [s for s in here if s.private]
        curves: dict[str, list[Setting]] = {}
        for s in private:
            curves.setdefault(s.curve_key, []).append(s)
        names = _distinct_labels(list(curves))
        for i, members in enumerate(list(curves.values())[:MAX_LINES]):
            members.sort(key=lambda s: s.epsilon.mean)
            ax.errorbar(
                [s.epsilon.mean for s in members],
                [s.utility.mean for s in members],
                yerr=[_err(s.utility) for s in members],
                marker="o",
                capsize=3,
                label=names[i] if len(curves) > 1 else "DP, by noise",
            )
        front = frontier(here)
        if len(front) > 1:
            ax.plot(
                [s.epsilon.mean for s in front],
                [s.utility.mean for s in front],
                color="black",
                lw=1.0,
                ls="-",
                alpha=0.6,
                zorder=0,
                label="Pareto frontier",
            )
        plain, cen = _baselines(here)
        if plain is not None:
            ax.axhline(plain, color="tab:green", ls="--", lw=1.2, label="FL without DP")
        if cen is not None:
            ax.axhline(cen, color="tab:gray", ls=":", lw=1.5, label="centralized")
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis)
        ax.set_xlabel("epsilon (proven, PLD)")
        ax.set_ylabel(_metric_label(here[0].metric))
        ax.set_title(f"{ctx[0]} / {ctx[1]}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    return Figure(
        "tradeoff",
        f"{_utility_name(settings)} against epsilon",
        "Mean over seeds with 95% t-intervals; dashed: federated learning without DP (the same settings "
        "without DP where the runs hold them, else the best non-private one); dotted: "
        "centralized training on pooled data; black: the Pareto frontier (no other setting is both more "
        "private and more accurate).",
        _png(fig),
    )


def _utility_name(settings: Sequence[Setting]) -> str:
    names = sorted({_metric_label(s.metric) for s in settings})
    return " or ".join(names)


def _distinct_labels(keys: Sequence[str]) -> list[str]:
    """Curve labels without the parts every curve shares ('dp=local' on every line says nothing)."""
    parts = [k.split(" ") for k in keys]
    common = set.intersection(*(set(p) for p in parts)) if parts else set()
    out = []
    for i, p in enumerate(parts):
        text = _short_label(" ".join(x for x in p if x not in common))
        out.append(text or f"series {i + 1}")
    return out


def _plain_log_ticks(axis: Any) -> None:
    """Log-scale ticks written as plain numbers (0.5, 1, 2, 4), not as powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    axis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda x, _: ""))


def _short_label(key: str) -> str:
    parts = [p.replace("cfg:", "") for p in key.split(" ") if p]
    short = []
    for p in parts:
        if "=" not in p:
            short.append(p)
            continue
        k, _, v = p.partition("=")
        last = k.split(".")
        name = last[-2] if last[-1] in ("name", "mode", "enabled") and len(last) > 1 else last[-1]
        short.append(f"{name}={v}")
    text = " ".join(short)
    return text if len(text) <= 60 else text[:57] + "..."


def plot_empirical(settings: Sequence[Setting]) -> Figure | None:
    """Empirical epsilon lower bounds (audits) against the proven epsilon, with the y = x line."""
    audited = [s for s in settings if s.empirical_epsilon is not None and s.private]
    if not audited:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.0, 4.0))
    xs = [s.epsilon.mean for s in audited]
    ys = [s.empirical_epsilon.mean for s in audited if s.empirical_epsilon is not None]
    ax.scatter(xs, ys, color="tab:red", zorder=3)
    top = max(xs + ys) * 1.1 or 1.0
    ax.plot([0, top], [0, top], color="black", lw=1, ls="--", label="empirical = proven")
    ax.set_xlabel("proven epsilon (accountant)")
    ax.set_ylabel("empirical epsilon (lower bound)")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return Figure(
        "empirical",
        "Empirical against proven epsilon",
        "Each point is a setting with an audit.json: an attack's lower bound must stay below the line.",
        _png(fig),
    )


def plot_convergence(settings: Sequence[Setting], records: Mapping[str, RunRecord]) -> Figure | None:
    """Test metric per round, mean over seeds, a panel per (dataset, model)."""
    contexts = _contexts(settings)[:MAX_PANELS]
    if not contexts:
        return None
    fig, axes = _grid(len(contexts))
    drawn = 0
    for ax, ctx in zip(axes, contexts, strict=True):
        here = [s for s in settings if s.context == ctx]
        here.sort(key=lambda s: (s.private, -s.utility.mean if math.isfinite(s.utility.mean) else 0.0))
        metric = here[0].metric
        names = dict(
            zip(
                (s.setting_id for s in here[:MAX_LINES]),
                _distinct_labels([s.label for s in here[:MAX_LINES]]),
                strict=True,
            )
        )
        for s in here[:MAX_LINES]:
            curves = [[m.get(f"test_{metric}") for m in records[r].metrics] for r in s.runs if r in records]
            curves = [c for c in curves if c and all(isinstance(v, (int, float)) for v in c)]
            if not curves:
                continue
            length = min(len(c) for c in curves)
            mean = [sum(c[i] for c in curves) / len(curves) for i in range(length)]
            ax.plot(
                range(1, length + 1), mean, label=names[s.setting_id] if len(names) > 1 else s.label, lw=1.2
            )
            drawn += 1
        ax.set_xlabel("round")
        ax.set_ylabel(f"test {_metric_label(metric)}")
        ax.set_title(f"{ctx[0]} / {ctx[1]}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    if not drawn:
        _plt().close(fig)
        return None
    return Figure(
        "convergence",
        "Convergence",
        f"Test {_metric_label(settings[0].metric)} after each round, mean over seeds (at most {MAX_LINES} "
        "settings per panel: the non-private ones first, then the most accurate).",
        _png(fig),
    )


def plot_heterogeneity(settings: Sequence[Setting]) -> Figure | None:
    """Non-private utility against the data distribution and against the number of clients."""
    plain = [s for s in settings if s.dp_mode == "none" and not s.secagg and math.isfinite(s.utility.mean)]
    dists = sorted({s.distribution for s in plain})
    counts = sorted({s.num_clients for s in plain})
    if len(dists) < 2 and len(counts) < 2:
        return None
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.0, 3.8))
    varied = [
        c
        for c in _contexts(plain)
        if len({s.distribution for s in plain if s.context == c}) > 1
        or len({s.num_clients for s in plain if s.context == c}) > 1
    ]
    for ctx in varied[:MAX_LINES]:
        here = [s for s in plain if s.context == ctx]
        label = f"{ctx[0]} / {ctx[1]}"
        by_dist = [(d, [s.utility.mean for s in here if s.distribution == d]) for d in dists]
        pts = [(i, sum(v) / len(v)) for i, (_, v) in enumerate(by_dist) if v]
        if len(pts) > 1:
            ax1.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        by_n = [(n, [s.utility.mean for s in here if s.num_clients == n]) for n in counts]
        pts2 = [(n, sum(v) / len(v)) for n, v in by_n if v]
        if len(pts2) > 1:
            ax2.plot([p[0] for p in pts2], [p[1] for p in pts2], marker="o", label=label)
    ax1.set_xticks(range(len(dists)))
    ax1.set_xticklabels(dists, rotation=20, fontsize=8)
    ax1.set_title("data distribution (no DP)", fontsize=10)
    ax2.set_xscale("log")
    _plain_log_ticks(ax2.xaxis)
    ax2.set_xlabel("clients")
    ax2.set_title("number of clients (no DP)", fontsize=10)
    for ax in (ax1, ax2):
        ax.set_ylabel(_utility_name(plain))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return Figure(
        "heterogeneity",
        "Robustness to heterogeneity and client count",
        "Mean utility of non-private settings, averaged over the other keys that vary: IID against label "
        "skew (Dirichlet alpha: smaller is more skewed) and natural sites; and against the client count.",
        _png(fig),
    )


def plot_costs(settings: Sequence[Setting]) -> Figure | None:
    """Bytes per round by model and privacy mode; simulated round time per device class."""
    if not settings:
        return None
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 3.9))
    modes = sorted({_mode(s) for s in settings})
    models = sorted({s.model for s in settings})
    width = 0.8 / max(len(modes), 1)
    for j, mode in enumerate(modes):
        vals = []
        for m in models:
            xs = [
                s.bytes_up_per_round + s.bytes_down_per_round
                for s in settings
                if s.model == m and _mode(s) == mode
            ]
            vals.append(sum(xs) / len(xs) / 1e3 if xs else 0.0)
        ax1.bar([i + j * width for i in range(len(models))], vals, width, label=mode)
    ax1.set_xticks([i + 0.4 - width / 2 for i in range(len(models))])
    ax1.set_xticklabels(models, rotation=20, fontsize=8)
    ax1.set_ylabel("kB per round (up + down, all clients)")
    ax1.set_yscale("log")
    ax1.set_title("communication per round", fontsize=10)
    ax1.legend(fontsize=7)
    devices = sorted({s.devices for s in settings}, key=lambda d: _device_order(d))
    times = []
    for d in devices:
        xs = [s.sim_round_s for s in settings if s.devices == d and math.isfinite(s.sim_round_s)]
        times.append(sum(xs) / len(xs) if xs else 0.0)
    ax2.bar(range(len(devices)), times, color="tab:orange")
    ax2.set_xticks(range(len(devices)))
    ax2.set_xticklabels(devices, rotation=30, ha="right", fontsize=8)
    ax2.set_ylabel("simulated seconds per round")
    ax2.set_yscale("log")
    ax2.set_title("round time per device class", fontsize=10)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3, axis="y")
    return Figure(
        "costs",
        "Communication and simulated round time",
        "Left: bytes per round, mean over settings of each model and privacy mode. Right: simulated round "
        "time (measured compute x the device's slowdown + the real bytes over its links + latency), mean "
        "over the settings run on each device class ('ideal': this machine, no device mix).",
        _png(fig),
    )


def _device_order(name: str) -> tuple[int, str]:
    from fl_core.devices import PROFILES

    order = list(PROFILES)
    return (order.index(name) if name in order else len(order), name)


def _mode(s: Setting) -> str:
    if s.dp_mode == "none":
        return "secagg" if s.secagg else "plain"
    return f"dp-{s.dp_mode}" + ("+secagg" if s.secagg else "")


# ---------------------------------------------------------------- text


def summary_lines(
    settings: Sequence[Setting], *, target_accuracy: float | None = None, target_epsilon: float | None = None
) -> list[str]:
    """Plain-language findings per (dataset, model), with the recommendation for the targets given."""
    lines: list[str] = []
    for ctx in _contexts(settings):
        here = [s for s in settings if s.context == ctx]
        metric = _metric_label(here[0].metric)
        plain, cen = _baselines(here)
        head = f"**{ctx[0]} / {ctx[1]}** ({len(here)} settings, {sum(len(s.runs) for s in here)} runs):"
        parts = [head]
        best_plain = max(
            (s for s in here if s.dp_mode == "none" and math.isfinite(s.utility.mean)),
            key=lambda s: s.utility.mean,
            default=None,
        )
        if best_plain is not None:
            parts.append(
                f"the best non-private federated setting ({best_plain.label}) has {describe(best_plain)}"
            )
        if cen is not None:
            parts.append(f"centralized training on pooled data reaches {cen:.3f}")
        private = [s for s in here if s.private]
        if private:
            best = max(private, key=lambda s: s.utility.mean)
            most = min(private, key=lambda s: s.epsilon.mean)
            parts.append(f"the most accurate private setting ({best.label}) has {describe(best)}")
            twin = nonprivate_twin(best, here)
            if twin is not None:
                cost = twin.utility.mean - best.utility.mean
                parts.append(
                    f"the same setting without DP reaches {twin.utility.mean:.3f}, so DP costs {cost:.3f}"
                )
            if most is not best:
                parts.append(f"the most private ({most.label}) has {describe(most)}")
            if target_accuracy is not None or target_epsilon is not None:
                rec = recommend(here, target_accuracy=target_accuracy, target_epsilon=target_epsilon)
                parts.append(f"recommendation: {rec.text}")
        pairs = secagg_pairs(here)
        if pairs:
            d_u = sum(on.utility.mean - off.utility.mean for off, on in pairs) / len(pairs)
            ratios = [
                on.bytes_up_per_round / off.bytes_up_per_round for off, on in pairs if off.bytes_up_per_round
            ]
            ratio = f"{sum(ratios) / len(ratios):.2f}x the upload bytes" if ratios else "upload bytes n/a"
            parts.append(
                f"secure aggregation alone ({len(pairs)} paired settings) changes {metric} by {d_u:+.3f} "
                f"and costs {ratio}"
            )
        lines.append("; ".join(parts[:1]) + " " + "; ".join(parts[1:]) + ".")
    return lines


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return f"{x:.{digits}g}" if abs(x) >= 1000 or digits != 3 else f"{x:.3f}"


def _interval_text(s: Setting) -> str:
    u = s.utility
    if u.n >= 2 and math.isfinite(u.low):
        return f"{u.mean:.3f} [{u.low:.3f}, {u.high:.3f}]"
    return f"{u.mean:.3f}"


TABLE_HEADER = (
    "dataset",
    "model",
    "setting",
    "seeds",
    "metric (95% interval)",
    "centralized",
    "epsilon",
    "empirical eps",
    "kB/round",
    "sim s/round",
    "frontier",
)


HEADLINE_HEADER = (
    "dataset / model",
    "metric",
    "FL, no DP (best)",
    "centralized",
    "FL + secagg",
    "most accurate DP",
    "most private DP",
)


def _cell_of(s: Setting | None) -> str:
    if s is None:
        return ""
    text = _interval_text(s)
    return f"{text} (eps {s.epsilon.mean:.3g})" if s.private else text


def headline_rows(settings: Sequence[Setting]) -> list[tuple[str, ...]]:
    """One row per (dataset, model): the best non-private setting, centralized, the best with secure
    aggregation (no DP), and the most accurate and the most private DP settings (mean [95% interval])."""
    rows = []
    for ctx in _contexts(settings):
        here = [s for s in settings if s.context == ctx and math.isfinite(s.utility.mean)]
        if not here:
            continue
        plain = [s for s in here if s.dp_mode == "none" and not s.secagg]
        secure = [s for s in here if s.dp_mode == "none" and s.secagg]
        private = [s for s in here if s.private]
        _, cen = _baselines(here)
        best = max(private, key=lambda s: s.utility.mean, default=None)
        most = min(private, key=lambda s: (s.epsilon.mean, -s.utility.mean), default=None)
        rows.append(
            (
                f"{ctx[0]} / {ctx[1]}",
                _metric_label(here[0].metric),
                _cell_of(max(plain, key=lambda s: s.utility.mean, default=None)),
                f"{cen:.3f}" if cen is not None else "",
                _cell_of(max(secure, key=lambda s: s.utility.mean, default=None)),
                _cell_of(best),
                _cell_of(most),
            )
        )
    return rows


def table_rows(settings: Sequence[Setting]) -> list[tuple[str, ...]]:
    """One row per setting, grouped by context, non-private first then by epsilon."""
    front = set()
    for ctx in _contexts(settings):
        front.update(s.setting_id for s in frontier([s for s in settings if s.context == ctx]))
    ordered = sorted(settings, key=lambda s: (s.dataset, s.model, s.private, s.epsilon.mean, s.label))
    rows = []
    for s in ordered:
        rows.append(
            (
                s.dataset,
                s.model,
                s.label,
                str(s.utility.n),
                f"{_metric_label(s.metric)} {_interval_text(s)}",
                _fmt(s.centralized.mean) if s.centralized else "",
                "no DP" if not s.private else f"{s.epsilon.mean:.3g}",
                f"{s.empirical_epsilon.mean:.3g}" if s.empirical_epsilon else "",
                f"{(s.bytes_up_per_round + s.bytes_down_per_round) / 1e3:.1f}",
                f"{s.sim_round_s:.3g}" if math.isfinite(s.sim_round_s) else "",
                "yes" if s.setting_id in front else "",
            )
        )
    return rows


def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    def esc(c: str) -> str:
        return c.replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _md_inline(text: str) -> str:
    """The one piece of markdown the summary uses (**bold**) as HTML, everything else escaped."""
    out = html.escape(text)
    while "**" in out:
        out = out.replace("**", "<strong>", 1).replace("**", "</strong>", 1)
    return out


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1180px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.82em;margin:1em 0;width:100%}
th,td{border:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f4f4f4}tr:nth-child(even) td{background:#fafafa}
figure{margin:1.2em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}.note{color:#555;font-size:.9em}code{background:#f4f4f4;padding:0 .2em}
"""


def build_report(
    paths: Sequence[str | Path] | str | Path,
    out: str | Path | None = None,
    *,
    target_accuracy: float | None = None,
    target_epsilon: float | None = None,
) -> Path:
    """Write report.html, report.md, results.csv and the plots (report_*.png) into ``out``; return the
    path of report.html.

    ``paths``: sweep folders, run folders, or folders holding them. ``out`` defaults to the folder given
    when there is one, else ./report. Targets (accuracy or R^2, epsilon) add a recommended setting per
    (dataset, model) to the summary.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    given = [Path(p) for p in paths]
    for name, value in (("target_accuracy", target_accuracy), ("target_epsilon", target_epsilon)):
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)):
            raise TradeoffError(f"{name} must be a finite number, got {value!r}")
    if target_epsilon is not None and target_epsilon <= 0:
        raise TradeoffError(f"target_epsilon must be > 0, got {target_epsilon}")
    records, failed = collect_runs(given)
    if out is None:
        out = given[0] if len(given) == 1 and given[0].is_dir() else Path("report")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = run_rows(records)
    write_results_csv(rows, out / "results.csv")
    settings = aggregate(rows)
    by_name = {r.name: r for r in records}
    figures = [
        f
        for f in (
            plot_tradeoff(settings),
            plot_empirical(settings),
            plot_convergence(settings, by_name),
            plot_heterogeneity(settings),
            plot_costs(settings),
        )
        if f is not None
    ]
    for f in figures:
        (out / f"report_{f.stem}.png").write_bytes(f.png)
    summary = summary_lines(settings, target_accuracy=target_accuracy, target_epsilon=target_epsilon)
    audited = any(s.empirical_epsilon is not None for s in settings)
    notes = _notes(records, failed, audited, target_accuracy, target_epsilon)
    table = table_rows(settings)
    headline = headline_rows(settings)
    _write_markdown(out / "report.md", summary, headline, notes, figures, table, failed, len(records))
    path = out / "report.html"
    _write_html(path, summary, headline, notes, figures, table, failed, len(records))
    return path


def _notes(
    records: Sequence[RunRecord],
    failed: Sequence[FailedPoint],
    audited: bool,
    target_accuracy: float | None,
    target_epsilon: float | None,
) -> list[str]:
    notes = [
        f"{len(records)} finished runs"
        + (f", {len(failed)} failed (listed at the end)" if failed else "")
        + ".",
        "Intervals are 95% Student-t intervals over seeds (none with one seed). Epsilon is the accountant's "
        "(PLD) at the run's delta; 'no DP' runs have no guarantee.",
    ]
    if not audited:
        notes.append(
            "No run holds an audit.json, so there are no empirical epsilons yet: `privagg audit RUN_DIR` "
            "attacks a run and the report fills the column."
        )
    if target_accuracy is None and target_epsilon is None:
        notes.append("Give a target (`--target-accuracy 0.9` or `--target-epsilon 4`) for a recommendation.")
    return notes


def _write_markdown(
    path: Path,
    summary: Sequence[str],
    headline: Sequence[Sequence[str]],
    notes: Sequence[str],
    figures: Sequence[Figure],
    table: Sequence[Sequence[str]],
    failed: Sequence[FailedPoint],
    n_runs: int,
) -> None:
    parts = ["# Privacy-utility tradeoff report", "", *notes, "", "## Summary", ""]
    parts += [f"- {line}" for line in summary]
    parts += ["", "## Headline", "", _md_table(HEADLINE_HEADER, headline)]
    for f in figures:
        parts += ["", f"## {f.title}", "", f"![{f.title}](report_{f.stem}.png)", "", f.caption]
    parts += ["", "## All settings", "", _md_table(TABLE_HEADER, table)]
    if failed:
        parts += [
            "",
            "## Failed points",
            "",
            _md_table(("point", "error"), [(p.name, p.error) for p in failed]),
        ]
    parts += ["", f"Rows per run (all {n_runs}): `results.csv`.", ""]
    path.write_text("\n".join(parts), encoding="utf-8")


def _write_html(
    path: Path,
    summary: Sequence[str],
    headline: Sequence[Sequence[str]],
    notes: Sequence[str],
    figures: Sequence[Figure],
    table: Sequence[Sequence[str]],
    failed: Sequence[FailedPoint],
    n_runs: int,
) -> None:
    body = ["<h1>Privacy-utility tradeoff report</h1>"]
    body += [f'<p class="note">{_md_inline(n)}</p>' for n in notes]
    body += ["<h2>Summary</h2>", "<ul>"] + [f"<li>{_md_inline(line)}</li>" for line in summary] + ["</ul>"]
    body += ["<h2>Headline</h2>", _html_table(HEADLINE_HEADER, headline)]
    for f in figures:
        data = base64.b64encode(f.png).decode("ascii")
        body += [
            f"<h2>{html.escape(f.title)}</h2>",
            f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(f.title)}">'
            f"<figcaption>{html.escape(f.caption)}</figcaption></figure>",
        ]
    body += ["<h2>All settings</h2>", _html_table(TABLE_HEADER, table)]
    if failed:
        body += [
            "<h2>Failed points</h2>",
            _html_table(("point", "error"), [(p.name, p.error) for p in failed]),
        ]
    body.append(f'<p class="note">Rows per run (all {n_runs}): results.csv beside this file.</p>')
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
        f"<title>Privacy-utility tradeoff report</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
    path.write_text(page, encoding="utf-8")
