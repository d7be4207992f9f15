"""The server's round loop: sample a cohort, check the privacy budget, broadcast, let devices train
(with availability, failures and a deadline), run the privacy pipeline, update the model, evaluate,
and record the round.

Every message is serialized (`fl_core.wire` in plaintext, secagg's canonical encoding otherwise), so
bytes up/down are the real encoded sizes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fl_core.client import Client
from fl_core.devices import IDEAL, DeviceProfile
from fl_core.errors import ConfigError, TrainingDivergedError, UpdateRejectedError
from fl_core.pipeline import STAGES, PrivacySpec, RoundPipeline, Sums
from fl_core.sampling import ClientSampler
from fl_core.strategies import Strategy
from fl_core.types import ClientUpdate, ModelVector, RoundConfig, RoundRecord
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


class FederatedServer:
    """Runs rounds over in-process clients; deterministic under `seed` (sampling and faults).

    `privacy` switches on the private pipeline (client-level or sample-level DP, secure aggregation);
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
        local_event: Callable[[int], Any] | None = None,
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
        if self.spec.dp == "local" and local_event is None:
            raise ConfigError("dp.mode='local' needs the DP-SGD event of each client (local_event)")
        self.local_event = local_event
        self.pipeline = RoundPipeline(
            self.spec,
            dim=self.weights.size,
            sampler=sampler,
            strategy=strategy,
            upload_bits=upload_bits,
            seed=seed,
        )
        sample_ss, fault_ss = np.random.SeedSequence(seed).spawn(2)
        self._sample_rng = np.random.default_rng(sample_ss)
        self._fault_rng = np.random.default_rng(fault_ss)
        self.history: list[RoundRecord] = []
        self.participants: list[tuple[int, ...]] = []  # per round: the clients whose update was summed
        self.stopped: str | None = None
        self.strategy.initialize(self.weights)

    def _draw_faults(self, cohort: np.ndarray) -> tuple[list[int], dict[int, str], list[int]]:
        """(available clients, failure stage per failing client, unavailable clients) for one round."""
        available, unavailable, fail_at = [], [], {}
        stages = STAGES if self.spec.secagg else STAGES[:1]
        for cid in cohort.tolist():
            prof = self.faults.profile(cid)
            online, fail, stage = self._fault_rng.random(3)
            if online >= prof.availability:
                unavailable.append(cid)
                continue
            available.append(cid)
            p_fail = 1.0 - (1.0 - prof.failure_rate) * (1.0 - self.faults.dropout_rate)
            if fail < p_fail:
                fail_at[cid] = stages[min(int(stage * len(stages)), len(stages) - 1)]
        return available, fail_at, unavailable

    def run_round(self, round_: int) -> RoundRecord | None:
        """One round, or None (and `stopped` set) if the privacy budget does not allow it to start."""
        t0 = time.perf_counter()
        cohort = self.sampler.sample(self._sample_rng)
        local_events = (
            {c: self.local_event(c) for c in cohort.tolist()} if self.local_event is not None else None
        )
        available, fail_at, _unavailable = self._draw_faults(cohort)
        reason = self.pipeline.budget_stop(local_events, started=len(available))
        if reason is not None:
            self.stopped = f"budget: before round {round_}, {reason}"
            return None
        config = replace(self.base_config, round=round_, extra=dict(self.strategy.client_config(round_)))
        if "proximal_mu" in config.extra:
            config = replace(config, proximal_mu=float(config.extra["proximal_mu"]))
        down = encode_global(self.weights, config)

        # client side: train, then clip / noise / pack (the device's own work)
        contributions: dict[int, ClientUpdate] = {}
        client_time: dict[int, float] = {}
        compute: dict[int, float] = {}
        drop_stage: dict[int, str] = {}
        rejected: list[int] = []
        trained: list[int] = []
        # the deadline is judged on training plus the upload of one full vector (before any secagg work)
        up_estimate = self.pipeline.upload_bits // 8 * self.weights.size + 64
        for cid in available:
            if fail_at.get(cid) == "training":
                continue
            update = self.clients[cid].fit(self.weights, config)
            trained.append(cid)
            prof = self.faults.profile(cid)
            side_t0 = time.perf_counter()  # clipping and noise shares run on the device too
            try:
                contributions[cid] = self.pipeline.client_side(update, started=len(available))
            except UpdateRejectedError:
                rejected.append(cid)
                continue
            finally:
                compute[cid] = update.compute_s + time.perf_counter() - side_t0
                client_time[cid] = prof.round_time(compute[cid], len(down), up_estimate)
            late = self.faults.deadline_s is not None and client_time[cid] > self.faults.deadline_s
            if late:
                drop_stage[cid] = "masked_input"
            elif cid in fail_at:
                drop_stage[cid] = fail_at[cid]
        if not self.spec.secagg:  # in plaintext, a client that fails or is late simply never uploads
            for cid in drop_stage:
                contributions.pop(cid, None)

        # transmit: plaintext upload, or encode -> mask -> sum -> unmask -> decode
        tx = self.pipeline.transmit(round_, contributions, drop_stage, self.weights, started=len(available))
        rejected.extend(tx.rejected)
        sums = tx.sums
        if sums is None and self.spec.client_level_dp and tx.aborted is None:
            # nobody arrived: still release (noise-only) and charge, so that emptiness is private too
            sums = Sums(np.zeros(self.weights.size), 0.0, 0.0, 0.0, (), len(available))
        info: dict[str, Any] = {}
        if sums is not None:
            new_weights, info = self.pipeline.server_side(round_, self.weights, sums)
            if not np.all(np.isfinite(new_weights)):
                raise TrainingDivergedError(
                    f"round {round_}: the aggregated model is not finite (the updates overflowed float32); "
                    f"lower train.lr (now {config.lr}) or the server learning rate"
                )
            self.weights = new_weights
        self.pipeline.commit_local(round_, [(c, local_events[c]) for c in trained] if local_events else [])

        survivors = sums.survivors if sums is not None else ()
        messages = 10 if self.spec.secagg else 2  # secagg: 4 stages of round trips after the download
        for cid in tx.bytes_up:  # the real bytes each client sent and received, and its secagg CPU
            prof = self.faults.profile(cid)
            client_time[cid] = prof.round_time(
                compute[cid] + tx.client_cpu_s.get(cid, 0.0),
                len(down) + tx.bytes_down.get(cid, 0),
                tx.bytes_up[cid],
                messages,
            )
        waited_for = survivors if survivors else tuple(tx.bytes_up)  # an aborted round: everyone who sent
        finished = [client_time[c] for c in waited_for if c in client_time]
        sim_round = max(finished, default=0.0) + tx.server_cpu_s  # devices run in parallel; then the server
        if self.faults.deadline_s is not None and any(s == "masked_input" for s in drop_stage.values()):
            sim_round = max(sim_round, self.faults.deadline_s)
        test = self.evaluate_fn(self.weights) if self.evaluate_fn else {}
        extra: dict[str, Any] = {}
        if self.spec.dp != "none":
            extra["epsilon"] = self.pipeline.epsilon()
        extra.update(info)
        if self.spec.secagg:
            extra["secagg_aborted"] = tx.aborted is not None
            extra["secagg_server_cpu_s"] = tx.server_cpu_s
            extra["secagg_client_cpu_s"] = sum(tx.client_cpu_s.values())  # all clients' secagg work, summed
            extra["secagg_max_abs_error"] = tx.max_abs_error
            extra["secagg_clipped_coords"] = sums.clipped_coords if sums is not None else 0
        record = RoundRecord(
            round=round_,
            sampled=len(cohort),
            completed=len(survivors),
            dropped=len(cohort) - len(survivors) - len(rejected),
            rejected=len(rejected),
            train_loss=self.pipeline.train_loss(sums) if sums is not None else float("nan"),
            test=test,
            bytes_down=len(down) * len(available) + sum(tx.bytes_down.values()),
            bytes_up=sum(tx.bytes_up.values()),
            wall_s=time.perf_counter() - t0,
            sim_round_s=sim_round,
            extra=extra,
        )
        self.history.append(record)
        self.participants.append(tuple(survivors))
        self.last_transmission = tx
        return record

    def run(self, rounds: int, on_round: Callable[[RoundRecord], None] | None = None) -> list[RoundRecord]:
        """Rounds 1..rounds (continuing after any in `history`); stops early when the budget is spent."""
        if rounds < 1:
            raise ConfigError(f"rounds must be >= 1, got {rounds}")
        start = len(self.history) + 1
        for r in range(start, start + rounds):
            rec = self.run_round(r)
            if rec is None:
                break
            if on_round is not None:
                on_round(rec)
        return self.history
