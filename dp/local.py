"""Sample-level DP-SGD for one client's local training (Abadi et al. CCS 2016), Opacus as the reference.

Per step: Poisson-sample a batch at rate q = B/N, clip each per-sample gradient to C, add N(0, (z C)^2)
from privagg's noise stream (AES-CTR keyed by the OS, or PCG64 from a user seed, then flagged
`seeded`), and divide by the public expected batch size B, never by the realized batch size nor by
anything derived from N.

The clipped sum comes from `dp.ghost` (mode "ghost": ghost norms and book-keeping, Bu et al. 2023; one
backward pass, no per-sample gradient of the whole model) when it supports every trainable layer,
otherwise from Opacus' grad-sample modes ("hooks", "ew", "functorch", and Opacus' own ghost clipping
"opacus_ghost"). tests/dp/test_fast_dp_sgd.py holds the fast path equal to Opacus' hooks mode for a
fixed noise draw.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import dp_accounting as dpa
import numpy as np
import torch
from opacus.grad_sample import GradSampleModule, GradSampleModuleFastGradientClipping
from opacus.grad_sample.utils import prepare_module
from opacus.optimizers import DPOptimizer, DPOptimizerFastGradientClipping
from opacus.optimizers.optimizer import _check_processed_flag, _mark_as_processed
from opacus.utils.fast_gradient_clipping_utils import DPLossFastGradientClipping
from opacus.validators import ModuleValidator
from torch import nn

from dp import events as _events
from dp._checks import check_count, check_delta, check_nonnegative, check_positive
from dp.accountant import epsilon_for
from dp.calibration import calibrate_dp_sgd, dp_sgd_steps
from dp.csprng import AesCtrGenerator
from dp.errors import InvalidPrivacyParameterError, UnsupportedModelError
from dp.ghost import GhostClipper, unsupported_layers

GradSampleMode = Literal["auto", "ghost", "opacus_ghost", "hooks", "ew", "functorch"]
__all__ = [
    "DPSGDConfig",
    "LocalDPResult",
    "calibrate_dp_sgd",
    "check_model",
    "choose_grad_sample_mode",
    "poisson_batches",
    "train_dp_sgd",
]
_MODES = ("auto", "ghost", "opacus_ghost", "hooks", "ew", "functorch")


@dataclass(frozen=True)
class DPSGDConfig:
    """DP-SGD hyper-parameters; batch_size is the expected (public) batch, Poisson rate = batch_size / N."""

    noise_multiplier: float
    max_grad_norm: float
    batch_size: int
    epochs: int = 1
    lr: float = 0.1
    momentum: float = 0.0
    delta: float = 1e-5
    grad_sample_mode: GradSampleMode = "auto"

    def __post_init__(self) -> None:
        check_positive("noise_multiplier", self.noise_multiplier)
        check_positive("max_grad_norm", self.max_grad_norm)
        check_count("batch_size", self.batch_size)
        check_count("epochs", self.epochs)
        check_positive("lr", self.lr)
        check_nonnegative("momentum", self.momentum)
        check_delta(self.delta)
        if self.grad_sample_mode not in _MODES:
            raise InvalidPrivacyParameterError(
                f"grad_sample_mode must be one of {_MODES}, found {self.grad_sample_mode!r}"
            )


@dataclass(frozen=True)
class LocalDPResult:
    """What one client's DP-SGD run cost and did; `event` is what its ledger should commit."""

    epsilon: float
    delta: float
    steps: int
    sample_rate: float
    noise_multiplier: float
    grad_sample_mode: str
    mean_loss: float
    first_epoch_loss: float
    last_epoch_loss: float
    samples_per_second: float
    seeded: bool
    event: dpa.DpEvent


_FIXES = {
    "BatchNorm": "replace it with nn.GroupNorm (or run opacus.validators.ModuleValidator.fix(model))",
    "GRU": "use opacus.layers.DPGRU",
    "LSTM": "use opacus.layers.DPLSTM",
    "RNN": "use opacus.layers.DPRNN",
    "MultiheadAttention": "use opacus.layers.DPMultiheadAttention",
    "InstanceNorm": "set track_running_stats=False or use nn.GroupNorm",
}


