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

__all__ = [
    "cohort_seed",
    "graph_seed",
    "round_seed",
    "contribution_leaf",
    "contribution_tree",
    "contribution_path",
    "root_from_path",
    "NeighbourGraph",
]


def cohort_seed(round_id: bytes, model_hash: bytes, client_ids: Iterable[int]) -> bytes:
    """SHA-256 over the round id, model hash and the cohort's ids: fixed before any key exists, so the
    server cannot place a client next to chosen peers by choosing which keys it forwards."""
    h = hashlib.sha256(b"privagg-secagg/v2/graph" + struct.pack("<B", len(round_id)) + round_id)
    h.update(struct.pack("<B", len(model_hash)) + model_hash)
    for cid in sorted(client_ids):
        h.update(struct.pack("<I", cid))
    return h.digest()


_LEAF, _ABSENT, _NODE, _PAD = b"\x01", b"\x00", b"\x02", b"\x03"


def contribution_leaf(cid: int, c_pk: bytes, s_pk: bytes) -> bytes:
    """Merkle leaf of an advertised client: its fresh public keys are its contribution to the graph seed."""
    return hashlib.sha256(_LEAF + struct.pack("<I", cid) + c_pk + s_pk).digest()


def _absent_leaf(cid: int) -> bytes:
    return hashlib.sha256(_ABSENT + struct.pack("<I", cid)).digest()


def contribution_tree(client_ids: tuple[int, ...], keys: dict[int, tuple[bytes, bytes]]) -> list[list[bytes]]:
    """Levels (leaves first) of the Merkle tree over the cohort in id order: a leaf per member, its keys'
    hash if it advertised (`keys`), an absent marker if not; padded to a power of two."""
    level = [contribution_leaf(i, *keys[i]) if i in keys else _absent_leaf(i) for i in client_ids]
    levels = [level]
    pad = hashlib.sha256(_PAD).digest()
    while len(level) > 1:
        if len(level) % 2:
            level = [*level, pad]
            levels[-1] = level
        level = [hashlib.sha256(_NODE + level[j] + level[j + 1]).digest() for j in range(0, len(level), 2)]
        levels.append(level)
    return levels


def contribution_path(levels: list[list[bytes]], index: int) -> tuple[bytes, ...]:
    """Sibling hashes from leaf `index` up to the root (length ceil(log2 n))."""
    out = []
    for level in levels[:-1]:
        out.append(level[index ^ 1])
        index //= 2
    return tuple(out)


def root_from_path(leaf: bytes, index: int, path: tuple[bytes, ...]) -> bytes:
    """The root that `path` proves for `leaf` at `index`."""
    h = leaf
    for sib in path:
        h = hashlib.sha256(_NODE + (sib + h if index & 1 else h + sib)).digest()
        index //= 2
    return h


def round_seed(base: bytes, root: bytes) -> bytes:
    """The graph seed of a round: the cohort seed (round id, model hash, cohort: fixed before any key)
    mixed with the Merkle root of the advertised keys (fresh from every honest client's CSPRNG, so
    unknown to the server until stage 1 ends: no seed can be ground offline; issue 13 finding 3)."""
    return hashlib.sha256(b"privagg-secagg/v3/graph-seed" + base + root).digest()


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

    def two_hop(self, u: int) -> tuple[int, ...]:
        """u, its neighbours and theirs, sorted: on the Harary ring the clients within k positions of u
        (2k + 1 of them), everyone at the complete graph. What u's consistency check needs to know."""
        if self.complete:
            return self.ids
        i = self._pos.get(u)
        if i is None:
            raise SecAggConfigError(f"client {u} is not in the graph")
        m, order = len(self.ids), self._order_list
        if 2 * self.k + 1 >= m:
            return self.ids
        return tuple(sorted(order[(i + o) % m] for o in range(-self.k, self.k + 1)))

    def all_neighbours(self) -> dict[int, tuple[int, ...]]:
        """Neighbours of every client (what the server needs), built in one vectorized pass."""
        if self.complete:
            return {u: self.neighbours(u) for u in self.ids}
        m, h = len(self.ids), self.k // 2
        offs = np.concatenate([np.arange(1, h + 1), -np.arange(1, h + 1)])
        idx = (np.arange(m)[:, None] + offs[None, :]) % m
        nb = np.sort(self._order[idx], axis=1)
        return {int(u): tuple(int(v) for v in row) for u, row in zip(self._order, nb, strict=True)}
