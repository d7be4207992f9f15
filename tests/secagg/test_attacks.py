"""Regression tests for the attack review of issue 13: each reproduces one attack by a dishonest server
(or a careless caller) and asserts that it no longer works.

The malicious server here is written by hand from the public message types: it is not the honest
`ServerSession`, whose own checks must not be what stops an attack.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from secagg import (
    ClientSession,
    InconsistentSharesError,
    SecAggConfig,
    SecAggError,
    ServerSession,
    _common,
)
from secagg.graph import cohort_seed, out_neighbours
from secagg.hazmat import kex, shamir
from secagg.hazmat.prg import expand
from secagg.messages import MaskSet, SharesDelivery, SurvivorList, UnmaskRequest

from ._helpers import wire


def _attack_uneven_routing(n: int, k: int, t: int, max_corrupt: int, identity: bool, tamper: str = "none"):
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
    bcast = relay.broadcast_keys()
    for cid, c in clients.items():
        relay.receive(wire(c.share_keys(wire(bcast[cid]))))
    routed = relay.route_shares()
    target = 0
    full = routed[target]
    # the target is told that only t of its holders (V) shared keys and gets no one else's shares, so it
    # masks with V alone
    v_set = set(full.out_alive[:t])
    routed[target] = SharesDelivery(full.round_id, target, (), full.out_alive[:t], model_hash=cfg.model_hash)
    # stage 3: every client sends its masked input; the server pretends V's never arrived
    masked = {cid: wire(c.masked_input(wire(routed[cid]), xs[cid])) for cid, c in clients.items()}
    survivors = tuple(c for c in cfg.client_ids if c not in v_set)
    dropped = tuple(sorted(v_set))
    base = cohort_seed(cfg.round_id, cfg.model_hash, cfg.client_ids)
    holders = {
        u: out_neighbours(cfg.client_ids, k, base, u, adv[u].c_pk, adv[u].s_pk) for u in cfg.client_ids
    }
    refused: set[int] = set()
    sigs = []
    for cid in survivors:
        try:
            reply = clients[cid].consistency(
                wire(_survivor_list(cfg, cid, survivors, masked, tamper, holders[target]))
            )
        except SecAggError:
            refused.add(cid)
            continue
        sigs.append((cid, reply.signature))
    request = UnmaskRequest(
        cfg.round_id, survivors, dropped, tuple(sigs) if identity else (), model_hash=cfg.model_hash
    )
    replies = []
    for cid in survivors:
        if cid in refused:
            continue
        try:
            replies.append(wire(clients[cid].unmask(wire(request))))
        except SecAggError:
            refused.add(cid)
    # the x-coordinate of a holder's share is public: its position among the owner's holders
    # (id + 1 before issue 13's reconstruction change); the attacker tries both conventions
    pos = {u: {v: i + 1 for i, v in enumerate(holders[u])} for u in cfg.client_ids}
    conventions = (lambda owner, holder: pos[owner][holder], lambda owner, holder: holder + 1)
    y = None
    for x_of in conventions:
        b_pts = [(x_of(target, r.sender), yv) for r in replies for o, yv in r.self_mask_shares if o == target]
        s_pts = {
            v: [(x_of(v, r.sender), yv) for r in replies for o, yv in r.key_shares if o == v] for v in v_set
        }
        if len(b_pts) < t or any(len(p) < t for p in s_pts.values()):
            return xs[target], None, refused
        y = masked[target].masked.copy()
        b_seed = shamir.reconstruct(b_pts, t).to_bytes(33, "little")[:16]
        y -= expand(b_seed, cfg.vector_length)
        target_pk = kex.load_public(adv[target].s_pk)
        for v in v_set:
            raw = shamir.reconstruct(s_pts[v], t).to_bytes(33, "little")
            if raw[32]:
                break  # not a key: wrong convention
            seed = _common.mask_seed(cfg, v, kex.load_private(raw[:32]), target, target_pk)
            if target < v:
                y -= expand(seed, cfg.vector_length)
            else:
                y += expand(seed, cfg.vector_length)
        if np.array_equal(y, xs[target]):
            break
    return xs[target], y, refused


def _survivor_list(cfg, recipient, survivors, masked, tamper, target_holders):
    """The survivor list as the attacker sends it: with the genuine signed mask sets of every surviving
    client (extra ones are ignored), or with the target's set left out ("omit"), or replaced by the
    target's whole holder set under its real signature ("forge")."""
    target = 0
    sets = []
    for u in survivors:
        if u == recipient:
            continue
        m = MaskSet(u, masked[u].mask_neighbours, masked[u].signature)
        if u == target and tamper == "omit":
            continue
        if u == target and tamper == "forge":
            m = MaskSet(u, target_holders, m.signature)  # all the target's holders, old signature
        sets.append(m)
    sets = tuple(sets)
    return SurvivorList(cfg.round_id, survivors, sets, model_hash=cfg.model_hash)


