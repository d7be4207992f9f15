"""Frozen value types that travel through a federated round.

A model travels as one flat float32 vector (`ModelVector`); the model zoo's `get_flat`/`set_flat`
convert between a torch module and that vector exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

ModelVector = npt.NDArray[np.float32]


@dataclass(frozen=True)
class RoundConfig:
    """What the server tells every sampled client for one round (the same for all of them)."""

    round: int
    local_epochs: int = 1
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.0
    proximal_mu: float = 0.0
    seed: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ClientUpdate:
    """One client's answer to `fit`: the model delta (local - global), its example count and metrics.

    `compute_s` is the elapsed time of local training on this machine (clients run one at a time, so
    it is the client's own; it shares secagg's clock, and with run.threads > 1 CPU time would add up
    torch's threads, idle spinning included)."""

    client_id: int
    delta: ModelVector
    num_examples: int
    metrics: Mapping[str, float] = field(default_factory=dict)
    compute_s: float = 0.0


@dataclass(frozen=True)
class RoundRecord:
    """What one round did and measured; one line of metrics.jsonl."""

    round: int
    sampled: int
    completed: int
    dropped: int
    rejected: int
    train_loss: float
    test: Mapping[str, float]
    bytes_down: int
    bytes_up: int
    wall_s: float
    sim_round_s: float
    extra: Mapping[str, Any] = field(default_factory=dict)

    def as_row(self) -> dict[str, Any]:
        """Flat dict for JSONL/CSV: test metrics prefixed `test_`, extras as they are."""
        row: dict[str, Any] = {
            "round": self.round,
            "sampled": self.sampled,
            "completed": self.completed,
            "dropped": self.dropped,
            "rejected": self.rejected,
            "train_loss": self.train_loss,
        }
        row.update({f"test_{k}": v for k, v in self.test.items()})
        row.update(
            {
                "bytes_down": self.bytes_down,
                "bytes_up": self.bytes_up,
                "wall_s": self.wall_s,
                "sim_round_s": self.sim_round_s,
            }
        )
        row.update(self.extra)
        return row
