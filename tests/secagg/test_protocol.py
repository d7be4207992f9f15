"""Security and correctness properties of the SecAgg+ round (the issue's "Security tests")."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from secagg import (
    ClientSession,
    InvalidMessageError,
    SecAggConfigError,
    ServerSession,
    StageError,
    ThresholdError,
    UnsafeRequestError,
    aggregate,
    secure_sum,
)
from secagg.messages import UnmaskRequest, UnmaskShares, decode
from secagg.transport.memory import STAGE_NAMES

from ._helpers import make_config, run_to_unmask, vectors, wire

STAGES = list(STAGE_NAMES.values())


def _expected(xs, survivors):
    out = np.zeros_like(next(iter(xs.values())))
    for c in survivors:
        out += xs[c]
    return out


@settings(max_examples=30, deadline=None)
@given(
    data=st.data(),
    complete=st.booleans(),
)
def test_exact_sum_under_random_dropouts_at_every_stage(data, complete):
    n = 12
    cfg = make_config(n, k=n - 1 if complete else 6, t=3)
    xs = vectors(cfg, seed=data.draw(st.integers(0, 1000)))
    who = data.draw(st.lists(st.sampled_from(range(n)), max_size=2, unique=True))
    drops = {c: data.draw(st.sampled_from(STAGES)) for c in who}
    r = aggregate(xs, cfg, dropouts=drops)
    lost = {c for c, s in drops.items() if STAGES.index(s) <= STAGES.index("masked_input")}
    assert set(r.survivors) == set(range(n)) - lost
    assert np.array_equal(r.sum, _expected(xs, r.survivors))


@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_heavy_dropouts_either_give_the_exact_sum_or_abort(data):
    n = 10
    cfg = make_config(n, k=4, t=3)
    xs = vectors(cfg, 1)
    who = data.draw(st.lists(st.sampled_from(range(n)), min_size=3, max_size=6, unique=True))
    drops = {c: data.draw(st.sampled_from(STAGES)) for c in who}
    try:
        r = aggregate(xs, cfg, dropouts=drops)
    except ThresholdError:
        return
    assert np.array_equal(r.sum, _expected(xs, r.survivors))


def test_larger_round_with_parameters_from_choose():
    xs = {c: np.full(100, c, dtype=np.uint32) for c in range(60)}
    drops = {c: "masked_input" for c in range(0, 60, 10)} | {3: "unmask", 4: "share_keys"}
    r = aggregate(xs, dropouts=drops)
    assert not r.config.complete_graph
    assert np.array_equal(r.sum, _expected(xs, r.survivors))


def test_identity_keys_enable_signed_rounds():
    cfg = make_config(10, k=6, t=3)
    xs = vectors(cfg, 2)
    r = aggregate(xs, cfg, dropouts={5: "masked_input", 6: "consistency"}, identity_keys=True)
    assert np.array_equal(r.sum, _expected(xs, r.survivors))


def _masked_of(result, client):
    for e in result.transcript:
        if e.direction == "up" and e.stage == "masked_input" and e.client == client:
            return decode(e.payload).masked.astype(np.float64)
    raise AssertionError("no masked input in transcript")


def test_server_view_of_a_client_is_independent_of_its_input():
    cfg = make_config(6, k=5, t=3, d=20_000)
    base = vectors(cfg, 3)
    inputs = {
        "zeros": np.zeros(cfg.vector_length, dtype=np.uint32),
        "ramp": np.arange(cfg.vector_length, dtype=np.uint32) * 214_013,
    }
    views = {}
    for name, x in inputs.items():
        xs = dict(base)
        xs[0] = x
        r = aggregate(xs, cfg, dropouts={1: "masked_input"})
        y = _masked_of(r, 0)
        views[name] = y
        # no correlation with the input (|rho| < 5 / sqrt(d) for independent vectors)
        if name == "ramp":
            rho = np.corrcoef(y, x.astype(np.float64))[0, 1]
            assert abs(rho) < 5 / np.sqrt(y.size)
        # uniform on Z_{2^32}: chi-square of the top nibble
        counts = np.bincount((y // 2.0**28).astype(int), minlength=16)
        assert ((counts - y.size / 16) ** 2 / (y.size / 16)).sum() < 60
        # nothing else the server saw from client 0 carries the input
        raw = x.tobytes()[:64]
        assert not any(raw in e.payload for e in r.transcript if e.client == 0 and name == "ramp")
    # same distribution for both inputs: two-sample Kolmogorov-Smirnov statistic below the 1e-4 level
    a, b = np.sort(views["zeros"]), np.sort(views["ramp"])
    grid = np.linspace(0, 2**32, 257)
    ks = np.abs(np.searchsorted(a, grid) - np.searchsorted(b, grid)).max() / a.size
    assert ks < 2.2 * np.sqrt(2 / a.size)


def test_server_asking_for_both_shares_of_one_client_is_refused():
    cfg = make_config(8, k=4, t=3)
    xs = vectors(cfg, 4)
    alive, server, req = run_to_unmask(cfg, xs, drop_masked=(2,))
    victim = req.survivors[0]
    forged = UnmaskRequest(
        req.round_id, req.survivors, tuple(sorted(req.dropped + (victim,))), req.signatures
    )
    some = next(c for c in alive.values())
    with pytest.raises(UnsafeRequestError, match="both"):
        some.unmask(wire(forged))
    # a client that answered once never answers again (so it never gives the other share later)
    other = next(c for cid, c in alive.items() if c is not some)
    reply = other.unmask(wire(req))
    assert isinstance(reply, UnmaskShares)
    swapped = UnmaskRequest(
        req.round_id, tuple(s for s in req.survivors if s != victim), tuple(sorted(req.dropped + (victim,)))
    )
    with pytest.raises(StageError):
        other.unmask(wire(swapped))


def test_client_refuses_inconsistent_or_too_small_survivor_lists():
    cfg = make_config(10, k=6, t=3, min_survivors=8)
    xs = vectors(cfg, 5)
    alive, server, req = run_to_unmask(cfg, xs, drop_masked=(9,))
    # the server moves a survivor whose shares client 0 holds (a graph neighbour) to "dropped", which
    # would make client 0 reveal its mask key; without identity keys client 0 confirmed only its part of
    # the list (the survivors within two hops), which always includes its neighbours
    me = alive[0]
    victim = next(v for v in reversed(req.survivors) if v in me._graph_neighbours)
    kept = tuple(v for v in req.survivors if v != victim)
    shrunk = UnmaskRequest(req.round_id, kept, tuple(sorted(req.dropped + (victim,))))
    with pytest.raises(UnsafeRequestError, match="differs"):
        me.unmask(wire(shrunk))
    # the server claims only 7 survivors: below every client's minimum cohort of 8
    alive, server, req = run_to_unmask(cfg, xs, drop_masked=(8, 9))
    with pytest.raises(UnsafeRequestError, match="minimum cohort"):
        alive[0]._check_survivors(req.survivors[:7])
    forged = dataclasses.replace(req, survivors=req.survivors[:7])
    with pytest.raises(UnsafeRequestError):
        alive[1].unmask(wire(forged))


def test_unmask_with_forged_consistency_signatures_is_refused():
    cfg = make_config(6, k=4, t=3)
    keys = {c: Ed25519PrivateKey.generate() for c in cfg.client_ids}
    pub = {c: k.public_key() for c, k in keys.items()}
    clients = {c: ClientSession(cfg, c, identity_key=keys[c], peer_identity_keys=pub) for c in cfg.client_ids}
    server = ServerSession(cfg, peer_identity_keys=pub)
    for c in clients.values():
        server.receive(wire(c.advertise_keys()))
    b = server.broadcast_keys()
    for cid, c in clients.items():
        server.receive(wire(c.share_keys(wire(b[cid]))))
    routed = server.route_shares()
    xs = vectors(cfg, 6)
    for cid, c in clients.items():
        server.receive(wire(c.masked_input(wire(routed[cid]), xs[cid])))
    lists = server.request_consistency()
    for cid, c in clients.items():
        server.receive(wire(c.consistency(wire(lists[cid]))))
    req = server.request_unmask()
    bad = list(req.signatures)
    bad[0] = (bad[0][0], bytes(64))
    with pytest.raises(InvalidMessageError, match="signature"):
        clients[1].unmask(wire(dataclasses.replace(req, signatures=tuple(bad))))
    with pytest.raises(UnsafeRequestError, match="signatures"):
        clients[2].unmask(wire(dataclasses.replace(req, signatures=req.signatures[:2])))
    # t = 3 signatures are not enough: a server could gather t per group while showing each group its own
    # list (review finding); a cohort-wide majority is needed, (6 + 0) // 2 + 1 = 4
    with pytest.raises(UnsafeRequestError, match="need 4"):
        clients[3].unmask(wire(dataclasses.replace(req, signatures=req.signatures[:3])))
    twice = (req.signatures[0], req.signatures[0], *req.signatures[1:3])
    with pytest.raises(InvalidMessageError, match="increasing"):  # the wire format refuses repeats
        clients[4].unmask(wire(dataclasses.replace(req, signatures=twice)))
    with pytest.raises(InvalidMessageError, match="increasing"):  # and so does the session, given objects
        clients[4].unmask(dataclasses.replace(req, signatures=twice))
    assert clients[5].unmask(wire(req)) is not None  # the full, honest request is answered
    # forged advertised keys are caught by the server before anything is shared
    fresh = ServerSession(cfg, peer_identity_keys=pub)
    adv = ClientSession(cfg, 0, identity_key=keys[1], peer_identity_keys=pub).advertise_keys()
    with pytest.raises(InvalidMessageError, match="signature"):
        fresh.receive(wire(adv))


def test_t_minus_1_colluders_plus_server_cannot_unmask_an_honest_client():
    cfg = make_config(20, k=8, t=5)
    xs = vectors(cfg, 7)
    drops = {3: "masked_input", 9: "masked_input", 11: "unmask"}
    r = aggregate(xs, cfg, dropouts=drops)
    revealed_b: dict[int, set[int]] = {}
    revealed_s: dict[int, set[int]] = {}
    holders: dict[int, set[int]] = {}
    for e in r.transcript:
        if e.direction == "up" and e.stage == "unmask":
            m = decode(e.payload)
            for owner, _ in m.self_mask_shares:
                revealed_b.setdefault(owner, set()).add(m.sender)
            for owner, _ in m.key_shares:
                revealed_s.setdefault(owner, set()).add(m.sender)
        if e.direction == "up" and e.stage == "share_keys":
            m = decode(e.payload)
            holders[m.sender] = {v for v, _ in m.ciphertexts}
    survivors, t = set(r.survivors), cfg.threshold
    for u in cfg.client_ids:
        # an honest client's two secrets are never both revealed
        assert not (revealed_b.get(u) and revealed_s.get(u))
        assert len(holders[u]) == cfg.neighbours
        if u not in survivors:
            continue
        # worst coalition: t - 1 of u's holders join the server. They hold t - 1 key shares of u, and the
        # server saw none, so s_u stays hidden; the pairwise masks of u with its other surviving
        # neighbours are then unknown to the coalition, and at least one such neighbour exists.
        assert not revealed_s.get(u)
        surviving_nbrs = holders[u] & survivors
        for coalition in itertools.combinations(sorted(holders[u]), t - 1):
            assert len(surviving_nbrs - set(coalition)) >= 1
    # and t - 1 key shares really are not enough: reconstruction refuses
    from secagg.hazmat import shamir

    with pytest.raises(ThresholdError):
        shamir.reconstruct([(i + 1, 7) for i in range(t - 1)], t)


def test_round_below_threshold_aborts_before_anything_is_revealed():
    cfg = make_config(8, k=4, t=3)
    xs = vectors(cfg, 8)
    with pytest.raises(ThresholdError):
        aggregate(xs, cfg, dropouts={c: "masked_input" for c in range(5)})
    # by hand: the server aborts at request_consistency, before any unmask request exists
    clients = {c: ClientSession(cfg, c) for c in cfg.client_ids}
    server = ServerSession(cfg)
    for c in clients.values():
        server.receive(wire(c.advertise_keys()))
    b = server.broadcast_keys()
    for cid, c in clients.items():
        server.receive(wire(c.share_keys(wire(b[cid]))))
    routed = server.route_shares()
    for cid in (5, 6, 7):
        server.receive(wire(clients[cid].masked_input(wire(routed[cid]), xs[cid])))
    with pytest.raises(ThresholdError):
        server.request_consistency()
    with pytest.raises(StageError):
        server.request_unmask()
    # too few unmask replies: finish aborts without returning a sum, and stays aborted
    alive, server, req = run_to_unmask(cfg, xs)
    for cid in (0, 1):
        server.receive(wire(alive[cid].unmask(wire(req))))
    with pytest.raises(ThresholdError):
        server.finish()
    with pytest.raises(StageError):
        server.finish()


def test_secure_sum_of_floats_within_stated_error():
    rng = np.random.default_rng(9)
    vecs = [rng.normal(0, 0.5, 300).astype(np.float32) for _ in range(12)]
    cfg = make_config(12, k=6, t=3, d=300)
    total, r = secure_sum(vecs, clip_range=1.0, dropouts={4: "masked_input"}, rng=rng, config=cfg)
    ref = np.clip(np.stack([vecs[c] for c in r.survivors]).astype(np.float64), -1, 1).sum(0)
    assert np.abs(total - ref).max() <= r.max_abs_error
    assert r.max_abs_error == pytest.approx(11 / r.encoding.scale)
    assert all(v > 0 for v in r.client_cpu_s.values())
    up = [sum(r.bytes_up[c].values()) for c in r.survivors]
    assert min(up) >= 4 * 300 and max(up) < 4 * 300 * 2.5


def test_driver_rejects_bad_arguments():
    cfg = make_config(6, k=4, t=3)
    xs = vectors(cfg, 0)
    with pytest.raises(SecAggConfigError):
        aggregate(xs, cfg, dropouts={0: "later"})
    with pytest.raises(SecAggConfigError):
        aggregate(xs, cfg, dropouts={99: "unmask"})
    with pytest.raises(SecAggConfigError):
        aggregate({c: v.astype(np.int64) for c, v in xs.items()}, cfg)
    with pytest.raises(SecAggConfigError):
        aggregate(list(xs.values())[:5], cfg)
    with pytest.raises(SecAggConfigError):
        aggregate([], cfg)
    with pytest.raises(SecAggConfigError):
        ClientSession(cfg, 42)
    with pytest.raises(SecAggConfigError):
        ClientSession(cfg, 0, peer_identity_keys={0: bytes(32)})


def test_an_aborted_round_still_reports_what_it_cost() -> None:
    import numpy as np

    import secagg

    cfg = secagg.SecAggConfig.create(range(10), 50, dropout_rate=0.1, corrupt_fraction=0.0, min_survivors=3)
    xs = [np.zeros(50, np.uint32) for _ in range(10)]
    drops = dict.fromkeys(range(8), "masked_input")  # only 2 masked inputs arrive: below the minimum
    with pytest.raises(secagg.ThresholdError) as info:
        secagg.aggregate(xs, cfg, dropouts=drops)
    cost = info.value.cost
    assert all(cost.bytes_up[c]["advertise_keys"] > 0 for c in range(10))
    assert all(cost.bytes_up[c]["masked_input"] == 0 for c in range(8))
    assert cost.bytes_up[9]["masked_input"] > 0 and cost.server_cpu_s >= 0


def test_a_server_cannot_choose_a_clients_neighbours_by_choosing_its_view() -> None:
    """Regression (review): a server showing a victim only itself and t colluders used to make those
    colluders the victim's whole neighbourhood. A client's holders are drawn from its own keys over the
    whole cohort, so a view without them leaves it below threshold and it refuses; shown everyone, it
    shares with exactly the holders it drew, whatever else the view holds."""
    from secagg import ClientSession, SecAggConfig, ThresholdError
    from secagg.graph import cohort_seed, contribution_path, contribution_tree, out_neighbours
    from secagg.messages import KeyEntry, KeysBroadcast

    n = 60
    cfg = SecAggConfig(
        client_ids=tuple(range(n)),
        vector_length=4,
        threshold=4,
        neighbours=8,
        round_id=b"r" * 16,
        model_hash=b"m" * 32,
    )
    victim = 0
    sessions = {i: ClientSession(cfg, i) for i in cfg.client_ids}
    adv = {i: s.advertise_keys() for i, s in sessions.items()}
    base = cohort_seed(cfg.round_id, cfg.model_hash, cfg.client_ids)
    holders = set(out_neighbours(cfg.client_ids, 8, base, victim, adv[victim].c_pk, adv[victim].s_pk))

    def bcast(view, who=victim):
        """The attacker's broadcast for `who`: a well-formed root and path over the keys of `view`."""
        levels = contribution_tree(cfg.client_ids, {i: (adv[i].c_pk, adv[i].s_pk) for i in view})
        return KeysBroadcast(
            cfg.round_id,
            tuple(KeyEntry(i, adv[i].c_pk, adv[i].s_pk) for i in view),
            model_hash=cfg.model_hash,
            root=levels[-1][0],
            path=contribution_path(levels, cfg.client_ids.index(who)),
        )

    colluders = [c for c in cfg.client_ids if c != victim and c not in holders][: cfg.threshold + 2]
    with pytest.raises(ThresholdError):
        sessions[victim].share_keys(bcast(sorted({victim, *colluders})))
    out = sessions[1].share_keys(bcast(list(cfg.client_ids), 1))
    assert {v for v, _ in out.ciphertexts} == set(
        out_neighbours(cfg.client_ids, 8, base, 1, adv[1].c_pk, adv[1].s_pk)
    )
    fresh = ClientSession(cfg, victim)  # the victim again, with every key in view but two holders missing
    adv[victim] = fresh.advertise_keys()
    holders = out_neighbours(cfg.client_ids, 8, base, victim, adv[victim].c_pk, adv[victim].s_pk)
    out = fresh.share_keys(bcast([c for c in cfg.client_ids if c not in holders[:2]]))
    assert {v for v, _ in out.ciphertexts} == set(holders[2:])


