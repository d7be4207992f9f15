"""DP-SGD's noise and Poisson batches drawn several steps per call: the same values, from the same generator.

The secure stream (AES-CTR keyed from the OS) is what DP-SGD uses unless seeded; drawing ahead must not
change which values a seeded run gets (a call per step and a call per chunk fill them in the same order),
nor where unseeded noise comes from.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

import dp.local as local
from dp.csprng import _BLOCK, AesCtrGenerator
from dp.errors import InvalidPrivacyParameterError
from dp.local import DPSGDConfig, StepNoise, poisson_batches, train_dp_sgd


def _pcg(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 1])))


def _twin_aes(monkeypatch: pytest.MonkeyPatch) -> tuple[AesCtrGenerator, AesCtrGenerator]:
    """Two secure generators with the same key and counter (os.urandom pinned): the same keystream."""
    import dp.csprng as csprng

    monkeypatch.setattr(csprng.os, "urandom", lambda k: bytes(range(k)))
    return AesCtrGenerator(), AesCtrGenerator()


@pytest.mark.parametrize(("size", "steps"), [(6274, 480), (50_000, 7), (3, 1000), (300_000, 2)])
def test_step_noise_gives_the_values_of_one_call_per_step(size: int, steps: int) -> None:
    # chunks of several steps (and chunk ends that do not divide the steps) change no value
    ahead, per_step = StepNoise(_pcg(5), 0.7, size, steps), _pcg(5)
    for _ in range(steps):
        want = torch.from_numpy(per_step.normal(0.0, 0.7, size=size)).to(torch.float32)
        assert torch.equal(ahead.next(), want)
    with pytest.raises(InvalidPrivacyParameterError, match="no step is left"):
        ahead.next()


def test_step_noise_from_the_secure_stream_has_the_stated_distribution() -> None:
    noise = StepNoise(AesCtrGenerator(), 2.0, 1000, 300)
    z = torch.stack([noise.next() for _ in range(300)]).numpy().ravel()
    assert z.dtype == np.float32  # the parameters' dtype
    assert stats.kstest(z / 2.0, "norm").pvalue > 1e-4
    wide = StepNoise(AesCtrGenerator(), 2.0, 1000, 300, torch.float64)
    z64 = torch.stack([wide.next() for _ in range(300)]).numpy().ravel()
    assert len(np.unique(z64)) == len(z64)  # no block of the keystream is reused across steps or chunks


def test_poisson_batches_drawn_ahead_are_the_per_step_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    for n, steps in ((455, 480), (70_000, 5)):  # many steps per call; a call per step
        ref = _pcg(3)
        per_step = [np.flatnonzero(ref.random(n) < 0.14) for _ in range(steps)]
        ahead = list(poisson_batches(_pcg(3), n, 0.14, steps))
        assert len(ahead) == steps and all(np.array_equal(a, b) for a, b in zip(ahead, per_step, strict=True))
    a, b = _twin_aes(monkeypatch)
    per_step = [np.flatnonzero(b.random(455) < 0.14) for _ in range(50)]
    assert all(np.array_equal(x, y) for x, y in zip(poisson_batches(a, 455, 0.14, 50), per_step, strict=True))


def test_polar_blocks_do_not_repeat_and_are_independent() -> None:
    z = AesCtrGenerator().standard_normal(3 * 2 * _BLOCK + 5)
    assert len(np.unique(z)) == len(z)
    half = len(z) // 2
    assert abs(np.corrcoef(z[: half - 1], z[half : 2 * half - 1])[0, 1]) < 0.03  # u- and v-normals
    assert stats.kstest(z, "norm").pvalue > 1e-4


class _CountingAes(AesCtrGenerator):
    calls: list[tuple[str, int]] = []

    def normal(self, loc=0.0, scale=1.0, size=None):  # type: ignore[no-untyped-def]
        _CountingAes.calls.append(("normal", int(np.prod(size))))
        return super().normal(loc, scale, size)

    def random(self, size=None):  # type: ignore[no-untyped-def]
        _CountingAes.calls.append(("random", int(np.prod(size))))
        return super().random(size)


@pytest.mark.parametrize("mode", ["ghost", "hooks"])
def test_unseeded_dp_sgd_draws_its_noise_and_batches_from_the_secure_stream_in_few_calls(
    monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setattr(local, "AesCtrGenerator", _CountingAes)
    _CountingAes.calls = []
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 6)).astype(np.float32), rng.integers(0, 2, size=200)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))
    size = sum(p.numel() for p in model.parameters())
    cfg = DPSGDConfig(1.0, 1.0, 10, epochs=20, grad_sample_mode=mode)  # type: ignore[arg-type]
    res = train_dp_sgd(model, x, y, "cross_entropy", cfg)
    assert not res.seeded and res.steps == 400
    normals = [k for what, k in _CountingAes.calls if what == "normal"]
    uniforms = [k for what, k in _CountingAes.calls if what == "random"]
    assert sum(normals) == res.steps * size  # every step's noise came from the AES-CTR stream
    assert sum(uniforms) == res.steps * 200  # and every Poisson batch
    assert len(normals) <= 2 and len(uniforms) <= 2  # several steps per call (one per step: 400 each)
