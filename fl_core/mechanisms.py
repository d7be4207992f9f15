"""Privacy mechanisms as objects: one per `dp.mode`, each owning every step of a round that depends on it.

A mechanism says what a device does to its update before it leaves (`client_side`: clip, noise share,
its own ring encoding), what a server that sees individual uploads may enforce (`enforce`), what the
server does with the sum (`server_side`: central noise, denominator, clip-norm step), which scalars ride
in the summed vector (`layout`), the fewest survivors a round may finish with, and what a round costs
(`round_event`, charged by `charge` into its accountant). The server's round never branches on the mode.

    none         weighted by example counts, loss revealed (inside the secure sum when secagg is on)
    central      DP-FedAvg (McMahan et al. 2018): clip, sum, the server adds N(0, (zC)^2), public denominator
    distributed  each client adds a share N(0, (zC)^2 / m_min) before masking: no un-noised sum exists
    discrete     distributed discrete Gaussian (Kairouz, Liu, Steinke 2021) in the integer ring
    local        sample-level DP-SGD on each device (Opacus); one ledger per client, unweighted mean
"""

from __future__ import annotations

import hashlib
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from dp_accounting import DpEvent

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
from dp.rng import NoiseSource, noise_source
from fl_core.checkpoint import generator_state, set_generator_state
from fl_core.errors import ConfigError
from fl_core.privacy import PrivacySpec
from fl_core.sampling import ClientSampler
from fl_core.types import ClientUpdate, ModelVector
from fl_core.wire import validate_update


@dataclass(frozen=True)
class RoundContext:
    """What every step of one round may read: its number, the clients that started it, a fresh random
    round id (binds secagg's keys and seeds the discrete Gaussian's rotation), and, under local DP, the
    DP-SGD event each sampled client's training costs."""

    round: int
    started: int
    round_id: bytes
    local_events: Mapping[int, DpEvent] = field(default_factory=dict)


