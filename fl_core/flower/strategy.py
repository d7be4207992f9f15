"""`PrivAggStrategy`: privagg's secure aggregation and client-level DP around any Flower Message-API strategy.

One privagg round inside Flower's `Strategy.start` loop (Bonawitz et al. 2017, Sec. 4; Bell et al. 2020):

    configure_train: the inner strategy picks the nodes -> budget check -> advertise keys -> share keys
                     (two message rounds through the Grid) -> the inner strategy's train messages, each
                     carrying its node's routed shares
    aggregate_train: the masked updates -> consistency -> unmask (two more message rounds) -> the decoded
                     sum -> the mechanism's server step (central noise, public denominator, clip step)
                     -> the inner strategy aggregates ONE reply holding the aggregate -> charge, log epsilon

Weights, example counts and the training loss travel inside the secure sum; the inner strategy never
sees an individual update. Evaluation messages go to the inner strategy as they are (plaintext metrics).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

import secagg
from fl_core.checkpoint import atomic_write
from fl_core.errors import ConfigError
from fl_core.flower import rounds
from fl_core.flower.arrays import flatten, model_hash, unflatten
from fl_core.flower.protocol import MESSAGE_TYPE, RECORD, RoundParams, Stage
from fl_core.flower.settings import FlowerPrivacy
from fl_core.mechanisms import Contribution, Mechanism, RoundContext, Sums
from fl_core.privacy import PrivacySpec

log = logging.getLogger("flwr.privagg")
_STATE_VERSION = 1

#: secagg errors that end a round without revealing anything (too few survivors, a bad message or share)
_ABORTS = (secagg.ThresholdError, secagg.InvalidMessageError, secagg.StageError, ConfigError)


def content_bytes(content: RecordDict) -> int:
    """Bytes of a message's records as Flower counts them (`count_bytes` of each record)."""
    return sum(rec.count_bytes() for rec in content.values())


@dataclass
class RoundLog:
    """What one round did, as privagg records it (also returned in the round's train metrics)."""

    round: int
    started: int
    population: int
    survivors: int = 0
    aborted: str | None = None
    epsilon: float | None = None
    epsilon_by_adversary: dict[str, float] = field(default_factory=dict)
    bytes_down: int = 0
    bytes_up: int = 0
    server_cpu_s: float = 0.0
    verified: bool | None = None


@dataclass
class _Pending:
    params: RoundParams
    ctx: RoundContext
    nodes: dict[int, int]  # node id -> secagg id
    arrays: ArrayRecord
    weights: np.ndarray
    train_msgs: list[Message]
    session: secagg.ServerSession | None
    log: RoundLog
    grid: Grid
    spec: PrivacySpec
    mech: Mechanism