class _PrivaggNoise:
    """Gaussian noise from privagg's own stream: AES-256-CTR keyed from os.urandom (`dp.csprng`), or PCG64
    from the user's seed, not torch's CPU generator, whose MT19937 keeps only 32 bits of any seed (2^32
    noise streams a server could search). Replaces Opacus' `add_noise`; the rest is Opacus' optimizer."""

    step_noise: StepNoise

    def add_noise(self) -> None:
        z = getattr(self, "_adjusted_noise_multiplier", self.noise_multiplier)  # type: ignore[attr-defined]
        if z * self.max_grad_norm != self.step_noise.std:  # type: ignore[attr-defined]
            raise InvalidPrivacyParameterError(
                f"the optimizer's noise std {z * self.max_grad_norm} differs from the stream's "  # type: ignore[attr-defined]
                f"{self.step_noise.std}: privagg does not adapt the noise multiplier inside DP-SGD"
            )
        params = self.params  # type: ignore[attr-defined]
        flat = self.step_noise.next()  # one draw per step, split per tensor
        start = 0
        for p in params:
            _check_processed_flag(p.summed_grad)
            size = p.summed_grad.numel()
            noise = flat[start : start + size].view(p.summed_grad.shape)
            start += size
            p.grad = (p.summed_grad + noise).view_as(p)
            _mark_as_processed(p.summed_grad)


class _NoisedDPOptimizer(_PrivaggNoise, DPOptimizer):
    """Opacus' DPOptimizer with privagg's noise stream."""


class _NoisedFastClippingOptimizer(_PrivaggNoise, DPOptimizerFastGradientClipping):
    """Opacus' ghost-clipping optimizer with privagg's noise stream."""


def check_model(model: nn.Module) -> None:
    """Reject, before any training, a model Opacus cannot train privately; names the layer and the fix."""
    problems = []
    for name, module in model.named_modules():
        validator = ModuleValidator.VALIDATORS.get(type(module))
        if validator is None or not validator(module):
            continue
        kind = next((k for k in _FIXES if k in type(module).__name__), None)
        fix = _FIXES.get(kind or "", "run opacus.validators.ModuleValidator.fix(model) or replace the layer")
        problems.append(f"layer '{name or '<root>'}' ({type(module).__name__}): {fix}")
    if not problems and ModuleValidator.validate(model, strict=False):
        problems.append("run opacus.validators.ModuleValidator.validate(model) for details")
    if problems:
        raise UnsupportedModelError("model cannot be trained with DP-SGD: " + "; ".join(problems))


def _trainable_leaf_types(model: nn.Module) -> set[type]:
    return {type(m) for m in model.modules() if any(p.requires_grad for p in m.parameters(recurse=False))}


def choose_grad_sample_mode(model: nn.Module) -> str:
    """'ghost' (privagg's ghost clipping, `dp.ghost`) when it supports every trainable layer (Linear,
    Conv1d/2d, GroupNorm, Opacus' RNNLinear inside DPGRU/DPLSTM/DPRNN); otherwise Opacus:
    'opacus_ghost' when every trainable layer has an Opacus ghost-norm sampler, else 'hooks' (functorch
    for layers without a registered grad sampler). Measured by benchmarks/dp_bench.py (docs/dp.md)."""
    if not unsupported_layers(model):
        return "ghost"
    ghost_layers = set(GradSampleModuleFastGradientClipping.NORM_SAMPLERS)
    return "opacus_ghost" if _trainable_leaf_types(model) <= ghost_layers else "hooks"