def test_results_report_cpu_and_wall_time_on_separate_clocks() -> None:
    """Issue 13 "one clock": *_cpu_s is thread CPU time, *_wall_s elapsed time, for every client and the
    server, on success and in an abort's cost. A single-threaded party cannot compute longer than it
    ran, so wall >= CPU (up to clock granularity)."""
    cfg = make_config(8, k=4, t=3, d=2000)
    r = aggregate(vectors(cfg, 3), cfg, dropouts={2: "masked_input"})
    assert set(r.client_cpu_s) == set(r.client_wall_s) == set(cfg.client_ids)
    for c in cfg.client_ids:
        assert 0 < r.client_cpu_s[c] <= r.client_wall_s[c] + 1e-3
    assert 0 < r.server_cpu_s <= r.server_wall_s + 1e-3
    total, fr = secure_sum([np.zeros(2000)] * 8, clip_range=1.0, config=cfg)
    assert all(fr.client_wall_s[c] >= fr.client_cpu_s[c] - 1e-3 for c in cfg.client_ids)
    with pytest.raises(ThresholdError) as info:
        aggregate(vectors(cfg, 3), cfg, dropouts=dict.fromkeys(range(6), "masked_input"))
    cost = info.value.cost
    assert set(cost.client_wall_s) == set(cfg.client_ids) and cost.server_wall_s > 0


