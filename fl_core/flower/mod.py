"""`privagg_mod`: the client side of `PrivAggStrategy`, as a Flower mod on the ClientApp's train function.

    app = ClientApp()

    @app.train(mods=[privagg_mod])
    def train(msg: Message, context: Context) -> Message: ...   # the user's own train function

The mod answers the secagg stages itself (advertise keys, share keys, consistency, unmask) and, on the
TRAIN stage, checks the model against the hash it agreed to, runs the user's train function, and turns
its reply into the round's contribution: delta = trained - global, the mechanism's client step (clip,
noise share), packing with the example count and loss, fixed-point encoding and masking. Only the
masked vector leaves the node. Everything it needs is derived from the node's own run config; the
secagg session between stages lives in `context.state` (a SuperNode may run each message in a fresh
process), serialized by `secagg.ClientSession.export_state` (no pickle).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp.typing import ClientAppCallable
from flwr.common.constant import ErrorCode

import secagg
from dp.errors import DPError
from fl_core.errors import ConfigError, FLError
from fl_core.flower.arrays import flatten, model_hash
from fl_core.flower.protocol import (
    DP_SGD_RECORD,
    LEDGER_RECORD,
    RECORD,
    STATE_RECORD,
    RoundParams,
    Stage,
    reply_record,
)
from fl_core.flower.settings import FlowerPrivacy

if TYPE_CHECKING:  # imported where used: the key stages start without dp_accounting and scipy
    from fl_core.mechanisms import Mechanism
    from fl_core.privacy import PrivacySpec
    from fl_core.types import ClientUpdate

log = logging.getLogger("flwr.privagg")

#: the error code of a refusal by the mod: Flower's "mod failed precondition"
REFUSED = ErrorCode.MOD_FAILED_PRECONDITION


def privagg_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Answer privagg's stages; wrap the user's train function on the TRAIN stage (see the module doc)."""
    try:
        privacy = FlowerPrivacy.from_run_config(context.run_config)
        rec = msg.content.config_records.get(RECORD) if msg.has_content() else None
        if rec is None:
            if privacy.secagg or privacy.mode != "none":
                raise ConfigError(
                    "this node runs privagg (secagg or DP on in its run config) but the server sent a plain "
                    "train message: refusing to send an unprotected update (is the server a PrivAggStrategy?)"
                )
            return call_next(msg, context)
        params, payload = RoundParams.parse(rec)
        return _STAGES[params.stage](msg, context, call_next, privacy, params, payload)
    except (FLError, DPError, secagg.SecAggError) as exc:
        _forget(context)
        log.warning("privagg_mod refused a message: %s", exc)
        return Message(Error(code=REFUSED, reason=f"privagg: {type(exc).__name__}: {exc}"), reply_to=msg)


def _round(privacy: FlowerPrivacy, p: RoundParams, node_id: int) -> tuple[PrivacySpec, Mechanism]:
    from fl_core.flower import rounds

    spec, mech = rounds.build(privacy, p.dim, p.n, p.population)
    if spec.seed is not None:  # a seeded (test) run: each node its own noise stream, never a shared one
        digest = hashlib.sha256(f"privagg/flower-noise/{spec.seed}/{node_id}/{p.round}".encode()).digest()
        spec = replace(spec, seed=int.from_bytes(digest[:7], "little"))
        spec, mech = spec, type(mech)(spec, dim=p.dim, sampler=mech.sampler)
    return spec, mech


_CONFIG_FIELDS = ("vector_length", "threshold", "neighbours", "min_survivors", "max_corrupt")


def _session(context: Context, p: RoundParams) -> secagg.ClientSession:
    """This round's secagg session from context.state, with the SecAgg+ config this node derived itself
    at the round's first stage (kept beside it); InvalidMessageError when none matches the message."""
    rec = context.state.config_records.get(STATE_RECORD)
    if (
        rec is None
        or rec.get("round_id") != p.round_id
        or rec.get("sid") != p.sid
        or rec.get("n") != p.n
        or rec.get("model_hash") != p.model_hash
    ):
        raise secagg.InvalidMessageError(
            f"no secagg session for round {p.round} on this node (stage {p.stage.value})"
        )
    data = rec.get("state")
    fields = {k: rec.get(k) for k in _CONFIG_FIELDS}
    if not isinstance(data, bytes) or not all(isinstance(v, int) for v in fields.values()):
        raise secagg.InvalidMessageError("the stored secagg session is malformed")
    cfg = secagg.SecAggConfig(
        client_ids=tuple(range(p.n)),
        round_id=p.round_id,
        model_hash=p.model_hash,
        **fields,  # type: ignore[arg-type]
    )
    return secagg.ClientSession.from_state(data, cfg)