class _PerSampleMSE(nn.Module):
    """MSE whose reduction="none" is one value per sample (what ghost clipping needs); mean = nn.MSELoss."""

    def __init__(self) -> None:
        super().__init__()
        self.reduction = "mean"

    def forward(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        per_sample = ((out - target) ** 2).reshape(out.shape[0], -1).mean(dim=1)
        if self.reduction == "none":
            return per_sample
        return per_sample.sum() if self.reduction == "sum" else per_sample.mean()


def _loss_fn(loss: str, reduction: str = "mean") -> nn.Module:
    if loss == "cross_entropy":
        return nn.CrossEntropyLoss(reduction=reduction)
    if loss == "mse":
        mse = _PerSampleMSE()
        mse.reduction = reduction
        return mse
    raise InvalidPrivacyParameterError(f"loss must be 'cross_entropy' or 'mse', found {loss!r}")


def poisson_batches(
    sampler: np.random.Generator | AesCtrGenerator, n: int, rate: float, steps: int
) -> Iterator[np.ndarray]:
    """The index sets of `steps` Poisson batches over n records at `rate` (each record in independently;
    a batch may be empty). train_dp_sgd draws its batches with this; benchmarks replay them.

    The uniforms of several steps come from one call (about _AHEAD values: one call per step was a fixed
    ~30 us of a 0.5 ms step for a small model); both generators fill them in order, so the batches are
    the ones a call per step draws (tests/dp/test_local.py)."""
    per_call = max(1, min(steps, _AHEAD // max(n, 1)))
    left = steps
    while left > 0:
        k = min(per_call, left)
        inside = np.asarray(sampler.random((k, n))) < rate
        left -= k
        for row in inside:
            yield np.flatnonzero(row)


def train_dp_sgd(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    loss: Literal["cross_entropy", "mse"],
    config: DPSGDConfig,
    *,
    seed: int | None = None,
    account: bool = True,
) -> LocalDPResult:
    """Train `model` in place with DP-SGD; epsilon is PLD, the accountant's number for (q, z, steps).

    `account=False` skips that epsilon (NaN): a caller that composes `result.event` into its own ledger
    across rounds (fl_core's per-client ledgers) need not pay for a one-run PLD every call.
    """
    check_model(model)
    n = int(len(x))
    if n != len(y):
        raise InvalidPrivacyParameterError(f"x and y must have the same length, found {n} and {len(y)}")
    steps = dp_sgd_steps(n, config.batch_size, config.epochs)
    q = config.batch_size / n
    check_delta(config.delta, population=n)
    _loss_fn(loss)  # a bad loss name is refused before any work
    mode = choose_grad_sample_mode(model) if config.grad_sample_mode == "auto" else config.grad_sample_mode
    if mode == "ghost":
        problems = unsupported_layers(model)
        if problems:
            raise UnsupportedModelError(
                "grad_sample_mode='ghost' does not support: "
                + "; ".join(problems)
                + " (use grad_sample_mode='auto' to fall back to Opacus)"
            )

    seeded = seed is not None
    sampler: np.random.Generator | AesCtrGenerator
    noise_rng: np.random.Generator | AesCtrGenerator
    if seeded:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise InvalidPrivacyParameterError(f"seed must be a non-negative integer or None, found {seed!r}")
        sampler = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), 0])))
        noise_rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), 1])))
    else:  # batches and noise are secret: both from an AES-CTR stream keyed by the OS
        sampler, noise_rng = AesCtrGenerator(), AesCtrGenerator()

    xt = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)
    yt = torch.as_tensor(np.ascontiguousarray(y))
    if loss == "mse":
        yt = yt.to(torch.float32)
    batches = poisson_batches(sampler, n, q, steps)
    trainable = [p for p in model.parameters() if p.requires_grad]
    std = config.noise_multiplier * config.max_grad_norm
    noise = StepNoise(noise_rng, std, sum(p.numel() for p in trainable), steps, trainable[0].dtype)
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    try:
        run = _run_ghost if mode == "ghost" else _run_opacus
        step_losses = run(model, xt, yt, loss, config, mode, batches, noise)
    finally:
        elapsed = time.perf_counter() - t0
        torch.set_num_threads(prev_threads)
    steps_per_epoch = steps // config.epochs
    epoch_means = []
    for e in range(config.epochs):
        chunk = [v for v in step_losses[e * steps_per_epoch : (e + 1) * steps_per_epoch] if v == v]
        epoch_means.append(float(np.mean(chunk)) if chunk else float("nan"))
    real = [v for v in step_losses if v == v]  # NaN marks an empty batch (no loss)
    event = _events.dp_sgd(config.noise_multiplier, q, steps)
    return LocalDPResult(
        epsilon=epsilon_for(config.noise_multiplier, q, steps, config.delta) if account else float("nan"),
        delta=config.delta,
        steps=steps,
        sample_rate=q,
        noise_multiplier=config.noise_multiplier,
        grad_sample_mode=mode,
        mean_loss=float(np.mean(real)) if real else float("nan"),
        first_epoch_loss=epoch_means[0],
        last_epoch_loss=epoch_means[-1],
        samples_per_second=steps * config.batch_size / elapsed if elapsed > 0 else float("inf"),
        seeded=seeded,
        event=event,
    )


#: how many random values one call to the generator draws ahead (2 MiB of float64 at most)
_AHEAD = 1 << 18