def _entries_per_client(r) -> dict[int, int]:
    """Key entries each client was sent (its own, its holders', those of the clients that chose it)."""
    from secagg.messages import decode

    return {
        e.client: len(decode(e.payload).entries)
        for e in r.transcript
        if e.stage == "share_keys" and e.direction == "down"
    }


def test_key_broadcast_download_is_o_k_not_o_n() -> None:
    """Issue 13 item 4: each client receives only its own keys, its k holders' and those of the clients
    that chose it (k on average), so the key broadcast's bytes per client do not grow with the cohort at
    fixed k, except for the Merkle path of its own keys in the root (32 bytes per doubling of n)."""
    k = 6
    for n in (24, 96):
        cfg = make_config(n, k=k, t=3, d=8)
        r = aggregate(vectors(cfg, 1), cfg, dropouts={1: "masked_input"})
        entries = _entries_per_client(r)
        assert sum(entries.values()) / n <= 2 * k + 1  # 1 + k + mean in-degree k, less mutual choices
        for c in cfg.client_ids:
            # entries of 69 bytes, the header, the root and a path of ceil(log2 n)
            assert r.bytes_down[c]["share_keys"] <= 69 * entries[c] + 64 + 34 + 32 * (n - 1).bit_length()


def test_a_missing_identity_key_is_a_typed_error_not_a_crash() -> None:
    """A cohort member without a configured identity key is refused with InvalidMessageError."""
    cfg = make_config(4, k=3, t=2)
    keys = {c: Ed25519PrivateKey.generate() for c in cfg.client_ids}
    partial = {c: keys[c].public_key() for c in (0, 1, 2)}
    server = ServerSession(cfg, peer_identity_keys=partial)
    client = ClientSession(cfg, 3, identity_key=keys[3], peer_identity_keys=partial)
    with pytest.raises(InvalidMessageError, match="no identity key"):
        server.receive(wire(client.advertise_keys()))