def _keep(context: Context, p: RoundParams, session: secagg.ClientSession) -> None:
    cfg = session.config
    context.state[STATE_RECORD] = ConfigRecord(
        {
            "round_id": p.round_id,
            "model_hash": p.model_hash,
            "sid": p.sid,
            "n": p.n,
            **{k: int(getattr(cfg, k)) for k in _CONFIG_FIELDS},
            "state": session.export_state(),
        }
    )


def _forget(context: Context) -> None:
    if STATE_RECORD in context.state:
        del context.state[STATE_RECORD]


def _reply(msg: Message, payload: bytes) -> Message:
    return Message(RecordDict({RECORD: reply_record(payload)}), reply_to=msg)


def _config(privacy: FlowerPrivacy, p: RoundParams, node_id: int) -> secagg.SecAggConfig:
    """The round's SecAgg+ config as this node derives it from its own run config (never the server's)."""
    from fl_core.flower import rounds

    if not privacy.secagg:
        raise ConfigError("the server asked for a secagg stage but secagg.enabled is off on this node")
    spec, mech = _round(privacy, p, node_id)
    return rounds.secagg_config(spec, mech, p)


def _advertise(msg, context, call_next, privacy, p, payload) -> Message:  # type: ignore[no-untyped-def]
    session = secagg.ClientSession(_config(privacy, p, context.node_id), p.sid)
    out = session.advertise_keys()
    _keep(context, p, session)
    return _reply(msg, out.to_bytes())


def _share_keys(msg, context, call_next, privacy, p, payload) -> Message:  # type: ignore[no-untyped-def]
    session = _session(context, p)
    out = session.share_keys(secagg.messages.decode(payload))
    _keep(context, p, session)
    return _reply(msg, out.to_bytes())


def _consistency(msg, context, call_next, privacy, p, payload) -> Message:  # type: ignore[no-untyped-def]
    session = _session(context, p)
    out = session.consistency(secagg.messages.decode(payload))
    _keep(context, p, session)
    return _reply(msg, out.to_bytes())


def _unmask(msg, context, call_next, privacy, p, payload) -> Message:  # type: ignore[no-untyped-def]
    session = _session(context, p)
    out = session.unmask(secagg.messages.decode(payload))
    _forget(context)  # a client answers one unmask request per round, ever
    return _reply(msg, out.to_bytes())


def _train(msg, context, call_next, privacy, p, payload) -> Message:  # type: ignore[no-untyped-def]
    """Check the model, train (the user's function), and send only the masked (or, secagg off, the
    clipped) contribution."""
    arrays = _only(msg.content.array_records, "ArrayRecord", "the server's train message")
    if model_hash(arrays) != p.model_hash:
        raise secagg.InvalidMessageError("the model differs from the one this round's keys were bound to")
    global_vec = flatten(arrays)
    if global_vec.size != p.dim:
        raise ConfigError(f"the model has {global_vec.size} parameters, the round states {p.dim}")
    from fl_core.flower import rounds

    spec, mech = _round(privacy, p, context.node_id)
    session = _session(context, p) if privacy.secagg else None
    trained = call_next(msg, context)
    if trained.has_error():
        _forget(context)
        return trained
    if privacy.mode == "local":
        _charge_dp_sgd(context, privacy, p, trained)
    update = _update(p, trained, global_vec)
    ctx = rounds.context(p)
    if hasattr(mech, "clip_norm"):  # adaptive clipping: the server's current norm (it is public)
        mech.clip_norm = p.clip_norm  # type: ignore[attr-defined]
        if getattr(mech, "clipper", None) is not None:
            mech.clipper.clip_norm = p.clip_norm  # type: ignore[attr-defined]
    contribution = mech.client_side(update, ctx)
    if session is None:
        if mech.needs_secure_sum:
            raise ConfigError(f"the {mech.name} mechanism needs secagg.enabled = true")
        packed = rounds.layout(spec, mech).pack(contribution.delta, contribution.scalars())
        return _reply(msg, np.asarray(packed, dtype="<f8").tobytes())
    if contribution.ring is not None:
        x = contribution.ring
    else:
        enc = rounds.encoding(spec, mech, ctx)
        limit = mech.encoding_range(ctx)
        x = enc.encode(rounds.packer(spec).pack(contribution, mech, limit), np.random.default_rng())
    masked = session.masked_input(secagg.messages.decode(payload), x)
    _keep(context, p, session)
    return _reply(msg, masked.to_bytes())