class PrivAggStrategy(Strategy):
    """Wraps a Flower Message-API strategy (FedAvg, FedAdam, a user's own) with privagg's secure aggregation
    and client-level DP, configured from the same flat run config the clients read (`[tool.flwr.app.config]`).

    `run_config`: Flower's `context.run_config` (or a dict of dotted keys: "secagg.enabled", "dp.mode",
    "dp.noise_multiplier", "dp.clip_norm", "dp.max_epsilon", ...). Clients must run `privagg_mod`.
    `timeout`: seconds each secagg message round waits for replies (a node that does not answer drops).
    `state_file`: where the privacy state (accountants, clip norm, noise state) is saved after every
    charged round and loaded at the first round, so a restarted ServerApp keeps spending the same budget.
    """

    def __init__(
        self,
        inner: Strategy,
        run_config: Mapping[str, Any],
        *,
        timeout: float = 600.0,
        state_file: str | Path | None = None,
    ) -> None:
        if not isinstance(inner, Strategy):
            raise ConfigError(f"inner must be a flwr.serverapp.strategy.Strategy, got {type(inner).__name__}")
        self.inner = inner
        self.privacy = FlowerPrivacy.from_run_config(run_config)
        if self.privacy.mode == "distributed" and not self.privacy.secagg:
            raise ConfigError(
                "dp.mode='distributed' needs secagg.enabled = true (noise shares alone are no DP)"
            )
        self.timeout = timeout
        self.state_file = Path(state_file) if state_file is not None else None
        self.spec: PrivacySpec | None = None
        self.mechanism: Mechanism | None = None
        self.stopped: str | None = None
        self.history: list[RoundLog] = []
        self._pending: _Pending | None = None

    # -- Flower's Strategy interface -------------------------------------------------------------
    def summary(self) -> None:
        p = self.privacy
        log.info(
            "PrivAggStrategy: secagg=%s, dp.mode=%s around %s", p.secagg, p.mode, type(self.inner).__name__
        )
        self.inner.summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._pending = None
        if self.stopped:
            return []
        nodes = sorted(grid.get_node_ids())
        offered = self._sample(nodes)
        floor = max(
            2, *(int(getattr(self.inner, a, 0) or 0) for a in ("min_available_nodes", "min_train_nodes"))
        )
        if len(offered) < floor:  # the inner strategy would wait for nodes it is never offered
            log.warning("privagg round %d: %d of %d nodes sampled, fewer than %d: round skipped",
                        server_round, len(offered), len(nodes), floor)  # fmt: skip
            self.history.append(RoundLog(server_round, len(offered), len(nodes), aborted="cohort too small"))
            return []
        msgs = list(self.inner.configure_train(server_round, arrays, config, _Offered(grid, offered)))
        if not msgs:
            return []
        population = max(len(nodes), len(msgs))
        arrays = _one_model(msgs, arrays)
        weights = flatten(arrays)
        spec, mech = self._mechanism(weights.size, len(msgs), population)
        round_id = secrets.token_bytes(16)
        params = RoundParams(
            Stage.ADVERTISE_KEYS, server_round, 0, len(msgs), population, weights.size, round_id,
            model_hash(arrays), float(getattr(mech, "clip_norm", 1.0)),
        )  # fmt: skip
        ctx = rounds.context(params)
        record = RoundLog(server_round, len(msgs), population)
        reason = mech.budget_stop(ctx)
        if reason is not None:
            self.stopped = reason
            log.warning("privagg: round %d not started: %s", server_round, reason)
            record.aborted = f"budget: {reason}"
            self.history.append(record)
            return []
        sids = {m.metadata.dst_node_id: i for i, m in enumerate(msgs)}
        pending = _Pending(params, ctx, sids, arrays, weights, msgs, None, record, grid, spec, mech)
        self._pending = pending
        payload: dict[int, bytes] = dict.fromkeys(sids.values(), b"")
        if self.privacy.secagg:
            try:
                payload = self._setup_secagg(pending)
            except _ABORTS as exc:
                return self._abort(pending, exc)
        out = []
        for m in msgs:  # Flower's strategies share one RecordDict among their messages: one each here
            sid = sids[m.metadata.dst_node_id]
            if sid in payload:
                content = RecordDict(dict(m.content.items()))
                content[RECORD] = self._params(pending, Stage.TRAIN, sid).record(payload[sid])
                record.bytes_down += content_bytes(content)
                md = m.metadata
                msg = Message(content, md.dst_node_id, md.message_type, ttl=md.ttl, group_id=md.group_id)
                out.append(msg)
        pending.train_msgs = out
        return out

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        pending, self._pending = self._pending, None
        if pending is None or pending.params.round != server_round:
            return None, None
        record = pending.log
        answers = self._collect(pending, list(replies))
        try:
            if pending.session is not None:
                sums = self._finish_secagg(pending, answers)
            else:
                sums = self._plain_sum(pending, answers)
        except _ABORTS as exc:
            self._abort(pending, exc)
            return None, self._metrics(record)
        mech = pending.mech
        delta, _info = mech.server_side(sums, pending.ctx)
        released = delta is not None or mech.release_empty
        if not mech.needs_local_events:  # local DP-SGD: each node charges its own ledger (privagg_mod)
            mech.charge(pending.ctx, released=released, trained=sums.survivors)
            self._save(mech)
        record.survivors = len(sums.survivors)
        self._log_epsilon(record)
        self.history.append(record)
        if delta is None:
            return None, self._metrics(record)
        new = unflatten(pending.weights + delta, pending.arrays)
        reply = Message(
            RecordDict({"arrays": new, "metrics": self._reply_metrics(mech, sums)}),
            reply_to=pending.train_msgs[0],
        )
        arrays, metrics = self.inner.aggregate_train(server_round, [reply])
        out = MetricRecord(dict(metrics)) if metrics is not None else MetricRecord()
        for k, v in self._metrics(record).items():
            out[k] = v
        return arrays, out

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self.inner.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        return self.inner.aggregate_evaluate(server_round, replies)

    # -- privacy ---------------------------------------------------------------------------------
    def _mechanism(self, dim: int, n: int, population: int) -> tuple[PrivacySpec, Mechanism]:
        """Built at the first round (the model size is known then), kept across rounds (its accountants and
        clip norm); each round's sampler is that round's cohort of n out of the population."""
        spec, mech = self.spec, self.mechanism
        if spec is None or mech is None:
            spec, mech = rounds.build(self.privacy, dim, n, population)
            self.spec, self.mechanism = spec, mech
            self._resume(mech)
        elif mech.dim != dim:
            raise ConfigError(f"the model changed size between rounds ({mech.dim} -> {dim})")
        mech.sampler = self.privacy.sampler(n, population)
        return spec, mech

    def _resume(self, mech: Mechanism) -> None:
        """Load the accountants, clip norm and noise state a previous ServerApp saved (`state_file`), so a
        restarted run keeps spending the same budget instead of starting from zero."""
        if self.state_file is None or not self.state_file.exists():
            return
        try:
            saved = json.loads(self.state_file.read_text(encoding="utf-8"))
            if saved.get("version") != _STATE_VERSION or saved.get("mechanism_name") != mech.name:
                other = saved.get("mechanism_name")
                raise ConfigError(f"{self.state_file} holds the state of another privagg setup: {other!r}")
            if saved.get("dim") != mech.dim:
                raise ConfigError(
                    f"{self.state_file} is for a model of {saved.get('dim')} parameters, not {mech.dim}"
                )
            mech.load_state(saved["mechanism"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"privacy state {self.state_file} cannot be read: {exc}") from None
        log.info("privagg: resumed the privacy state of %s (epsilon %s)", self.state_file, self.epsilons())

    def _save(self, mech: Mechanism) -> None:
        """After every charged round: the mechanism's state, written atomically (a crash keeps the old or
        the new file, never a torn one)."""
        if self.state_file is None:
            return
        data = {
            "version": _STATE_VERSION,
            "mechanism_name": mech.name,
            "dim": mech.dim,
            "mechanism": mech.state(),
        }
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.state_file, json.dumps(data, sort_keys=True).encode())

    def _sample(self, nodes: list[int]) -> list[int]:
        """This round's cohort, drawn by privagg from the OS's CSPRNG (so amplification by sampling is
        claimed only for a sample privagg drew): Poisson with `sampling.rate`, or `clients_per_round`
        uniformly without replacement, or every node (the default). The inner strategy is offered these
        nodes only and should take all of them (e.g. FedAvg(fraction_train=1.0))."""
        s = self.privacy.config.sampling
        rng = secrets.SystemRandom()
        if s.mode == "poisson":
            return [n for n in nodes if rng.random() < s.rate]
        m = s.clients_per_round
        return nodes if m is None or m >= len(nodes) else sorted(rng.sample(nodes, m))

    def epsilons(self) -> dict[str, float]:
        """epsilon so far against each adversary (empty without DP)."""
        mech = self.mechanism
        return dict(mech.epsilons()) if mech is not None and hasattr(mech, "epsilons") else {}

    def _log_epsilon(self, record: RoundLog) -> None:
        mech = self.mechanism
        if mech is None or self.privacy.mode in ("none", "local"):
            return
        record.epsilon = mech.epsilon()
        record.epsilon_by_adversary = self.epsilons()
        who = getattr(mech, "headline", "")
        log.info("privagg round %d: epsilon (%s) = %.4g", record.round, who, record.epsilon)

    # -- secagg message rounds -------------------------------------------------------------------
    def _params(self, pending: _Pending, stage: Stage, sid: int) -> RoundParams:
        p = pending.params
        return RoundParams(
            stage, p.round, sid, p.n, p.population, p.dim, p.round_id, p.model_hash, p.clip_norm
        )

    def _exchange(self, pending: _Pending, stage: Stage, payloads: Mapping[int, bytes]) -> dict[int, bytes]:
        """One message round: each node in `payloads` gets its payload; returns the replies' payloads by
        secagg id. A node that does not answer in time, or answers with an error, has dropped."""
        grid = pending.grid
        by_sid = {sid: node for node, sid in pending.nodes.items()}
        out = []
        for sid, payload in payloads.items():
            content = RecordDict({RECORD: self._params(pending, stage, sid).record(payload)})
            pending.log.bytes_down += content_bytes(content)
            out.append(Message(content, by_sid[sid], MESSAGE_TYPE, group_id=str(pending.params.round)))
        return self._collect(pending, list(grid.send_and_receive(out, timeout=self.timeout)))

    def _collect(self, pending: _Pending, replies: list[Message]) -> dict[int, bytes]:
        got: dict[int, bytes] = {}
        for r in replies:
            sid = pending.nodes.get(r.metadata.src_node_id)
            if sid is None:
                continue
            if r.has_error():
                log.warning("privagg round %d: node %d dropped: %s", pending.params.round,
                            r.metadata.src_node_id, r.error.reason)  # fmt: skip
                continue
            pending.log.bytes_up += content_bytes(r.content)
            rec = r.content.config_records.get(RECORD)
            payload = rec.get("payload") if rec is not None else None
            if isinstance(payload, bytes):
                got[sid] = payload
        return got

    def _receive(self, pending: _Pending, answers: Mapping[int, bytes]) -> None:
        session = pending.session
        if session is None:
            raise secagg.StageError("no secure aggregation session in this round")
        for sid, payload in sorted(answers.items()):
            c0 = time.thread_time()
            try:
                msg = secagg.messages.decode(payload)
                if getattr(msg, "sender", sid) != sid:
                    raise secagg.InvalidMessageError(f"node {sid} answered as {msg.sender}")  # type: ignore
                session.receive(msg)
            except secagg.InvalidMessageError as exc:  # that node's message is dropped, not the round
                log.warning(
                    "privagg round %d: rejected a message of client %d: %s", pending.params.round, sid, exc
                )
            finally:
                pending.log.server_cpu_s += time.thread_time() - c0

    def _server(self, pending: _Pending, fn: Any) -> Any:
        c0 = time.thread_time()
        try:
            return fn()
        finally:
            pending.log.server_cpu_s += time.thread_time() - c0

    def _setup_secagg(self, pending: _Pending) -> dict[int, bytes]:
        """Advertise keys and share keys; returns each surviving node's routed shares (its TRAIN payload)."""
        cfg = rounds.secagg_config(pending.spec, pending.mech, pending.params)
        pending.session = secagg.ServerSession(cfg)
        everyone = dict.fromkeys(pending.nodes.values(), b"")
        self._receive(pending, self._exchange(pending, Stage.ADVERTISE_KEYS, everyone))
        bcasts = self._server(pending, pending.session.broadcast_keys)
        keys = {sid: m.to_bytes() for sid, m in bcasts.items()}
        self._receive(pending, self._exchange(pending, Stage.SHARE_KEYS, keys))
        routed = self._server(pending, pending.session.route_shares)
        return {sid: m.to_bytes() for sid, m in routed.items()}

    def _finish_secagg(self, pending: _Pending, answers: Mapping[int, bytes]) -> Sums:
        session, spec, mech = pending.session, pending.spec, pending.mech
        if session is None:
            raise secagg.StageError("no secure aggregation session in this round")
        self._receive(pending, answers)
        lists = self._server(pending, session.request_consistency)
        self._receive(
            pending, self._exchange(pending, Stage.CONSISTENCY, {s: m.to_bytes() for s, m in lists.items()})
        )
        requests = self._server(pending, session.request_unmask_each)  # O(k) each without identity keys
        unmask = {s: m.to_bytes() for s, m in requests.items()}
        self._receive(pending, self._exchange(pending, Stage.UNMASK, unmask))
        ring_sum = self._server(pending, session.finish)
        pending.log.verified = not session.unverified
        survivors = tuple(session.survivors)
        ctx = pending.ctx
        if rounds.is_ring(mech):
            body, slots = mech.decode_ring(ring_sum, ctx), {}
        else:
            enc = rounds.encoding(spec, mech, ctx)
            total = enc.decode_sum(ring_sum)
            secagg.check_sum(ring_sum, total, enc, len(survivors), None)  # garbage masked input: abort
            body, slots = rounds.layout(spec, mech).unpack(total)
        return self._sums(body, slots, survivors, pending)

    def _plain_sum(self, pending: _Pending, answers: Mapping[int, bytes]) -> Sums:
        """secagg off (dp.mode none or central): each node's packed vector in the clear; the server enforces
        the mechanism's sensitivity itself (unit weight and a re-clip under DP) before summing."""
        lay, mech = rounds.layout(pending.spec, pending.mech), pending.mech
        total = np.zeros(lay.size)
        survivors = []
        for sid, payload in sorted(answers.items()):
            vec = np.frombuffer(payload, dtype="<f8") if len(payload) == 8 * lay.size else None
            if vec is None or not np.all(np.isfinite(vec)):
                log.warning(
                    "privagg round %d: rejected a malformed update of client %d", pending.params.round, sid
                )
                continue
            body, slots = lay.unpack(vec.astype(np.float64))
            c = Contribution(sid, body, slots.get("weight", 1.0), None, slots.get("indicator"))
            if not mech.weighted:
                c = mech.enforce(c)
                slots = {**slots, "weight": 1.0}
            total += lay.pack(c.delta, slots)
            survivors.append(sid)
        body, slots = lay.unpack(total)
        return self._sums(body, slots, tuple(survivors), pending)

    def _sums(
        self, body: np.ndarray, slots: Mapping[str, float], survivors: tuple[int, ...], pending: _Pending
    ) -> Sums:
        return rounds.packer(pending.spec).sums(body, slots, survivors, pending.params.n, pending.mech)

    def _reply_metrics(self, mech: Mechanism, sums: Sums) -> MetricRecord:
        """The one reply the inner strategy aggregates: its weight is the (scaled) sum of example counts."""
        out: dict[str, float] = {"num-examples": max(float(sums.weight), 1e-12)}
        loss = mech.train_loss(sums)
        if np.isfinite(loss):
            out["train_loss"] = float(loss)
        return MetricRecord(out)

    def _abort(self, pending: _Pending, exc: BaseException) -> list[Message]:
        """The round ends without a sum: nothing individual was revealed, nothing is charged."""
        pending.log.aborted = f"{type(exc).__name__}: {exc}"
        log.warning("privagg round %d aborted: %s", pending.params.round, exc)
        self.history.append(pending.log)
        self._pending = None
        return []

    def _metrics(self, record: RoundLog) -> MetricRecord:
        out: dict[str, int | float] = {
            "privagg.started": record.started,
            "privagg.survivors": record.survivors,
            "privagg.aborted": int(record.aborted is not None),
            "privagg.bytes_down": record.bytes_down,
            "privagg.bytes_up": record.bytes_up,
            "privagg.server_cpu_s": record.server_cpu_s,
        }
        if record.epsilon is not None:
            out["privagg.epsilon"] = record.epsilon
        return MetricRecord(out)


