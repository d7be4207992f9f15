"""SecAgg+ neighbour graph: a k-regular Harary graph H(m, k) on a permutation the server cannot choose.

The graph is laid over the whole cohort of the round's config, on a permutation derived from the round
id, model hash and cohort (`cohort_seed`), all fixed before any key exists; a client that does not
advertise keys simply drops out of its neighbours' lists. So the server cannot choose a client's
neighbours by choosing which keys it forwards to whom (it could before: a review showed a server
showing a victim a view of only colluders). k >= m - 1 gives Bonawitz's complete graph.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable

import numpy as np

from secagg.errors import SecAggConfigError
from secagg.hazmat.prg import PrgBuffer

__all__ = ["cohort_seed", "graph_seed", "NeighbourGraph"]


def cohort_seed(round_id: bytes, model_hash: bytes, client_ids: Iterable[int]) -> bytes:
    """SHA-256 over the round id, model hash and the cohort's ids: fixed before any key exists, so the
    server cannot place a client next to chosen peers by choosing which keys it forwards."""
    h = hashlib.sha256(b"privagg-secagg/v2/graph" + struct.pack("<B", len(round_id)) + round_id)
    h.update(struct.pack("<B", len(model_hash)) + model_hash)
    for cid in sorted(client_ids):
        h.update(struct.pack("<I", cid))
    return h.digest()


def graph_seed(round_id: bytes, entries: Iterable[tuple[int, bytes, bytes]]) -> bytes:
    """SHA-256 over the round id and every (id, c_pk, s_pk) in id order: the graph's public randomness."""
    h = hashlib.sha256(b"privagg-secagg/v1/graph" + struct.pack("<B", len(round_id)) + round_id)
    for cid, c_pk, s_pk in sorted(entries):
        h.update(struct.pack("<I", cid) + c_pk + s_pk)
    return h.digest()


class NeighbourGraph:
    """Harary graph H(m, k) over `ids` laid on a seed-derived permutation; complete when k >= m - 1."""

    def __init__(self, ids: Iterable[int], k: int, seed: bytes) -> None:
        self.ids = tuple(sorted(ids))
        m = len(self.ids)
        if m < 2:
            raise SecAggConfigError(f"a neighbour graph needs at least 2 clients, got {m}")
        if k < 1:
            raise SecAggConfigError(f"neighbours must be >= 1, got {k}")
        self.complete = k >= m - 1
        self.k = m - 1 if self.complete else k
        if not self.complete and k % 2:
            raise SecAggConfigError(f"a Harary graph needs an even number of neighbours, got {k}")
        if self.complete:
            self._order = np.asarray(self.ids, dtype=np.int64)
            self._order_list = list(self.ids)
            self._pos = {}
            return
        # permutation = stable argsort of 64-bit keystream words: deterministic on every platform
        buf = PrgBuffer(2 * m)
        keys = buf.expand(seed[:16], seed[16:32]).view("<u8")
        order = np.argsort(keys, kind="stable")
        self._order = np.asarray(self.ids, dtype=np.int64)[order]
        self._order_list: list[int] = self._order.tolist()
        self._pos = {cid: i for i, cid in enumerate(self._order_list)}

    def neighbours(self, u: int) -> tuple[int, ...]:
        """The sorted neighbours of client u (never u itself)."""
        if self.complete:
            if u not in self.ids:
                raise SecAggConfigError(f"client {u} is not in the graph")
            return tuple(v for v in self.ids if v != u)
        i = self._pos.get(u)
        if i is None:
            raise SecAggConfigError(f"client {u} is not in the graph")
        m, h, order = len(self.ids), self.k // 2, self._order_list
        return tuple(
            sorted(
                [order[(i + o) % m] for o in range(1, h + 1)] + [order[(i - o) % m] for o in range(1, h + 1)]
            )
        )

    def all_neighbours(self) -> dict[int, tuple[int, ...]]:
        """Neighbours of every client (what the server needs), built in one vectorized pass."""
        if self.complete:
            return {u: self.neighbours(u) for u in self.ids}
        m, h = len(self.ids), self.k // 2
        offs = np.concatenate([np.arange(1, h + 1), -np.arange(1, h + 1)])
        idx = (np.arange(m)[:, None] + offs[None, :]) % m
        nb = np.sort(self._order[idx], axis=1)
        return {int(u): tuple(int(v) for v in row) for u, row in zip(self._order, nb, strict=True)}
