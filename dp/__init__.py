"""privagg.dp: client- and sample-level differential privacy with tight accounting and a hard budget.

Depends on numpy, dp_accounting, opacus/torch; never on fl_core, secagg, audits or privagg.
Lead-facing recipes (details and measurements in docs/dp.md):

Budget in the round loop (two-phase: a round that fails is never charged)::

    acc = PrivacyAccountant(max_epsilon=8.0, delta=1e-5)
    ev = events.poisson_round(z, q)                 # or clipper.dp_event(q) / discrete_gaussian_event(p)
    if not acc.can_spend(ev): stop("budget")        # before the round starts
    ... run the round ...; acc.commit(ev, round_id=r, label="round")
    metrics["epsilon"] = acc.epsilon()              # PLD; acc.report() adds the RDP cross-check
    checkpoint["privacy"] = acc.to_json()           # PrivacyAccountant.from_json() restores it exactly

Client-level DP-FedAvg: clip_l2(update, C) -> gaussian_noise_sum(sum, z, C, noise_source(seed))
-> dp_fedavg_estimate(noised, q, W); distributed: distributed_gaussian_share(..., min_cohort, src) or
DistributedDiscreteGaussian(discrete_gaussian_params(...), rotation_seed).encode/decode.
Sample-level: train_dp_sgd(model, x, y, "cross_entropy", DPSGDConfig(...)) -> LocalDPResult
(commit result.event into ClientLedgers). CLI: epsilon_for / delta_for / calibrate_noise.
"""

from dp import events
from dp.accountant import (
    ClientLedgers,
    LedgerEntry,
    Neighbouring,
    PrivacyAccountant,
    PrivacyReport,
    delta_for,
    epsilon_for,
    rounds_within,
)
from dp.calibration import calibrate_dp_sgd, calibrate_noise, dp_sgd_steps
from dp.clipping import AdaptiveClipper, ClipResult, clip_l2, split_noise_multiplier
from dp.errors import (
    BudgetExceededError,
    CalibrationError,
    DeltaWarning,
    DPError,
    InvalidPrivacyParameterError,
    UnsupportedModelError,
)
from dp.noise import (
    DiscreteGaussianParams,
    DistributedDiscreteGaussian,
    bits_guidance,
    discrete_gaussian_event,
    discrete_gaussian_params,
    distributed_gaussian_share,
    dp_fedavg_estimate,
    gaussian_noise_sum,
)
from dp.rng import NoiseSource, noise_source

__all__ = [
    "events",
    "PrivacyAccountant", "ClientLedgers", "LedgerEntry", "PrivacyReport", "Neighbouring",
    "epsilon_for", "delta_for", "rounds_within", "calibrate_noise", "calibrate_dp_sgd", "dp_sgd_steps",
    "clip_l2", "ClipResult", "AdaptiveClipper", "split_noise_multiplier",
    "gaussian_noise_sum", "distributed_gaussian_share", "dp_fedavg_estimate",
    "DiscreteGaussianParams", "DistributedDiscreteGaussian", "discrete_gaussian_params",
    "discrete_gaussian_event", "bits_guidance",
    "NoiseSource", "noise_source",
    "DPSGDConfig", "LocalDPResult", "train_dp_sgd",
    "DPError", "InvalidPrivacyParameterError", "BudgetExceededError", "CalibrationError",
    "UnsupportedModelError", "DeltaWarning",
]  # fmt: skip


def __getattr__(name: str) -> object:
    """Import the torch/Opacus part (dp.local) only when it is used: accounting stays light for the CLI."""
    if name in ("DPSGDConfig", "LocalDPResult", "train_dp_sgd"):
        from dp import local

        return getattr(local, name)
    raise AttributeError(f"module 'dp' has no attribute {name!r}")
