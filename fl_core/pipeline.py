"""The private round, stage by stage (DESIGN.md section 2):

    train -> clip -> noise -> encode -> mask -> sum -> unmask -> decode -> aggregate -> account

`RoundPipeline.client_side` is what runs on a device after local training (clip, noise share, pack the
weight and metrics); `RoundPipeline.transmit` moves the contributions to the server, either in plaintext
(`fl_core.wire`) or through `secagg.secure_sum` (encode, mask, sum, unmask, decode: the server side then
only ever holds secagg messages and the sum); `RoundPipeline.server_side` adds central noise, divides by
the public denominator, steps the adaptive clip norm and the strategy, and charges the accountant.
Each stage is owned by its package: clipping and noise by `dp`, masking by `secagg`, the rule by the strategy.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

import secagg
from dp import events as dp_events
from dp.accountant import ClientLedgers, PrivacyAccountant
from dp.clipping import AdaptiveClipper, clip_l2
from dp.errors import DPError
from dp.noise import (
    DiscreteGaussianParams,
    DistributedDiscreteGaussian,
    discrete_gaussian_event,
    discrete_gaussian_params,
    distributed_gaussian_share,
    gaussian_noise_sum,
)
from dp.rng import noise_source
from fl_core.errors import ConfigError, UpdateRejectedError
from fl_core.sampling import ClientSampler
from fl_core.strategies import Strategy
from fl_core.types import ClientUpdate, ModelVector
from fl_core.wire import UPLOAD_BITS, decode_update, encode_update, validate_update

DPMode = Literal["none", "central", "distributed", "local"]
#: secagg stages in protocol order, preceded by local training (a client can vanish during any of them).
STAGES = ("training", "advertise_keys", "share_keys", "masked_input", "consistency", "unmask")


@dataclass(frozen=True)
class PrivacySpec:
    """Which privacy layers a run uses, and their parameters.

    dp: none | central (trusted server adds N(0, (zC)^2) to the sum) | distributed (each client adds a
    share; needs secagg) | local (sample-level DP-SGD in every client through Opacus).
    """

    dp: DPMode = "none"
    secagg: bool = False
    clip_norm: float = 1.0
    noise_multiplier: float = 1.0
    adaptive_clipping: bool = False
    target_quantile: float = 0.5
    clip_learning_rate: float = 0.2
    delta: float = 1e-5
    max_epsilon: float | None = None
    noise_seed: int | None = None
    secagg_range: float = 1.0
    weight_cap: int = 1000
    metric_scale: float = 100.0
    dropout_tolerance: float = 0.3
    corrupt_fraction: float = 0.05
    mechanism: Literal["gaussian", "discrete_gaussian"] = "gaussian"
    ddg_bits: int = 16

    def __post_init__(self) -> None:
        if self.dp not in ("none", "central", "distributed", "local"):
            raise ConfigError(f"dp.mode must be none, central, distributed or local, got {self.dp!r}")
        if self.dp == "distributed" and not self.secagg:
            raise ConfigError(
                "dp.mode='distributed' needs secagg.enabled=true: without secure aggregation the server "
                "sees every client's update carrying only its small share of the noise"
            )
        if self.mechanism not in ("gaussian", "discrete_gaussian"):
            raise ConfigError(f"dp.mechanism must be gaussian or discrete_gaussian, got {self.mechanism!r}")
        if self.mechanism == "discrete_gaussian":
            if self.dp != "distributed":
                raise ConfigError(
                    "dp.mechanism='discrete_gaussian' is the distributed mechanism: set dp.mode='distributed'"
                )
            if self.adaptive_clipping:
                raise ConfigError(
                    "dp.adaptive_clipping is not available with the discrete Gaussian mechanism"
                )
            if not 2 <= self.ddg_bits <= 32:
                raise ConfigError(f"dp.ddg_bits must be in [2, 32], got {self.ddg_bits}")
        if self.adaptive_clipping and not self.client_level_dp:
            raise ConfigError(
                "dp.adaptive_clipping needs client-level DP (dp.mode='central' or 'distributed')"
            )
        if self.max_epsilon is not None and self.dp == "none":
            raise ConfigError("dp.max_epsilon is set but dp.mode='none': there is no budget to enforce")
        for key in ("clip_norm", "noise_multiplier", "secagg_range", "metric_scale"):
            v = getattr(self, key)
            if not (np.isfinite(v) and v > 0):
                raise ConfigError(f"{key} must be > 0, got {v}")
        if self.weight_cap < 1:
            raise ConfigError(f"secagg.weight_cap must be >= 1, got {self.weight_cap}")
        if not 0.0 <= self.dropout_tolerance < 1.0:
            raise ConfigError(f"secagg.dropout_tolerance must be in [0, 1), got {self.dropout_tolerance}")

    @property
    def client_level_dp(self) -> bool:
        return self.dp in ("central", "distributed")


@dataclass
class Sums:
    """What the server learns from a round's contributions: sums only (plus who survived)."""

    delta: np.ndarray
    weight: float
    loss: float
    indicator: float
    survivors: tuple[int, ...]
    started: int = 0  # clients that began the round (sizes the distributed noise floor)
    clipped_coords: int = 0  # secagg: coordinates that fell outside the encoding range (summed count)