@pytest.mark.parametrize("identity", [True, False], ids=["identity-keys", "no-identity-keys"])
@pytest.mark.parametrize("n,k,t,corrupt", [(20, 8, 4, 1), (100, 20, 8, 5)])
def test_uneven_share_routing_does_not_reveal_an_input(n, k, t, corrupt, identity):
    """Finding 1 (uneven share routing): the target's input must stay masked. (Now the server names only t
    of the target's holders alive, so it masks with them alone, and then calls them dropped.)"""
    x, recovered, refused = _attack_uneven_routing(n, k, t, corrupt, identity)
    assert recovered is None or not np.array_equal(recovered, x)
    assert refused  # honest clients saw it and said no


@pytest.mark.parametrize("tamper", ["omit", "forge"])
def test_uneven_routing_with_the_mask_set_hidden_or_forged_is_refused(tamper):
    """Finding 1: the holders must see the target's own signed set; leaving it out, or showing a bigger
    set under its signature, makes them refuse (identity keys on)."""
    x, recovered, refused = _attack_uneven_routing(20, 8, 4, 1, True, tamper)
    assert recovered is None and refused


# --- finding 2: silently wrong sums ---------------------------------------------------------------------


def _unmask_replies(cfg, drop_masked=()):
    from ._helpers import run_to_unmask, vectors

    xs = vectors(cfg, 21)
    alive, server, req = run_to_unmask(cfg, xs, drop_masked=drop_masked)
    replies = {cid: wire(c.unmask(wire(req))) for cid, c in alive.items()}
    return xs, server, replies


def _perturb(reply, owner, delta):
    shares = tuple((o, (y + delta) % shamir.PRIME if o == owner else y) for o, y in reply.self_mask_shares)
    return dataclasses.replace(reply, self_mask_shares=shares)


@pytest.mark.parametrize("delta", [1, 2**64], ids=["+1", "+2^64"])
def test_a_perturbed_share_is_detected_and_its_sender_named(delta):
    """Finding 2 (a perturbed share): with more than t shares of a secret, one altered share used to give
    a wrong sum and no error; now the shares must lie on one polynomial and the sender is named."""
    from ._helpers import make_config

    cfg = make_config(10, k=6, t=3)
    xs, server, replies = _unmask_replies(cfg)
    cheat = 4
    owner = next(o for o, _ in replies[cheat].self_mask_shares)
    for cid, r in replies.items():
        server.receive(_perturb(r, owner, delta) if cid == cheat else r)
    with pytest.raises(InconsistentSharesError) as info:
        server.finish()
    assert info.value.suspects == (cheat,)


def test_exactly_t_shares_leave_the_sum_marked_unverified():
    """Finding 2 (a perturbed share, exactly t): nothing can be checked, and the result says so."""
    from secagg import aggregate

    from ._helpers import make_config, vectors

    cfg = make_config(4, k=3, t=3)  # every secret has exactly t = 3 holders
    r = aggregate(vectors(cfg, 1), cfg)
    assert not r.verified and r.unverified == cfg.client_ids
    cfg = make_config(4, k=3, t=2)  # 3 > t holders answer: every secret is checked
    r = aggregate(vectors(cfg, 1), cfg)
    assert r.verified and r.unverified == ()
    # with a dropout, the dropped client's key had 3 holders, but each survivor's seed only 2 = t
    r = aggregate(vectors(cfg, 1), cfg, dropouts={0: "masked_input"})
    assert r.unverified == (1, 2, 3)


