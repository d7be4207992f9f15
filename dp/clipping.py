"""L2 clipping of one update (pure), and adaptive clipping by quantile tracking (Andrew et al. 2021)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import dp_accounting as dpa
import numpy as np

from dp import events as _events
from dp._checks import check_positive
from dp.errors import InvalidPrivacyParameterError
from dp.rng import NoiseSource, noise_source


@dataclass(frozen=True)
class ClipResult:
    """The clipped vector, whether clipping changed it, and the norm before clipping."""

    clipped: np.ndarray
    was_clipped: bool
    norm: float


def clip_l2(update: np.ndarray, clip_norm: float) -> ClipResult:
    """Scale `update` to L2 norm <= clip_norm (McMahan et al. 2018, Alg. 1); the input is not modified."""
    c = check_positive("clip_norm", clip_norm)
    x = np.asarray(update)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    norm = float(np.linalg.norm(x.ravel()))
    if not math.isfinite(norm):
        raise InvalidPrivacyParameterError(f"update must be finite to clip, found norm {norm!r}")
    if norm <= c:
        return ClipResult(clipped=x.copy(), was_clipped=False, norm=norm)
    return ClipResult(clipped=(x * (c / norm)).astype(x.dtype, copy=False), was_clipped=True, norm=norm)


def split_noise_multiplier(noise_multiplier: float, count_stddev: float) -> float:
    """Sum noise multiplier z_delta = (z^-2 - (2 sigma_b)^-2)^(-1/2) (Andrew et al. 2021, Thm. 1)."""
    z = check_positive("noise_multiplier", noise_multiplier)
    sb = check_positive("count_stddev", count_stddev)
    rest = z**-2 - (2.0 * sb) ** -2
    if rest <= 0:
        raise InvalidPrivacyParameterError(
            f"count_stddev={count_stddev!r} leaves no budget for the sum: need 2*count_stddev > "
            f"noise_multiplier={noise_multiplier!r}"
        )
    return rest**-0.5


class AdaptiveClipper:
    """Clip norm that tracks the gamma-quantile of update norms (Andrew et al. NeurIPS 2021, Alg. 1).

    Each client reports b_i - 1/2 with b_i = 1 if its update was NOT clipped (sensitivity 1/2); the
    server adds N(0, sigma_b^2) to the sum, divides by the public expected cohort m, adds 1/2, and
    sets C <- C * exp(-eta * (b - gamma)). The sum gets multiplier z_delta, so the round is charged
    as one Gaussian of multiplier z (see dp_event).
    """

    def __init__(
        self,
        initial_clip_norm: float,
        *,
        noise_multiplier: float,
        expected_cohort: float,
        target_quantile: float = 0.5,
        learning_rate: float = 0.2,
        count_stddev: float | None = None,
        seed: int | None = None,
    ) -> None:
        self.clip_norm = check_positive("initial_clip_norm", initial_clip_norm)
        self.noise_multiplier = check_positive("noise_multiplier", noise_multiplier)
        self.expected_cohort = check_positive("expected_cohort", expected_cohort)
        if not 0.0 < float(target_quantile) < 1.0:
            raise InvalidPrivacyParameterError(
                f"target_quantile must be in (0, 1), found {target_quantile!r}"
            )
        self.target_quantile = float(target_quantile)
        self.learning_rate = check_positive("learning_rate", learning_rate)
        # Andrew et al. 2021 use m/20; a small cohort (m/20 <= z/2) would leave the sum no noise budget,
        # so the default is never below z: the sum's multiplier then grows by at most 1/sqrt(3/4) = 1.155
        sb = max(self.expected_cohort / 20.0, self.noise_multiplier) if count_stddev is None else count_stddev
        self.count_stddev = check_positive("count_stddev", sb)
        self.sum_noise_multiplier = split_noise_multiplier(self.noise_multiplier, self.count_stddev)
        self._source: NoiseSource = noise_source(seed)

    @property
    def seeded(self) -> bool:
        return self._source.seeded

    def clip(self, update: np.ndarray) -> tuple[ClipResult, float]:
        """Clip at the current norm; also returns the client's centred indicator b_i - 1/2."""
        res = clip_l2(update, self.clip_norm)
        return res, (-0.5 if res.was_clipped else 0.5)

    def noised_unclipped_fraction(self, indicator_sum: float) -> float:
        """b = (sum_i (b_i - 1/2) + N(0, sigma_b^2)) / m + 1/2, with the public expected cohort m."""
        noise = float(self._source.generator.normal(0.0, self.count_stddev))
        return (float(indicator_sum) + noise) / self.expected_cohort + 0.5

    def count_noise_share(self, min_cohort: int) -> float:
        """Distributed DP: a client's share N(0, sigma_b^2 / m_min) to add to its indicator before secagg."""
        m = int(min_cohort)
        if m < 1:
            raise InvalidPrivacyParameterError(f"min_cohort must be an integer >= 1, found {min_cohort!r}")
        return float(self._source.generator.normal(0.0, self.count_stddev / math.sqrt(m)))

    def unclipped_fraction_from_noised_sum(self, noised_indicator_sum: float) -> float:
        """Distributed DP: b from a securely summed, already-noised sum of (b_i - 1/2) + shares."""
        return float(noised_indicator_sum) / self.expected_cohort + 0.5

    def step(self, unclipped_fraction: float) -> float:
        """Geometric update C <- C * exp(-eta * (b - gamma)); returns the new clip norm."""
        b = float(unclipped_fraction)
        if not math.isfinite(b):
            raise InvalidPrivacyParameterError(
                f"unclipped_fraction must be finite, found {unclipped_fraction!r}"
            )
        self.clip_norm *= math.exp(-self.learning_rate * (b - self.target_quantile))
        return self.clip_norm

    def observe_norms(self, norms: np.ndarray) -> float:
        """Simulation shortcut: indicators from norms, noised count, step. Returns the new clip norm."""
        n = np.asarray(norms, dtype=np.float64)
        indicator_sum = float(np.sum(np.where(n <= self.clip_norm, 0.5, -0.5)))
        return self.step(self.noised_unclipped_fraction(indicator_sum))

    def dp_event(self, sampling_rate: float) -> dpa.DpEvent:
        """One round (sum + count) as a single Poisson-sampled Gaussian of multiplier z."""
        return _events.poisson_round(self.noise_multiplier, sampling_rate)

    def state(self) -> dict[str, Any]:
        """Checkpointable state (the generator is not saved: a resumed run draws fresh OS noise)."""
        return {
            "clip_norm": self.clip_norm,
            "noise_multiplier": self.noise_multiplier,
            "expected_cohort": self.expected_cohort,
            "target_quantile": self.target_quantile,
            "learning_rate": self.learning_rate,
            "count_stddev": self.count_stddev,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], *, seed: int | None = None) -> AdaptiveClipper:
        return cls(
            state["clip_norm"],
            noise_multiplier=state["noise_multiplier"],
            expected_cohort=state["expected_cohort"],
            target_quantile=state["target_quantile"],
            learning_rate=state["learning_rate"],
            count_stddev=state["count_stddev"],
            seed=seed,
        )