@dataclass(frozen=True)
class VectorLayout:
    """A named layout for one summed vector: the model delta, then named scalar slots (no bare offsets)."""

    dim: int
    slots: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return self.dim + len(self.slots)

    def pack(self, body: np.ndarray, values: Mapping[str, float]) -> np.ndarray:
        tail = np.array([float(values.get(s, 0.0)) for s in self.slots], dtype=np.float64)
        return np.concatenate([np.asarray(body, dtype=np.float64), tail])

    def unpack(self, total: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        if total.shape != (self.size,):
            raise ConfigError(f"summed vector has shape {total.shape}, layout expects ({self.size},)")
        return total[: self.dim], {s: float(total[self.dim + i]) for i, s in enumerate(self.slots)}

    def extended(self, *more: str) -> VectorLayout:
        return VectorLayout(self.dim, self.slots + tuple(s for s in more if s not in self.slots))


@dataclass(frozen=True)
class Contribution:
    """What one device sends for aggregation: a delta with its weight and the scalars its mechanism lets
    it reveal (None: not revealed), or, for a mechanism with its own integer encoding, `ring` (uint32)."""

    client_id: int
    delta: np.ndarray
    weight: float = 1.0
    loss: float | None = None
    indicator: float | None = None
    ring: np.ndarray | None = None

    def scalars(self) -> dict[str, float]:
        """The layout's slot values: weight, weight * loss, indicator."""
        out = {"weight": self.weight}
        if self.loss is not None:
            out["loss"] = self.weight * self.loss
        if self.indicator is not None:
            out["indicator"] = self.indicator
        return out


@dataclass
class Sums:
    """What the server learns from a round's contributions: sums only (plus who survived).

    `delta` is the sum of weight * delta, `weight` the sum of weights, `loss` the sum of weight * loss,
    all in the aggregator's units (a secure aggregator scales weights by 1 / weight_cap: ratios hold)."""

    delta: np.ndarray
    weight: float
    loss: float
    indicator: float
    survivors: tuple[int, ...]
    started: int = 0
    clipped_coords: int = 0

    @classmethod
    def empty(cls, dim: int, started: int) -> Sums:
        return cls(np.zeros(dim), 0.0, 0.0, 0.0, (), started)


class Mechanism(ABC):
    """One privacy mode's part in every round (see the module docstring)."""

    name: str = "none"
    #: weight by example counts (True) or give every client weight 1 (False)
    weighted: bool = False
    #: the server's sum is released (noise only) even when no update arrived, so emptiness stays private
    release_empty: bool = False
    #: charged per client from each sampled client's DP-SGD event (RoundContext.local_events)
    needs_local_events: bool = False
    #: its client side carries only a share of the noise (or a ring encoding): never upload it in the clear
    needs_secure_sum: bool = False

    def __init__(self, spec: PrivacySpec, *, dim: int, sampler: ClientSampler) -> None:
        self.spec, self.dim, self.sampler = spec, dim, sampler
        self.noise: NoiseSource = noise_source(spec.seed)

    # -- the device
    @property
    def layout(self) -> VectorLayout:
        return VectorLayout(self.dim, ("weight",))

    @abstractmethod
    def client_side(self, update: ClientUpdate, ctx: RoundContext) -> Contribution:
        """Steps 3-5 on the device: validate, clip, noise share, what is revealed."""

    def enforce(self, c: Contribution) -> Contribution:
        """What a server that sees this individual upload (plaintext) enforces before summing it."""
        return c

    def encoding_range(self, ctx: RoundContext) -> float:
        """Per-coordinate range a ring encoding of the packed vector must cover."""
        return max(self.spec.clip_range, 1.0)

    def min_survivors(self, ctx: RoundContext) -> int:
        """The fewest survivors the round may finish with (secagg refuses to unmask fewer)."""
        return 2

    def decode_ring(self, total: np.ndarray, ctx: RoundContext) -> np.ndarray:
        raise ConfigError(f"the {self.name} mechanism has no ring encoding of its own")

    def check(self, cohort: int) -> None:
        """Refuse, before a run starts, parameters that cannot work for a cohort of this size."""

    # -- the server
    @abstractmethod
    def server_side(self, sums: Sums, ctx: RoundContext) -> tuple[ModelVector | None, dict[str, Any]]:
        """Steps 9-10: the mean delta to hand the strategy (None: keep the model), and what to record."""

    def train_loss(self, sums: Sums) -> float:
        """The example-weighted mean training loss, or NaN where the mechanism does not reveal it."""
        return float("nan")

    # -- the budget
    def round_event(self, ctx: RoundContext) -> DpEvent | None:
        return None

    def budget_stop(self, ctx: RoundContext) -> str | None:
        """Phase one of charging: why this round must not start, or None. Never changes a ledger."""
        return None

    def charge(self, ctx: RoundContext, *, released: bool, trained: Sequence[int]) -> None:
        """Phase two: charge what the round cost (released: the server's sum went out)."""

    def epsilon(self) -> float | None:
        return None

    def summary(self) -> dict[str, Any]:
        """What privacy.json states about this mechanism's spend (beyond the spec)."""
        return {}

    # -- checkpoint / resume (fl_core.checkpoint: generator states only when the noise is seeded)
    def state(self) -> dict[str, Any]:
        return {"noise": generator_state(self.noise.generator) if self.noise.seeded else None}

    def load_state(self, state: Mapping[str, Any]) -> None:
        if state.get("noise") is not None and self.noise.seeded:
            set_generator_state(self.noise.generator, state["noise"])


def _substream(seed: int | None, k: int) -> int | None:
    """A seed for the k-th independent stream of a seeded run (None stays OS-keyed)."""
    if seed is None:
        return None
    return int(np.random.SeedSequence([seed, k]).generate_state(1, np.uint64)[0] >> np.uint64(1))


class NoPrivacy(Mechanism):
    """dp.mode = none: the FedAvg mean weighted by example counts; losses travel with the update."""

    name = "none"
    weighted = True

    @property
    def layout(self) -> VectorLayout:
        return VectorLayout(self.dim, ("weight", "loss"))

    def client_side(self, update: ClientUpdate, ctx: RoundContext) -> Contribution:
        validate_update(update, self.dim)
        loss = float(update.metrics.get("train_loss", 0.0))
        return Contribution(update.client_id, update.delta, float(update.num_examples), loss)

    def server_side(self, sums: Sums, ctx: RoundContext) -> tuple[ModelVector | None, dict[str, Any]]:
        if not sums.weight > 0:
            return None, {}
        return (sums.delta / sums.weight).astype(np.float32), {}

    def train_loss(self, sums: Sums) -> float:
        return sums.loss / sums.weight if sums.weight > 0 else float("nan")


class LocalDPSGD(Mechanism):
    """dp.mode = local: each client's local training is DP-SGD (its own ledger); example counts and losses
    are outside DP-SGD's guarantee, so the mean is unweighted and no loss is revealed."""

    name = "local"
    needs_local_events = True

    def __init__(self, spec: PrivacySpec, *, dim: int, sampler: ClientSampler) -> None:
        super().__init__(spec, dim=dim, sampler=sampler)
        self.ledgers = ClientLedgers(delta=spec.delta)
        self._eps: dict[int, float] = {}

    def client_side(self, update: ClientUpdate, ctx: RoundContext) -> Contribution:
        validate_update(update, self.dim)
        return Contribution(update.client_id, update.delta, 1.0)

    def server_side(self, sums: Sums, ctx: RoundContext) -> tuple[ModelVector | None, dict[str, Any]]:
        if not sums.weight > 0:
            return None, {}
        return (sums.delta / sums.weight).astype(np.float32), {}

    def budget_stop(self, ctx: RoundContext) -> str | None:
        cap = self.spec.max_epsilon
        if cap is None:
            return None
        for cid, event in ctx.local_events.items():
            eps = self.ledgers.projected_epsilon(str(cid), event)
            if eps > cap:
                return f"the next round would take client {cid} to epsilon {eps:.4g} > max_epsilon={cap:g}"
        return None

    def charge(self, ctx: RoundContext, *, released: bool, trained: Sequence[int]) -> None:
        for cid in trained:  # its DP-SGD ran and its update left the device, whatever the round did
            self.ledgers.commit(
                str(cid), ctx.local_events[cid], label="dp-sgd local training", round_id=ctx.round
            )
            self._eps[cid] = self.ledgers.epsilon(str(cid))

    def epsilon(self) -> float:
        return max(self._eps.values(), default=0.0)

    def summary(self) -> dict[str, Any]:
        return {"client_epsilons": self.ledgers.epsilons(), "accountant": "pld, per client"}

    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            "ledgers": self.ledgers.to_json(),
            "eps": {str(k): v for k, v in self._eps.items()},
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        super().load_state(state)
        self.ledgers = ClientLedgers.from_json(state["ledgers"])
        self._eps = {int(k): float(v) for k, v in state["eps"].items()}


class ClientLevelDP(Mechanism):
    """DP-FedAvg's common part: clip (fixed or adaptive), unit weights, the public denominator qW, and two
    accountants charged per released round, one per adversary:

    - an observer of the released models, who does not know the cohorts: amplified by the sampling
      (Poisson: add/remove; fixed cohorts: sampling without replacement, replace-one);
    - the server, which draws the cohorts and so knows when a client took part: no amplification; one
      client's data replaced moves the sum by up to 2C, a Gaussian of multiplier z/2 per round it took
      part in (charged for every released round: the worst case).

    `headline` names the adversary the mode exists for; `dp.max_epsilon` caps that one's epsilon.
    """

    release_empty = True
    headline = "observer_of_model"

    def __init__(self, spec: PrivacySpec, *, dim: int, sampler: ClientSampler) -> None:
        super().__init__(spec, dim=dim, sampler=sampler)
        self.clip_norm = spec.clip_norm
        self.clipper: AdaptiveClipper | None = None
        relation = "add_or_remove" if sampler.mode == "poisson" else "replace"
        try:
            if spec.adaptive_clipping:
                self.clipper = AdaptiveClipper(
                    spec.clip_norm,
                    noise_multiplier=spec.noise_multiplier,
                    expected_cohort=sampler.expected_cohort,
                    target_quantile=spec.target_quantile,
                    learning_rate=spec.clip_learning_rate,
                    count_stddev=spec.count_stddev,
                    seed=_substream(spec.seed, 1),  # never the sum noise's stream (review)
                )
            relations = {"observer_of_model": relation, "server_knowing_cohort": self.server_relation}
            self.accountants = {
                who: PrivacyAccountant(
                    max_epsilon=spec.max_epsilon if who == self.headline else None,
                    delta=spec.delta,
                    neighbouring=rel,
                )
                for who, rel in relations.items()
            }
        except DPError as exc:
            raise ConfigError(f"dp: {exc}") from None

    @property
    def accountant(self) -> PrivacyAccountant:
        """The headline adversary's accountant (the budget, `epsilon()`, the ledger in privacy.json)."""
        return self.accountants[self.headline]

    @property
    def server_relation(self) -> str:
        # the event below already carries replace-one's doubled sensitivity as z/2 at unit sensitivity;
        # dp_accounting's PLD would double it again under "replace" (while its RDP would not): so the
        # unit-sensitivity relation, on which PLD and RDP agree
        return "add_or_remove"

    def server_event(self, ctx: RoundContext) -> DpEvent:
        """Against the server that knows the cohort: no amplification, and one client's data replaced moves
        the sum by 2C: a Gaussian of multiplier z/2 at unit sensitivity, every released round."""
        return dp_events.gaussian(self.spec.noise_multiplier / 2.0)

    def events(self, ctx: RoundContext) -> dict[str, DpEvent]:
        return {"observer_of_model": self.round_event(ctx), "server_knowing_cohort": self.server_event(ctx)}

    @property
    def sum_noise_multiplier(self) -> float:
        """z for the sum: as configured, or z_delta when adaptive clipping spends part of it on the count."""
        return self.clipper.sum_noise_multiplier if self.clipper is not None else self.spec.noise_multiplier

    @property
    def layout(self) -> VectorLayout:
        return VectorLayout(self.dim, ("indicator",) if self.clipper is not None else ())

    def _clip(self, update: ClientUpdate) -> tuple[np.ndarray, float | None]:
        validate_update(update, self.dim)
        if self.clipper is not None:
            res, indicator = self.clipper.clip(update.delta)
            return res.clipped.astype(np.float64), indicator
        return clip_l2(update.delta, self.clip_norm).clipped.astype(np.float64), None

    def client_side(self, update: ClientUpdate, ctx: RoundContext) -> Contribution:
        vec, indicator = self._clip(update)
        return Contribution(update.client_id, vec, 1.0, None, indicator)

    def enforce(self, c: Contribution) -> Contribution:
        """A server that sees the upload enforces the sensitivity itself: unit weight and a re-clip (which
        also covers the norm growth of quantized uploads)."""
        vec = clip_l2(np.asarray(c.delta, np.float64), self.clip_norm).clipped.astype(np.float64)
        return Contribution(c.client_id, vec, 1.0, None, c.indicator)

    def encoding_range(self, ctx: RoundContext) -> float:
        return max(self.clip_norm, 0.5)  # the +-1/2 indicator of adaptive clipping must fit too

    def _noised_sum(self, sums: Sums) -> np.ndarray:
        return sums.delta

    def _unclipped_fraction(self, indicator_sum: float) -> float:
        return self.clipper.noised_unclipped_fraction(indicator_sum)  # type: ignore[union-attr]

    def server_side(self, sums: Sums, ctx: RoundContext) -> tuple[ModelVector | None, dict[str, Any]]:
        total = self._noised_sum(sums)
        info: dict[str, Any] = {"clip_norm": self.clip_norm}
        if self.clipper is not None:
            self.clip_norm = self.clipper.step(self._unclipped_fraction(sums.indicator))
        return (total / self.sampler.expected_cohort).astype(np.float32), info

    def round_event(self, ctx: RoundContext) -> DpEvent:
        """Against an observer of the model. Poisson sampling: PoissonSampled(Gaussian(z)) under add/remove
        (McMahan et al. 2018). A fixed cohort of m out of N: SampledWithoutReplacement under replace-one,
        where one client's clipped update moves the sum by up to 2C (`dp.events.fixed_cohort_round`
        charges the inner Gaussian z/2)."""
        z = self.spec.noise_multiplier
        if self.sampler.mode == "poisson":
            return dp_events.poisson_round(z, self.sampler.rate)
        return dp_events.fixed_cohort_round(z, self.sampler.clients_per_round, self.sampler.num_clients)

    def budget_stop(self, ctx: RoundContext) -> str | None:
        cap = self.spec.max_epsilon
        if cap is None:
            return None
        eps = self.accountant.projected_epsilon(self.events(ctx)[self.headline])
        if eps > cap:
            return f"the next round would take epsilon ({self.headline}) to {eps:.4g} > max_epsilon={cap:g}"
        return None

    def charge(self, ctx: RoundContext, *, released: bool, trained: Sequence[int]) -> None:
        if released:
            for who, event in self.events(ctx).items():
                self.accountants[who].commit(event, label="dp-fedavg round", round_id=ctx.round)

    def epsilon(self) -> float:
        return self.accountant.epsilon() if self.accountant.entries else 0.0

    def epsilons(self) -> dict[str, float]:
        """epsilon against each adversary (PLD where it applies)."""
        return {who: acc.epsilon() if acc.entries else 0.0 for who, acc in self.accountants.items()}

    def summary(self) -> dict[str, Any]:
        rep = self.accountant.report() if self.accountant.entries else None
        out: dict[str, Any] = {
            "headline_adversary": self.headline,
            "epsilon_by_adversary": self.epsilons(),
            "final_clip_norm": self.clip_norm,
            "epsilon_pld": rep.epsilon_pld if rep else 0.0,
            "epsilon_rdp": rep.epsilon_rdp if rep else 0.0,
            "accountant": rep.method if rep else "none",
            "ledger": json.loads(self.accountant.to_json()),
        }
        if self.clipper is not None:
            out["count_stddev"] = self.clipper.count_stddev
            out["sum_noise_multiplier"] = self.clipper.sum_noise_multiplier
        return out

    def state(self) -> dict[str, Any]:
        accountants = {who: acc.to_json() for who, acc in self.accountants.items()}
        out = {**super().state(), "clip_norm": self.clip_norm, "accountants": accountants}
        if self.clipper is not None:
            out["clipper"] = self.clipper.state()
            src = self.clipper._source
            out["clipper_noise"] = generator_state(src.generator) if src.seeded else None
        return out

    def load_state(self, state: Mapping[str, Any]) -> None:
        super().load_state(state)
        self.clip_norm = float(state["clip_norm"])
        self.accountants = {who: PrivacyAccountant.from_json(t) for who, t in state["accountants"].items()}
        if self.clipper is not None:
            self.clipper.clip_norm = float(state["clipper"]["clip_norm"])
            if state.get("clipper_noise") is not None and self.clipper._source.seeded:
                set_generator_state(self.clipper._source.generator, state["clipper_noise"])


class CentralGaussian(ClientLevelDP):
    """dp.mode = central: the (trusted) server adds N(0, (z C)^2) to the sum after aggregation."""

    name = "central"

    def _noised_sum(self, sums: Sums) -> np.ndarray:
        return gaussian_noise_sum(sums.delta, self.sum_noise_multiplier, self.clip_norm, self.noise)


class DistributedGaussian(ClientLevelDP):
    """dp.mode = distributed: every client adds N(0, (zC)^2 / m_min) before masking, sized for the smallest
    cohort secagg lets the round finish with, so the unmasked sum always carries at least N(0, (zC)^2)."""

    name = "distributed"
    needs_secure_sum = True
    headline = "server_knowing_cohort"  # distributed noise exists so that the server never sees a clean sum

    def min_survivors(self, ctx: RoundContext) -> int:
        return max(2, math.ceil((1.0 - self.spec.dropout_tolerance) * ctx.started))

    def client_side(self, update: ClientUpdate, ctx: RoundContext) -> Contribution:
        vec, indicator = self._clip(update)
        m_min = self.min_survivors(ctx)
        vec = vec + distributed_gaussian_share(
            vec.size, self.sum_noise_multiplier, self.clip_norm, m_min, self.noise
        )
        if self.clipper is not None and indicator is not None:  # the count's noise comes in shares too
            indicator += self.clipper.count_noise_share(m_min)
        return Contribution(update.client_id, vec, 1.0, None, indicator)

    def encoding_range(self, ctx: RoundContext) -> float:
        """The clipped update plus 8 standard deviations of the client's noise share."""
        root = math.sqrt(self.min_survivors(ctx))
        share_sd = self.sum_noise_multiplier * self.clip_norm / root
        count_sd = self.clipper.count_stddev / root if self.clipper is not None else 0.0
        return max(self.clip_norm + 8.0 * share_sd, 0.5 + 8.0 * count_sd)

    def _unclipped_fraction(self, indicator_sum: float) -> float:
        return self.clipper.unclipped_fraction_from_noised_sum(indicator_sum)  # type: ignore[union-attr]


class DiscreteGaussianMechanism(DistributedGaussian):
    """dp.mechanism = discrete_gaussian: clip, rotate, round and add discrete Gaussian noise on the device,
    in the integer ring (Kairouz, Liu, Steinke 2021); charged by its own zCDP bound, no amplification."""

    name = "distributed_discrete_gaussian"

    def __init__(self, spec: PrivacySpec, *, dim: int, sampler: ClientSampler) -> None:
        super().__init__(spec, dim=dim, sampler=sampler)
        self._params: dict[int, DiscreteGaussianParams] = {}

    @property
    def layout(self) -> VectorLayout:
        return VectorLayout(self.dim)

    def params(self, started: int) -> DiscreteGaussianParams:
        """Noise shares sized for the smallest cohort secagg may finish with, the ring for all of them."""
        key = max(started, 2)
        if key not in self._params:
            s = self.spec
            m_min = max(2, math.ceil((1.0 - s.dropout_tolerance) * key))
            try:
                self._params[key] = discrete_gaussian_params(
                    self.dim, s.clip_norm, s.noise_multiplier, m_min, max_clients=key, bits=s.ddg_bits
                )
            except DPError as exc:
                raise ConfigError(f"dp.mechanism='discrete_gaussian': {exc}") from None
        return self._params[key]

    def check(self, cohort: int) -> None:
        self.params(cohort)

    def _codec(self, ctx: RoundContext) -> DistributedDiscreteGaussian:
        seed = hashlib.sha256(b"privagg/ddg-rotation" + ctx.round_id).digest()
        return DistributedDiscreteGaussian(self.params(ctx.started), seed)

    def client_side(self, update: ClientUpdate, ctx: RoundContext) -> Contribution:
        validate_update(update, self.dim)
        ring = self._codec(ctx).encode(update.delta, self.noise)
        return Contribution(update.client_id, update.delta, 1.0, ring=ring)

    def decode_ring(self, total: np.ndarray, ctx: RoundContext) -> np.ndarray:
        return self._codec(ctx).decode(total)

    def round_event(self, ctx: RoundContext) -> DpEvent:
        return discrete_gaussian_event(self.params(ctx.started))

    def server_event(self, ctx: RoundContext) -> DpEvent:
        """Replace-one against the server is a group of two add/remove steps: (2 xi, 4 rho)-zCDP (review:
        charging the add/remove bound understated the server's epsilon)."""
        p = self.params(ctx.started)
        return dp_events.zcdp(4.0 * p.rho, 2.0 * p.xi)


MECHANISMS: dict[str, Callable[..., Mechanism]] = {
    "none": NoPrivacy,
    "central": CentralGaussian,
    "distributed": DistributedGaussian,
    "local": LocalDPSGD,
}


def build_mechanism(
    spec: PrivacySpec, *, dim: int, sampler: ClientSampler, upload_bits: int = 32
) -> Mechanism:
    """The spec's mechanism, after the rules that involve the sampler and the upload width."""
    spec.check_setup(sampling_mode=sampler.mode, upload_bits=upload_bits)
    if spec.mechanism == "discrete_gaussian":
        return DiscreteGaussianMechanism(spec, dim=dim, sampler=sampler)
    return MECHANISMS[spec.mode](spec, dim=dim, sampler=sampler)