def test_a_client_on_another_model_is_refused_at_its_first_message():
    """Finding 2 (model mismatch): no message carried the model hash, so a client trained on another model
    was summed (a wrong sum at the complete graph with one dropout). Every message now carries it."""
    from secagg import InvalidMessageError

    cfg = SecAggConfig(tuple(range(5)), 8, threshold=3, neighbours=4, round_id=b"r", model_hash=b"A" * 32)
    other = dataclasses.replace(cfg, model_hash=b"B" * 32)
    server = ServerSession(cfg)
    honest = {c: ClientSession(cfg, c) for c in range(4)}
    for c in honest.values():
        server.receive(wire(c.advertise_keys()))
    with pytest.raises(InvalidMessageError, match="model"):
        server.receive(wire(ClientSession(other, 4).advertise_keys()))
    # and a client refuses a server message for another model
    stray = ServerSession(other)
    for c in range(5):
        stray.receive(wire(ClientSession(other, c).advertise_keys()))
    with pytest.raises(InvalidMessageError, match="model"):
        honest[0].share_keys(wire(stray.broadcast_keys()[0]))


def test_ill_typed_message_objects_raise_a_typed_error_at_the_session_boundary():
    """Finding 2 (ill-typed objects): a float or int64 masked vector, a list instead of an array or tuple,
    entries=None used to raise untyped errors deep inside the sessions."""
    from secagg import InvalidMessageError
    from secagg.messages import KeysBroadcast, MaskedInput

    from ._helpers import make_config, vectors

    cfg = make_config(6, k=4, t=3)
    clients = {c: ClientSession(cfg, c) for c in cfg.client_ids}
    server = ServerSession(cfg)
    for c in clients.values():
        server.receive(wire(c.advertise_keys()))
    bcasts = server.broadcast_keys()
    bcast = bcasts[0]

    def fresh(cid):  # a session outside the round, ready for its stage-2 message
        c = ClientSession(cfg, cid)
        c.advertise_keys()
        return c

    with pytest.raises(InvalidMessageError, match="entries"):
        fresh(0).share_keys(dataclasses.replace(bcast, entries=None))
    with pytest.raises(InvalidMessageError, match="entries"):
        fresh(1).share_keys(dataclasses.replace(bcast, entries=list(bcast.entries)))
    for cid, c in clients.items():
        server.receive(wire(c.share_keys(bcasts[cid])))
    routed = server.route_shares()
    good = clients[2].masked_input(routed[2], vectors(cfg)[2])
    for bad in (
        good.masked.astype(np.float64),
        good.masked.astype(np.int64),
        good.masked.tolist(),
        good.masked.reshape(2, -1),
        None,
    ):
        with pytest.raises(InvalidMessageError, match="masked"):
            server.receive(dataclasses.replace(good, masked=bad))
    with pytest.raises(InvalidMessageError, match="sender"):
        server.receive(dataclasses.replace(good, sender=np.int64(2)))
    with pytest.raises(InvalidMessageError, match="mask_neighbours"):
        server.receive(dataclasses.replace(good, mask_neighbours=list(good.mask_neighbours)))
    with pytest.raises(InvalidMessageError):
        server.receive(MaskedInput(cfg.round_id, 2, good.masked, model_hash=None))  # type: ignore[arg-type]
    server.receive(good)  # the well-typed original is still accepted
    with pytest.raises(InvalidMessageError):
        clients[3].masked_input(dataclasses.replace(routed[3], ciphertexts=None), vectors(cfg)[3])
    with pytest.raises(InvalidMessageError):
        fresh(4).share_keys(KeysBroadcast(cfg.round_id, ((1, 2),), model_hash=cfg.model_hash))


# --- finding 3: silent fallbacks --------------------------------------------------------------------------


