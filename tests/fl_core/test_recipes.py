"""distributed_dp_sum: distributed DP with secagg, the survivors and the range sized by the noise."""

from __future__ import annotations

import numpy as np
import pytest

from fl_core.errors import ConfigError
from fl_core.recipes import RoundAbortedError, distributed_dp_sum


def test_the_noise_in_the_sum_is_at_least_what_is_accounted() -> None:
    rng = np.random.default_rng(0)
    ups = [rng.standard_normal(3000) * 0.01 for _ in range(10)]  # norm ~0.55 < C = 1
    res = distributed_dp_sum(ups, clip_norm=1.0, noise_multiplier=1.0, seed=3)
    noise = res.total - np.sum(ups, axis=0)
    assert res.survivors == tuple(range(10)) and res.min_survivors == 7
    assert abs(noise.std() / res.noise_stddev - 1) < 0.05 and res.noise_stddev >= 1.0


def test_dropouts_within_the_tolerance_still_release_enough_noise() -> None:
    ups = [np.zeros(2000) for _ in range(10)]
    res = distributed_dp_sum(
        ups, clip_norm=1.0, noise_multiplier=1.0, dropouts={0: "masked_input", 4: "masked_input"}, seed=1
    )
    assert len(res.survivors) == 8 and res.total.std() >= 0.95 * 1.0


def test_a_cohort_smaller_than_the_noise_needs_is_refused() -> None:
    ups = [np.zeros(100) for _ in range(10)]
    drops = {i: "masked_input" for i in range(4)}  # 6 survivors < ceil(0.7 * 10) = 7
    with pytest.raises(RoundAbortedError, match="nothing released"):
        distributed_dp_sum(ups, clip_norm=1.0, noise_multiplier=1.0, dropouts=drops)
    with pytest.raises(ConfigError, match="at least 2"):
        distributed_dp_sum([np.zeros(4)], clip_norm=1.0, noise_multiplier=1.0)
    with pytest.raises(ConfigError, match="one length"):
        distributed_dp_sum([np.zeros(4), np.zeros(5)], clip_norm=1.0, noise_multiplier=1.0)
    with pytest.raises(ConfigError, match="noise_multiplier"):
        distributed_dp_sum([np.zeros(4), np.zeros(4)], clip_norm=1.0, noise_multiplier=0.0)


def test_updates_are_clipped_before_they_are_summed() -> None:
    big = [np.full(500, 10.0) for _ in range(4)]
    res = distributed_dp_sum(big, clip_norm=0.5, noise_multiplier=0.01, seed=2, dropout_tolerance=0.0)
    expected = 4 * 0.5 * np.full(500, 1 / np.sqrt(500))
    np.testing.assert_allclose(res.total, expected, atol=6 * res.noise_stddev)  # unclipped: 40 each
