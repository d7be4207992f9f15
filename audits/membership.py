"""Membership inference: loss threshold, LiRA (online and offline) and RMIA, with shadow / reference models
trained by privagg's own training code (`fl_core.training.train_epochs` on `fl_core.models` modules, or
`dp.local.train_dp_sgd` when the target was trained with DP-SGD).

* Loss threshold (Yeom et al. 2018): score = -loss of the example under the target.
* LiRA (Carlini et al., S&P 2022): the statistic is the logit-scaled confidence
  phi = log(p_y / (1 - p_y)) (computed stably from the logits). Shadow models train on random halves
  of the pool, balanced so that every example is IN exactly half the shadows (their `keep` recipe).
  Online: score = log N(phi; mu_in, s_in) - log N(phi; mu_out, s_out); offline: the one-sided test
  against the OUT Gaussian, score = (phi - mu_out) / s_out. With fewer than 64 shadows the variance is
  shared across examples ("fixed variance"), as the paper advises.
* RMIA (Zarifzadeh et al., ICML 2024): LR(x) = p(x | target) / p(x), p(x) the mean of p(x | reference)
  over the reference models (each holds x half the time); score(x) = the fraction of population
  examples z with LR(x) / LR(z) >= gamma (gamma = 1). With `offline_a`, p(x) uses the OUT references
  only, corrected as p(x) = ((1 + a) p_out(x) + 1 - a) / 2 (the paper's offline approximation).

Every model is evaluated in eval mode without gradients. The extension point is `Attack`: anything with a
`name`, `needs_shadows` and `score(target, shadows)` plugs into `membership_audit`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.stats import norm
from torch import nn

from audits.bounds import gdp_epsilon, gdp_mu_lower_bound, threshold_search_epsilon
from audits.errors import AuditError
from audits.metrics import attack_summary, roc_curve

__all__ = [
    "Attack",
    "ExampleStats",
    "LiRA",
    "LossAttack",
    "RMIA",
    "ShadowModels",
    "TrainingRecipe",
    "build_attacks",
    "example_stats",
    "membership_audit",
    "train_shadows",
]

Progress = Callable[[int, int, str], None]


# ---------------------------------------------------------------- per-example statistics of one model


@dataclass(frozen=True)
class ExampleStats:
    """One model's view of every pool example: loss, probability of the true label, and LiRA's phi."""

    loss: np.ndarray
    prob: np.ndarray
    phi: np.ndarray


@torch.no_grad()
def example_stats(
    model: nn.Module, x: np.ndarray, y: np.ndarray, task: str, batch: int = 2048
) -> ExampleStats:
    """Per-example statistics of ``model`` (switched to eval mode) on (x, y).

    Classification: cross-entropy, softmax probability of the label, phi = z_y - logsumexp(z_{j != y})
    = log(p_y / (1 - p_y)). Regression: squared error e, prob = exp(-e / 2), phi = -e."""
    model.eval()
    xt = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
    outs = [model(xt[i : i + batch]) for i in range(0, xt.shape[0], batch)]
    out = torch.cat(outs).double()
    if task == "classification":
        yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
        logp = torch.log_softmax(out, dim=1)
        ly = logp.gather(1, yt[:, None])[:, 0]
        rest = logp.clone()
        rest.scatter_(1, yt[:, None], -math.inf)
        phi = ly - torch.logsumexp(rest, dim=1)
        return ExampleStats((-ly).numpy(), ly.exp().numpy(), phi.numpy())
    yt = torch.as_tensor(np.asarray(y, dtype=np.float64))
    err = (out.reshape(-1) - yt) ** 2
    return ExampleStats(err.numpy(), torch.exp(-err / 2).numpy(), (-err).numpy())


# ---------------------------------------------------------------- shadow / reference models


@dataclass(frozen=True)
class TrainingRecipe:
    """How shadow models are trained: a fresh module, start weights and the run's local training.

    ``dp_sgd`` (a `dp.local.DPSGDConfig`) trains with DP-SGD instead of plain SGD (targets trained with
    sample-level DP)."""

    model_factory: Callable[[], nn.Module]
    start: np.ndarray
    task: str
    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.0
    dp_sgd: Any = None

    def train(self, x: np.ndarray, y: np.ndarray, seed: int) -> nn.Module:
        from fl_core.models import set_flat
        from fl_core.training import as_tensors, train_epochs

        model = self.model_factory()
        set_flat(model, self.start)
        if self.dp_sgd is not None:
            from dp.local import train_dp_sgd

            loss = "cross_entropy" if self.task == "classification" else "mse"
            train_dp_sgd(model, x, y, loss, self.dp_sgd, seed=seed, account=False)
        else:
            xt, yt = as_tensors(x, y, self.task)  # type: ignore[arg-type]
            gen = torch.Generator().manual_seed(seed)
            train_epochs(
                model, xt, yt, self.task,  # type: ignore[arg-type]
                epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, momentum=self.momentum,
                generator=gen,
            )  # fmt: skip
        return model.eval()


@dataclass(frozen=True)
class ShadowModels:
    """k shadow models' statistics on the N pool examples; keep[i, j]: example j trained shadow i."""

    keep: np.ndarray
    stats: tuple[ExampleStats, ...]

    @property
    def phi(self) -> np.ndarray:
        return np.stack([s.phi for s in self.stats])

    @property
    def prob(self) -> np.ndarray:
        return np.stack([s.prob for s in self.stats])


