"""How a round's contributions become one sum: in plaintext, or through secure aggregation (secagg).

An `Aggregator` is injected beside the `Mechanism` (as Flower's mods wrap a client): it moves what the
mechanism produced on each device to the server and returns only `Sums`, the transmission's real bytes
and costs, and why any upload was rejected. It reads the mechanism's `layout` (the named scalar slots),
`encoding_range`, `min_survivors`, `weighted` and `enforce`, never its mode.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

import secagg
from fl_core.checkpoint import generator_state, set_generator_state
from fl_core.errors import ConfigError, UpdateRejectedError
from fl_core.mechanisms import Contribution, Mechanism, RoundContext, Sums, VectorLayout
from fl_core.types import ClientUpdate, ModelVector
from fl_core.wire import decode_update, encode_update

log = logging.getLogger("privagg.round")

#: the plaintext stage a client can vanish in (local training), then secagg's stages in protocol order
TRAINING = "training"
SECAGG_STAGES = ("advertise_keys", "share_keys", "masked_input", "consistency", "unmask")


@dataclass
class Transmission:
    """The outcome of moving one round's contributions to the server."""

    sums: Sums | None
    rejected: dict[int, str] = field(default_factory=dict)  # client -> why its upload was not summed
    bytes_up: dict[int, int] = field(default_factory=dict)
    bytes_down: dict[int, int] = field(default_factory=dict)
    client_cpu_s: dict[int, float] = field(default_factory=dict)  # secagg CPU (thread time)
    server_cpu_s: float = 0.0
    client_wall_s: dict[int, float] = field(default_factory=dict)  # the same work on the wall clock
    server_wall_s: float = 0.0
    max_abs_error: float = 0.0
    aborted: str | None = None
    verified: bool = True  # secagg: False when a secret was rebuilt from exactly t shares (unchecked)
    transcript: tuple[Any, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)  # what the aggregator adds to the round record


