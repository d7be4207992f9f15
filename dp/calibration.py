"""Noise multiplier for a target (epsilon, delta, rounds, sampling rate), rounded toward more privacy.

RDP first (dp_accounting.mechanism_calibration: bisection that returns a parameter whose epsilon gap is
non-positive); RDP is never below PLD, so its answer is always feasible. For PLD the search then
bisects below it on `quick_epsilon` (a certified upper bound within 0.5% of the fine PLD, whose grid
follows the loss range, so small z costs no more than large z). The result is rounded up to 4
significant digits and re-checked at the accountant's reporting discretization, so the returned z never
overshoots the target.
"""

from __future__ import annotations

import math

import dp_accounting as dpa
from dp_accounting import mechanism_calibration as mc
from dp_accounting.rdp import rdp_privacy_accountant as _rdp

from dp._checks import check_count, check_delta, check_epsilon, check_positive, check_rate
from dp.accountant import DEFAULT_PLD_DISCRETIZATION, epsilon_for, quick_epsilon, quiet_rdp
from dp.errors import CalibrationError, InvalidPrivacyParameterError

MIN_NOISE_MULTIPLIER = 0.05


def _ceil_sig(x: float, digits: int = 4) -> float:
    """Round x up to `digits` significant digits (toward more noise, i.e. more privacy)."""
    scale = 10 ** (digits - 1 - math.floor(math.log10(x)))
    return math.ceil(x * scale - 1e-9) / scale


def _event(z: float, q: float, rounds: int) -> dpa.DpEvent:
    inner = dpa.GaussianDpEvent(z)
    ev = inner if q == 1.0 else dpa.PoissonSampledDpEvent(q, inner)
    return dpa.SelfComposedDpEvent(ev, rounds)


@quiet_rdp()  # dp_accounting logs every skipped RDP order during the bracket search
def calibrate_noise(
    target_epsilon: float,
    delta: float,
    sampling_rate: float,
    rounds: int,
    *,
    method: str = "pld",
    max_noise_multiplier: float = 1000.0,
    pld_discretization: float = DEFAULT_PLD_DISCRETIZATION,
) -> float:
    """Smallest noise multiplier z (to 4 significant digits, rounded up) with epsilon(delta) <= target."""
    eps = check_epsilon(target_epsilon, "target_epsilon")
    d = check_delta(delta)
    q = check_rate("sampling_rate", sampling_rate)
    n = check_count("rounds", rounds)
    zmax = check_positive("max_noise_multiplier", max_noise_multiplier)
    if method not in ("pld", "rdp"):
        raise InvalidPrivacyParameterError(f"method must be 'pld' or 'rdp', found {method!r}")

    def rdp_eps(z: float) -> float:
        return _rdp.RdpAccountant().compose(_event(z, q, n)).get_epsilon(d)

    if rdp_eps(zmax) > eps:
        raise CalibrationError(
            f"target epsilon={eps} at delta={d} needs a noise multiplier above max_noise_multiplier={zmax} "
            f"for {n} rounds at sampling rate {q}: raise epsilon, or lower the rounds or the sampling rate"
        )
    if rdp_eps(MIN_NOISE_MULTIPLIER) <= eps:  # RDP >= PLD, so PLD is met there too
        raise CalibrationError(
            f"target epsilon={eps} is met even at noise multiplier {MIN_NOISE_MULTIPLIER}: the guarantee "
            f"is vacuous at that level; choose a smaller epsilon or set the noise multiplier directly"
        )
    try:
        z_rdp = mc.calibrate_dp_mechanism(
            _rdp.RdpAccountant,
            lambda z: _event(z, q, n),
            eps,
            d,
            mc.ExplicitBracketInterval(MIN_NOISE_MULTIPLIER, zmax),
            tol=1e-4,
        )
        z = z_rdp
        if method == "pld":
            z = _pld_search(eps, d, q, n, z_rdp)
    except (mc.NoBracketIntervalFoundError, ValueError) as err:
        raise CalibrationError(
            f"calibration for epsilon={eps}, delta={d}, q={q}, rounds={n} failed: {err}"
        ) from err
    z = _ceil_sig(z)
    # Verify on the reporting grid; step up (toward more privacy) in the rare case the grids disagree.
    for _ in range(50):
        if epsilon_for(z, q, n, d, method=method, pld_discretization=pld_discretization) <= eps:
            return z
        z = _ceil_sig(z * 1.0005)
    raise CalibrationError(f"calibrated z={z} still exceeds epsilon={eps} on the reporting grid")


def _quick(z: float, q: float, n: int, d: float) -> float:
    """The search's epsilon: quick_epsilon, a certified upper bound within 0.5% of the fine PLD (cheap at
    any z: its grid follows the loss range), or the exact closed form without sampling."""
    return epsilon_for(z, q, n, d) if q == 1.0 else quick_epsilon(z, q, n, d)


def _pld_search(eps: float, d: float, q: float, n: int, z_rdp: float) -> float:
    """Bisection for the smallest z with quick epsilon <= eps, between an infeasible lower end and z_rdp
    (feasible: RDP >= PLD); returns the feasible end. The bracket shrinks by 0.8x steps from z_rdp (PLD is
    at most ~15% tighter than RDP here), never below MIN_NOISE_MULTIPLIER."""
    hi = z_rdp
    if _quick(hi, q, n, d) > eps:  # within the quick bound's 0.5% of the RDP answer: keep RDP's
        return hi
    lower = max(0.8 * hi, MIN_NOISE_MULTIPLIER)
    while _quick(lower, q, n, d) <= eps:
        if lower == MIN_NOISE_MULTIPLIER:
            raise CalibrationError(
                f"target epsilon={eps} is met even at noise multiplier {MIN_NOISE_MULTIPLIER} by PLD: the "
                "guarantee is vacuous at that level; choose a smaller epsilon or set the noise multiplier "
                "directly"
            )
        hi, lower = lower, max(0.8 * lower, MIN_NOISE_MULTIPLIER)
    lo = lower
    while hi - lo > 1e-4 * hi:
        mid = 0.5 * (lo + hi)
        if _quick(mid, q, n, d) <= eps:
            hi = mid
        else:
            lo = mid
    return hi


def dp_sgd_steps(dataset_size: int, batch_size: int, epochs: int) -> int:
    """Number of DP-SGD steps: epochs * ceil(N / B) (Opacus' len(data_loader) per epoch)."""
    n = check_count("dataset_size", dataset_size)
    b = check_count("batch_size", batch_size)
    e = check_count("epochs", epochs)
    if b > n:
        raise InvalidPrivacyParameterError(f"batch_size must be <= dataset_size={n}, found {batch_size!r}")
    return e * math.ceil(n / b)


def calibrate_dp_sgd(
    target_epsilon: float, delta: float, dataset_size: int, batch_size: int, epochs: int
) -> float:
    """Noise multiplier for DP-SGD with Poisson rate B/N over epochs * ceil(N/B) steps."""
    steps = dp_sgd_steps(dataset_size, batch_size, epochs)
    check_delta(delta, population=dataset_size)
    return calibrate_noise(target_epsilon, delta, batch_size / dataset_size, steps)
