"""Gradient inversion: what one client's plain update reveals, and what the secure aggregate does not.

* Exact attack on a fully connected first layer (Phong et al. 2017; Geiping et al. 2020, Prop. D.1):
  for y = W x + b and batch 1, dL/dW = (dL/dy) x^T and dL/db = dL/dy, so x = dW_i / db_i for every
  unit i with db_i != 0. An update of one SGD step is -lr * gradient and the ratio is the same; we take
  the least-squares combination x = sum_i db_i dW_i / sum_i db_i^2. From a sum over a cohort the same
  formula returns a weighted blend of every client's input: the attack fails.
* Optimization attack ("inverting gradients", Geiping et al., NeurIPS 2020): find an input whose
  gradient has the highest cosine similarity with the observed one, plus total variation, with Adam
  from a random start; the label is read off the last layer's bias gradient (its only negative entry
  under cross-entropy, Zhao et al. 2020's iDLG). The iteration budget is modest (default 300).
* PSNR and SSIM (Wang et al. 2004, 7x7 uniform window, C1 = (0.01 L)^2, C2 = (0.03 L)^2) score a
  reconstruction against the original; for an aggregate, against the best-matching cohort input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.ndimage import uniform_filter
from torch import nn
from torch.nn import functional as F

from audits.errors import AuditError

__all__ = [
    "InversionResult",
    "infer_label",
    "inversion_experiment",
    "client_update",
    "exact_fc_inversion",
    "first_linear_slices",
    "invert_gradients",
    "psnr",
    "ssim",
]


# ---------------------------------------------------------------- image quality


def psnr(original: np.ndarray, reconstruction: np.ndarray, data_range: float = 1.0) -> float:
    """10 log10(L^2 / MSE) in dB (inf for an exact copy)."""
    a = np.asarray(original, np.float64)
    b = np.asarray(reconstruction, np.float64).reshape(a.shape)
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def ssim(original: np.ndarray, reconstruction: np.ndarray, data_range: float = 1.0, window: int = 7) -> float:
    """Mean structural similarity of two 2-D images (a leading channel axis is averaged over)."""
    a = np.asarray(original, np.float64)
    b = np.asarray(reconstruction, np.float64).reshape(a.shape)
    if a.ndim == 3:
        return float(np.mean([ssim(a[c], b[c], data_range, window) for c in range(a.shape[0])]))
    if a.ndim != 2:
        raise AuditError(f"ssim needs 2-D images (or C x H x W), got shape {a.shape}")
    w = min(window, *a.shape)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = uniform_filter(a, w), uniform_filter(b, w)
    var_a = uniform_filter(a * a, w) - mu_a**2
    var_b = uniform_filter(b * b, w) - mu_b**2
    cov = uniform_filter(a * b, w) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(s.mean())


# ---------------------------------------------------------------- the updates an attacker sees


def client_update(
    model: nn.Module, x: np.ndarray, y: np.ndarray, lr: float = 0.1, task: str = "classification"
) -> np.ndarray:
    """One client's plain update after one SGD step on (x, y) from the model's weights: -lr * gradient,
    flat in `model.parameters()` order (what the server receives without secure aggregation)."""
    model.eval()  # GroupNorm has no running statistics: eval and train compute the same forward pass
    xt = torch.as_tensor(np.asarray(x, np.float32))
    out = model(xt)
    if task == "classification":
        loss = F.cross_entropy(out, torch.as_tensor(np.asarray(y, np.int64)))
    else:
        loss = F.mse_loss(out.reshape(-1), torch.as_tensor(np.asarray(y, np.float32)))
    grads = torch.autograd.grad(loss, [p for p in model.parameters()])
    return (-lr * torch.cat([g.reshape(-1) for g in grads])).detach().numpy().astype(np.float64)


def first_linear_slices(model: nn.Module) -> tuple[slice, slice, tuple[int, int]]:
    """(weight slice, bias slice, (out, in)) of the first layer in the flat vector, which must be an
    nn.Linear with a bias and be the first module holding parameters."""
    offset = 0
    for module in model.modules():
        own = list(module.parameters(recurse=False))
        if not own:
            continue
        if not isinstance(module, nn.Linear) or module.bias is None:
            raise AuditError(
                f"the exact attack needs a fully connected first layer with a bias; this model starts with "
                f"{type(module).__name__}"
            )
        names = [n for n, _ in module.named_parameters(recurse=False)]
        if names != ["weight", "bias"]:
            raise AuditError(f"unexpected parameter order {names} in the first layer")
        w = module.weight
        return (
            slice(offset, offset + w.numel()),
            slice(offset + w.numel(), offset + w.numel() + w.shape[0]),
            (
                int(w.shape[0]),
                int(w.shape[1]),
            ),
        )
    raise AuditError("the model has no parameters")


def exact_fc_inversion(update: np.ndarray, model: nn.Module) -> np.ndarray:
    """The input of a batch-1 update (flattened), from the first layer's weight and bias rows."""
    ws, bs, (out_dim, in_dim) = first_linear_slices(model)
    u = np.asarray(update, np.float64).reshape(-1)
    dw = u[ws].reshape(out_dim, in_dim)
    db = u[bs]
    denom = float(np.dot(db, db))
    if denom == 0.0:
        raise AuditError("the first layer's bias update is zero: nothing to invert")
    return (db @ dw) / denom


# ---------------------------------------------------------------- optimization attack


