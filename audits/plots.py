"""PNG figures for an audit (matplotlib, Agg backend: no display needed): log-log ROC curves with the DP
limit drawn in, empirical epsilon bounds beside the proven epsilon, and original/reconstruction grids."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from audits.metrics import dp_max_tpr

__all__ = ["plot_epsilons", "plot_reconstructions", "plot_roc"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_roc(
    path: str | Path,
    curves: Mapping[str, Mapping[str, Sequence[float]]],
    *,
    epsilon: float | None = None,
    delta: float = 0.0,
    title: str = "membership inference",
) -> Path:
    """Each attack's ROC on log-log axes, the chance line, and the (epsilon, delta)-DP limit."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 4.5))
    grid = np.logspace(-5, 0, 400)
    floor = 1e-5
    for name, c in curves.items():
        fpr = np.maximum(np.asarray(c["fpr"], float), floor)
        tpr = np.maximum(np.asarray(c["tpr"], float), floor)
        ax.step(fpr, tpr, where="post", label=name)
    ax.plot(grid, grid, ls=":", color="grey", label="chance")
    if epsilon is not None and math.isfinite(epsilon):
        ax.plot(grid, dp_max_tpr(grid, epsilon, delta), color="black", lw=1.5,
                label=f"DP limit (eps={epsilon:.3g}, delta={delta:.0e})")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor, 1)
    ax.set_ylim(floor, 1.05)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_epsilons(path: str | Path, bounds: Mapping[str, float], proven: float | None) -> Path:
    """Horizontal bars: each empirical lower bound / estimate, and the accountant's epsilon as a line."""
    plt = _pyplot()
    names = list(bounds)
    vals = [bounds[n] if math.isfinite(bounds[n]) else 0.0 for n in names]
    fig, ax = plt.subplots(figsize=(6.0, 0.45 * len(names) + 1.5))
    ax.barh(names, vals, color="tab:blue")
    if proven is not None and math.isfinite(proven):
        ax.axvline(proven, color="black", ls="--", label=f"proven epsilon = {proven:.3g}")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_xlabel("epsilon")
    ax.set_title("empirical epsilon (lower bounds and estimates) vs proven")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _as_image(a: np.ndarray) -> np.ndarray:
    arr = np.asarray(a, float)
    if arr.ndim == 3 and arr.shape[0] in (1, 3):
        arr = arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)
    if arr.ndim == 1:
        side = int(math.ceil(math.sqrt(arr.size)))
        arr = np.pad(arr, (0, side * side - arr.size)).reshape(side, side)
    return arr


def plot_reconstructions(
    path: str | Path, rows: Mapping[str, Sequence[np.ndarray]], *, vmin: float = 0.0, vmax: float = 1.0
) -> Path:
    """A grid: one row per label (e.g. "originals", "from plain update", "from secure aggregate")."""
    plt = _pyplot()
    ncols = max(len(r) for r in rows.values())
    fig, axes = plt.subplots(len(rows), ncols, figsize=(1.2 * ncols + 1.2, 1.3 * len(rows)), squeeze=False)
    for i, (label, images) in enumerate(rows.items()):
        for j in range(ncols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(images):
                ax.imshow(_as_image(images[j]), cmap="gray", vmin=vmin, vmax=vmax)
            else:
                ax.axis("off")
        axes[i][0].set_ylabel(label, fontsize=7)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