def balanced_keep(n_shadows: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n_shadows, n) inclusion matrix with every example IN exactly n_shadows / 2 shadows (Carlini et
    al.'s recipe: ranks of uniform draws per example)."""
    order = rng.random((n_shadows, n)).argsort(axis=0)
    return order < n_shadows // 2


def train_shadows(
    recipe: TrainingRecipe,
    x: np.ndarray,
    y: np.ndarray,
    n_shadows: int,
    *,
    seed: int = 0,
    progress: Progress | None = None,
) -> ShadowModels:
    """Train ``n_shadows`` (even, >= 2) models on balanced random halves of the pool (x, y)."""
    if isinstance(n_shadows, bool) or not isinstance(n_shadows, int) or n_shadows < 2 or n_shadows % 2:
        raise AuditError(f"shadows must be an even number >= 2, got {n_shadows!r}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5AD0]))
    keep = balanced_keep(n_shadows, len(x), rng)
    stats = []
    for i in range(n_shadows):
        if progress is not None:
            progress(i, n_shadows, f"shadow model {i + 1}/{n_shadows}")
        idx = np.flatnonzero(keep[i])
        model = recipe.train(x[idx], y[idx], seed=int(rng.integers(2**31)))
        stats.append(example_stats(model, x, y, recipe.task))
    if progress is not None:
        progress(n_shadows, n_shadows, "shadow models trained")
    return ShadowModels(keep, tuple(stats))


# ---------------------------------------------------------------- attacks


class Attack(ABC):
    """A membership-inference attack: one score per pool example, higher meaning "member"."""

    name: str = "attack"
    needs_shadows: bool = False

    @abstractmethod
    def score(self, target: ExampleStats, shadows: ShadowModels | None) -> np.ndarray:
        """Scores for every pool example from the target's statistics (and the shadows')."""


class LossAttack(Attack):
    """Yeom et al. 2018: a low loss means "member"."""

    name = "loss"

    def score(self, target: ExampleStats, shadows: ShadowModels | None) -> np.ndarray:
        return -target.loss


def _need(shadows: ShadowModels | None, who: str) -> ShadowModels:
    if shadows is None:
        raise AuditError(f"{who} needs shadow models")
    return shadows


class LiRA(Attack):
    """Carlini et al. 2022's likelihood-ratio attack (online or offline; see the module doc)."""

    needs_shadows = True

    def __init__(self, online: bool = True, fixed_variance: bool | None = None) -> None:
        self.online = online
        self.fixed_variance = fixed_variance
        self.name = "lira_online" if online else "lira_offline"

    def score(self, target: ExampleStats, shadows: ShadowModels | None) -> np.ndarray:
        sh = _need(shadows, self.name)
        phi, keep = sh.phi, sh.keep
        k = phi.shape[0]
        fixed = self.fixed_variance if self.fixed_variance is not None else k < 64
        n_in, n_out = keep.sum(0), (~keep).sum(0)
        mu_in = np.where(keep, phi, 0.0).sum(0) / np.maximum(n_in, 1)
        mu_out = np.where(~keep, phi, 0.0).sum(0) / np.maximum(n_out, 1)
        if fixed:
            s_in = np.full(
                phi.shape[1], np.sqrt(np.sum(np.where(keep, phi - mu_in, 0.0) ** 2) / max(1, keep.sum()))
            )
            s_out = np.full(
                phi.shape[1], np.sqrt(np.sum(np.where(~keep, phi - mu_out, 0.0) ** 2) / max(1, (~keep).sum()))
            )
        else:
            s_in = np.sqrt(np.where(keep, (phi - mu_in) ** 2, 0.0).sum(0) / np.maximum(n_in, 1))
            s_out = np.sqrt(np.where(~keep, (phi - mu_out) ** 2, 0.0).sum(0) / np.maximum(n_out, 1))
        s_in, s_out = np.maximum(s_in, 1e-6), np.maximum(s_out, 1e-6)
        if self.online:
            return norm.logpdf(target.phi, mu_in, s_in) - norm.logpdf(target.phi, mu_out, s_out)
        return (target.phi - mu_out) / s_out


class RMIA(Attack):
    """Zarifzadeh et al. 2024's relative membership inference (see the module doc)."""

    needs_shadows = True
    name = "rmia"

    def __init__(self, gamma: float = 1.0, offline_a: float | None = None) -> None:
        self.gamma = gamma
        self.offline_a = offline_a

    def score(self, target: ExampleStats, shadows: ShadowModels | None) -> np.ndarray:
        sh = _need(shadows, self.name)
        prob, keep = sh.prob, sh.keep
        if self.offline_a is None:
            p_x = prob.mean(0)
        else:
            out_mean = np.where(~keep, prob, 0.0).sum(0) / np.maximum((~keep).sum(0), 1)
            p_x = 0.5 * ((1.0 + self.offline_a) * out_mean + (1.0 - self.offline_a))
        lr = target.prob / np.maximum(p_x, 1e-30)
        ref = np.sort(lr)  # the population z: every pool example
        # fraction of z with LR(x) / LR(z) >= gamma  <=>  LR(z) <= LR(x) / gamma
        return np.searchsorted(ref, lr / self.gamma, side="right") / ref.size


ATTACKS: dict[str, Callable[[], Attack]] = {
    "loss": LossAttack,
    "lira_online": lambda: LiRA(online=True),
    "lira_offline": lambda: LiRA(online=False),
    "rmia": RMIA,
}


def build_attacks(names: Sequence[str]) -> list[Attack]:
    """Attacks by name: loss, lira (= lira_online + lira_offline), lira_online, lira_offline, rmia."""
    out: list[Attack] = []
    for n in names:
        expanded = ["lira_online", "lira_offline"] if n == "lira" else [n]
        for e in expanded:
            if e not in ATTACKS:
                raise AuditError(
                    f"unknown membership attack {n!r}; known: loss, lira, lira_online, lira_offline, rmia"
                )
            out.append(ATTACKS[e]())
    return out


# ---------------------------------------------------------------- one audit of one target


def _roc_points(member: np.ndarray, nonmember: np.ndarray, max_points: int = 400) -> dict[str, list[float]]:
    """The ROC thinned for plots and JSON: every point at FPR < 1% kept, the rest subsampled."""
    roc = roc_curve(member, nonmember)
    low = np.flatnonzero(roc.fpr < 0.01)
    rest = np.flatnonzero(roc.fpr >= 0.01)
    if rest.size > max_points:
        rest = rest[np.linspace(0, rest.size - 1, max_points).astype(int)]
    idx = np.unique(np.concatenate([low[-max_points:], rest]))
    return {"fpr": roc.fpr[idx].tolist(), "tpr": roc.tpr[idx].tolist()}


def evaluate_scores(
    scores: np.ndarray,
    member: np.ndarray,
    *,
    epsilon: float | None,
    delta: float,
    alpha: float = 0.05,
    correction: str = "bonferroni",
) -> dict[str, Any]:
    """Metrics beside the DP limits, the corrected Clopper-Pearson bound and the GDP-based estimate."""
    mem, non = scores[member], scores[~member]
    if mem.size == 0 or non.size == 0:
        raise AuditError(f"membership needs members and non-members, got {mem.size} and {non.size}")
    row = attack_summary(mem, non, epsilon=epsilon, delta=delta)
    bound = threshold_search_epsilon(mem, non, alpha=alpha, delta=delta, correction=correction)  # type: ignore[arg-type]
    mu = gdp_mu_lower_bound(
        bound.fp, bound.n_out, bound.fn, bound.n_in, alpha=alpha / max(1, bound.thresholds_tried)
    )
    return {
        "metrics": row,
        "epsilon_lower_bound": bound.to_dict(),
        "gdp_mu": mu,
        "gdp_epsilon_estimate": gdp_epsilon(mu, delta) if 0.0 < delta < 1.0 else None,
        "roc": _roc_points(mem, non),
    }


def membership_audit(
    target: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    member: np.ndarray,
    task: str,
    *,
    recipe: TrainingRecipe | None = None,
    attacks: Sequence[str | Attack] = ("loss", "lira", "rmia"),
    shadows: int = 8,
    seed: int = 0,
    progress: Progress | None = None,
    epsilon: float | None = None,
    delta: float = 1e-5,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Score every pool example (x, y) with each attack against ``target``; ``member[j]`` says whether
    example j trained the target. Shadow models (trained once, shared by LiRA and RMIA) need ``recipe``.
    Returns {attack name: evaluate_scores(...)} plus "shadows" and the population sizes."""
    member = np.asarray(member, dtype=bool)
    if member.shape != (len(x),) or len(x) != len(y):
        raise AuditError(f"pool has {len(x)} inputs, {len(y)} labels and {member.shape} membership flags")
    chosen = [a if isinstance(a, Attack) else None for a in attacks]
    names = [a for a in attacks if not isinstance(a, Attack)]
    built = build_attacks(names)
    objs: list[Attack] = [a for a in chosen if a is not None] + built
    target_stats = example_stats(target, x, y, task)
    sh = None
    if any(a.needs_shadows for a in objs):
        if recipe is None:
            raise AuditError("LiRA and RMIA need a training recipe for their shadow models")
        sh = train_shadows(recipe, x, y, shadows, seed=seed, progress=progress)
    out: dict[str, Any] = {
        "members": int(member.sum()),
        "nonmembers": int((~member).sum()),
        "shadows": 0 if sh is None else shadows,
        "attacks": {},
    }
    for a in objs:
        scores = np.asarray(a.score(target_stats, sh), dtype=np.float64)
        out["attacks"][a.name] = evaluate_scores(scores, member, epsilon=epsilon, delta=delta, alpha=alpha)
    return out
