"""Validated parameters of one secure-aggregation round, shared by the server and every client."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from secagg.errors import SecAggConfigError
from secagg.params import choose_parameters

__all__ = ["SecAggConfig", "MAX_CLIENT_ID", "MAX_VECTOR_LENGTH"]

MAX_CLIENT_ID = 2**32 - 2
MAX_VECTOR_LENGTH = 2**28  # 1 GiB of uint32 per vector


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class SecAggConfig:
    """One round: the cohort, vector length, share holders per client k (n - 1 = complete graph), threshold t.

    `min_survivors` is the smallest survivor set an honest client accepts to unmask (default t);
    `round_id` and `model_hash` are bound into every derived key, ciphertext and signature.
    """

    client_ids: tuple[int, ...]
    vector_length: int
    threshold: int
    neighbours: int
    round_id: bytes = b""
    model_hash: bytes = b""
    min_survivors: int | None = None
    max_corrupt: int = 0

    def __post_init__(self) -> None:
        ids = self.client_ids
        if not isinstance(ids, tuple) or not all(_is_int(i) for i in ids):
            raise SecAggConfigError(f"client_ids must be a tuple of ints, got {ids!r}"[:200])
        n = len(ids)
        if n < 2:
            raise SecAggConfigError(f"a round needs at least 2 clients, got {n}")
        if len(set(ids)) != n:
            raise SecAggConfigError("client_ids must be unique")
        if list(ids) != sorted(ids):
            raise SecAggConfigError("client_ids must be sorted")
        if ids[0] < 0 or ids[-1] > MAX_CLIENT_ID:
            raise SecAggConfigError(f"client ids must be in [0, {MAX_CLIENT_ID}], got {ids[0]}..{ids[-1]}")
        d = self.vector_length
        if not _is_int(d) or not 1 <= d <= MAX_VECTOR_LENGTH:
            raise SecAggConfigError(f"vector_length must be an int in [1, {MAX_VECTOR_LENGTH}], got {d!r}")
        k = self.neighbours
        if not _is_int(k) or not 1 <= k <= n - 1:
            raise SecAggConfigError(f"neighbours must be an int in [1, {n - 1}], got {k!r}")
        t = self.threshold
        if not _is_int(t) or not 1 <= t <= k:
            raise SecAggConfigError(f"threshold must be an int in [1, neighbours={k}], got {t!r}")
        for name in ("round_id", "model_hash"):
            v = getattr(self, name)
            if not isinstance(v, bytes) or len(v) > 64:
                raise SecAggConfigError(f"{name} must be bytes of length <= 64, got {v!r}"[:200])
        c = self.max_corrupt
        if not _is_int(c) or not 0 <= c < n:
            raise SecAggConfigError(f"max_corrupt must be an int in [0, n={n}), got {c!r}")
        if k == n - 1 and t <= c:
            raise SecAggConfigError(
                f"threshold t={t} can be met by the {c} corrupt clients tolerated at the complete graph: "
                f"need t > max_corrupt"
            )
        ms = self.min_survivors
        if ms is None:
            object.__setattr__(self, "min_survivors", t)
        elif not _is_int(ms) or not t <= ms <= n:
            raise SecAggConfigError(f"min_survivors must be an int in [threshold={t}, n={n}], got {ms!r}")

    @cached_property
    def cohort(self) -> frozenset[int]:
        """The cohort's ids as a set (computed once per config, shared by the sessions using it)."""
        return frozenset(self.client_ids)

    @property
    def n(self) -> int:
        """Cohort size."""
        return len(self.client_ids)

    @property
    def corrupt_neighbours(self) -> int:
        """Most corrupt clients among one client's k holders under the config's assumptions: every
        tolerated corrupt client at the complete graph; fewer than t when each client draws its k holders
        (the security bound of `params.choose_parameters`, Bell et al. 2020, Sec. 4), and never more than
        `max_corrupt`. It bounds the holders a client drew, never the clients that drew it."""
        if self.complete_graph:
            return self.max_corrupt
        return min(self.max_corrupt, self.threshold - 1)

    @property
    def min_mask_survivors(self) -> int:
        """Surviving mask-neighbours a survivor needs before honest clients help unmask it: one more than
        `corrupt_neighbours`, so that at least one is honest and one pairwise mask of the survivor with an
        honest survivor stays uncancelled (its input is revealed only inside a sum with it)."""
        return self.corrupt_neighbours + 1

    @property
    def complete_graph(self) -> bool:
        """True for Bonawitz's every-pair masking, False for SecAgg+ self-drawn holders."""
        return self.neighbours == self.n - 1

    @classmethod
    def create(
        cls,
        client_ids: Iterable[int],
        vector_length: int,
        *,
        dropout_rate: float = 0.1,
        corrupt_fraction: float = 0.05,
        semi_malicious: bool = False,
        round_id: bytes | None = None,
        model_hash: bytes = b"",
        min_survivors: int | None = None,
    ) -> SecAggConfig:
        """Config with (k, t) from `params.choose_parameters`; a random 16-byte round id unless given."""
        ids = tuple(sorted(client_ids))
        p = choose_parameters(
            len(ids),
            dropout_rate=dropout_rate,
            corrupt_fraction=corrupt_fraction,
            semi_malicious=semi_malicious,
        )
        return cls(
            client_ids=ids,
            vector_length=vector_length,
            threshold=p.threshold,
            neighbours=p.neighbours,
            round_id=os.urandom(16) if round_id is None else round_id,
            model_hash=model_hash,
            min_survivors=min_survivors,
            max_corrupt=math.floor(corrupt_fraction * len(ids)),
        )
