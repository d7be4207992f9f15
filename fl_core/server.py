"""The server's round loop: sample a cohort, broadcast, collect updates (with dropouts and a deadline),
reject malformed updates, aggregate with the strategy, evaluate, and record the round.

Every plaintext message is serialized with `fl_core.wire`, so bytes up/down are the real encoded sizes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from fl_core.client import Client
from fl_core.errors import ConfigError, UpdateRejectedError
from fl_core.sampling import ClientSampler
from fl_core.strategies import Strategy
from fl_core.types import ClientUpdate, ModelVector, RoundConfig, RoundRecord
from fl_core.wire import decode_update, encode_global, encode_update

EvaluateFn = Callable[[ModelVector], dict[str, float]]


@dataclass(frozen=True)
class FaultModel:
    """How clients fail: a per-round dropout probability, and a deadline on simulated client time.

    A client's simulated time is its measured compute time times its slowdown factor (1 = this machine);
    a client past `deadline_s` is a straggler and its update is discarded.
    """

    dropout_rate: float = 0.0
    deadline_s: float | None = None
    slowdown: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ConfigError(f"dropout_rate must be in [0, 1), got {self.dropout_rate}")
        if self.deadline_s is not None and not self.deadline_s > 0:
            raise ConfigError(f"deadline_s must be > 0, got {self.deadline_s}")
        if any(not s > 0 for s in self.slowdown):
            raise ConfigError("every slowdown factor must be > 0")


class FederatedServer:
    """Runs rounds over in-process clients; deterministic under `seed` (sampling and dropouts)."""

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
        if self.faults.slowdown and len(self.faults.slowdown) != len(self.clients):
            raise ConfigError(f"{len(self.faults.slowdown)} slowdown factors for {len(self.clients)} clients")
        sample_ss, fault_ss = np.random.SeedSequence(seed).spawn(2)
        self._sample_rng = np.random.default_rng(sample_ss)
        self._fault_rng = np.random.default_rng(fault_ss)
        self.history: list[RoundRecord] = []
        self.strategy.initialize(self.weights)

    def _slowdown(self, cid: int) -> float:
        return self.faults.slowdown[cid] if self.faults.slowdown else 1.0

    def run_round(self, round_: int) -> RoundRecord:
        """One round; the global model changes only if at least one valid update arrived."""
        t0 = time.perf_counter()
        cohort = self.sampler.sample(self._sample_rng)
        fails = self._fault_rng.random(len(cohort)) < self.faults.dropout_rate
        config = replace(self.base_config, round=round_, extra=dict(self.strategy.client_config(round_)))
        if "proximal_mu" in config.extra:
            config = replace(config, proximal_mu=float(config.extra["proximal_mu"]))
        down = encode_global(self.weights, config)
        bytes_down = len(down) * len(cohort)
        accepted: list[ClientUpdate] = []
        dropped = rejected = bytes_up = 0
        sim_round = 0.0
        for cid, fail in zip(cohort.tolist(), fails.tolist(), strict=True):
            if fail:
                dropped += 1
                continue
            update = self.clients[cid].fit(self.weights, config)
            sim_t = update.compute_s * self._slowdown(cid)
            if self.faults.deadline_s is not None and sim_t > self.faults.deadline_s:
                dropped += 1
                sim_round = max(sim_round, self.faults.deadline_s)
                continue
            try:
                up = encode_update(update, round_)
                bytes_up += len(up)
                accepted.append(decode_update(up, expected_round=round_, expected_size=self.weights.size))
            except (UpdateRejectedError, ValueError):
                rejected += 1
                continue
            sim_round = max(sim_round, sim_t)
        if accepted:
            self.weights = self.strategy.aggregate(self.weights, accepted, round_)
        total = sum(u.num_examples for u in accepted)
        train_loss = (
            sum(u.metrics.get("train_loss", float("nan")) * u.num_examples for u in accepted) / total
            if total
            else float("nan")
        )
        test = self.evaluate_fn(self.weights) if self.evaluate_fn else {}
        record = RoundRecord(
            round=round_,
            sampled=len(cohort),
            completed=len(accepted),
            dropped=dropped,
            rejected=rejected,
            train_loss=float(train_loss),
            test=test,
            bytes_down=bytes_down,
            bytes_up=bytes_up,
            wall_s=time.perf_counter() - t0,
            sim_round_s=sim_round,
        )
        self.history.append(record)
        return record

    def run(self, rounds: int, on_round: Callable[[RoundRecord], None] | None = None) -> list[RoundRecord]:
        """Rounds 1..rounds (continuing after any already in `history`)."""
        if rounds < 1:
            raise ConfigError(f"rounds must be >= 1, got {rounds}")
        start = len(self.history) + 1
        for r in range(start, start + rounds):
            rec = self.run_round(r)
            if on_round is not None:
                on_round(rec)
        return self.history
