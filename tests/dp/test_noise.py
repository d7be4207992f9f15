"""Noise has the stated variance; shares sum to the target; the discrete mechanism decodes in range."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.linalg import hadamard

from dp.accountant import PrivacyAccountant, epsilon_for
from dp.errors import CalibrationError, InvalidPrivacyParameterError
from dp.noise import (
    DistributedDiscreteGaussian,
    bits_guidance,
    discrete_gaussian_event,
    discrete_gaussian_params,
    distributed_gaussian_share,
    dp_fedavg_estimate,
    fwht,
    gaussian_noise_sum,
    sample_discrete_gaussian,
)
from dp.rng import noise_source


def _rel_var_error(samples: np.ndarray, target_var: float) -> float:
    return abs(float(np.var(samples)) / target_var - 1.0)


def test_central_noise_has_stated_variance() -> None:
    # 200k draws: the sample variance has relative sd sqrt(2/n) = 0.3%; a 10% error fails the 3% bound.
    z, c = 1.3, 0.7
    out = gaussian_noise_sum(np.zeros(200_000), z, c, noise_source(11))
    assert _rel_var_error(out, (z * c) ** 2) < 0.03
    assert abs(float(np.mean(out))) < 5 * z * c / math.sqrt(200_000)


def test_distributed_shares_sum_to_target_noise() -> None:
    z, c, m_min, d = 1.0, 2.0, 10, 50_000
    src = noise_source(5)
    total = sum(distributed_gaussian_share(d, z, c, m_min, src) for _ in range(m_min))
    assert _rel_var_error(total, (z * c) ** 2) < 0.03
    # More survivors than the floor only add noise: m = 2 m_min gives twice the variance.
    more = sum(distributed_gaussian_share(d, z, c, m_min, src) for _ in range(2 * m_min))
    assert _rel_var_error(more, 2 * (z * c) ** 2) < 0.03


def test_dp_fedavg_fixed_denominator() -> None:
    s = np.array([2.0, -4.0])
    assert np.allclose(dp_fedavg_estimate(s, 0.1, 200.0), s / 20.0)
    with pytest.raises(InvalidPrivacyParameterError, match="0.0"):
        dp_fedavg_estimate(s, 0.0, 200.0)


def test_fwht_is_orthonormal_hadamard() -> None:
    x = np.random.default_rng(0).normal(size=64)
    assert np.allclose(fwht(x), hadamard(64) @ x / 8.0)
    assert np.allclose(fwht(fwht(x)), x)
    with pytest.raises(InvalidPrivacyParameterError, match="48"):
        fwht(np.ones(48))


def test_discrete_gaussian_sampler_moments() -> None:
    sigma = 3.7
    s = sample_discrete_gaussian(sigma, 200_000, np.random.default_rng(1))
    assert s.dtype == np.int64
    assert abs(float(np.mean(s))) < 5 * sigma / math.sqrt(200_000)
    assert _rel_var_error(s, sigma**2) < 0.03  # N_Z(0, s^2) has variance within 1e-10 of s^2 for s > 1


def test_ddg_decodes_within_stated_error() -> None:
    n, d, c = 20, 1000, 1.0
    p = discrete_gaussian_params(d, c, 1.0, n, bits=16)
    assert p.padded_dim == 1024
    mech = DistributedDiscreteGaussian(p, b"round-7-public-seed")
    rng = np.random.default_rng(2)
    src = noise_source(9)
    errs = []
    for _ in range(3):
        xs = [rng.normal(size=d) * 0.1 for _ in range(n)]
        enc = [mech.encode(x, src) for x in xs]
        assert all(e.dtype == np.uint32 and int(e.max()) < 2**16 for e in enc)
        total = np.sum([e.astype(np.int64) for e in enc], axis=0)  # the secure sum, any reduction mod 2^b
        truth = np.sum([x / max(1.0, np.linalg.norm(x) / c) for x in xs], axis=0)
        errs.append(mech.decode(total) - truth)
    err = np.concatenate(errs)
    assert abs(float(np.std(err)) / p.error_stddev - 1.0) < 0.1
    # The error is mostly the intended noise z*C, not rounding: inflation under 1% at 16 bits.
    assert p.error_stddev == pytest.approx(1.0, rel=0.01)


def test_ddg_stays_in_modulus_with_stated_probability() -> None:
    # Worst case for wrap-around: every client sends the same unit vector. With k = 2 the per-coordinate
    # bound 2 exp(-k^2/2) = 0.27 is not vacuous; the empirical wrap fraction must stay below it.
    n, d = 16, 256
    p = discrete_gaussian_params(d, 1.0, 0.5, n, bits=8, k_stddevs=2.0)
    mech = DistributedDiscreteGaussian(p, b"0123456789abcdef")
    x = np.zeros(d)
    x[0] = 1.0
    src = noise_source(4)
    half = 2 ** (p.bits - 1)
    fractions = []
    for _ in range(5):
        s = np.sum([mech.encode_unreduced(x, src) for _ in range(n)], axis=0)
        fractions.append(float(np.mean(np.abs(s) >= half)))
    assert np.mean(fractions) <= p.overflow_probability_per_coordinate
    assert p.overflow_probability_per_coordinate == pytest.approx(2 * math.exp(-2.0))


def test_ddg_privacy_close_to_gaussian_at_16_bits_and_worse_at_8() -> None:
    z, n, d, delta = 1.0, 50, 4096, 1e-5
    p16 = discrete_gaussian_params(d, 1.0, z, n, bits=16)
    p8 = discrete_gaussian_params(d, 1.0, z, n, bits=8)
    gauss = epsilon_for(z, 1.0, 1, delta, method="rdp")

    def eps(p) -> float:
        acc = PrivacyAccountant(delta=delta)
        acc.commit(discrete_gaussian_event(p))
        return acc.epsilon()

    assert gauss <= eps(p16) <= 1.01 * gauss
    assert eps(p8) > 1.05 * gauss
    guide = dict(bits_guidance(d, 1.0, z, n))
    assert guide[16] < guide[10] and guide[16] == pytest.approx(1.0, abs=0.01)


def test_ddg_bad_parameters() -> None:
    with pytest.raises(InvalidPrivacyParameterError, match="40"):
        discrete_gaussian_params(10, 1.0, 1.0, 5, bits=40)
    with pytest.raises(CalibrationError, match="bits=4"):
        discrete_gaussian_params(10, 1.0, 1.0, 5, max_clients=100, bits=4)
    with pytest.raises(InvalidPrivacyParameterError, match="rotation_seed"):
        DistributedDiscreteGaussian(discrete_gaussian_params(10, 1.0, 1.0, 5), b"short")
    mech = DistributedDiscreteGaussian(discrete_gaussian_params(10, 1.0, 1.0, 5), b"x" * 16)
    with pytest.raises(InvalidPrivacyParameterError, match="11"):
        mech.encode(np.ones(11), noise_source())


def test_noise_source_seeding() -> None:
    assert noise_source(3).seeded and not noise_source().seeded
    a, b = noise_source(3).generator.normal(size=4), noise_source(3).generator.normal(size=4)
    assert np.array_equal(a, b)
    assert not np.array_equal(
        noise_source().generator.normal(size=4), noise_source().generator.normal(size=4)
    )
    with pytest.raises(InvalidPrivacyParameterError, match="-1"):
        noise_source(-1)
