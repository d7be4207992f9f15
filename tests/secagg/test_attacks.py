"""Regression tests for the attack review of issue 13: each reproduces one attack by a dishonest server
(or a careless caller) and asserts that it no longer works.

The malicious server here is written by hand from the public message types: it is not the honest
`ServerSession`, whose own checks must not be what stops an attack.
"""

from __future__ import annotations

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from secagg import (
    ClientSession,
    SecAggConfig,
    SecAggError,
    ServerSession,
)
from secagg import _common
from secagg.hazmat import kex, shamir
from secagg.hazmat.prg import expand
from secagg.messages import MaskSet, SharesDelivery, SurvivorList, UnmaskRequest

from ._helpers import wire


def _attack_uneven_routing(n: int, k: int, t: int, max_corrupt: int, identity: bool):
    """Issue 13, finding 1: the server forwards to the target only t share ciphertexts (from V), so the
    target masks with V alone; it then names V as dropped in one survivor list that a cohort majority
    signs. W (the target's other neighbours) release its self-mask shares, V's other holders release
    V's key shares, and the server strips every mask from the target's masked input.

    Returns (target input, what the server recovered or None, clients that refused)."""
    cfg = SecAggConfig(
        client_ids=tuple(range(n)),
        vector_length=64,
        threshold=t,
        neighbours=k,
        round_id=b"attack-round",
        model_hash=b"m" * 32,
        max_corrupt=max_corrupt,
    )
    keys = {c: Ed25519PrivateKey.generate() for c in cfg.client_ids} if identity else None
    pub = {c: key.public_key() for c, key in keys.items()} if keys else None
    clients = {
        c: ClientSession(cfg, c, identity_key=keys[c] if keys else None, peer_identity_keys=pub)
        for c in cfg.client_ids
    }
    rng = np.random.default_rng(13)
    xs = {c: rng.integers(0, 2**32, cfg.vector_length, dtype=np.uint32) for c in cfg.client_ids}
    # stages 1-2 run honestly (an honest ServerSession is a convenient router here)
    relay = ServerSession(cfg, peer_identity_keys=pub)
    adv = {}
    for cid, c in clients.items():
        adv[cid] = wire(c.advertise_keys())
        relay.receive(adv[cid])
    bcast = wire(relay.broadcast_keys())
    for c in clients.values():
        relay.receive(wire(c.share_keys(bcast)))
    routed = relay.route_shares()
    target = 0
    full = routed[target]
    kept = full.ciphertexts[:t]  # only t of the target's neighbours reach it
    v_set = {u for u, _ in kept}
    routed[target] = SharesDelivery(full.round_id, target, kept)
    # stage 3: every client sends its masked input; the server pretends V's never arrived
    masked = {cid: wire(c.masked_input(wire(routed[cid]), xs[cid])) for cid, c in clients.items()}
    survivors = tuple(c for c in cfg.client_ids if c not in v_set)
    dropped = tuple(sorted(v_set))
    refused: set[int] = set()
    sigs = []
    for cid in survivors:
        try:
            reply = clients[cid].consistency(wire(_survivor_list(cfg, cid, survivors, masked)))
        except SecAggError:
            refused.add(cid)
            continue
        sigs.append((cid, reply.signature))
    request = UnmaskRequest(cfg.round_id, survivors, dropped, tuple(sigs) if identity else ())
    b_pts: list[tuple[int, int]] = []
    s_pts: dict[int, list[tuple[int, int]]] = {v: [] for v in v_set}
    for cid in survivors:
        if cid in refused:
            continue
        try:
            reply = wire(clients[cid].unmask(wire(request)))
        except SecAggError:
            refused.add(cid)
            continue
        b_pts += [(cid + 1, y) for owner, y in reply.self_mask_shares if owner == target]
        for owner, y in reply.key_shares:
            s_pts[owner].append((cid + 1, y))
    if len(b_pts) < t or any(len(p) < t for p in s_pts.values()):
        return xs[target], None, refused
    y = masked[target].masked.copy()
    b_seed = shamir.reconstruct(b_pts, t).to_bytes(33, "little")[:16]
    y -= expand(b_seed, cfg.vector_length)
    target_pk = kex.load_public(adv[target].s_pk)
    for v in v_set:
        s_v = kex.load_private(shamir.reconstruct(s_pts[v], t).to_bytes(33, "little")[:32])
        seed = _common.mask_seed(cfg, v, s_v, target, target_pk)
        if target < v:
            y -= expand(seed, cfg.vector_length)
        else:
            y += expand(seed, cfg.vector_length)
    return xs[target], y, refused


def _survivor_list(cfg, recipient, survivors, masked):
    """The survivor list as the attacker sends it: with the genuine signed mask sets of every surviving
    client (it cannot forge them under identity keys; every extra one is ignored)."""
    sets = tuple(
        MaskSet(u, masked[u].mask_neighbours, masked[u].signature)
        for u in survivors
        if u != recipient
    )
    return SurvivorList(cfg.round_id, survivors, sets)


@pytest.mark.parametrize("identity", [True, False], ids=["identity-keys", "no-identity-keys"])
@pytest.mark.parametrize("n,k,t,corrupt", [(20, 8, 4, 1), (100, 20, 8, 5)])
def test_uneven_share_routing_does_not_reveal_an_input(n, k, t, corrupt, identity):
    """Finding 1 (uneven share routing): the target's input must stay masked."""
    x, recovered, refused = _attack_uneven_routing(n, k, t, corrupt, identity)
    assert recovered is None or not np.array_equal(recovered, x)
    assert refused  # honest clients saw it and said no
