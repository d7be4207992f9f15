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

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dp import events
    from dp.accountant import (
        ClientLedgers,
        LedgerEntry,
        Neighbouring,
        PrivacyAccountant,
        PrivacyReport,
        clear_caches,
        delta_for,
        epsilon_for,
        quick_epsilon,
        rounds_within,
    )
    from dp.calibration import (
        calibrate_dp_sgd,
        calibrate_noise,
        dp_sgd_steps,
    )
    from dp.clipping import (
        AdaptiveClipper,
        ClipResult,
        clip_l2,
        split_noise_multiplier,
    )
    from dp.errors import (
        BudgetExceededError,
        CalibrationError,
        DeltaWarning,
        DPError,
        InvalidPrivacyParameterError,
        UnsupportedModelError,
    )
    from dp.local import (
        DPSGDConfig,
        LocalDPResult,
        train_dp_sgd,
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
    from dp.rng import (
        NoiseSource,
        as_noise_source,
        noise_source,
    )

#: public name -> the module that defines it (imported on first use: `import dp` stays light)
_EXPORTS: dict[str, str] = {
    "ClientLedgers": "dp.accountant",
    "clear_caches": "dp.accountant",
    "LedgerEntry": "dp.accountant",
    "Neighbouring": "dp.accountant",
    "PrivacyAccountant": "dp.accountant",
    "PrivacyReport": "dp.accountant",
    "delta_for": "dp.accountant",
    "epsilon_for": "dp.accountant",
    "quick_epsilon": "dp.accountant",
    "rounds_within": "dp.accountant",
    "calibrate_dp_sgd": "dp.calibration",
    "calibrate_noise": "dp.calibration",
    "dp_sgd_steps": "dp.calibration",
    "AdaptiveClipper": "dp.clipping",
    "ClipResult": "dp.clipping",
    "clip_l2": "dp.clipping",
    "split_noise_multiplier": "dp.clipping",
    "BudgetExceededError": "dp.errors",
    "CalibrationError": "dp.errors",
    "DeltaWarning": "dp.errors",
    "DPError": "dp.errors",
    "InvalidPrivacyParameterError": "dp.errors",
    "UnsupportedModelError": "dp.errors",
    "DiscreteGaussianParams": "dp.noise",
    "DistributedDiscreteGaussian": "dp.noise",
    "bits_guidance": "dp.noise",
    "discrete_gaussian_event": "dp.noise",
    "discrete_gaussian_params": "dp.noise",
    "distributed_gaussian_share": "dp.noise",
    "dp_fedavg_estimate": "dp.noise",
    "gaussian_noise_sum": "dp.noise",
    "NoiseSource": "dp.rng",
    "noise_source": "dp.rng",
    "as_noise_source": "dp.rng",
    "DPSGDConfig": "dp.local",
    "LocalDPResult": "dp.local",
    "train_dp_sgd": "dp.local",
    "events": "dp.events",
}
__all__ = [
    "AdaptiveClipper",
    "bits_guidance",
    "BudgetExceededError",
    "calibrate_dp_sgd",
    "calibrate_noise",
    "CalibrationError",
    "ClientLedgers",
    "clear_caches",
    "clip_l2",
    "ClipResult",
    "delta_for",
    "DeltaWarning",
    "discrete_gaussian_event",
    "discrete_gaussian_params",
    "DiscreteGaussianParams",
    "distributed_gaussian_share",
    "DistributedDiscreteGaussian",
    "dp_fedavg_estimate",
    "dp_sgd_steps",
    "DPError",
    "DPSGDConfig",
    "epsilon_for",
    "quick_epsilon",
    "events",
    "gaussian_noise_sum",
    "InvalidPrivacyParameterError",
    "LedgerEntry",
    "LocalDPResult",
    "Neighbouring",
    "noise_source",
    "NoiseSource",
    "as_noise_source",
    "PrivacyAccountant",
    "PrivacyReport",
    "rounds_within",
    "split_noise_multiplier",
    "train_dp_sgd",
    "UnsupportedModelError",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dp' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if module.endswith("." + name) else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
