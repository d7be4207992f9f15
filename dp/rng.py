"""Noise generators: seeded from os.urandom unless the user asks for a seed (then flagged `seeded`)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from dp.errors import InvalidPrivacyParameterError


@dataclass(frozen=True)
class NoiseSource:
    """An explicit np.random.Generator plus whether it came from a user seed (not for production)."""

    generator: np.random.Generator
    seeded: bool


def noise_source(seed: int | None = None) -> NoiseSource:
    """A fresh generator: 256 bits from os.urandom, or the given seed (reproducible, labelled seeded)."""
    if seed is None:
        entropy = int.from_bytes(os.urandom(32), "big")
        return NoiseSource(np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy))), False)
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
    raise InvalidPrivacyParameterError(
        f"noise source must be a dp.NoiseSource (dp.noise_source()) or a numpy.random.Generator, "
        f"found {type(source).__name__}"
    )