def _charge_dp_sgd(context: Context, privacy: FlowerPrivacy, p: RoundParams, trained: Message) -> None:
    """dp.mode = "local": charge the train function's DP-SGD event to this node's own ledger (kept in
    context.state); past dp.max_epsilon the update is dropped here and never leaves the node."""
    rec = trained.content.config_records.get(DP_SGD_RECORD)
    if rec is None or not isinstance(rec.get("event"), str):
        raise ConfigError(
            "dp.mode='local' but the train function's reply carries no DP-SGD event: add "
            f"{DP_SGD_RECORD!r}: fl_core.flower.dp_sgd_record(event) to it"
        )
    from dp.accountant import PrivacyAccountant, event_from_dict

    try:
        event = event_from_dict(json.loads(rec["event"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"the train function's DP-SGD event is malformed: {exc}") from None
    d = privacy.config.dp
    stored = context.state.config_records.get(LEDGER_RECORD)
    ledger = (
        PrivacyAccountant.from_json(str(stored["json"]))
        if stored is not None
        else PrivacyAccountant(delta=d.delta, max_epsilon=d.max_epsilon)
    )
    ledger.commit(event, label="dp-sgd local training", round_id=p.round)  # BudgetExceededError past the cap
    context.state[LEDGER_RECORD] = ConfigRecord({"json": ledger.to_json(), "epsilon": ledger.epsilon()})


def node_epsilon(context: Context) -> float:
    """This node's sample-level epsilon so far under dp.mode = "local" (0.0 before its first round)."""
    stored = context.state.config_records.get(LEDGER_RECORD)
    return float(stored["epsilon"]) if stored is not None else 0.0


def _only(records: dict, kind: str, where: str):  # type: ignore[no-untyped-def,type-arg]
    if len(records) != 1:
        raise ConfigError(f"{where} must hold exactly one {kind}, found {len(records)}")
    return next(iter(records.values()))


def _update(p: RoundParams, trained: Message, global_vec: np.ndarray) -> ClientUpdate:
    """The user's train reply as a privagg ClientUpdate: trained - global, example count and loss."""
    from fl_core.types import ClientUpdate

    arrays: ArrayRecord = _only(trained.content.array_records, "ArrayRecord", "the train function's reply")
    metrics: MetricRecord | None = next(iter(trained.content.metric_records.values()), None)
    local = flatten(arrays)
    if local.size != global_vec.size:
        raise ConfigError(
            f"the train function returned {local.size} parameters, the model has {global_vec.size}"
        )
    count = metrics.get("num-examples", 1) if metrics is not None else 1
    loss = metrics.get("train_loss") if metrics is not None else None
    if isinstance(count, bool) or not isinstance(count, int | float) or not count > 0:
        raise ConfigError(f"the train reply's 'num-examples' must be > 0, got {count!r}")
    out: dict[str, float] = {}
    if isinstance(loss, int | float) and not isinstance(loss, bool) and np.isfinite(loss):
        out["train_loss"] = float(loss)
    return ClientUpdate(client_id=p.sid, delta=local - global_vec, num_examples=int(count), metrics=out)


_STAGES = {
    Stage.ADVERTISE_KEYS: _advertise,
    Stage.SHARE_KEYS: _share_keys,
    Stage.TRAIN: _train,
    Stage.CONSISTENCY: _consistency,
    Stage.UNMASK: _unmask,
}
