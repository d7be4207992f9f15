"""Every mechanism privagg runs, as a dp_accounting DpEvent: one vocabulary shared by all accountants.

Builders validate at the boundary and return plain dp_accounting events, so any dp_accounting
accountant (or privagg's PrivacyAccountant) can compose them.
"""

from __future__ import annotations

import dp_accounting as dpa

from dp._checks import check_count, check_nonnegative, check_positive, check_rate
from dp.errors import InvalidPrivacyParameterError


def gaussian(noise_multiplier: float) -> dpa.GaussianDpEvent:
    """Gaussian mechanism with noise std = noise_multiplier * L2 sensitivity (one round, no sampling)."""
    return dpa.GaussianDpEvent(check_positive("noise_multiplier", noise_multiplier))


def poisson_round(noise_multiplier: float, sampling_rate: float) -> dpa.DpEvent:
    """One DP-FedAvg round (McMahan et al. 2018): Poisson-sampled cohort at rate q, Gaussian on the sum."""
    q = check_rate("sampling_rate", sampling_rate)
    g = gaussian(noise_multiplier)
    return g if q == 1.0 else dpa.PoissonSampledDpEvent(q, g)


def fixed_cohort_round(noise_multiplier: float, cohort_size: int, population: int) -> dpa.DpEvent:
    """One round with a cohort of m drawn without replacement from N (replace-one neighbours; RDP only).

    Under replace-one a client's clipped update can change from v to -v, so the sum's sensitivity is 2C:
    the inner Gaussian carries multiplier z/2 (std z C over sensitivity 2 C), as Wang, Balle and
    Kasiviswanathan (AISTATS 2019, Thm. 27) require of the base mechanism.
    """
    m = check_count("cohort_size", cohort_size)
    n = check_count("population", population)
    if m > n:
        raise InvalidPrivacyParameterError(f"cohort_size must be <= population={n}, found {cohort_size!r}")
    g = gaussian(noise_multiplier)
    return dpa.SampledWithoutReplacementDpEvent(
        source_dataset_size=n, sample_size=m, event=dpa.GaussianDpEvent(g.noise_multiplier / 2.0)
    )


def repeated(event: dpa.DpEvent, count: int) -> dpa.DpEvent:
    """The same event run `count` times (rounds, or local steps)."""
    c = check_count("count", count)
    return event if c == 1 else dpa.SelfComposedDpEvent(event, c)


def rounds(noise_multiplier: float, sampling_rate: float, num_rounds: int) -> dpa.DpEvent:
    """`num_rounds` Poisson-sampled Gaussian rounds."""
    return repeated(poisson_round(noise_multiplier, sampling_rate), num_rounds)


def dp_sgd(noise_multiplier: float, sample_rate: float, steps: int) -> dpa.DpEvent:
    """DP-SGD local training (Abadi et al. 2016): `steps` Poisson-sampled Gaussian steps at rate q = B/N."""
    return repeated(poisson_round(noise_multiplier, sample_rate), steps)


def zcdp(rho: float, xi: float = 0.0) -> dpa.ZCDpEvent:
    """(xi, rho)-zCDP: RDP(a) <= xi + rho a (Bun & Steinke 2016); the discrete mechanism's event."""
    return dpa.ZCDpEvent(check_nonnegative("rho", rho), check_nonnegative("xi", xi))


def composed(events: list[dpa.DpEvent]) -> dpa.DpEvent:
    """Several mechanisms applied to the same data (e.g. one round of local DP-SGD plus a count)."""
    if not events:
        raise InvalidPrivacyParameterError(f"events must be non-empty, found {events!r}")
    return events[0] if len(events) == 1 else dpa.ComposedDpEvent(list(events))
