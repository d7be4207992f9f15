"""Canonical encoding of every message; tampered, replayed, truncated or reordered input raises."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secagg import ClientSession, InvalidMessageError, ServerSession, StageError
from secagg.messages import (
    SEALED_SHARE_BYTES,
    AdvertiseKeys,
    ConsistencySignature,
    KeyEntry,
    KeysBroadcast,
    MaskedInput,
    MaskSet,
    ShareKeys,
    SharesDelivery,
    SurvivorList,
    UnmaskRequest,
    UnmaskShares,
    decode,
)

from ._helpers import make_config, vectors, wire

R = b"round-1"
CT = bytes(range(SEALED_SHARE_BYTES))
SAMPLES = [
    AdvertiseKeys(R, 3, bytes(32), bytes([1]) * 32, bytes(64)),
    AdvertiseKeys(R, 3, bytes(32), bytes([1]) * 32),
    KeysBroadcast(
        R, (KeyEntry(1, bytes(32), bytes([2]) * 32), KeyEntry(4, bytes([3]) * 32, bytes(32), bytes(64)))
    ),
    ShareKeys(R, 2, ((1, CT), (5, CT))),
    SharesDelivery(R, 2, ((1, CT), (7, CT))),
    MaskedInput(R, 9, np.arange(10, dtype=np.uint32)),
    MaskedInput(R, 9, np.arange(3, dtype=np.uint32), (1, 4, 8), bytes(64)),
    SurvivorList(R, (0, 1, 5)),
    SurvivorList(R, (0, 1, 5), (MaskSet(1, (0, 5), bytes(64)), MaskSet(5, (), b""))),
    ConsistencySignature(R, 1, bytes(64)),
    UnmaskRequest(R, (0, 2), (1,), ((0, bytes(64)), (2, bytes(64)))),
    UnmaskShares(R, 4, ((0, 12345), (2, 2**256)), ((1, 7),)),
]


def _same(a, b) -> bool:
    if isinstance(a, MaskedInput):
        return (a.round_id, a.sender, a.mask_neighbours, a.signature) == (
            b.round_id,
            b.sender,
            b.mask_neighbours,
            b.signature,
        ) and np.array_equal(a.masked, b.masked)
    return a == b


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip_is_canonical(msg):
    data = msg.to_bytes()
    back = decode(data)
    assert type(back) is type(msg) and _same(back, msg)
    assert back.to_bytes() == data


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_every_truncation_and_any_trailing_byte_is_rejected(msg):
    data = msg.to_bytes()
    for cut in range(len(data)):
        with pytest.raises(InvalidMessageError):
            decode(data[:cut])
    with pytest.raises(InvalidMessageError):
        decode(data + b"\x00")


@pytest.mark.parametrize(
    "offset,value,match",
    [(0, ord("X"), "magic"), (4, 1, "version"), (4, 9, "version"), (5, 0, "type"), (5, 200, "type")],
)
def test_tampered_header_is_rejected(offset, value, match):
    data = bytearray(SAMPLES[0].to_bytes())
    data[offset] = value
    with pytest.raises(InvalidMessageError, match=match):
        decode(bytes(data))


def test_bad_lengths_orders_and_bounds_are_rejected():
    with pytest.raises(InvalidMessageError, match="increasing"):
        decode(SurvivorList(R, (3, 1)).to_bytes())
    with pytest.raises(InvalidMessageError, match="increasing"):
        decode(SurvivorList(R, (1, 1)).to_bytes())
    with pytest.raises(InvalidMessageError, match="itself"):
        decode(ShareKeys(R, 1, ((1, CT),)).to_bytes())
    with pytest.raises(InvalidMessageError, match="both shares"):
        decode(UnmaskShares(R, 1, ((2, 1),), ((2, 1),)).to_bytes())
    with pytest.raises(InvalidMessageError, match="field range"):
        decode(UnmaskShares(R, 1, ((2, 2**264 - 1),), ()).to_bytes())
    with pytest.raises(InvalidMessageError, match="signature length"):
        decode(ConsistencySignature(R, 1, bytes(10)).to_bytes())
    with pytest.raises(InvalidMessageError, match="signature length"):  # records of mixed lengths
        decode(KeysBroadcast(R, (KeyEntry(1, bytes(32), bytes([2]) * 32, bytes(10)),)).to_bytes())
    with pytest.raises(InvalidMessageError, match="truncated|count"):
        decode(ShareKeys(R, 2, ((1, CT[:-1]),)).to_bytes())
    huge = bytearray(MaskedInput(R, 1, np.zeros(2, dtype=np.uint32)).to_bytes())
    huge[-17:-13] = (2**30).to_bytes(4, "little")  # claims a billion words (before mask set, signature)
    with pytest.raises(InvalidMessageError):
        decode(bytes(huge))
    with pytest.raises(InvalidMessageError):
        decode("not bytes")  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(idx=st.integers(0, len(SAMPLES) - 1), data=st.data())
def test_random_mutations_never_crash_the_decoder(idx, data):
    raw = bytearray(SAMPLES[idx].to_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    try:
        decode(bytes(raw))
    except InvalidMessageError:
        pass  # the only exception allowed


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_the_decoder(blob):
    try:
        decode(b"PASA\x01" + blob)
    except InvalidMessageError:
        pass


def _start(cfg):
    clients = {c: ClientSession(cfg, c) for c in cfg.client_ids}
    server = ServerSession(cfg)
    adverts = {cid: c.advertise_keys() for cid, c in clients.items()}
    return clients, server, adverts


def test_replayed_and_cross_round_messages_are_rejected_by_the_server():
    cfg = make_config(6, k=4, t=3)
    clients, server, adverts = _start(cfg)
    server.receive(wire(adverts[0]))
    with pytest.raises(InvalidMessageError, match="replayed"):
        server.receive(wire(adverts[0]))
    other_round = AdvertiseKeys(b"round-0", 1, adverts[1].c_pk, adverts[1].s_pk)
    with pytest.raises(InvalidMessageError, match="another round"):
        server.receive(wire(other_round))
    with pytest.raises(InvalidMessageError, match="cohort"):
        server.receive(AdvertiseKeys(R, 77, bytes(32), bytes(32)))


def test_reordered_messages_are_rejected():
    cfg = make_config(6, k=4, t=3)
    clients, server, adverts = _start(cfg)
    for m in adverts.values():
        server.receive(wire(m))
    with pytest.raises(InvalidMessageError, match="expected AdvertiseKeys"):
        server.receive(MaskedInput(R, 0, np.zeros(16, dtype=np.uint32)))
    b = server.broadcast_keys()
    with pytest.raises(InvalidMessageError, match="expected KeysBroadcast"):
        clients[0].share_keys(SurvivorList(R, (0, 1)))
    with pytest.raises(StageError):
        clients[0].share_keys(wire(b[0]))  # the session aborted on the bad message
    with pytest.raises(StageError):
        clients[1].masked_input(SharesDelivery(R, 1, ()), np.zeros(16, dtype=np.uint32))
    with pytest.raises(StageError):
        server.broadcast_keys()


def test_tampered_keys_and_ciphertexts_are_detected_by_clients():
    cfg = make_config(6, k=5, t=3)  # complete graph: every client's broadcast holds every entry
    xs = vectors(cfg, 0)
    clients, server, adverts = _start(cfg)
    for m in adverts.values():
        server.receive(wire(m))
    bs = server.broadcast_keys()
    b = bs[0]
    # the server swaps client 0's keys: client 0 notices its own keys were altered
    e0 = b.entries[0]
    swapped = dataclasses.replace(b, entries=(KeyEntry(0, e0.s_pk, e0.c_pk),) + b.entries[1:])
    with pytest.raises(InvalidMessageError, match="own keys"):
        clients[0].share_keys(wire(swapped))
    # the server duplicates a key (reflection): rejected
    dup = dataclasses.replace(
        bs[1], entries=(b.entries[0], KeyEntry(1, e0.c_pk, b.entries[1].s_pk)) + b.entries[2:]
    )
    with pytest.raises(InvalidMessageError, match="repeated"):
        clients[1].share_keys(wire(dup))
    for cid in range(2, 6):
        server.receive(wire(clients[cid].share_keys(wire(bs[cid]))))
    # clients 0, 1 aborted: rebuild a clean round to test the ciphertexts
    clients, server, adverts = _start(cfg)
    for m in adverts.values():
        server.receive(wire(m))
    b = server.broadcast_keys()
    for cid, c in clients.items():
        server.receive(wire(c.share_keys(wire(b[cid]))))
    routed = server.route_shares()
    d0 = routed[0]
    sender, ct = d0.ciphertexts[0]
    flipped = bytes([ct[0]]) + bytes([ct[1] ^ 1]) + ct[2:]
    bad = SharesDelivery(R, 0, ((sender, flipped),) + d0.ciphertexts[1:])
    with pytest.raises(InvalidMessageError, match="authentication"):
        clients[0].masked_input(wire(bad), xs[0])
    # a ciphertext relabelled as coming from another neighbour fails authentication (AAD binds sender)
    d1 = routed[1]
    (s_a, ct_a), (s_b, ct_b) = d1.ciphertexts[:2]
    relabel = SharesDelivery(R, 1, ((s_a, ct_b), (s_b, ct_a)) + d1.ciphertexts[2:])
    with pytest.raises(InvalidMessageError):
        clients[1].masked_input(wire(relabel), xs[1])
    # a delivery addressed to someone else
    with pytest.raises(InvalidMessageError, match="addressed"):
        clients[2].masked_input(wire(routed[3]), xs[2])
    # a masked input of the wrong length is refused by the server
    with pytest.raises(InvalidMessageError, match="length"):
        server.receive(MaskedInput(R, 4, np.zeros(5, dtype=np.uint32)))
