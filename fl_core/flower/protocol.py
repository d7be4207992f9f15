"""What the server wrapper and the client mod say to each other inside Flower messages.

Every privagg message is a Flower message of type "train" (so it reaches the `train` function the user
registered, through the mod) whose content holds a `ConfigRecord` under the key `RECORD`: the stage, the
round's public parameters (`RoundParams`) and one opaque `payload` (a secagg wire message, or the packed
update when secagg is off). Secrets never leave the node; the client's secagg state between stages
lives in `context.state` (a SuperNode may start a fresh process for every message).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from flwr.app import ConfigRecord

from fl_core.errors import ConfigError

if TYPE_CHECKING:
    from dp_accounting import DpEvent

RECORD = "privagg"
STATE_RECORD = "privagg.secagg"
#: the train function's DP-SGD event (dp.mode = "local"), read and stripped by the mod, never sent
DP_SGD_RECORD = "privagg.dp_sgd"
#: the node's own ledger of its DP-SGD events across rounds, in context.state
LEDGER_RECORD = "privagg.ledger"
MESSAGE_TYPE = "train"


class Stage(str, Enum):
    """The message rounds of one privagg round; TRAIN carries the model and returns the masked update."""

    ADVERTISE_KEYS = "advertise_keys"
    SHARE_KEYS = "share_keys"
    TRAIN = "train"
    CONSISTENCY = "consistency"
    UNMASK = "unmask"


@dataclass(frozen=True)
class RoundParams:
    """A round's public parameters, as the server states them (a client checks them against its own run
    config before it acts on them): who it is in the round (`sid`), the cohort size `n` out of
    `population` nodes, the model's size `dim`, the round id and model hash secagg binds, and the current
    clip norm."""

    stage: Stage
    round: int
    sid: int
    n: int
    population: int
    dim: int
    round_id: bytes
    model_hash: bytes
    clip_norm: float

    def record(self, payload: bytes = b"") -> ConfigRecord:
        """The record a message carries; an empty payload is left out (Flower cannot count empty bytes)."""
        fields: dict[str, str | int | float | bytes] = {
            "stage": self.stage.value,
            "round": self.round,
            "sid": self.sid,
            "n": self.n,
            "population": self.population,
            "dim": self.dim,
            "round_id": self.round_id,
            "model_hash": self.model_hash,
            "clip_norm": float(self.clip_norm),
        }
        if payload:
            fields["payload"] = payload
        return ConfigRecord(fields)

    @classmethod
    def parse(cls, rec: ConfigRecord) -> tuple[RoundParams, bytes]:
        """(params, payload) from a server's record; ConfigError naming the field that is wrong."""
        try:
            stage = Stage(rec["stage"])
            ints = {k: rec[k] for k in ("round", "sid", "n", "population", "dim")}
            blobs = {k: rec[k] for k in ("round_id", "model_hash")}
            blobs["payload"] = rec.get("payload", b"")
            clip = rec["clip_norm"]
        except (KeyError, ValueError, TypeError) as exc:
            raise ConfigError(f"privagg message without a valid stage or field: {exc}") from None
        for k, v in ints.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"privagg message field {k!r} must be an int >= 0, got {v!r}")
        for k, v in blobs.items():
            if not isinstance(v, bytes):
                raise ConfigError(f"privagg message field {k!r} must be bytes, got {type(v).__name__}")
        if isinstance(clip, bool) or not isinstance(clip, float | int) or not clip > 0:
            raise ConfigError(f"privagg message field 'clip_norm' must be > 0, got {clip!r}")
        if ints["n"] > ints["population"] or ints["sid"] >= max(ints["n"], 1):
            raise ConfigError(f"privagg message with sid {ints['sid']} in a cohort of {ints['n']}")
        params = cls(
            stage, ints["round"], ints["sid"], ints["n"], ints["population"], ints["dim"], blobs["round_id"],
            blobs["model_hash"], float(clip),
        )  # fmt: skip
        return params, blobs["payload"]


def reply_record(payload: bytes) -> ConfigRecord:
    return ConfigRecord({"payload": payload} if payload else {})


def dp_sgd_record(event: DpEvent) -> ConfigRecord:
    """What a train function adds to its reply under dp.mode = "local": the DpEvent its DP-SGD cost this
    round (e.g. `fl_core.LocalDP.event(num_examples, round_config)`); the mod charges it to the node's
    ledger and strips it before anything leaves the node."""
    from dp.accountant import event_to_dict

    return ConfigRecord({"event": json.dumps(event_to_dict(event), sort_keys=True)})
