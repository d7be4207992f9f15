"""Noise multiplier for a target (epsilon, delta, rounds, sampling rate), rounded toward more privacy.

method="rdp" bisects with dp_accounting.mechanism_calibration (which returns a parameter whose epsilon
gap is non-positive). For PLD, a few geometric steps and regula falsi to 3% on the pessimistic PLD on
`quick_epsilon`'s first grid (2,000 points of the loss range: an upper bound at ~0.03 s, where RDP took
0.1 s at small z) give a feasible upper end, and regula falsi on log epsilon vs log z searches below it
with the pessimistic PLD on the rung of `quick_epsilon`'s ladder that it settles on there (the same
number of points of each z's own privacy-loss range, so small z costs no more than large z). The result
is rounded up to 4 significant digits and checked with the reported number (`epsilon_for`,
quick_epsilon's certified bound), stepping up by the local slope if needed, so the returned z never
overshoots what privacy.json reports, and so never the true epsilon either. Every query answers in
under 2 s on the 2-core machine (docs/dp.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import dp_accounting as dpa
from dp_accounting import mechanism_calibration as mc
from dp_accounting.rdp import rdp_privacy_accountant as _rdp

from dp._checks import check_count, check_delta, check_epsilon, check_positive, check_rate
from dp.accountant import (
    DEFAULT_PLD_DISCRETIZATION,
    epsilon_for,
    pld_epsilon_on,
    quick_epsilon_and_grid,
    quick_rung,
    quiet_rdp,
)
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
    slope = 1.0  # |d log epsilon / d log z|: epsilon ~ 1/z far from the amplified regime
    try:
        if method == "rdp":
            z = mc.calibrate_dp_mechanism(
                _rdp.RdpAccountant,
                lambda z: _event(z, q, n),
                eps,
                d,
                mc.ExplicitBracketInterval(MIN_NOISE_MULTIPLIER, zmax),
                tol=1e-4,
            )
        else:  # a feasible upper end within 3%, by an upper bound that is cheap at every z
            if q == 1.0:

                def bound(z: float) -> float:
                    return epsilon_for(z, q, n, d)  # the closed form: exact and instant

            else:

                def bound(z: float) -> float:  # PLD on the ladder's first grid: an upper bound, ~0.03 s
                    return pld_epsilon_on(z, q, n, d, quick_rung(z, q, n, 0))

            z_hi = min(1.0, zmax)
            while bound(z_hi) > eps:
                if z_hi == zmax:  # RDP meets the target at zmax, the coarse PLD does not
                    raise CalibrationError(
                        f"target epsilon={eps} at delta={d} is met only at the largest noise multiplier "
                        f"allowed (max_noise_multiplier={zmax}) for {n} rounds at sampling rate {q}: "
                        "raise epsilon or max_noise_multiplier, or lower the rounds or the sampling rate"
                    )
                z_hi = min(2.0 * z_hi, zmax)
            while z_hi / 2 > MIN_NOISE_MULTIPLIER and bound(z_hi / 2) <= eps:
                z_hi /= 2
            z, slope = _pld_search(eps, d, q, n, *_bracket(bound, eps, z_hi))
    except (mc.NoBracketIntervalFoundError, ValueError) as err:
        raise CalibrationError(
            f"calibration for epsilon={eps}, delta={d}, q={q}, rounds={n} failed: {err}"
        ) from err
    z = _ceil_sig(z)
    # Verify with the reported number (epsilon_for: quick_epsilon's bound for PLD); in the rare case it is
    # above the target, step up (toward more privacy) by the local slope, never by less than 0.05%.
    for _ in range(50):
        got = epsilon_for(z, q, n, d, method=method, pld_discretization=pld_discretization)
        if got <= eps:
            return z
        z = _ceil_sig(z * max(1.0005, (got / eps) ** (1.0 / max(slope, 0.1)) * 1.0002))
    raise CalibrationError(f"calibrated z={z} still exceeds epsilon={eps} on the reporting grid")


def _bracket(bound: Callable[[float], float], eps: float, z_hi: float) -> tuple[float, float]:
    """A z within 3% above the smallest that `bound` (an upper bound on epsilon) accepts, and the slope
    |d log epsilon / d log z| there, from z_hi
    feasible and z_hi / 2 infeasible (or below MIN_NOISE_MULTIPLIER): a few regula falsi steps on log
    epsilon vs log z. The PLD search starts here and sizes its grid from here (RDP took 0.1 s an
    evaluation at small z, and its answer was 10-30% above PLD's)."""
    lo = max(z_hi / 2, MIN_NOISE_MULTIPLIER)
    if lo >= z_hi:
        return z_hi, 1.0
    f_lo, f_hi = math.log(bound(lo) / eps), math.log(bound(z_hi) / eps)
    if f_lo <= 0:
        return lo, 1.0
    x_lo, x_hi = math.log(lo), math.log(z_hi)
    for _ in range(6):
        if x_hi - x_lo <= 0.03:
            break
        x = x_hi - f_hi * (x_hi - x_lo) / (f_hi - f_lo)
        x = min(max(x, x_lo + 0.1 * (x_hi - x_lo)), x_hi - 0.1 * (x_hi - x_lo))
        f = math.log(bound(math.exp(x)) / eps)
        if f <= 0:
            x_hi, f_hi = x, f
        else:
            x_lo, f_lo = x, f
    return math.exp(x_hi), (f_lo - f_hi) / (x_hi - x_lo)


def _pld_search(
    eps: float, d: float, q: float, n: int, z_rdp: float, slope: float = 1.0
) -> tuple[float, float]:
    """The smallest z (to 1e-4 relative, rounded up to 4 significant digits) whose PLD epsilon, pessimistic
    and so an upper bound, is <= eps, below z_rdp (feasible for a coarser PLD, or RDP); returns that z and
    the slope |d log epsilon / d log z|.

    Every evaluation is on one rung of quick_epsilon's ladder: the one it settles on at z_rdp, i.e. the
    same number of points of each z's own privacy-loss range (a fixed grid asked small z for 60,000
    points, 0.4 s each, at q = 0.001), so the final check with quick_epsilon finds its value cached
    where it settles on the same rung. log epsilon is close to linear in log z, so Illinois regula falsi
    on that pair converges in a few evaluations; the first lower guess assumes epsilon ~ 1/z."""
    if q == 1.0:  # no sampling: the closed form, exact and instant

        def pld(z: float) -> float:
            return epsilon_for(z, q, n, d)

    else:
        _, grid = quick_epsilon_and_grid(z_rdp, q, n, d)
        rung = 0
        while quick_rung(z_rdp, q, n, rung) > grid:
            rung += 1

        def pld(z: float) -> float:
            return pld_epsilon_on(z, q, n, d, quick_rung(z, q, n, rung))

    hi, e_hi = z_rdp, pld(z_rdp)
    if e_hi > eps:  # the finer rung's bound sits above the target at the coarse answer: keep that
        return hi, 1.0
    lo = hi
    step = 1.0 / max(slope, 0.5)  # first step down sized by the coarse bound's slope, then by epsilon ~ 1/z
    for _ in range(60):  # step down until infeasible
        lo = max(_ceil_sig(hi * min(max((e_hi / eps) ** step * 0.999, 0.5), 0.999)), MIN_NOISE_MULTIPLIER)
        step = 1.0
        e_lo = pld(lo)
        if e_lo > eps:
            break
        if lo == MIN_NOISE_MULTIPLIER:
            raise CalibrationError(
                f"target epsilon={eps} is met even at noise multiplier {MIN_NOISE_MULTIPLIER} by PLD: the "
                "guarantee is vacuous at that level; choose a smaller epsilon or set the noise multiplier "
                "directly"
            )
        hi, e_hi = lo, e_lo
    x_lo, x_hi = math.log(lo), math.log(hi)
    f_lo, f_hi = math.log(e_lo / eps), math.log(e_hi / eps)  # > 0 infeasible, <= 0 feasible
    slope = (math.log(e_lo) - math.log(e_hi)) / (x_hi - x_lo)
    side = 0
    for _ in range(40):
        if x_hi - x_lo <= 1e-4 or f_hi > -2e-4:  # z to 1e-4, or epsilon within 0.02% of the target
            break
        x = x_hi - f_hi * (x_hi - x_lo) / (f_hi - f_lo)
        if not x_lo < x < x_hi:
            x = 0.5 * (x_lo + x_hi)
        z = _ceil_sig(math.exp(x))  # evaluate only values the caller can return (4 digits, rounded up)
        if z >= math.exp(x_hi) * (1 - 1e-12):
            break  # the feasible end is the smallest 4-digit value above the infeasible one
        x = math.log(z)
        f = math.log(pld(z) / eps)
        if f <= 0:
            x_hi, f_hi = x, f
            if side == -1:
                f_lo /= 2
            side = -1
        else:
            x_lo, f_lo = x, f
            if side == 1:
                f_hi /= 2
            side = 1
    z = _ceil_sig(math.exp(x_hi))
    pld(z)  # evaluated already unless the search ended on an unrounded end: the final check finds it cached
    return z, abs(slope)


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
