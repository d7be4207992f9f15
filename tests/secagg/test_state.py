"""ClientSession state export/import: a round can span processes (one per message, as a Flower SuperNode
may run it), resumed sessions send byte-identical messages, and bad state is a typed error."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from secagg import ClientSession, InvalidMessageError, InvalidStateError, ServerSession, StageError
from secagg.messages import Stage, decode
from secagg.state import MAGIC

from ._helpers import make_config, vectors, wire

STAGES = ("advertise_keys", "share_keys", "masked_input", "consistency", "unmask")


def _identities(cfg):
    keys = {c: Ed25519PrivateKey.generate() for c in cfg.client_ids}
    return keys, {c: k.public_key() for c, k in keys.items()}


def _resume(s: ClientSession, cfg, idk=None, pub=None) -> ClientSession:
    """What an adapter does between messages: bytes out, a fresh object in."""
    data = s.export_state()
    assert isinstance(data, bytes) and data[:4] == MAGIC
    return ClientSession.from_state(
        data, cfg, identity_key=idk[s.client_id] if idk else None, peer_identity_keys=pub
    )


def _round(cfg, xs, *, resume: bool, identity: bool, drop: tuple[int, ...] = ()):
    """Drive a round; with `resume`, every client is exported and re-imported before every stage, and the
    original object answers the same message too: both replies must be the same bytes."""
    idk, pub = _identities(cfg) if identity else (None, None)
    clients = {
        c: ClientSession(cfg, c, identity_key=idk[c] if idk else None, peer_identity_keys=pub)
        for c in cfg.client_ids
    }
    server = ServerSession(cfg, peer_identity_keys=pub)

    def step(cid, name, *args):
        orig = clients[cid]
        if not resume:
            return getattr(orig, name)(*args)
        fresh = _resume(orig, cfg, idk, pub)
        a = getattr(fresh, name)(*args).to_bytes()
        b = getattr(orig, name)(*args).to_bytes()
        assert a == b, f"client {cid}: resumed session's {name} differs from the original's"
        clients[cid] = fresh
        return decode(a)

    for c in cfg.client_ids:
        server.receive(step(c, "advertise_keys"))
    b = server.broadcast_keys()
    for c in cfg.client_ids:
        server.receive(step(c, "share_keys", wire(b[c])))
    routed = server.route_shares()
    alive = [c for c in cfg.client_ids if c not in drop]
    for c in alive:
        server.receive(step(c, "masked_input", wire(routed[c]), xs[c]))
    lists = server.request_consistency()
    for c in alive:
        server.receive(step(c, "consistency", wire(lists[c])))
    req = server.request_unmask()
    for c in alive:
        server.receive(step(c, "unmask", wire(req)))
    return server.finish(), clients


@pytest.mark.parametrize("identity", [False, True])
@pytest.mark.parametrize("k", [4, 7])
def test_a_round_resumed_from_state_at_every_stage_is_byte_identical_and_exact(identity, k):
    cfg = make_config(8, k=k, t=3)
    xs = vectors(cfg, seed=k)
    total, _ = _round(cfg, xs, resume=True, identity=identity, drop=(5,))
    expect = np.zeros(cfg.vector_length, dtype=np.uint32)
    for c in cfg.client_ids:
        if c != 5:
            expect += xs[c]
    assert np.array_equal(total, expect)


def _states_at_every_boundary(identity=False):
    """(stage name reached, exported state, config, keys) for one client at every boundary."""
    cfg = make_config(8, k=4, t=3)
    idk, pub = _identities(cfg) if identity else (None, None)
    xs = vectors(cfg)
    clients = {
        c: ClientSession(cfg, c, identity_key=idk[c] if idk else None, peer_identity_keys=pub)
        for c in cfg.client_ids
    }
    server = ServerSession(cfg, peer_identity_keys=pub)
    out = [("fresh", clients[0].export_state())]
    for c in clients.values():
        server.receive(wire(c.advertise_keys()))
    out.append(("advertise_keys", clients[0].export_state()))
    b = server.broadcast_keys()
    for cid, c in clients.items():
        server.receive(wire(c.share_keys(wire(b[cid]))))
    out.append(("share_keys", clients[0].export_state()))
    routed = server.route_shares()
    for cid, c in clients.items():
        server.receive(wire(c.masked_input(wire(routed[cid]), xs[cid])))
    out.append(("masked_input", clients[0].export_state()))
    lists = server.request_consistency()
    for cid, c in clients.items():
        server.receive(wire(c.consistency(wire(lists[cid]))))
    out.append(("consistency", clients[0].export_state()))
    req = server.request_unmask()
    clients[0].unmask(wire(req))
    out.append(("unmask", clients[0].export_state()))
    return cfg, idk, pub, out, clients[0]


def test_every_single_byte_change_and_every_truncation_is_an_invalid_state_error():
    cfg, _, _, states, _ = _states_at_every_boundary()
    for _name, data in states:
        for i in range(len(data)):
            bad = bytearray(data)
            bad[i] ^= 0x01
            with pytest.raises(InvalidStateError):
                ClientSession.from_state(bytes(bad), cfg)
        for cut in range(0, len(data), max(1, len(data) // 97)):
            with pytest.raises(InvalidStateError):
                ClientSession.from_state(data[:cut], cfg)
        with pytest.raises(InvalidStateError):
            ClientSession.from_state(data + b"\x00", cfg)
        ClientSession.from_state(data, cfg)  # the untouched state still loads
    assert issubclass(InvalidStateError, InvalidMessageError)
    for junk in (None, "state", 3, [1, 2]):
        with pytest.raises(InvalidStateError):
            ClientSession.from_state(junk, cfg)  # type: ignore[arg-type]


def _reseal(body: bytes) -> bytes:
    """Re-append a valid checksum: what a foreign or buggy encoder could produce."""
    return body + hashlib.sha256(body).digest()


def test_a_well_formed_state_that_describes_an_unreachable_session_is_refused():
    cfg, _, _, states, _ = _states_at_every_boundary()
    st = dict(states)
    # a stage-2 state claiming to be at stage 4 (holds no shares, no survivor digest)
    body = bytearray(st["share_keys"][:-32])
    body[6] = 4
    with pytest.raises(InvalidStateError, match="shares|survivor"):
        ClientSession.from_state(_reseal(bytes(body)), cfg)
    # a fresh state claiming to be past key sharing (no keys of its own in the peers)
    body = bytearray(st["fresh"][:-32])
    body[6] = 3
    with pytest.raises(InvalidStateError, match="own public keys|graph seed"):
        ClientSession.from_state(_reseal(bytes(body)), cfg)
    # the unknown version and magic
    for pos, val in ((4, 99), (0, ord("X"))):
        body = bytearray(st["fresh"][:-32])
        body[pos] = val
        with pytest.raises(InvalidStateError, match="version|magic"):
            ClientSession.from_state(_reseal(bytes(body)), cfg)


def test_a_state_is_bound_to_its_round_client_and_identity_key():
    cfg, idk, pub, states, _ = _states_at_every_boundary(identity=True)
    data = dict(states)["masked_input"]
    ClientSession.from_state(data, cfg, identity_key=idk[0], peer_identity_keys=pub)
    other_round = dataclasses.replace(cfg, round_id=b"round-2")
    with pytest.raises(InvalidStateError, match="another round"):
        ClientSession.from_state(data, other_round, identity_key=idk[0], peer_identity_keys=pub)
    with pytest.raises(InvalidStateError, match="another round"):
        ClientSession.from_state(data, cfg, identity_key=idk[1], peer_identity_keys=pub)
    with pytest.raises(InvalidStateError, match="another round"):  # peer checks silently turned off
        ClientSession.from_state(data, cfg, identity_key=idk[0])
    small = make_config(4, k=2, t=2)
    with pytest.raises(InvalidStateError):
        ClientSession.from_state(data, small, identity_key=idk[0], peer_identity_keys=pub)


def test_a_sealed_state_needs_its_key_and_detects_tampering():
    cfg = make_config(8, k=4, t=3)
    c = ClientSession(cfg, 2)
    c.advertise_keys()
    key = bytes(range(32))
    sealed = c.export_state(state_key=key)
    assert MAGIC not in sealed and c._b_seed not in sealed
    assert ClientSession.from_state(sealed, cfg, state_key=key).export_state() == c.export_state()
    with pytest.raises(InvalidStateError, match="sealed"):
        ClientSession.from_state(sealed, cfg)
    with pytest.raises(InvalidStateError, match="authentication"):
        ClientSession.from_state(sealed, cfg, state_key=bytes(32))
    bad = bytearray(sealed)
    bad[-1] ^= 1
    with pytest.raises(InvalidStateError, match="authentication"):
        ClientSession.from_state(bytes(bad), cfg, state_key=key)
    with pytest.raises(InvalidStateError, match="expected a sealed"):
        ClientSession.from_state(c.export_state(), cfg, state_key=key)


def test_after_unmask_or_an_abort_the_state_holds_no_secret_and_answers_nothing():
    cfg, _, _, states, original = _states_at_every_boundary()
    data = dict(states)["unmask"]
    assert original._b_seed not in data and original._s.private_bytes() not in data
    resumed = ClientSession.from_state(data, cfg)
    with pytest.raises(StageError):
        resumed.unmask(None)  # type: ignore[arg-type]
    # the state just before unmask still answers, once
    before = ClientSession.from_state(dict(states)["consistency"], cfg)
    assert before._held and before._b_seed == original._b_seed


def test_resumed_share_keys_reseal_the_same_shares_under_the_same_nonces():
    """Determinism is what makes a resumed (or replayed) stage safe: the Shamir polynomials and AES-GCM
    nonces come from the session's secret DRBG, so the same (key, nonce) never seals two plaintexts."""
    cfg = make_config(8, k=4, t=3)
    clients = {c: ClientSession(cfg, c) for c in cfg.client_ids}
    server = ServerSession(cfg)
    for c in clients.values():
        server.receive(wire(c.advertise_keys()))
    saved = clients[0].export_state()
    b = server.broadcast_keys()
    first = clients[0].share_keys(wire(b[0])).to_bytes()
    again = ClientSession.from_state(saved, cfg).share_keys(wire(b[0])).to_bytes()
    assert first == again
    other = ClientSession(cfg, 0)  # a different session: different secret seed
    other._c, other._s, other._next = clients[0]._c, clients[0]._s, Stage.SHARE_KEYS
    assert other.share_keys(wire(b[0])).to_bytes() != first