def test_choose_parameters_covers_small_cohorts_and_never_lets_the_colluders_meet_t():
    """Finding 3 (small cohorts): fl_core fell back to its own complete graph, and with corrupt_fraction
    0.45 at n = 20 picked t = 9 = the corrupt clients tolerated. choose_parameters now answers for every
    n >= 2 where a safe t exists, and refuses with a one-line reason otherwise."""
    import math

    from secagg import SecAggConfigError, choose_parameters

    p = choose_parameters(20, dropout_rate=0.1, corrupt_fraction=0.45)
    assert p.complete and p.neighbours == 19 and p.threshold > 9
    answered = refused = 0
    for n in range(2, 41):
        for gamma in (0.0, 0.05, 0.2, 0.45):
            for delta in (0.0, 0.1, 0.3):
                for semi in (False, True):
                    if gamma + (2 if semi else 1) * delta > 0.9:
                        continue
                    c = math.floor(gamma * n)
                    try:
                        p = choose_parameters(
                            n, dropout_rate=delta, corrupt_fraction=gamma, semi_malicious=semi
                        )
                    except SecAggConfigError as exc:
                        assert "\n" not in str(exc) and f"n={n}" in str(exc)
                        refused += 1
                        continue
                    answered += 1
                    k, t = p.neighbours, p.threshold
                    assert 1 <= t <= k <= n - 1
                    if p.complete:  # every tolerated colluder may be a neighbour
                        assert (2 * t - k if semi else t) > c
                        # and a config built from it is accepted
                        SecAggConfig(tuple(range(n)), 4, threshold=t, neighbours=k, max_corrupt=c)
                    else:
                        assert p.tail_bounds and p.log2_security_failure <= -40
    assert answered > refused > 0
    # the config refuses by itself a complete-graph threshold the colluders can meet
    with pytest.raises(SecAggConfigError, match="max_corrupt"):
        SecAggConfig(tuple(range(20)), 4, threshold=9, neighbours=19, max_corrupt=9)


@pytest.mark.parametrize("n", range(2, 13))
@pytest.mark.parametrize("drop", [None, "masked_input", "unmask"])
def test_secure_sum_works_for_every_small_cohort(n, drop):
    """Finding 3: secure_sum with its own parameters works for every n >= 2 (exact within the stated
    error), or aborts with ThresholdError, revealing nothing, where no threshold tolerates the dropout
    (n = 2: one survivor's input would be alone in the sum; its one holder is also the one that left)."""
    from secagg import ThresholdError, secure_sum

    rng = np.random.default_rng(n)
    vecs = [rng.uniform(-1, 1, 50) for _ in range(n)]
    drops = {n - 1: drop} if drop else None
    if n == 2 and drop:
        with pytest.raises(ThresholdError):
            secure_sum(vecs, clip_range=1.0, dropouts=drops, rng=rng)
        return
    total, r = secure_sum(vecs, clip_range=1.0, dropouts=drops, rng=rng)
    assert r.config.threshold > r.config.corrupt_neighbours  # the tolerated colluders cannot meet t
    ref = np.sum([vecs[c] for c in r.survivors], axis=0)
    assert np.abs(total - ref).max() <= r.max_abs_error
    assert len(r.survivors) == (n - 1 if drop == "masked_input" else n)


def test_a_garbage_masked_input_is_caught_on_the_decoded_sum(monkeypatch):
    """Finding 2 (garbage masked input): corrupted masked-vector bytes were summed unchecked. The wire
    checks length and type; the decoded sum is checked against what m clipped inputs can reach, per
    coordinate and, under DP, in L2 norm (a client sending an unclipped but well-formed input too)."""
    from secagg import SumOutOfRangeError, secure_sum
    from secagg.transport import memory

    from ._helpers import make_config

    rng = np.random.default_rng(5)
    vecs = [rng.uniform(-0.1, 0.1, 256) for _ in range(12)]
    cfg = make_config(12, k=6, t=3, d=256)  # n = 12: the ring is not filled by the encoding's headroom
    total, r = secure_sum(vecs, clip_range=1.0, config=cfg, rng=rng, norm_bound=1.0)  # honest: passes
    assert np.abs(total - np.sum(vecs, axis=0)).max() <= r.max_abs_error
    real = memory.ClientSession.masked_input

    def garbage(self, delivery, vector):
        msg = real(self, delivery, vector)
        if self.client_id == 3:
            junk = np.random.default_rng(99).integers(0, 2**32, msg.masked.size, dtype=np.uint32)
            return dataclasses.replace(msg, masked=junk)
        return msg

    monkeypatch.setattr(memory.ClientSession, "masked_input", garbage)
    with pytest.raises(SumOutOfRangeError, match="garbage"):
        secure_sum(vecs, clip_range=1.0, config=cfg, rng=rng)
    # a well-formed input far outside the L2 clipping norm, but inside the per-coordinate range
    monkeypatch.setattr(memory.ClientSession, "masked_input", real)
    big = [v.copy() for v in vecs]
    big[0] = np.full(256, 0.9)
    secure_sum(big, clip_range=1.0, config=cfg, rng=rng)  # no norm bound given: passes
    with pytest.raises(SumOutOfRangeError, match="L2 norm"):
        secure_sum(big, clip_range=1.0, config=cfg, rng=rng, norm_bound=1.0)