@dataclass
class Transmission:
    """The outcome of moving one round's contributions to the server."""

    sums: Sums | None
    rejected: tuple[int, ...] = ()
    bytes_up: dict[int, int] = field(default_factory=dict)
    bytes_down: dict[int, int] = field(default_factory=dict)
    client_cpu_s: dict[int, float] = field(default_factory=dict)
    server_cpu_s: float = 0.0
    max_abs_error: float = 0.0
    aborted: str | None = None
    transcript: tuple[Any, ...] = ()


class RoundPipeline:
    """The privacy stages of every round of one run, with the state they carry (clip norm, ledgers)."""

    def __init__(
        self,
        spec: PrivacySpec,
        *,
        dim: int,
        sampler: ClientSampler,
        strategy: Strategy,
        upload_bits: int = 32,
        seed: int = 0,
    ) -> None:
        self.spec, self.dim, self.sampler, self.strategy = spec, dim, sampler, strategy
        if upload_bits not in UPLOAD_BITS:
            raise ConfigError(f"train.upload_bits must be one of {UPLOAD_BITS}, got {upload_bits}")
        if upload_bits != 32 and spec.secagg:
            raise ConfigError(
                "train.upload_bits applies to plaintext uploads; secagg has its own ring encoding"
            )
        if spec.mechanism == "discrete_gaussian" and sampler.mode != "poisson":
            raise ConfigError(
                "dp.mechanism='discrete_gaussian' needs sampling.mode='poisson': its bound is for add/remove "
                "neighbours; a fixed cohort (replace-one) would double its sensitivity"
            )
        self.upload_bits = upload_bits
        self._quant_rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))  # rounding: not secret
        self.noise = noise_source(spec.noise_seed)
        self.clip_norm = spec.clip_norm
        self.clipper: AdaptiveClipper | None = None
        self.accountant: PrivacyAccountant | None = None
        self.ledgers: ClientLedgers | None = None
        self._local_eps: dict[int, float] = {}
        self._ddg_cache: dict[int, DiscreteGaussianParams] = {}
        self.record_transcript = False
        try:
            if spec.adaptive_clipping:
                self.clipper = AdaptiveClipper(
                    spec.clip_norm,
                    noise_multiplier=spec.noise_multiplier,
                    expected_cohort=sampler.expected_cohort,
                    target_quantile=spec.target_quantile,
                    learning_rate=spec.clip_learning_rate,
                    seed=spec.noise_seed,
                )
            if spec.client_level_dp:
                relation = "add_or_remove" if sampler.mode == "poisson" else "replace"
                self.accountant = PrivacyAccountant(
                    max_epsilon=spec.max_epsilon, delta=spec.delta, neighbouring=relation
                )
            elif spec.dp == "local":
                self.ledgers = ClientLedgers(delta=spec.delta)
        except DPError as exc:
            raise ConfigError(f"dp: {exc}") from None

    @property
    def sum_noise_multiplier(self) -> float:
        """z for the sum: as configured, or z_delta when adaptive clipping spends part of it on the count."""
        return self.clipper.sum_noise_multiplier if self.clipper is not None else self.spec.noise_multiplier

    # ------------------------------------------------------------------ accounting

    def round_event(self, started: int | None = None) -> Any:
        """The DpEvent one client-level DP round costs.

        Poisson sampling: PoissonSampled(Gaussian(z)) under add/remove (McMahan et al. 2018). A fixed
        cohort of m out of N: SampledWithoutReplacement under replace-one, where one client's clipped
        update moves the sum by up to 2C (`dp.events.fixed_cohort_round` charges the inner Gaussian z/2).
        """
        z = self.spec.noise_multiplier
        if self.spec.mechanism == "discrete_gaussian":
            # KLS 2021 Thm. 1 as (xi, rho)-zCDP for this round's cohort; no sampling amplification claimed
            return discrete_gaussian_event(self.ddg_params(started or self.sampler.num_clients))
        if self.sampler.mode == "poisson":
            return dp_events.poisson_round(z, self.sampler.rate)
        return dp_events.fixed_cohort_round(z, self.sampler.clients_per_round, self.sampler.num_clients)

    def ddg_params(self, started: int) -> DiscreteGaussianParams:
        """Distributed discrete Gaussian parameters for a round that starts with `started` clients: noise
        shares sized for the smallest cohort secagg may finish with, the ring sized for all of them."""
        key = max(started, 2)
        if key not in self._ddg_cache:
            s = self.spec
            try:
                self._ddg_cache[key] = discrete_gaussian_params(
                    self.dim,
                    s.clip_norm,
                    s.noise_multiplier,
                    self.min_cohort(key),
                    max_clients=key,
                    bits=s.ddg_bits,
                )
            except DPError as exc:
                raise ConfigError(f"dp.mechanism='discrete_gaussian': {exc}") from None
        return self._ddg_cache[key]

    def budget_stop(
        self, local_events: Mapping[int, Any] | None = None, started: int | None = None
    ) -> str | None:
        """Phase one of charging: the reason this round must not start, or None if it fits the budget."""
        cap = self.spec.max_epsilon
        if cap is None:
            return None
        if self.accountant is not None:
            eps = self.accountant.projected_epsilon(self.round_event(started))
            if eps > cap:
                return f"the next round would take epsilon to {eps:.4g} > max_epsilon={cap:g}"
        if self.ledgers is not None:
            for cid, event in (local_events or {}).items():
                eps = self.ledgers.ledger(str(cid)).projected_epsilon(event)
                if eps > cap:
                    return (
                        f"the next round would take client {cid} to epsilon {eps:.4g} > max_epsilon={cap:g}"
                    )
        return None

    def epsilon(self) -> float | None:
        """Epsilon spent so far (PLD where it applies; the worst client under local DP)."""
        if self.accountant is not None:
            return self.accountant.epsilon() if self.accountant.entries else 0.0
        if self.ledgers is not None:
            return max(self._local_eps.values(), default=0.0)
        return None

    # ------------------------------------------------------------------ client side

    def min_cohort(self, started: int) -> int:
        """The fewest survivors a round may finish with: distributed noise shares are sized for it."""
        return max(2, math.ceil((1.0 - self.spec.dropout_tolerance) * started))

    def client_side(self, update: ClientUpdate, started: int) -> ClientUpdate:
        """Steps 3-4 on the device: validate, clip, add the noise share, choose what is revealed.

        Under client-level DP a client reveals only its clipped (and, distributed, noised) update and,
        with adaptive clipping, its centred indicator b - 1/2: no example count, no loss. Under sample-level
        DP (local) it reveals its DP-SGD-trained update only: example counts and losses are not covered by
        DP-SGD's guarantee, so the round is unweighted and reports no training loss.
        """
        validate_update(update, self.dim)
        s = self.spec
        if s.dp == "local":
            return ClientUpdate(update.client_id, update.delta, 1, {}, update.compute_s)
        if not s.client_level_dp:
            return update
        if s.mechanism == "discrete_gaussian":  # clip, rotate, round and noise happen in its encoder
            return ClientUpdate(update.client_id, update.delta, 1, {}, update.compute_s)
        if self.clipper is not None:
            res, indicator = self.clipper.clip(update.delta)
        else:
            res, indicator = clip_l2(update.delta, self.clip_norm), 0.0
        vec = res.clipped.astype(np.float64)
        if s.dp == "distributed":
            m_min = self.min_cohort(started)
            vec = vec + distributed_gaussian_share(
                vec.size, self.sum_noise_multiplier, self.clip_norm, m_min, self.noise
            )
            if self.clipper is not None:  # the count's noise comes in shares too (Andrew et al. 2021)
                indicator += self.clipper.count_noise_share(m_min)
        return ClientUpdate(
            update.client_id, vec.astype(np.float32), 1, {"indicator": indicator}, update.compute_s
        )

    def _pack(self, u: ClientUpdate, limit: float) -> np.ndarray:
        """One float vector per client for the secure sum:
        [w * delta, w, w * loss / L, indicator, fraction of coordinates beyond the encoding range]."""
        s = self.spec
        if s.client_level_dp:  # public denominator: the weight and loss slots stay 0
            scale, w, loss = 1.0, 0.0, 0.0
        elif s.dp == "local":  # unit weights (counts are outside DP-SGD's guarantee), no loss
            scale, w, loss = 1.0, 1.0, 0.0
        else:
            scale = w = min(u.num_examples, s.weight_cap) / s.weight_cap
            loss = min(max(float(u.metrics.get("train_loss", 0.0)), 0.0), s.metric_scale) / s.metric_scale
        body = scale * u.delta.astype(np.float64)
        beyond = float(np.count_nonzero(np.abs(body) > limit)) / max(body.size, 1)
        tail = np.array([w, w * loss, float(u.metrics.get("indicator", 0.0)), beyond])
        return np.concatenate([body, tail])

    def encoding_range(self, started: int) -> float:
        """Per-coordinate range of the ring encoding: the clipped update plus 8 standard deviations of
        the client's noise share (distributed DP), the configured range otherwise."""
        s = self.spec
        if s.dp == "distributed":
            root = math.sqrt(self.min_cohort(started))
            share_sd = self.sum_noise_multiplier * self.clip_norm / root
            count_sd = self.clipper.count_stddev / root if self.clipper is not None else 0.0
            return max(self.clip_norm + 8.0 * share_sd, 0.5 + 8.0 * count_sd)
        if s.client_level_dp:  # the +-1/2 indicator of adaptive clipping must fit too
            return max(self.clip_norm, 0.5)
        return max(s.secagg_range, 1.0)

    def secagg_parameters(self, n: int) -> tuple[int, int]:
        """(neighbours k, threshold t) for a cohort of n: Bell et al.'s choice at sigma = 40, eta = 20
        (`secagg.choose_parameters`); for cohorts too small to meet those tail bounds, the complete
        graph with t = max(2, floor((1 - tolerance)(n - 1))), which tolerates the configured dropout."""
        s = self.spec
        try:
            p = secagg.choose_parameters(
                n, dropout_rate=s.dropout_tolerance, corrupt_fraction=s.corrupt_fraction
            )
            return p.neighbours, p.threshold
        except secagg.SecAggConfigError:
            return n - 1, min(n - 1, max(2, math.floor((1.0 - s.dropout_tolerance) * (n - 1))))

    # ------------------------------------------------------------------ transmit

    def transmit(
        self,
        round_: int,
        contributions: Mapping[int, ClientUpdate],
        drop_stage: Mapping[int, str],
        global_weights: ModelVector,
        *,
        started: int,
    ) -> Transmission:
        """Steps 5-8: plaintext upload, or encode -> mask -> sum -> unmask -> decode through secagg."""
        if self.spec.secagg:
            return self._secure(round_, contributions, drop_stage, global_weights, started)
        tx = self._plain(round_, contributions)
        if tx.sums is not None:
            tx.sums.started = started
        return tx

    def _plain(self, round_: int, contributions: Mapping[int, ClientUpdate]) -> Transmission:
        total = np.zeros(self.dim, dtype=np.float64)
        weight = loss = indicator = 0.0
        survivors, rejected, up = [], [], {}
        for cid, u in contributions.items():
            try:
                data = encode_update(u, round_, bits=self.upload_bits, rng=self._quant_rng)
                up[cid] = len(data)
                got = decode_update(data, expected_round=round_, expected_size=self.dim)
            except (UpdateRejectedError, ValueError):  # malformed, non-finite values or metrics
                rejected.append(cid)
                continue
            w = float(got.num_examples)
            vec = got.delta.astype(np.float64)
            if self.spec.client_level_dp:
                # the (trusted) server enforces the sensitivity itself: unit weight, and a re-clip that
                # also covers the norm growth of quantized uploads
                w, vec = 1.0, clip_l2(vec, self.clip_norm).clipped.astype(np.float64)
            total += w * vec
            weight += w
            loss += w * float(got.metrics.get("train_loss", 0.0))
            indicator += float(got.metrics.get("indicator", 0.0))
            survivors.append(cid)
        sums = Sums(total, weight, loss, indicator, tuple(survivors)) if survivors else None
        return Transmission(sums, tuple(rejected), up)

    def _secure(
        self,
        round_: int,
        contributions: Mapping[int, ClientUpdate],
        drop_stage: Mapping[int, str],
        global_weights: ModelVector,
        started: int,
    ) -> Transmission:
        ids = sorted(contributions)
        if len(ids) < 2:
            return Transmission(None, aborted=f"secure aggregation needs >= 2 clients, {len(ids)} started")
        index = {cid: i for i, cid in enumerate(ids)}
        round_id = os.urandom(16)
        ddg = None
        if self.spec.mechanism == "discrete_gaussian":
            params = self.ddg_params(started)
            ddg = DistributedDiscreteGaussian(
                params, hashlib.sha256(b"privagg/ddg-rotation" + round_id).digest()
            )
        limit = self.encoding_range(started) if ddg is None else 0.0
        vectors, prep_s = [], {}  # each device's own encoding time counts in its simulated compute
        for c in ids:
            t0 = time.perf_counter()
            if ddg is not None:
                vectors.append(ddg.encode(contributions[c].delta, self.noise))  # on each device
            else:
                vectors.append(self._pack(contributions[c], limit))
            prep_s[c] = time.perf_counter() - t0
        drops = {index[c]: st for c, st in drop_stage.items() if c in index and st in STAGES[1:]}
        s = self.spec
        try:
            k, t = self.secagg_parameters(len(ids))
            floor = self.min_cohort(started) if s.dp == "distributed" else t
            if floor > len(ids):  # the noise shares were sized for at least `floor` survivors
                return Transmission(
                    None, aborted=f"only {len(ids)} of {started} clients reached secagg, need {floor}"
                )
            cfg = secagg.SecAggConfig(
                client_ids=tuple(range(len(ids))),
                vector_length=int(vectors[0].size),
                threshold=t,
                neighbours=k,
                round_id=round_id,
                model_hash=hashlib.sha256(np.ascontiguousarray(global_weights).tobytes()).digest(),
                min_survivors=max(t, min(floor, len(ids))),
                max_corrupt=math.floor(s.corrupt_fraction * len(ids)),
            )
            if ddg is None:
                total, res = secagg.secure_sum(
                    vectors,
                    clip_range=self.encoding_range(started),
                    dropouts=drops,
                    config=cfg,
                    record_transcript=self.record_transcript,
                )
            else:
                res = secagg.aggregate(vectors, cfg, dropouts=drops, record_transcript=self.record_transcript)
                total = np.concatenate([ddg.decode(res.sum), np.zeros(4)])
        except secagg.ThresholdError as exc:  # nothing was revealed, but what was sent was spent
            cost = getattr(exc, "cost", None)
            spent = _costs(cost, ids, prep_s) if cost is not None else {}
            return Transmission(None, aborted=f"secure aggregation aborted: {exc}", **spent)
        except secagg.SecAggConfigError as exc:
            raise ConfigError(f"secagg: {exc}") from None
        survivors = tuple(ids[i] for i in res.survivors)
        d = self.dim
        sums = Sums(
            total[:d],
            float(total[d]),
            float(total[d + 1]),
            float(total[d + 2]),
            survivors,
            started,
            clipped_coords=round(float(total[d + 3]) * d),
        )
        if not self.spec.client_level_dp:  # undo the public scalings of weight and loss
            sums.loss = sums.loss * self.spec.metric_scale
        return Transmission(
            sums, max_abs_error=res.max_abs_error, transcript=res.transcript, **_costs(res, ids, prep_s)
        )

    # ------------------------------------------------------------------ server side

    def server_side(
        self, round_: int, global_weights: ModelVector, sums: Sums
    ) -> tuple[ModelVector, dict[str, Any]]:
        """Steps 9-10: central noise, the public denominator, the clip-norm step, the strategy, the charge."""
        s = self.spec
        info: dict[str, Any] = {}
        total = sums.delta
        if s.client_level_dp:
            if s.dp == "central":
                total = gaussian_noise_sum(total, self.sum_noise_multiplier, self.clip_norm, self.noise)
            denominator = self.sampler.expected_cohort
            info["clip_norm"] = self.clip_norm
            if self.clipper is not None:
                if s.dp == "central":
                    b = self.clipper.noised_unclipped_fraction(sums.indicator)
                else:  # the securely summed indicators already carry their noise shares
                    b = self.clipper.unclipped_fraction_from_noised_sum(sums.indicator)
                self.clip_norm = self.clipper.step(b)
        else:
            denominator = sums.weight
        if not denominator > 0:  # nothing with weight arrived: keep the model
            return global_weights, info
        mean = (total / denominator).astype(np.float32)
        new = self.strategy.apply(global_weights, mean, round_)
        if self.accountant is not None:
            self.accountant.commit(
                self.round_event(sums.started or None), label="dp-fedavg round", round_id=round_
            )
        return new, info

    def train_loss(self, sums: Sums) -> float:
        """Example-weighted mean training loss (not revealed under client-level DP: NaN)."""
        if self.spec.client_level_dp or sums.weight <= 0:
            return float("nan")
        return sums.loss / sums.weight

    def commit_local(self, round_: int, events: Sequence[tuple[int, Any]]) -> None:
        """Charge each trained client's DP-SGD event to its own ledger (sample-level DP)."""
        if self.ledgers is None:
            return
        for cid, event in events:
            self.ledgers.commit(str(cid), event, label="dp-sgd local training", round_id=round_)
            self._local_eps[cid] = self.ledgers.epsilon(str(cid))  # only ledgers that changed


def _costs(res: Any, ids: Sequence[int], prep_s: Mapping[int, float]) -> dict[str, Any]:
    """A secagg result's (or abort's) per-client bytes and CPU, keyed by the run's client ids; `prep_s`
    is each client's packing / discrete-Gaussian encoding before the protocol."""
    return {
        "bytes_up": {ids[i]: sum(v.values()) for i, v in res.bytes_up.items()},
        "bytes_down": {ids[i]: sum(v.values()) for i, v in res.bytes_down.items()},
        "client_cpu_s": {ids[i]: v + prep_s.get(ids[i], 0.0) for i, v in res.client_cpu_s.items()},
        "server_cpu_s": res.server_cpu_s,
    }
