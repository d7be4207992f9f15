"""A run's privacy settings, validated in one place (`PrivacySpec`), whoever builds them: the CLI's config,
a library user, a benchmark. Field names match the config keys (dp.mode -> mode, secagg.clip_range ->
clip_range, dp.seed -> seed)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from fl_core.errors import ConfigError

if TYPE_CHECKING:
    from fl_core.config import RunConfig

DPMode = Literal["none", "central", "distributed", "local"]
DP_MODES: tuple[str, ...] = ("none", "central", "distributed", "local")
UPLOAD_BITS: tuple[int, ...] = (32, 16, 8)


def _positive(key: str, v: float) -> None:
    if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v):
        raise ConfigError(f"{key} must be a number > 0, got {v!r}")
    if math.isinf(v):
        raise ConfigError(f"{key} must be finite, got {v}")
    if not v > 0:
        raise ConfigError(f"{key} must be > 0, got {v}")


@dataclass(frozen=True)
class PrivacySpec:
    """Which privacy layers a run uses, and their parameters.

    mode: none | central (a trusted server adds N(0, (zC)^2) to the sum) | distributed (each client adds a
    share; needs secagg) | local (sample-level DP-SGD in every client through Opacus). `secagg` switches
    the secure aggregator on; `clip_range` is its per-coordinate encoding range when DP does not set one.
    """

    mode: DPMode = "none"
    secagg: bool = False
    clip_norm: float = 1.0
    noise_multiplier: float = 1.0
    adaptive_clipping: bool = False
    target_quantile: float = 0.5
    clip_learning_rate: float = 0.2
    count_stddev: float | None = None
    delta: float = 1e-5
    max_epsilon: float | None = None
    seed: int | None = None
    clip_range: float = 1.0
    weight_cap: int = 1000
    metric_scale: float = 100.0
    dropout_tolerance: float = 0.3
    corrupt_fraction: float = 0.05
    mechanism: Literal["gaussian", "discrete_gaussian"] = "gaussian"
    ddg_bits: int = 16

    def __post_init__(self) -> None:
        if self.mode not in DP_MODES:
            raise ConfigError(f"dp.mode must be none, central, distributed or local, got {self.mode!r}")
        if self.mode == "distributed" and not self.secagg:
            raise ConfigError(
                "dp.mode='distributed' needs secagg.enabled=true: without secure aggregation the server "
                "sees every client's update carrying only its small share of the noise"
            )
        if self.mechanism not in ("gaussian", "discrete_gaussian"):
            raise ConfigError(f"dp.mechanism must be gaussian or discrete_gaussian, got {self.mechanism!r}")
        if self.mechanism == "discrete_gaussian":
            if self.mode != "distributed":
                raise ConfigError(
                    "dp.mechanism='discrete_gaussian' is the distributed mechanism: set dp.mode='distributed'"
                )
            if self.adaptive_clipping:
                raise ConfigError(
                    "dp.adaptive_clipping is not available with the discrete Gaussian mechanism"
                )
            if not 2 <= self.ddg_bits <= 32:
                raise ConfigError(f"dp.ddg_bits must be in [2, 32], got {self.ddg_bits}")
        if self.adaptive_clipping and not self.client_level_dp:
            raise ConfigError(
                "dp.adaptive_clipping needs client-level DP (dp.mode='central' or 'distributed')"
            )
        if self.max_epsilon is not None and self.mode == "none":
            raise ConfigError("dp.max_epsilon is set but dp.mode='none': there is no budget to enforce")
        for key in ("clip_norm", "noise_multiplier", "clip_range", "metric_scale"):
            _positive(key, getattr(self, key))
        if self.count_stddev is not None:
            _positive("dp.count_stddev", self.count_stddev)
        if self.weight_cap < 1:
            raise ConfigError(f"secagg.weight_cap must be >= 1, got {self.weight_cap}")
        if not 0.0 <= self.dropout_tolerance < 1.0:
            raise ConfigError(f"secagg.dropout_tolerance must be in [0, 1), got {self.dropout_tolerance}")
        if not 0.0 <= self.corrupt_fraction < 0.5:
            raise ConfigError(f"secagg.corrupt_fraction must be in [0, 0.5), got {self.corrupt_fraction}")

    @property
    def client_level_dp(self) -> bool:
        return self.mode in ("central", "distributed")

    def check_setup(self, *, sampling_mode: str, upload_bits: int) -> None:
        """The rules that involve the rest of the run: the sampler and the plaintext upload width."""
        if upload_bits not in UPLOAD_BITS:
            raise ConfigError(f"train.upload_bits must be one of {UPLOAD_BITS}, got {upload_bits}")
        if upload_bits != 32 and self.secagg:
            raise ConfigError(
                "train.upload_bits applies to plaintext uploads; secagg has its own ring encoding"
            )
        if self.mechanism == "discrete_gaussian" and sampling_mode != "poisson":
            raise ConfigError(
                "dp.mechanism='discrete_gaussian' needs sampling.mode='poisson': its bound is for add/remove "
                "neighbours; a fixed cohort (replace-one) would double its sensitivity"
            )


def spec_from_config(config: RunConfig, noise_multiplier: float, weight_cap: int) -> PrivacySpec:
    """The run config's privacy settings (the config validates through this too, with placeholders for
    the noise multiplier, which calibration may fill in later, and the weight cap)."""
    d, sa = config.dp, config.secagg
    return PrivacySpec(
        mode=d.mode,
        secagg=sa.enabled,
        clip_norm=d.clip_norm,
        noise_multiplier=noise_multiplier,
        adaptive_clipping=d.adaptive_clipping,
        target_quantile=d.target_quantile,
        clip_learning_rate=d.clip_learning_rate,
        count_stddev=d.count_stddev,
        delta=d.delta,
        max_epsilon=d.max_epsilon,
        seed=d.seed,
        clip_range=sa.clip_range,
        weight_cap=weight_cap,
        dropout_tolerance=sa.dropout_tolerance,
        corrupt_fraction=sa.corrupt_fraction,
        mechanism=d.mechanism,
        ddg_bits=d.ddg_bits,
    )