def test_survivor_list_and_unmask_request_downloads_are_o_k_not_o_n() -> None:
    """Issue 13 item 4: without identity keys each survivor gets the survivors among itself, its holders and
    the clients that chose it, with each held client's surviving holders (its checks read nothing else),
    and, to unmask, the status of the same clients: the consistency and unmask downloads are bounded by
    the client's degree, not the cohort (they were 4 bytes per survivor and dropped client)."""
    k = 6
    for n in (48, 192):
        cfg = make_config(n, k=k, t=3, d=8)
        r = aggregate(vectors(cfg, 1), cfg)
        entries = _entries_per_client(r)
        for c in cfg.client_ids:
            e = entries[c]  # itself + holders + choosers; at most e - 1 held clients with k holders each
            assert r.bytes_down[c]["consistency"] <= 64 + 2 * e + (e - 1) * (4 + 9 + 2 * k + 1)
            assert r.bytes_down[c]["unmask"] <= 64 + 2 * e + 4


def test_with_identity_keys_a_client_signs_and_unmasks_only_for_the_whole_list() -> None:
    """The majority-signature argument needs every honest client to sign the same whole list, so with
    identity keys a part of a list (total > 0) is refused at both stages."""
    import dataclasses

    cfg = make_config(8, k=4, t=3)
    keys = {c: Ed25519PrivateKey.generate() for c in cfg.client_ids}
    pub = {c: k.public_key() for c, k in keys.items()}
    clients = {c: ClientSession(cfg, c, identity_key=keys[c], peer_identity_keys=pub) for c in cfg.client_ids}
    server = ServerSession(cfg, peer_identity_keys=pub)
    xs = vectors(cfg)
    for c in clients.values():
        server.receive(wire(c.advertise_keys()))
    b = server.broadcast_keys()
    for cid, c in clients.items():
        server.receive(wire(c.share_keys(wire(b[cid]))))
    routed = server.route_shares()
    for cid, c in clients.items():
        server.receive(wire(c.masked_input(wire(routed[cid]), xs[cid])))
    lists = server.request_consistency()
    assert all(m.total == 0 and m.survivors == tuple(range(8)) for m in lists.values())
    with pytest.raises(UnsafeRequestError, match="whole survivor list"):
        clients[0].consistency(wire(dataclasses.replace(lists[0], total=8)))
    for cid in range(1, 8):
        server.receive(wire(clients[cid].consistency(wire(lists[cid]))))
    req = server.request_unmask_each()
    assert len({id(m) for m in req.values()}) == 1 and req[1].total == 0
    with pytest.raises(UnsafeRequestError, match="whole signed list"):
        clients[1].unmask(wire(dataclasses.replace(req[1], total=7)))
    clients[2].unmask(wire(req[2]))