class StepNoise:
    """Each DP-SGD step's Gaussian noise N(0, std^2) for `size` parameters (model.parameters() order),
    drawn for several steps in one call to the generator (AES-CTR keyed from the OS, or PCG64 from the
    user's seed) and handed out one step at a time, as float32 (the parameters' dtype).

    A call per step cost ~0.1 ms more than its normals on the breast_cancer MLP (6,274 parameters, a
    0.4 ms non-private step): conversions and small-array overheads, paid once per chunk now. Both the
    fast path and the Opacus path draw from this, so one seed gives both the same noise; with PCG64 the
    values are the ones one call per step would draw (numpy fills them in order)."""

    def __init__(
        self,
        rng: np.random.Generator | AesCtrGenerator,
        std: float,
        size: int,
        steps: int,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self._rng, self.std, self._size, self._left, self._dtype = rng, std, size, steps, dtype
        self._per_call = max(1, min(steps, _AHEAD // max(size, 1)))
        self._chunk = torch.empty(0, size, dtype=dtype)
        self._next = 0

    def next(self) -> torch.Tensor:
        """The next step's noise, [size] (a view into the chunk; valid until the chunk after it)."""
        if self._next == len(self._chunk):
            k = min(self._per_call, self._left)
            if k <= 0:
                raise InvalidPrivacyParameterError("every step's noise has been drawn: no step is left")
            z = np.asarray(self._rng.normal(0.0, self.std, size=k * self._size))
            self._chunk = torch.from_numpy(z).to(self._dtype).view(k, self._size)
            self._left -= k
            self._next = 0
        out = self._chunk[self._next]
        self._next += 1
        return out


def _run_ghost(
    model: nn.Module,
    xt: torch.Tensor,
    yt: torch.Tensor,
    loss: str,
    config: DPSGDConfig,
    mode: str,
    batches: Iterator[np.ndarray],
    noise: StepNoise,
) -> list[float]:
    """DP-SGD steps through `dp.ghost`: the clipped sum in one forward and one backward pass, noise added
    to the flat gradient buffer, divided by the expected batch size, then the plain SGD step."""
    criterion = _loss_fn(loss, "sum")
    clipper = GhostClipper(model)
    params, flat = clipper.params, clipper.flat
    base_opt = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, foreach=True)
    losses: list[tuple[torch.Tensor, int] | None] = []
    model.train()
    for p, g in zip(params, clipper.grads, strict=True):
        p.grad = g  # the optimizer reads the flat buffer's slices; set once, never cleared until the end
    try:
        with clipper.recording():
            for idx in batches:
                if idx.size == 0:  # an empty Poisson batch still releases noise: (0 + N(0, (zC)^2)) / B
                    flat.zero_()
                    losses.append(None)
                else:
                    ti = torch.from_numpy(idx)
                    out = model(xt[ti])
                    target = yt[ti]
                    if loss == "mse" and out.dim() == 2 and target.dim() == 1:
                        target = target.unsqueeze(1)
                    loss_sum = criterion(out, target)
                    clipper.clip_and_sum(loss_sum, config.max_grad_norm)
                    losses.append((loss_sum.detach(), idx.size))
                flat.add_(noise.next()).div_(config.batch_size)
                base_opt.step()
    finally:
        for p in params:
            p.grad = None
    return [float("nan") if v is None else float(v[0]) / v[1] for v in losses]


def _run_opacus(
    model: nn.Module,
    xt: torch.Tensor,
    yt: torch.Tensor,
    loss: str,
    config: DPSGDConfig,
    mode: str,
    batches: Iterator[np.ndarray],
    noise: StepNoise,
) -> list[float]:
    """DP-SGD steps through Opacus' GradSampleModule and DPOptimizer (or its ghost-clipping trio), with
    privagg's noise stream and public denominator."""
    criterion = _loss_fn(loss)
    base_opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, foreach=True)
    ghost = mode == "opacus_ghost"
    if ghost:
        gsm = prepare_module(model, "ghost", loss_reduction="mean", max_grad_norm=config.max_grad_norm)
        opt_cls: type[DPOptimizer] = _NoisedFastClippingOptimizer
    else:
        gsm = prepare_module(model, mode, loss_reduction="mean")
        opt_cls = _NoisedDPOptimizer
    opt = opt_cls(
        base_opt,
        noise_multiplier=config.noise_multiplier,
        max_grad_norm=config.max_grad_norm,
        expected_batch_size=config.batch_size,
        loss_reduction="mean",
    )
    dp_loss = DPLossFastGradientClipping(gsm, opt, criterion, "mean") if ghost else None
    params = [p for p in model.parameters() if p.requires_grad]
    sizes = [p.numel() for p in params]
    opt.step_noise = noise
    losses: list[float] = []
    with warnings.catch_warnings():  # torch warns on every backward hook when inputs need no grad
        warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
        gsm.train()
        try:
            for idx in batches:
                opt.zero_grad(set_to_none=True)
                if idx.size == 0:
                    # An empty Poisson batch still releases noise: (0 + N(0, (zC)^2)) / B.
                    with torch.no_grad():
                        for p, part in zip(params, torch.split(noise.next(), sizes), strict=True):
                            p.grad = part.view_as(p) / config.batch_size
                    base_opt.step()
                    losses.append(float("nan"))
                    continue
                ti = torch.from_numpy(idx)
                out = gsm(xt[ti])
                target = yt[ti]
                if loss == "mse" and out.dim() == 2 and target.dim() == 1:
                    target = target.unsqueeze(1)
                batch_loss = dp_loss(out, target) if dp_loss is not None else criterion(out, target)
                batch_loss.backward()
                opt.step()
                losses.append(float(batch_loss.item()))
        finally:
            opt.zero_grad(set_to_none=True)
            _unwrap(gsm)
    return losses


def _unwrap(gsm: nn.Module) -> None:
    """Remove Opacus hooks and per-sample buffers so the caller's model is a plain nn.Module again."""
    if isinstance(gsm, GradSampleModule | GradSampleModuleFastGradientClipping):
        gsm._close()