def _total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic TV of a batch of images (..., H, W), or of rows for tabular inputs."""
    if x.dim() >= 3:
        return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()
    return (x[..., 1:] - x[..., :-1]).abs().mean()


def infer_label(update: np.ndarray, model: nn.Module) -> int:
    """iDLG: under cross-entropy the last layer's bias gradient is p - onehot(y), negative only at y (so
    the update, -lr * gradient, is positive only there)."""
    params = list(model.parameters())
    last_bias = params[-1]
    n = last_bias.numel()
    return int(np.argmax(np.asarray(update, np.float64)[-n:]))


def invert_gradients(
    update: np.ndarray,
    model: nn.Module,
    input_shape: tuple[int, ...],
    *,
    label: int | None = None,
    iterations: int = 300,
    lr: float = 0.1,
    tv_weight: float = 1e-2,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    seed: int = 0,
) -> np.ndarray:
    """Geiping et al. 2020 for one input: minimize 1 - cos(grad(x), observed) + tv * TV(x) with Adam
    (the observed gradient is -update: its scale and the learning rate do not matter to a cosine)."""
    model.eval()
    target = -torch.as_tensor(np.asarray(update, np.float64), dtype=torch.float32)
    y = torch.tensor([infer_label(update, model) if label is None else int(label)])
    gen = torch.Generator().manual_seed(seed)
    lo, hi = bounds if bounds is not None else (-1.0, 1.0)
    x = (lo + (hi - lo) * torch.rand((1, *input_shape), generator=gen)).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    sched = torch.optim.lr_scheduler.MultiStepLR(
        opt, [int(iterations * f) for f in (0.375, 0.625, 0.875)], 0.1
    )
    params = list(model.parameters())
    for _ in range(iterations):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, params, create_graph=True)
        g = torch.cat([gr.reshape(-1) for gr in grads])
        rec = 1.0 - F.cosine_similarity(g, target, dim=0) + tv_weight * _total_variation(x)
        rec.backward()
        x.grad.sign_()  # signed gradients, as in Geiping et al.'s reference implementation
        opt.step()
        sched.step()
        if bounds is not None:
            with torch.no_grad():
                x.clamp_(lo, hi)
    return x.detach().numpy()[0]


# ---------------------------------------------------------------- one experiment: plain vs aggregate


@dataclass(frozen=True)
class InversionResult:
    """Originals, the attack's reconstructions and their scores, for a plain update and an aggregate."""

    originals: np.ndarray  # (cohort, *input_shape)
    plain: np.ndarray  # reconstruction from client 0's update
    aggregate: np.ndarray  # reconstruction from the cohort's sum
    plain_psnr: float
    plain_ssim: float
    aggregate_psnr: float  # against the best-matching cohort input
    aggregate_ssim: float
    method: str
    cohort: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "cohort": self.cohort,
            "plain": {"psnr": self.plain_psnr, "ssim": self.plain_ssim},
            "secure_aggregate": {"psnr": self.aggregate_psnr, "ssim": self.aggregate_ssim},
        }


def _score(original: np.ndarray, rec: np.ndarray, rng: float) -> tuple[float, float]:
    img = original if original.ndim >= 2 else original.reshape(1, -1)
    return psnr(original, rec, rng), ssim(img, np.asarray(rec).reshape(img.shape), rng)


def inversion_experiment(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    method: str = "exact",
    lr: float = 0.1,
    secure_sum: Any = None,
    iterations: int = 300,
    seed: int = 0,
) -> InversionResult:
    """Attack client 0's plain update (one SGD step on x[0]) and the sum of every client's update (client
    i holds x[i], batch 1). ``secure_sum(list of updates) -> sum`` computes the aggregate as the server
    gets it (e.g. through `secagg.secure_sum`); by default the exact float sum."""
    if len(x) < 2:
        raise AuditError("an inversion experiment needs a cohort of at least 2 clients")
    updates = [client_update(model, x[i : i + 1], y[i : i + 1], lr=lr) for i in range(len(x))]
    agg = np.sum(updates, axis=0) if secure_sum is None else np.asarray(secure_sum(updates), np.float64)
    shape = tuple(x.shape[1:])
    data_range = float(np.max(x) - np.min(x)) or 1.0
    if method == "exact":
        rec_plain = exact_fc_inversion(updates[0], model).reshape(shape)
        rec_agg = exact_fc_inversion(agg, model).reshape(shape)
    elif method == "optimization":
        bounds = (float(np.min(x)), float(np.max(x)))
        rec_plain = invert_gradients(
            updates[0], model, shape, iterations=iterations, bounds=bounds, seed=seed
        )
        rec_agg = invert_gradients(agg, model, shape, iterations=iterations, bounds=bounds, seed=seed)
    else:
        raise AuditError(f"inversion method must be 'exact' or 'optimization', got {method!r}")
    p_psnr, p_ssim = _score(x[0], rec_plain, data_range)
    scores = [_score(x[i], rec_agg, data_range) for i in range(len(x))]
    best = max(range(len(x)), key=lambda i: scores[i][0])
    return InversionResult(
        originals=np.asarray(x),
        plain=rec_plain,
        aggregate=rec_agg,
        plain_psnr=p_psnr,
        plain_ssim=p_ssim,
        aggregate_psnr=scores[best][0],
        aggregate_ssim=max(s[1] for s in scores),
        method=method,
        cohort=len(x),
    )