def test_a_delivery_naming_non_holders_alive_or_shares_from_a_non_chooser_is_refused() -> None:
    """Self-drawn holders (issue 13 finding 3b): the server names which of a client's own holders are alive
    and forwards the shares of the clients that drew it; a name outside its holders, or a share from a
    client that did not draw it, is refused (InvalidMessageError), and the honest delivery is accepted."""
    import dataclasses

    cfg = make_config(20, k=4, t=2)
    clients = {c: ClientSession(cfg, c) for c in cfg.client_ids}
    server = ServerSession(cfg)
    for c in clients.values():
        server.receive(wire(c.advertise_keys()))
    b = server.broadcast_keys()
    for cid, c in clients.items():
        server.receive(wire(c.share_keys(wire(b[cid]))))
    routed = server.route_shares()
    x = np.zeros(cfg.vector_length, np.uint32)
    target = 0
    states = clients[target].export_state()
    holders = set(clients[target]._out)
    stranger = next(c for c in cfg.client_ids if c != target and c not in holders)
    bad_alive = tuple(sorted({*routed[target].out_alive, stranger}))
    with pytest.raises(InvalidMessageError, match="alive"):
        ClientSession.from_state(states, cfg).masked_input(
            wire(dataclasses.replace(routed[target], out_alive=bad_alive)), x
        )
    choosers = {u for u, _ in routed[target].ciphertexts}
    other = next(
        v for v in cfg.client_ids if v != target and any(u not in choosers for u, _ in routed[v].ciphertexts)
    )
    foreign = next((u, ct) for u, ct in routed[other].ciphertexts if u not in choosers and u != target)
    forged = tuple(sorted((*routed[target].ciphertexts, foreign)))
    with pytest.raises(InvalidMessageError, match="did not choose"):
        ClientSession.from_state(states, cfg).masked_input(
            wire(dataclasses.replace(routed[target], ciphertexts=forged)), x
        )
    out = ClientSession.from_state(states, cfg).masked_input(wire(routed[target]), x)
    assert set(out.mask_neighbours) == set(routed[target].out_alive) | choosers


def test_the_server_refuses_shares_addressed_to_anyone_but_the_senders_drawn_holders() -> None:
    """Shares go only to the k holders a client drew from its own keys: a ShareKeys that addresses any
    other cohort member (a chooser, a stranger) is refused by the server (InvalidMessageError)."""
    import dataclasses

    cfg = make_config(20, k=4, t=2)
    clients = {c: ClientSession(cfg, c) for c in cfg.client_ids}
    server = ServerSession(cfg)
    for c in clients.values():
        server.receive(wire(c.advertise_keys()))
    b = server.broadcast_keys()
    out = clients[0].share_keys(wire(b[0]))
    holders = {v for v, _ in out.ciphertexts}
    stranger = next(c for c in cfg.client_ids if c != 0 and c not in holders)
    moved = tuple(sorted([(stranger, out.ciphertexts[0][1]), *out.ciphertexts[1:]]))
    with pytest.raises(InvalidMessageError, match="holders it drew"):
        server.receive(wire(dataclasses.replace(out, ciphertexts=moved)))
    server.receive(wire(out))  # the honest message is still accepted
