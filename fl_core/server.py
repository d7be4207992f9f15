"""The server's round as one straight sequence of named steps, with faults, timing and records beside it:

    open (sample, faults, round id) -> budget check -> train -> client side (mechanism) -> aggregate
    (aggregator) -> server side (mechanism) -> strategy -> charge -> record

What depends on the privacy mode lives in the `Mechanism` (`fl_core.mechanisms`), what depends on how
updates travel in the `Aggregator` (`fl_core.aggregators`); the round below branches on neither.
Every message is serialized (`fl_core.wire` in plaintext, secagg's canonical encoding otherwise), so
bytes up/down are the real encoded sizes.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from dp_accounting import DpEvent

from fl_core.aggregators import (
    Aggregator,
    PlaintextAggregator,
    SecureAggregator,
    Transmission,
    rejection_reason,
)
from fl_core.checkpoint import generator_state, set_generator_state
from fl_core.client import Client
from fl_core.devices import IDEAL, DeviceProfile
from fl_core.errors import ConfigError, RunDirectoryError, TrainingDivergedError, UpdateRejectedError
from fl_core.mechanisms import Contribution, Mechanism, RoundContext, Sums, build_mechanism
from fl_core.privacy import PrivacySpec
from fl_core.sampling import ClientSampler
from fl_core.strategies import Strategy
from fl_core.types import ModelVector, RoundConfig, RoundRecord
from fl_core.wire import encode_global

EvaluateFn = Callable[[ModelVector], dict[str, float]]


@dataclass(frozen=True)
class FaultModel:
    """How clients fail: each client's device profile (speed, links, availability, failure rate), an
    extra per-round failure probability for every client, and a deadline on simulated round time.
    A client past `deadline_s` is a straggler: its update never arrives (secagg: it drops before
    sending its masked input)."""

    dropout_rate: float = 0.0
    deadline_s: float | None = None
    profiles: tuple[DeviceProfile, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ConfigError(f"dropout_rate must be in [0, 1), got {self.dropout_rate}")
        if self.deadline_s is not None and not self.deadline_s > 0:
            raise ConfigError(f"deadline_s must be > 0, got {self.deadline_s}")

    def profile(self, cid: int) -> DeviceProfile:
        return self.profiles[cid] if self.profiles else IDEAL


@dataclass
class _Round:
    """Bookkeeping of one round beside its steps: who was available, failed, trained; device time."""

    ctx: RoundContext
    cohort: list[int]
    available: list[int]
    fail_at: dict[int, str]
    config: RoundConfig | None = None
    download: int = 0
    compute: dict[int, float] = field(default_factory=dict)
    drop_stage: dict[int, str] = field(default_factory=dict)
    rejected: dict[int, str] = field(default_factory=dict)
    trained: list[int] = field(default_factory=list)


def build_aggregator(spec: PrivacySpec, upload_bits: int = 32, seed: int = 0) -> Aggregator:
    """The aggregator a spec asks for: secagg when `spec.secagg`, plaintext (maybe quantized) otherwise."""
    if spec.secagg:
        return SecureAggregator(
            weight_cap=spec.weight_cap,
            metric_scale=spec.metric_scale,
            dropout_tolerance=spec.dropout_tolerance,
            corrupt_fraction=spec.corrupt_fraction,
            seed=seed,
        )
    return PlaintextAggregator(upload_bits, seed)


class FederatedServer:
    """Runs rounds over in-process clients; deterministic under `seed` (sampling and faults).

    `privacy` (a PrivacySpec) picks the mechanism and the aggregator; both can also be given directly.
    `local_event` gives the DP-SGD DpEvent a client's local training costs (sample-level DP budget).
    """

    def __init__(
        self,
        clients: Sequence[Client],
        strategy: Strategy,
        initial_weights: ModelVector,
        *,
        base_config: RoundConfig,
        sampler: ClientSampler,
        evaluate_fn: EvaluateFn | None = None,
        faults: FaultModel | None = None,
        privacy: PrivacySpec | None = None,
        mechanism: Mechanism | None = None,
        aggregator: Aggregator | None = None,
        local_event: Callable[[int], DpEvent] | None = None,
        upload_bits: int = 32,
        seed: int = 0,
    ) -> None:
        if len(clients) != sampler.num_clients:
            raise ConfigError(f"sampler expects {sampler.num_clients} clients, got {len(clients)}")
        self.clients = list(clients)
        self.strategy = strategy
        self.weights = np.ascontiguousarray(initial_weights, dtype=np.float32).copy()
        self.base_config = base_config
        self.sampler = sampler
        self.evaluate_fn = evaluate_fn
        self.faults = faults or FaultModel()
        if self.faults.profiles and len(self.faults.profiles) != len(self.clients):
            raise ConfigError(f"{len(self.faults.profiles)} device profiles for {len(self.clients)} clients")
        self.spec = privacy or PrivacySpec()
        self.mechanism = mechanism or build_mechanism(
            self.spec, dim=self.weights.size, sampler=sampler, upload_bits=upload_bits
        )
        self.aggregator = aggregator or build_aggregator(self.spec, upload_bits, seed)
        if self.mechanism.needs_secure_sum and not self.aggregator.secure:
            raise ConfigError(
                f"the {self.mechanism.name} mechanism needs a secure aggregator: its uploads carry only a "
                "share of the noise (pass privacy=PrivacySpec(..., secagg=True) or a SecureAggregator)"
            )
        if self.mechanism.needs_local_events and local_event is None:
            raise ConfigError("dp.mode='local' needs the DP-SGD event of each client (local_event)")
        self.local_event = local_event
        sample_ss, fault_ss = np.random.SeedSequence(seed).spawn(2)
        self._sample_rng = np.random.default_rng(sample_ss)
        self._fault_rng = np.random.default_rng(fault_ss)
        self.history: list[RoundRecord] = []
        self.participants: list[tuple[int, ...]] = []  # per round: the clients whose update was summed
        self.stopped: str | None = None
        self.last_transmission: Transmission | None = None
        self.strategy.initialize(self.weights)

    # ------------------------------------------------------------------ the round

    def run_round(self, round_: int) -> RoundRecord | None:
        """One round, or None (and `stopped` set) if the privacy budget does not allow it to start."""
        t0 = time.perf_counter()
        rnd = self._open(round_)
        why = self.mechanism.budget_stop(rnd.ctx)
        if why is not None:
            self.stopped = f"budget: before round {round_}, {why}"
            return None
        updates = self._train(rnd)
        contributions = self._client_side(rnd, updates)
        tx = self.aggregator.aggregate(rnd.ctx, contributions, rnd.drop_stage, self.mechanism, self.weights)
        sums = tx.sums
        if sums is None and tx.aborted is None and self.mechanism.release_empty:
            sums = Sums.empty(self.weights.size, rnd.ctx.started)  # emptiness is private too
        info: dict[str, Any] = {}
        if sums is not None:
            mean, info = self.mechanism.server_side(sums, rnd.ctx)
            if mean is not None:
                self._apply(round_, self.strategy.apply(self.weights, mean, round_), rnd)
        self.mechanism.charge(rnd.ctx, released=sums is not None, trained=rnd.trained)
        return self._record(rnd, tx, sums, info, t0)

    # ------------------------------------------------------------------ its steps

    def _open(self, round_: int) -> _Round:
        """Sample the cohort, draw who is offline or fails (and at which stage), pick a fresh round id."""
        cohort = self.sampler.sample(self._sample_rng).tolist()
        available, fail_at = self._draw_faults(cohort)
        events = {c: self.local_event(c) for c in cohort} if self.local_event is not None else {}
        ctx = RoundContext(round_, len(available), os.urandom(16), events)
        return _Round(ctx, cohort, available, fail_at)

    def _draw_faults(self, cohort: list[int]) -> tuple[list[int], dict[int, str]]:
        available, fail_at = [], {}
        stages = self.aggregator.stages
        for cid in cohort:
            prof = self.faults.profile(cid)
            online, fail, stage = self._fault_rng.random(3)
            if online >= prof.availability:
                continue
            available.append(cid)
            p_fail = 1.0 - (1.0 - prof.failure_rate) * (1.0 - self.faults.dropout_rate)
            if fail < p_fail:
                fail_at[cid] = stages[min(int(stage * len(stages)), len(stages) - 1)]
        return available, fail_at

    def _train(self, rnd: _Round) -> dict[int, Any]:
        """Broadcast the model; every available client that does not fail in training runs `fit`."""
        config = replace(
            self.base_config, round=rnd.ctx.round, extra=dict(self.strategy.client_config(rnd.ctx.round))
        )
        if "proximal_mu" in config.extra:
            config = replace(config, proximal_mu=float(config.extra["proximal_mu"]))
        rnd.config = config
        rnd.download = len(encode_global(self.weights, config))
        updates = {}
        for cid in rnd.available:
            if rnd.fail_at.get(cid) != "training":
                updates[cid] = self.clients[cid].fit(self.weights, config)
                rnd.trained.append(cid)
        return updates

    def _client_side(self, rnd: _Round, updates: dict[int, Any]) -> dict[int, Contribution]:
        """The mechanism's device step (timed as the device's compute); stragglers past the deadline drop
        before their masked input, failing clients at their drawn stage."""
        out: dict[int, Contribution] = {}
        up = self.aggregator.upload_estimate(self.weights.size)
        for cid, update in updates.items():
            t0 = time.perf_counter()
            try:
                out[cid] = self.mechanism.client_side(update, rnd.ctx)
            except UpdateRejectedError as exc:
                rnd.rejected[cid] = rejection_reason(exc)
                continue
            finally:
                rnd.compute[cid] = update.compute_s + time.perf_counter() - t0
            late = self.faults.deadline_s is not None and (
                self.faults.profile(cid).round_time(rnd.compute[cid], rnd.download, up)
                > self.faults.deadline_s
            )
            if late:
                rnd.drop_stage[cid] = "masked_input"
            elif cid in rnd.fail_at:
                rnd.drop_stage[cid] = rnd.fail_at[cid]
        return out

    def _apply(self, round_: int, new_weights: ModelVector, rnd: _Round) -> None:
        if not np.all(np.isfinite(new_weights)):
            lr = rnd.config.lr if rnd.config is not None else float("nan")
            raise TrainingDivergedError(
                f"round {round_}: the aggregated model is not finite (the updates overflowed float32); "
                f"lower train.lr (now {lr}) or the server learning rate"
            )
        self.weights = new_weights

    def _record(
        self, rnd: _Round, tx: Transmission, sums: Sums | None, info: dict[str, Any], t0: float
    ) -> RoundRecord:
        """Measure and record the round: real bytes, simulated parallel time, metrics, the spend."""
        rnd.rejected.update(tx.rejected)
        survivors = sums.survivors if sums is not None else ()
        waited_for = survivors if survivors else tuple(tx.bytes_up)  # an aborted round: everyone who sent
        finished = [  # each device's compute and secagg CPU, and the real bytes it sent and received
            self.faults.profile(c).round_time(
                rnd.compute[c] + tx.client_wall_s.get(c, 0.0),
                rnd.download + tx.bytes_down.get(c, 0),
                tx.bytes_up.get(c, 0),
                self.aggregator.messages_per_round,
            )
            for c in waited_for
            if c in rnd.compute
        ]
        sim_round = max(finished, default=0.0) + tx.server_wall_s  # devices in parallel, then the server
        if self.faults.deadline_s is not None and "masked_input" in rnd.drop_stage.values():
            sim_round = max(sim_round, self.faults.deadline_s)
        test = self.evaluate_fn(self.weights) if self.evaluate_fn else {}
        extra: dict[str, Any] = {}
        eps = self.mechanism.epsilon()
        if eps is not None:
            extra["epsilon"] = eps
        extra.update(info)
        if rnd.rejected:
            extra["rejected_by_reason"] = dict(sorted(Counter(rnd.rejected.values()).items()))
        extra.update(tx.extra)
        record = RoundRecord(
            round=rnd.ctx.round,
            sampled=len(rnd.cohort),
            completed=len(survivors),
            dropped=len(rnd.cohort) - len(survivors) - len(rnd.rejected),
            rejected=len(rnd.rejected),
            train_loss=self.mechanism.train_loss(sums) if sums is not None else float("nan"),
            test=test,
            bytes_down=rnd.download * len(rnd.available) + sum(tx.bytes_down.values()),
            bytes_up=sum(tx.bytes_up.values()),
            wall_s=time.perf_counter() - t0,
            sim_round_s=sim_round,
            extra=extra,
        )
        self.history.append(record)
        self.participants.append(tuple(survivors))
        self.last_transmission = tx
        return record

    # ------------------------------------------------------------------ checkpoint / resume

    def state(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue exactly (see fl_core.checkpoint)."""
        return {
            "round": len(self.history),
            "weights": self.weights.copy(),
            "history": [asdict(r) for r in self.history],
            "participants": [list(p) for p in self.participants],
            "stopped": self.stopped,
            "sample_rng": generator_state(self._sample_rng),
            "fault_rng": generator_state(self._fault_rng),
            "strategy": self.strategy.state_dict(),
            "mechanism": self.mechanism.state(),
            "aggregator": self.aggregator.state(),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Continue from `state()`: weights, history, every generator, the strategy, the ledgers."""
        weights = np.asarray(state["weights"], dtype=np.float32)
        if weights.shape != self.weights.shape:
            raise RunDirectoryError(
                f"checkpoint holds {weights.size} weights, the model has {self.weights.size}; "
                "refusing to resume"
            )
        self.weights = weights.copy()
        self.history = [RoundRecord(**r) for r in state["history"]]
        self.participants = [tuple(p) for p in state["participants"]]
        self.stopped = state["stopped"]
        set_generator_state(self._sample_rng, state["sample_rng"])
        set_generator_state(self._fault_rng, state["fault_rng"])
        self.strategy.load_state_dict(state["strategy"])
        self.mechanism.load_state(state["mechanism"])
        self.aggregator.load_state(state["aggregator"])

    def run(self, rounds: int, on_round: Callable[[RoundRecord], None] | None = None) -> list[RoundRecord]:
        """Rounds 1..rounds (continuing after any in `history`); stops early when the budget is spent."""
        if rounds < 1:
            raise ConfigError(f"rounds must be >= 1, got {rounds}")
        start = len(self.history) + 1
        for r in range(start, start + rounds):
            if self.stopped is not None:
                break
            rec = self.run_round(r)
            if rec is None:
                break
            if on_round is not None:
                on_round(rec)
        return self.history
