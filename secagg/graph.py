"""SecAgg+ neighbour graph in which every client chooses its own share holders (issue 13 finding 3b).

Client u's holders ("out-neighbours") are k distinct members of the config's cohort, drawn uniformly by a
PRG keyed with SHA-256(cohort seed, u, c_pk_u, s_pk_u): a hash of the two X25519 public keys u draws from
the OS CSPRNG when its session starts. Nothing the server chooses (round id, which keys it forwards,
absent or corrupt clients' keys, a Merkle root) enters an honest client's draw, so no grinding, offline
or online, can bias who holds its shares. u sends its Shamir shares only to its holders and masks
pairwise with every graph neighbour: its holders and the clients that chose it ("in-neighbours"), so the
mask graph is the union of the choices (Bell et al. 2020, Sec. 3-4, with per-client random choice instead
of a shared permutation). k >= n - 1 gives Bonawitz's complete graph. The Merkle root over the advertised
keys (`contribution_tree`) is kept as the round's graph seed inside every signature: it certifies the
one set of advertised keys a majority-signed survivor list belongs to.
"""

from __future__ import annotations

import bisect
import hashlib
import struct
from collections.abc import Iterable

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from secagg.errors import SecAggConfigError

__all__ = [
    "cohort_seed",
    "round_seed",
    "contribution_leaf",
    "contribution_tree",
    "contribution_path",
    "root_from_path",
    "holder_seed",
    "out_neighbours",
    "in_neighbours",
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


def holder_seed(base: bytes, cid: int, c_pk: bytes, s_pk: bytes) -> bytes:
    """The 256-bit key of client `cid`'s holder draw: the cohort seed (round id, model hash, cohort) and
    the client's two fresh public keys. An honest client's keys come from its CSPRNG and the client checks
    they reach the graph unaltered, so the draw is uniform whatever the server does."""
    return hashlib.sha256(b"privagg-secagg/v5/holders" + base + struct.pack("<I", cid) + c_pk + s_pk).digest()


def _sample(seed: bytes, m: int, k: int) -> list[int]:
    """k distinct integers of [0, m), uniform: the first k distinct values of a stream of 64-bit AES-256-CTR
    words reduced mod m with rejection (no modulo bias); an ordered sample without replacement."""
    enc = Cipher(algorithms.AES(seed), modes.CTR(bytes(16))).encryptor()
    rem = (1 << 64) % m
    picks: list[int] = []
    seen: set[int] = set()
    batch = 2 * k + 16
    while True:
        words = np.frombuffer(enc.update(bytes(8 * batch)), dtype="<u8")
        if rem:
            words = words[words < np.uint64((1 << 64) - rem)]
        for j in (words % np.uint64(m)).tolist():
            if j not in seen:
                seen.add(j)
                picks.append(j)
                if len(picks) == k:
                    return picks
        batch *= 2


def out_neighbours(
    client_ids: tuple[int, ...], k: int, base: bytes, cid: int, c_pk: bytes, s_pk: bytes
) -> tuple[int, ...]:
    """The k holders client `cid` chooses among the other cohort members (sorted); all of them when
    k >= n - 1 (the complete graph). `client_ids` is the config's sorted cohort."""
    n = len(client_ids)
    pos = bisect.bisect_left(client_ids, cid)
    if pos == n or client_ids[pos] != cid:
        raise SecAggConfigError(f"client {cid} is not in the graph")
    if k < 1:
        raise SecAggConfigError(f"neighbours must be >= 1, got {k}")
    if k >= n - 1:
        return client_ids[:pos] + client_ids[pos + 1 :]
    picks = _sample(holder_seed(base, cid, c_pk, s_pk), n - 1, k)
    return tuple(sorted(client_ids[j if j < pos else j + 1] for j in picks))


def in_neighbours(outs: dict[int, tuple[int, ...]]) -> dict[int, tuple[int, ...]]:
    """Who chose each client (sorted), from every advertised client's holders."""
    ins: dict[int, list[int]] = {}
    for u in sorted(outs):
        for v in outs[u]:
            ins.setdefault(v, []).append(u)
    return {v: tuple(us) for v, us in ins.items()}