def _grind_online(cfg, target, corrupt, tries):
    """The online attack on the graph (finding 3b): between stage 1 and the key broadcast, the server keeps
    every honest client's AdvertiseKeys and tries fresh keys for the corrupt clients (leaves it never has
    to prove to an honest client), one key broadcast per try, watching whom the target would share with.
    Returns the target's holder set under each try (through the target's own share_keys, from one state)."""
    from secagg import ClientSession

    sessions = {c: ClientSession(cfg, c) for c in cfg.client_ids}
    adv = {c: wire(s.advertise_keys()) for c, s in sessions.items()}
    state = sessions[target].export_state()
    seen = []
    corrupt = sorted(corrupt)
    for i in range(tries):
        c = corrupt[i % len(corrupt)]
        adv[c] = wire(ClientSession(cfg, c).advertise_keys())  # another leaf for a corrupt client
        server = ServerSession(cfg)
        for m in adv.values():
            server.receive(m)
        b = server.broadcast_keys()
        out = ClientSession.from_state(state, cfg).share_keys(wire(b[target]))
        seen.append(frozenset(v for v, _ in out.ciphertexts))
    return seen


def test_an_online_grinder_cannot_choose_a_targets_holders():
    """Finding 3b (online grinding): the graph seed hashed the Merkle root of the advertised keys, and the
    server still chose the leaves of corrupt (and absent) clients after seeing the honest ones, so it could
    try roots until a target's whole neighbourhood was corrupt (here 4 of 29 among 14 corrupt: 4.2 % a try,
    found in about 24 tries). Now every client draws its own holders from its own fresh keys: across all
    400 tries the target shares with one and the same set, and the grinder is exactly as lucky as one
    honest draw (4.2 %)."""
    n, target, corrupt = 30, 0, set(range(1, 15))
    cfg = SecAggConfig(tuple(range(n)), 4, threshold=2, neighbours=4, round_id=b"grind", model_hash=b"m" * 32)
    seen = _grind_online(cfg, target, corrupt, 400)
    assert all(len(h) == 4 for h in seen)
    assert len(set(seen)) == 1  # the grinder does not move the target's holders at all
    assert any(h <= corrupt for h in seen) == (seen[0] <= corrupt)  # so it never succeeds by trying


def test_clients_that_all_choose_a_target_do_not_count_as_its_honest_neighbours():
    """The count behind finding 1 under self-drawn holders: anyone may choose the target, so the clients
    that chose it (here ten corrupt clients that ground their own keys until they drew it) must not count
    toward the surviving mask-neighbours that have to contain an honest one. Told that none of its own
    holders shared keys, the target refuses to mask with only the clients that chose it."""
    from secagg import ClientSession, ThresholdError

    n, target, corrupt = 30, 0, list(range(1, 11))
    cfg = SecAggConfig(
        tuple(range(n)), 4, threshold=2, neighbours=4, round_id=b"pile", model_hash=b"m" * 32, max_corrupt=3
    )
    base = cohort_seed(cfg.round_id, cfg.model_hash, cfg.client_ids)
    sessions = {c: ClientSession(cfg, c) for c in cfg.client_ids}
    adv = {c: s.advertise_keys() for c, s in sessions.items()}
    for c in corrupt:  # each corrupt client grinds its keys until it draws the target
        while target not in out_neighbours(cfg.client_ids, 4, base, c, adv[c].c_pk, adv[c].s_pk):
            sessions[c] = ClientSession(cfg, c)
            adv[c] = sessions[c].advertise_keys()
    relay = ServerSession(cfg)
    for m in adv.values():
        relay.receive(wire(m))
    b = relay.broadcast_keys()
    for c, s in sessions.items():
        relay.receive(wire(s.share_keys(wire(b[c]))))
    full = relay.route_shares()[target]
    assert set(corrupt) <= {u for u, _ in full.ciphertexts}  # ten clients chose the target
    choosers_only = SharesDelivery(cfg.round_id, target, full.ciphertexts, (), model_hash=cfg.model_hash)
    with pytest.raises(ThresholdError, match="holders"):
        sessions[target].masked_input(wire(choosers_only), np.zeros(4, np.uint32))