class Aggregator(Protocol):
    """Moves contributions to the server and sums them (see the module docstring)."""

    #: where a client can drop out, in order (the fault model draws from these)
    stages: tuple[str, ...]
    #: messages a client exchanges per round (for simulated latency)
    messages_per_round: int
    #: the server sees only the sum (a mechanism with `needs_secure_sum` requires it)
    secure: bool

    def upload_estimate(self, dim: int) -> int:
        """Bytes of one plain full-vector upload (what the deadline is judged on)."""
        ...

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps (generator states)."""
        ...

    def check(self, cohort: int, mechanism: Mechanism) -> None:
        """Refuse, before a run starts, a cohort this aggregator cannot serve safely."""
        ...

    def load_state(self, state: Mapping[str, Any]) -> None: ...

    def aggregate(
        self,
        ctx: RoundContext,
        contributions: Mapping[int, Contribution],
        drop_stage: Mapping[int, str],
        mechanism: Mechanism,
        global_weights: ModelVector,
    ) -> Transmission: ...


class PlaintextAggregator:
    """Every upload travels in the clear (`fl_core.wire`, optionally 8/16-bit quantized); the server decodes
    and validates each one, applies the mechanism's `enforce`, and sums. A client that failed never
    uploads."""

    stages = (TRAINING,)
    messages_per_round = 2
    secure = False

    def __init__(self, upload_bits: int = 32, seed: int = 0) -> None:
        self.upload_bits = upload_bits
        self._quant_rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))  # rounding: not secret

    def upload_estimate(self, dim: int) -> int:
        return self.upload_bits // 8 * dim + 64

    def state(self) -> dict[str, Any]:
        return {"rounding": generator_state(self._quant_rng)}

    def check(self, cohort: int, mechanism: Mechanism) -> None:
        return None

    def load_state(self, state: Mapping[str, Any]) -> None:
        set_generator_state(self._quant_rng, state["rounding"])

    def aggregate(
        self,
        ctx: RoundContext,
        contributions: Mapping[int, Contribution],
        drop_stage: Mapping[int, str],
        mechanism: Mechanism,
        global_weights: ModelVector,
    ) -> Transmission:
        if mechanism.needs_secure_sum or any(c.ring is not None for c in contributions.values()):
            raise ConfigError(
                f"the {mechanism.name} mechanism's uploads carry only a share of the noise: they must go "
                "through secure aggregation, never in the clear"
            )
        dim = mechanism.dim
        total = np.zeros(dim, dtype=np.float64)
        weight = loss = indicator = 0.0
        survivors: list[int] = []
        rejected: dict[int, str] = {}
        up: dict[int, int] = {}
        for cid, c in contributions.items():
            if cid in drop_stage:
                continue
            try:
                metrics = {
                    k: v for k, v in (("train_loss", c.loss), ("indicator", c.indicator)) if v is not None
                }
                sent = ClientUpdate(cid, np.asarray(c.delta, np.float32), _count(c.weight), metrics)
                data = encode_update(sent, ctx.round, bits=self.upload_bits, rng=self._quant_rng)
                up[cid] = len(data)
                got = decode_update(data, expected_round=ctx.round, expected_size=dim)
            except (UpdateRejectedError, ValueError) as exc:  # malformed, non-finite values or metrics
                rejected[cid] = rejection_reason(exc)
                log.warning("round %d: update of client %d rejected: %s", ctx.round, cid, exc)
                continue
            c = mechanism.enforce(
                Contribution(
                    cid,
                    got.delta.astype(np.float64),
                    float(got.num_examples),
                    got.metrics.get("train_loss"),
                    got.metrics.get("indicator"),
                )
            )
            total += c.weight * c.delta
            weight += c.weight
            loss += c.weight * (c.loss or 0.0)
            indicator += c.indicator or 0.0
            survivors.append(cid)
        sums = Sums(total, weight, loss, indicator, tuple(survivors), ctx.started) if survivors else None
        return Transmission(sums, rejected, up)


def _count(weight: float) -> int:
    return max(1, round(weight))


def rejection_reason(exc: BaseException) -> str:
    """A short, countable reason for a rejected update (the record counts rejections by reason)."""
    text = str(exc)
    for needle, reason in (
        ("non-finite", "non_finite"),
        ("values, expected", "wrong_length"),
        ("num_examples", "no_examples"),
        ("round", "wrong_round"),
    ):
        if needle in text:
            return reason
    return "malformed"


def secagg_parameters(n: int, dropout_tolerance: float, corrupt_fraction: float) -> tuple[int, int]:
    """(neighbours k, threshold t) for a cohort of n: `secagg.choose_parameters` (Bell et al. 2020 at
    sigma = 40, eta = 20, the complete graph for small cohorts), the same parameters `secagg.secure_sum`
    uses; where no safe threshold exists (the tolerated colluders could meet it), SecAggConfigError."""
    p = secagg.choose_parameters(n, dropout_rate=dropout_tolerance, corrupt_fraction=corrupt_fraction)
    return p.neighbours, p.threshold


class SecureAggregator:
    """SecAgg+ (`secagg`): each device encodes its packed vector into Z_2^32 and masks it; the server only
    ever holds masked vectors and the unmasked sum of at least max(t, mechanism.min_survivors) clients.

    The packed vector is the mechanism's layout plus a `beyond` slot (the fraction of coordinates outside
    the encoding range, so clipping by the ring shows in the record). Weights are capped at `weight_cap`
    and scaled by 1 / weight_cap when the mechanism weights by example counts."""

    stages = (TRAINING, *SECAGG_STAGES)
    messages_per_round = 10  # the download, then four stages of round trips
    secure = True

    def __init__(
        self,
        *,
        weight_cap: int = 1000,
        metric_scale: float = 100.0,
        dropout_tolerance: float = 0.3,
        corrupt_fraction: float = 0.05,
        record_transcript: bool = False,
        seed: int | None = None,
    ) -> None:
        self.weight_cap, self.metric_scale = weight_cap, metric_scale
        self.dropout_tolerance, self.corrupt_fraction = dropout_tolerance, corrupt_fraction
        self.record_transcript = record_transcript
        # the encoding's stochastic rounding: not secret (masks and DP noise hide the input), seeded so a
        # run reproduces; OS-seeded when no seed is given
        ss = np.random.SeedSequence([seed, 13]) if seed is not None else np.random.SeedSequence()
        self._rounding = np.random.default_rng(ss)

    def upload_estimate(self, dim: int) -> int:
        return 4 * dim + 64

    def state(self) -> dict[str, Any]:
        return {"rounding": generator_state(self._rounding)}

    def check(self, cohort: int, mechanism: Mechanism) -> None:
        """A secure sum of one client is its input: refuse it; and refuse a cohort with no safe threshold."""
        if cohort < 2:
            raise ConfigError(
                f"secagg.enabled with {cohort} client per round: a sum of one client is that client's "
                "input; sample at least 2 clients per round"
            )
        try:
            secagg_parameters(cohort, self.dropout_tolerance, self.corrupt_fraction)
        except secagg.SecAggConfigError as exc:
            raise ConfigError(f"secagg: no safe parameters for {cohort} clients per round: {exc}") from None

    def load_state(self, state: Mapping[str, Any]) -> None:
        set_generator_state(self._rounding, state["rounding"])

    def layout(self, mechanism: Mechanism) -> VectorLayout:
        return mechanism.layout.extended("beyond")

    def pack(self, c: Contribution, mechanism: Mechanism, limit: float) -> np.ndarray:
        """[scale * weight * delta, the mechanism's slots (weight and loss scaled to fit), beyond]."""
        cap = self.weight_cap if mechanism.weighted else 1
        w = min(c.weight, cap)
        scale = w / cap
        body = scale * np.asarray(c.delta, dtype=np.float64)
        values = {"weight": scale, "indicator": c.indicator or 0.0}
        if c.loss is not None:
            values["loss"] = scale * min(max(c.loss, 0.0), self.metric_scale) / self.metric_scale
        values["beyond"] = float(np.count_nonzero(np.abs(body) > limit)) / max(body.size, 1)
        return self.layout(mechanism).pack(body, values)

    def sums(
        self,
        body: np.ndarray,
        slots: Mapping[str, float],
        survivors: tuple[int, ...],
        started: int,
        mechanism: Mechanism,
    ) -> Sums:
        """The decoded sum as `Sums`: the body and the layout's slots, the loss back in its own units."""
        return Sums(
            body,
            slots.get("weight", 0.0),
            slots.get("loss", 0.0) * self.metric_scale,
            slots.get("indicator", 0.0),
            survivors,
            started,
            clipped_coords=round(slots.get("beyond", 0.0) * mechanism.dim),
        )

    def aggregate(
        self,
        ctx: RoundContext,
        contributions: Mapping[int, Contribution],
        drop_stage: Mapping[int, str],
        mechanism: Mechanism,
        global_weights: ModelVector,
    ) -> Transmission:
        tx = self._aggregate(ctx, contributions, drop_stage, mechanism, global_weights)
        tx.extra = {
            "secagg_aborted": tx.aborted is not None,
            "secagg_verified": tx.verified,
            "secagg_server_cpu_s": tx.server_cpu_s,
            "secagg_client_cpu_s": sum(tx.client_cpu_s.values()),  # all clients' secagg work, summed
            "secagg_max_abs_error": tx.max_abs_error,
            "secagg_clipped_coords": tx.sums.clipped_coords if tx.sums is not None else 0,
        }
        return tx

    def _aggregate(
        self,
        ctx: RoundContext,
        contributions: Mapping[int, Contribution],
        drop_stage: Mapping[int, str],
        mechanism: Mechanism,
        global_weights: ModelVector,
    ) -> Transmission:
        ids = sorted(contributions)
        if len(ids) < 2:
            return Transmission(None, aborted=f"secure aggregation needs >= 2 clients, {len(ids)} started")
        index = {cid: i for i, cid in enumerate(ids)}
        ring = contributions[ids[0]].ring is not None  # the mechanism encoded into the ring itself
        limit = 0.0 if ring else mechanism.encoding_range(ctx)
        vectors = []  # each device's packing counts in its secagg work (CPU and wall clocks apart)
        prep_cpu: dict[int, float] = {}
        prep_wall: dict[int, float] = {}
        for c in ids:
            w0, c0 = time.perf_counter(), time.thread_time()
            got = contributions[c]
            vectors.append(got.ring if ring else self.pack(got, mechanism, limit))
            prep_cpu[c], prep_wall[c] = time.thread_time() - c0, time.perf_counter() - w0
        prep = (prep_cpu, prep_wall)
        drops = {index[c]: st for c, st in drop_stage.items() if c in index and st in SECAGG_STAGES}
        try:
            k, t = secagg_parameters(len(ids), self.dropout_tolerance, self.corrupt_fraction)
            floor = max(t, mechanism.min_survivors(ctx))
            if mechanism.min_survivors(ctx) > len(ids):  # noise shares were sized for at least this many
                need = mechanism.min_survivors(ctx)
                return Transmission(
                    None, aborted=f"only {len(ids)} of {ctx.started} clients reached secagg, need {need}"
                )
            cfg = secagg.SecAggConfig(
                client_ids=tuple(range(len(ids))),
                vector_length=int(vectors[0].size),
                threshold=t,
                neighbours=k,
                round_id=ctx.round_id,
                model_hash=hashlib.sha256(np.ascontiguousarray(global_weights).tobytes()).digest(),
                min_survivors=min(floor, len(ids)),
                max_corrupt=math.floor(self.corrupt_fraction * len(ids)),
            )
            if ring:
                res = secagg.aggregate(vectors, cfg, dropouts=drops, record_transcript=self.record_transcript)
                body, slots = mechanism.decode_ring(res.sum, ctx), {}
            else:
                total, res = secagg.secure_sum(
                    vectors,
                    clip_range=limit,
                    dropouts=drops,
                    rng=self._rounding,
                    config=cfg,
                    record_transcript=self.record_transcript,
                )
                body, slots = self.layout(mechanism).unpack(total)
        except (secagg.ThresholdError, secagg.InvalidMessageError) as exc:
            # too few survivors, or a share off its polynomial / a decoded sum out of range: nothing
            # individual was revealed and the sum must not be used; what was sent was spent
            cost = getattr(exc, "cost", None)
            spent = _costs(cost, ids, *prep) if cost is not None else {}
            log.warning("round %d: secure aggregation aborted: %s", ctx.round, exc)
            return Transmission(None, aborted=f"secure aggregation aborted: {exc}", **spent)
        except secagg.SecAggConfigError as exc:  # this round's cohort has no safe parameters
            return Transmission(None, aborted=f"secure aggregation refused this cohort: {exc}")
        sums = self.sums(body, slots, tuple(ids[i] for i in res.survivors), ctx.started, mechanism)
        return Transmission(
            sums,
            max_abs_error=res.max_abs_error,
            transcript=res.transcript,
            verified=res.verified,
            **_costs(res, ids, *prep),
        )


def _costs(
    res: Any, ids: Sequence[int], prep_cpu: Mapping[int, float], prep_wall: Mapping[int, float]
) -> dict[str, Any]:
    """A secagg result's (or abort's) per-client bytes, CPU and wall time, keyed by the run's client ids,
    with each client's packing before the protocol added on the matching clock."""
    return {
        "bytes_up": {ids[i]: sum(v.values()) for i, v in res.bytes_up.items()},
        "bytes_down": {ids[i]: sum(v.values()) for i, v in res.bytes_down.items()},
        "client_cpu_s": {ids[i]: v + prep_cpu.get(ids[i], 0.0) for i, v in res.client_cpu_s.items()},
        "server_cpu_s": res.server_cpu_s,
        "client_wall_s": {ids[i]: v + prep_wall.get(ids[i], 0.0) for i, v in res.client_wall_s.items()},
        "server_wall_s": res.server_wall_s,
    }