def _one_model(msgs: list[Message], arrays: ArrayRecord) -> ArrayRecord:
    """The one model the inner strategy sends every node (what secagg binds and the deltas are taken
    from); ConfigError when it sends different models to different nodes or none at all."""
    seen: dict[int, bytes] = {}
    first: ArrayRecord | None = None
    for m in msgs:
        recs = list(m.content.array_records.values())
        if len(recs) != 1:
            raise ConfigError(f"the inner strategy's train message holds {len(recs)} ArrayRecords, not 1")
        if id(recs[0]) not in seen:
            seen[id(recs[0])] = model_hash(recs[0])
        first = first or recs[0]
    if len(set(seen.values())) > 1:
        raise ConfigError(
            "the inner strategy sent different models to different nodes: secure aggregation sums updates "
            "of one model (the hash of the model is bound into every node's keys)"
        )
    return first if first is not None else arrays


class _Offered(Grid):
    """The round's Grid as the inner strategy sees it: only the nodes privagg sampled are connected."""

    def __init__(self, grid: Grid, nodes: list[int]) -> None:
        self._grid, self._nodes = grid, list(nodes)

    def set_run(self, run: Any) -> None:
        self._grid.set_run(run)

    @property
    def run(self) -> Any:
        return self._grid.run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return self._grid.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        return list(self._nodes)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self._grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self._grid.pull_messages(message_ids)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        return self._grid.send_and_receive(messages, timeout=timeout)