def test_a_key_broadcast_whose_root_leaves_out_the_clients_keys_is_refused():
    """Finding 3b: the root must hold the recipient's own advertised keys at its cohort position, or the
    server could pick the root (hence the graph) freely before seeing them."""
    from secagg import ClientSession, InvalidMessageError
    from secagg.graph import contribution_path, contribution_tree

    from ._helpers import make_config

    cfg = make_config(12, k=4, t=2)
    clients = {c: ClientSession(cfg, c) for c in cfg.client_ids}
    server = ServerSession(cfg)
    adv = {c: wire(s.advertise_keys()) for c, s in clients.items()}
    for m in adv.values():
        server.receive(m)
    b = server.broadcast_keys()
    keys = {i: (m.c_pk, m.s_pk) for i, m in adv.items() if i != 3}  # 3's keys left out of the tree
    levels = contribution_tree(cfg.client_ids, keys)
    forged = dataclasses.replace(b[3], root=levels[-1][0], path=contribution_path(levels, 3))
    with pytest.raises(InvalidMessageError, match="contribution root"):
        clients[3].share_keys(wire(forged))
    with pytest.raises(InvalidMessageError, match="contribution root"):  # another client's path
        clients[4].share_keys(wire(dataclasses.replace(b[4], path=b[5].path)))
    with pytest.raises(InvalidMessageError, match="contribution root"):
        clients[5].share_keys(wire(dataclasses.replace(b[5], root=b"", path=())))
    clients[6].share_keys(wire(b[6]))  # the honest broadcast is accepted


def test_holders_do_not_count_a_targets_choosers_when_its_holders_are_called_dropped():
    """The holders' side of the same count: the target is told two of its holders are alive (enough to
    mask), and ten corrupt clients drew it; the server then calls those two holders dropped while the
    choosers survive. The target's other holders must refuse to help unmask it: its surviving
    mask-neighbours are all choosers, which anyone can be, none of them its own holders."""
    from secagg import ClientSession, UnsafeRequestError

    n, target, corrupt = 30, 0, list(range(1, 11))
    cfg = SecAggConfig(
        tuple(range(n)), 4, threshold=2, neighbours=4, round_id=b"pile2", model_hash=b"m" * 32, max_corrupt=3
    )
    base = cohort_seed(cfg.round_id, cfg.model_hash, cfg.client_ids)
    sessions = {c: ClientSession(cfg, c) for c in cfg.client_ids}
    adv = {c: s.advertise_keys() for c, s in sessions.items()}
    for c in corrupt:
        while target not in out_neighbours(cfg.client_ids, 4, base, c, adv[c].c_pk, adv[c].s_pk):
            sessions[c] = ClientSession(cfg, c)
            adv[c] = sessions[c].advertise_keys()
    relay = ServerSession(cfg)
    for m in adv.values():
        relay.receive(wire(m))
    b = relay.broadcast_keys()
    for c, s in sessions.items():
        relay.receive(wire(s.share_keys(wire(b[c]))))
    routed = relay.route_shares()
    full = routed[target]
    v_set = set(full.out_alive[:2])
    routed[target] = SharesDelivery(
        cfg.round_id, target, full.ciphertexts, full.out_alive[:2], model_hash=cfg.model_hash
    )
    xs = np.zeros(4, np.uint32)
    masked = {c: wire(s.masked_input(wire(routed[c]), xs)) for c, s in sessions.items()}
    assert set(corrupt) <= set(masked[target].mask_neighbours)
    survivors = tuple(c for c in cfg.client_ids if c not in v_set)
    holders = out_neighbours(cfg.client_ids, 4, base, target, adv[target].c_pk, adv[target].s_pk)
    others = [h for h in holders if h not in v_set]
    assert others
    for h in others:
        with pytest.raises(UnsafeRequestError, match="among its holders"):
            sessions[h].consistency(wire(_survivor_list(cfg, h, survivors, masked, "none", holders)))
