"""Noise generators: an AES-CTR stream keyed from os.urandom (`dp.csprng`) unless the user asks for a seed
(then numpy's PCG64, reproducible and flagged `seeded`: not for production)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dp.csprng import AesCtrGenerator
from dp.errors import InvalidPrivacyParameterError


@dataclass(frozen=True)
class NoiseSource:
    """A generator (secure AES-CTR, or a seeded numpy Generator) plus whether it came from a user seed."""

    generator: np.random.Generator | AesCtrGenerator
    seeded: bool


def noise_source(seed: int | None = None) -> NoiseSource:
    """A fresh generator: AES-256-CTR keyed from os.urandom, or PCG64 from the given seed (reproducible,
    labelled seeded)."""
    if seed is None:
        return NoiseSource(AesCtrGenerator(), False)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InvalidPrivacyParameterError(f"seed must be a non-negative integer or None, found {seed!r}")
    return NoiseSource(np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed)))), True)


def as_noise_source(source: NoiseSource | np.random.Generator) -> NoiseSource:
    """Accept privagg's NoiseSource or a numpy Generator (taken as user-seeded: not for production);
    anything else is a typed error at the boundary, not an AttributeError deep inside."""
    if isinstance(source, NoiseSource):
        return source
    if isinstance(source, np.random.Generator):
        return NoiseSource(source, True)
    if isinstance(source, AesCtrGenerator):
        return NoiseSource(source, False)
    raise InvalidPrivacyParameterError(
        f"noise source must be a dp.NoiseSource (dp.noise_source()), a dp.csprng.AesCtrGenerator or a "
        "numpy.random.Generator, "
        f"found {type(source).__name__}"
    )
