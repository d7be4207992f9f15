"""Noise for the clipped sum: central Gaussian, distributed Gaussian shares, and the distributed
discrete Gaussian for secure aggregation (Kairouz, Liu, Steinke ICML 2021), plus the DP-FedAvg estimator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import dp_accounting as dpa
import numpy as np

from dp import events as _events
from dp._checks import check_count, check_positive, check_rate
from dp.clipping import clip_l2
from dp.errors import CalibrationError, InvalidPrivacyParameterError
from dp.rng import NoiseSource, as_noise_source

# ---------------------------------------------------------------- continuous Gaussian


def gaussian_noise_sum(
    total: np.ndarray, noise_multiplier: float, clip_norm: float, source: NoiseSource | np.random.Generator
) -> np.ndarray:
    """Central DP: sum of clipped updates + N(0, (z C)^2 I) (McMahan et al. 2018, Alg. 1)."""
    z = check_positive("noise_multiplier", noise_multiplier)
    c = check_positive("clip_norm", clip_norm)
    x = np.asarray(total, dtype=np.float64)
    return x + as_noise_source(source).generator.normal(0.0, z * c, size=x.shape)


def distributed_gaussian_share(
    shape: tuple[int, ...] | int,
    noise_multiplier: float,
    clip_norm: float,
    min_cohort: int,
    source: NoiseSource | np.random.Generator,
) -> np.ndarray:
    """One client's share N(0, (z C)^2 / m_min): any >= m_min surviving shares carry >= the target noise.

    Dropouts remove shares, so the sum's variance is (z C)^2 * m / m_min for m survivors: never below
    the target while the protocol refuses cohorts smaller than m_min (its threshold). Account z.
    """
    z = check_positive("noise_multiplier", noise_multiplier)
    c = check_positive("clip_norm", clip_norm)
    m = check_count("min_cohort", min_cohort)
    return as_noise_source(source).generator.normal(0.0, z * c / math.sqrt(m), size=shape)


def dp_fedavg_estimate(noised_sum: np.ndarray, sampling_rate: float, population_weight: float) -> np.ndarray:
    """Fixed public denominator estimator (sum of clipped weighted updates + noise) / (q W).

    McMahan et al. ICLR 2018, Sec. 2 (f_f): unbiased for the weighted mean; the denominator does not depend
    on who was sampled, so it reveals nothing about the realized cohort.
    """
    q = check_rate("sampling_rate", sampling_rate)
    w = check_positive("population_weight", population_weight)
    return np.asarray(noised_sum, dtype=np.float64) / (q * w)


# ---------------------------------------------------------------- distributed discrete Gaussian


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def fwht(x: np.ndarray) -> np.ndarray:
    """Orthonormal fast Walsh-Hadamard transform of a power-of-two-length vector (its own inverse)."""
    n = x.shape[0]
    if n & (n - 1):
        raise InvalidPrivacyParameterError(f"fwht needs a power-of-two length, found {n}")
    y = np.array(x, dtype=np.float64)
    h = 1
    while h < n:
        y = y.reshape(-1, 2, h)
        y = np.stack((y[:, 0, :] + y[:, 1, :], y[:, 0, :] - y[:, 1, :]), axis=1)
        h *= 2
    return y.reshape(n) / math.sqrt(n)


def sample_discrete_gaussian(sigma: float, size: int, rng: np.random.Generator) -> np.ndarray:
    """N_Z(0, sigma^2) by rejection from a discrete Laplace (Canonne, Kamath, Steinke 2020, Alg. 3)."""
    s = check_positive("sigma", sigma)
    t = math.floor(s) + 1
    p = 1.0 - math.exp(-1.0 / t)
    out = np.empty(size, dtype=np.int64)
    todo = np.arange(size)
    while todo.size:
        k = todo.size
        y = (rng.geometric(p, size=k) - rng.geometric(p, size=k)).astype(np.int64)
        accept = rng.random(k) < np.exp(-((np.abs(y) - s * s / t) ** 2) / (2 * s * s))
        out[todo[accept]] = y[accept]
        todo = todo[~accept]
    return out


def _ddg_rdp_terms(
    delta2_sq: float, sigma: float, n: int, d: int, n_tau: int | None = None
) -> tuple[tuple[float, float], tuple[float, float]]:
    """KLS 2021 Thm. 1 / Prop. 14 (Eq. 17): two RDP bounds of the sum, each as (rho, xi): eps(a) = xi + rho a.

    With s = D / (sqrt(n) sigma) and tau = 10 sum_{k<n} exp(-2 pi^2 sigma^2 k / (k+1)):
    (s^2/2, tau d) and ((s + sqrt(d) tau)^2 / 2, 0). sigma and D are in integer units. `n` is the
    fewest noise shares a round can finish with (the s term); tau, which grows with the number of
    summed discrete Gaussians, is taken at `n_tau` (the most clients a round can have) when given.
    """
    n_t = n if n_tau is None else max(n, n_tau)
    tau = 10.0 * sum(math.exp(-2.0 * math.pi**2 * sigma**2 * k / (k + 1)) for k in range(1, n_t))
    scale = math.sqrt(delta2_sq / (n * sigma**2))
    return (scale**2 / 2.0, tau * d), ((scale + math.sqrt(d) * tau) ** 2 / 2.0, 0.0)


@dataclass(frozen=True)
class DiscreteGaussianParams:
    """Resolved parameters of the distributed discrete Gaussian for one (d, C, z, clients, bits) choice."""

    dim: int
    padded_dim: int
    clip_norm: float
    noise_multiplier: float
    min_clients: int
    max_clients: int
    bits: int
    gamma: float  # quantization step: real value of one integer unit
    local_sigma: float  # per-client discrete Gaussian scale, in integer units
    delta2_sq: float  # squared L2 sensitivity after conditional rounding, integer units
    beta: float
    k_stddevs: float
    rho: float  # RDP(a) <= xi + rho * a for every order a (KLS 2021 Thm. 1)
    xi: float

    @property
    def noise_inflation(self) -> float:
        """Effective noise loss vs a continuous Gaussian of multiplier z: sqrt(rho / rho_gaussian)."""
        return math.sqrt(self.rho * 2.0) * self.noise_multiplier

    @property
    def overflow_probability_per_coordinate(self) -> float:
        """Sub-Gaussian tail bound P(|sum_j| >= 2^(b-1)) <= 2 exp(-k^2/2) for one coordinate."""
        return min(1.0, 2.0 * math.exp(-(self.k_stddevs**2) / 2.0))

    @property
    def error_stddev(self) -> float:
        """Per-coordinate std of decoded sum minus clipped sum, in real units (rounding + noise), m=min."""
        return self.gamma * math.sqrt(self.min_clients * (0.25 + self.local_sigma**2))


def discrete_gaussian_params(
    dim: int,
    clip_norm: float,
    noise_multiplier: float,
    min_clients: int,
    *,
    max_clients: int | None = None,
    bits: int = 16,
    beta: float = math.exp(-0.5),
    k_stddevs: float = 4.0,
) -> DiscreteGaussianParams:
    """Pick gamma for `bits`: 2^b >= 2k sqrt(c^2 n^2/d + (gamma^2/4 + sigma^2) n) / gamma (KLS 2021 Sec. 5).

    The total noise std is z * C over min_clients shares; the modulus holds the sum of max_clients.
    """
    d = check_count("dim", dim)
    c = check_positive("clip_norm", clip_norm)
    z = check_positive("noise_multiplier", noise_multiplier)
    n_min = check_count("min_clients", min_clients)
    n_max = n_min if max_clients is None else check_count("max_clients", max_clients, n_min)
    b = check_count("bits", bits, 2)
    if b > 32:
        raise InvalidPrivacyParameterError(f"bits must be <= 32 (secagg ring Z_2^32), found {bits!r}")
    if not 0.0 < beta < 1.0:
        raise InvalidPrivacyParameterError(f"beta must be in (0, 1), found {beta!r}")
    k = check_positive("k_stddevs", k_stddevs)
    dp2 = _next_pow2(d)
    sigma_real = z * c / math.sqrt(n_min)  # per-client std in real units
    room = 4.0**b - k * k * n_max
    if room <= 0:
        raise CalibrationError(
            f"bits={b} cannot hold {n_max} clients at k={k} standard deviations: need 4^b > k^2 n; raise bits"
        )
    gamma = 2.0 * k * math.sqrt((c * c * n_max * n_max / dp2 + sigma_real**2 * n_max) / room)
    local_sigma = sigma_real / gamma
    ct = c / gamma
    delta2_sq = min(
        ct * ct + dp2 / 4.0 + math.sqrt(2.0 * math.log(1.0 / beta)) * (ct + math.sqrt(dp2) / 2.0),
        (ct + math.sqrt(dp2)) ** 2,
    )
    t1, t2 = _ddg_rdp_terms(delta2_sq, local_sigma, n_min, dp2, n_max)
    rho, xi = t1 if t1[1] <= 1e-6 or t1[0] + t1[1] <= t2[0] else t2
    return DiscreteGaussianParams(
        dim=d,
        padded_dim=dp2,
        clip_norm=c,
        noise_multiplier=z,
        min_clients=n_min,
        max_clients=n_max,
        bits=b,
        gamma=gamma,
        local_sigma=local_sigma,
        delta2_sq=delta2_sq,
        beta=float(beta),
        k_stddevs=k,
        rho=rho,
        xi=xi,
    )


def discrete_gaussian_event(params: DiscreteGaussianParams) -> dpa.DpEvent:
    """One round of the distributed discrete Gaussian as (xi, rho)-zCDP (no sampling amplification)."""
    return _events.zcdp(params.rho, params.xi)


def bits_guidance(
    dim: int, clip_norm: float, noise_multiplier: float, min_clients: int, max_clients: int | None = None
) -> list[tuple[int, float]]:
    """(bits, noise inflation vs continuous Gaussian) for bits 8..32; infeasible widths are omitted."""
    out = []
    for b in range(8, 33, 2):
        try:
            p = discrete_gaussian_params(
                dim, clip_norm, noise_multiplier, min_clients, max_clients=max_clients, bits=b
            )
        except CalibrationError:
            continue
        out.append((b, p.noise_inflation))
    return out


def _rotation_signs(seed: bytes, n: int) -> np.ndarray:
    if not isinstance(seed, bytes | bytearray) or len(seed) < 16:
        raise InvalidPrivacyParameterError(
            f"rotation_seed must be >= 16 bytes of public randomness, found {seed!r}"
        )
    g = np.random.Generator(np.random.PCG64(np.random.SeedSequence(int.from_bytes(bytes(seed), "big"))))
    return g.choice(np.array([-1.0, 1.0]), size=n)


class DistributedDiscreteGaussian:
    """Client encoder / server decoder of KLS 2021 (Alg. 1-2): clip, rotate, scale, round, noise, mod 2^b.

    rotation_seed is public randomness shared by all clients and the server for one round (e.g. derived
    from the round id); it must not be chosen by the server after seeing the cohort.
    """

    def __init__(self, params: DiscreteGaussianParams, rotation_seed: bytes) -> None:
        self.params = params
        self._signs = _rotation_signs(rotation_seed, params.padded_dim)

    def rotate(self, x: np.ndarray) -> np.ndarray:
        p = np.zeros(self.params.padded_dim)
        p[: self.params.dim] = x
        return fwht(self._signs * p)

    def unrotate(self, y: np.ndarray) -> np.ndarray:
        return (self._signs * fwht(y))[: self.params.dim]

    def encode(self, update: np.ndarray, source: NoiseSource | np.random.Generator) -> np.ndarray:
        """One client's vector in Z_{2^b} (uint32): its clipped, rotated, rounded, noised update."""
        return np.mod(self.encode_unreduced(update, source), 1 << self.params.bits).astype(np.uint32)

    def encode_unreduced(self, update: np.ndarray, source: NoiseSource | np.random.Generator) -> np.ndarray:
        """The same vector before the reduction mod 2^b (int64), for diagnostics and overflow checks."""
        p = self.params
        x = np.asarray(update, dtype=np.float64).ravel()
        if x.shape[0] != p.dim:
            raise InvalidPrivacyParameterError(f"update must have dim {p.dim}, found {x.shape[0]}")
        scaled = self.rotate(clip_l2(x, p.clip_norm).clipped) / p.gamma
        rng = as_noise_source(source).generator
        floor = np.floor(scaled)
        for _ in range(1000):  # conditional randomized rounding: retry until within the sensitivity bound
            r = (floor + (rng.random(scaled.shape) < (scaled - floor))).astype(np.int64)
            if float(np.dot(r, r)) <= p.delta2_sq:
                break
        else:
            raise CalibrationError(f"randomized rounding exceeded the bound 1000 times (beta={p.beta})")
        return r + sample_discrete_gaussian(p.local_sigma, p.padded_dim, rng)

    def decode(self, sum_mod: np.ndarray) -> np.ndarray:
        """The server's estimate of the sum of clipped updates from the sum mod 2^b (unrotate, unscale)."""
        p = self.params
        s = np.asarray(sum_mod, dtype=np.int64) % (1 << p.bits)
        half = 1 << (p.bits - 1)
        centred = np.where(s >= half, s - (1 << p.bits), s).astype(np.float64)
        return self.unrotate(centred * p.gamma)
