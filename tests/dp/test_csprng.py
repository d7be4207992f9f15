"""The secure noise stream: right distributions, keyed from the OS, and what DP uses unless seeded."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from dp.csprng import AesCtrGenerator
from dp.errors import InvalidPrivacyParameterError
from dp.noise import gaussian_noise_sum, sample_discrete_gaussian
from dp.rng import as_noise_source, noise_source


def test_uniforms_and_normals_have_the_stated_distributions() -> None:
    g = AesCtrGenerator()
    u = g.random(200_000)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 1e-4
    z = g.normal(0.0, 2.0, size=(300, 401))  # odd count: polar-method pairs are trimmed
    assert z.shape == (300, 401)
    assert stats.kstest(z.ravel() / 2.0, "norm").pvalue > 1e-4
    assert abs(z.std() / 2.0 - 1) < 0.01 and abs(z.mean()) < 0.02
    assert isinstance(g.normal(1.0, 0.0), float) and g.normal(1.0, 0.0) == 1.0


def test_geometric_matches_numpy_convention() -> None:
    g = AesCtrGenerator()
    p = 0.3
    k = g.geometric(p, size=100_000)
    assert k.min() >= 1
    assert abs(k.mean() - 1 / p) < 0.05 and abs(k.var() - (1 - p) / p**2) < 0.3
    assert np.all(g.geometric(1.0, size=5) == 1)


def test_two_streams_are_independent_and_never_repeat() -> None:
    a, b = AesCtrGenerator(), AesCtrGenerator()
    x, y = a.random(10_000), b.random(10_000)
    assert not np.array_equal(x, y)
    assert abs(np.corrcoef(x, y)[0, 1]) < 0.05
    assert not np.array_equal(x, a.random(10_000))  # the stream moves on


def test_unseeded_noise_comes_from_the_secure_stream_and_seeded_from_numpy() -> None:
    src = noise_source(None)
    assert isinstance(src.generator, AesCtrGenerator) and not src.seeded
    seeded = noise_source(3)
    assert isinstance(seeded.generator, np.random.Generator) and seeded.seeded
    total = gaussian_noise_sum(np.zeros(50_000), 1.0, 0.5, src)
    assert abs(total.std() - 0.5) < 0.01
    ints = sample_discrete_gaussian(3.0, 50_000, AesCtrGenerator())
    assert abs(ints.std() - 3.0) < 0.06 and ints.dtype == np.int64
    assert as_noise_source(AesCtrGenerator()).seeded is False


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_bad_arguments_are_typed_errors(bad: float) -> None:
    g = AesCtrGenerator()
    with pytest.raises(InvalidPrivacyParameterError):
        g.normal(0.0, bad, size=3)
    with pytest.raises(InvalidPrivacyParameterError):
        g.geometric(bad if bad < 0 else 1.5)
