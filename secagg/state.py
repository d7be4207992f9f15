"""Versioned byte encoding of a client session's state, so a round can span processes (Flower SuperNodes
may start a fresh process per message and keep per-round data in `context.state`).

Layout (little-endian, every list length-prefixed, id lists as in the wire format's `_ids`; never pickle):
    magic "PASC" | version u8 | flags u8 (bit 0: aborted) | next stage u8 | client id u32 |
    binding: SHA-256(config digest | client id | identity public key or empty | verifies-peers u8) |
    secrets: c private 32 | s private 32 | self-mask seed 16 | DRBG seed 32 |
    peers: u32 count, (id u32, c_pk 32, s_pk 32)* | graph neighbourhood (own holders and the clients
    that chose it): ids | neighbours with keys: ids | holders of each client that chose it: u32 count,
    (id u32, ids)* | held shares: u32 count, (owner u32, b 33, s 33)* |
    mask set: ids | survivor digest: u8 present, 32 bytes if present | graph seed: u8 length + bytes |
    check: SHA-256 of everything above (32 bytes).
With `state_key`, the whole is sealed: magic "PASE" | version u8 | nonce 12 | AES-256-GCM(state, tag).

The SHA-256 check catches accidental corruption and truncation; only the sealed form authenticates against
someone who can write the stored state (and a party who can write it can read its secrets unsealed).
Importing also checks that the state fits the config, the stage, and its own private keys.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Mapping
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from secagg import _common
from secagg.config import SecAggConfig
from secagg.errors import InvalidMessageError, InvalidStateError
from secagg.hazmat import kex, shamir
from secagg.messages import Stage, _ids, _Reader

if TYPE_CHECKING:
    from secagg.client import ClientSession

__all__ = ["STATE_VERSION", "export_client", "import_client"]

MAGIC = b"PASC"
SEALED_MAGIC = b"PASE"
STATE_VERSION = 4
_HEAD = struct.Struct("<4sBBBI")
_PEER = struct.Struct("<I32s32s")
_HELD = struct.Struct(f"<I{shamir.SHARE_BYTES}s{shamir.SHARE_BYTES}s")
_AAD = b"privagg-secagg/client-state"
_U32 = struct.Struct("<I")
_ABORTED_KEY = bytes([9]) + bytes(31)  # a fixed valid X25519 scalar standing in for erased keys


def _binding(config: SecAggConfig, client_id: int, identity: Ed25519PrivateKey | None, peers: bool) -> bytes:
    h = hashlib.sha256(_common.config_digest(config))
    h.update(_U32.pack(client_id))
    h.update(identity.public_key().public_bytes_raw() if identity is not None else b"")
    h.update(bytes([peers]))
    return h.digest()


def _check_key(state_key: bytes | None) -> None:
    if state_key is not None and (type(state_key) is not bytes or len(state_key) != 32):
        raise InvalidStateError("state_key must be 32 bytes")


def export_client(s: ClientSession, state_key: bytes | None) -> bytes:
    """`ClientSession.export_state`."""
    _check_key(state_key)
    if s._aborted:  # an aborted session answers nothing: its state carries no secret and no round data
        body = b"".join(
            (
                _HEAD.pack(MAGIC, STATE_VERSION, 1, int(s._next), s.client_id),
                _binding(s.config, s.client_id, s._identity, s._peer_ids is not None),
                _ABORTED_KEY,
                _ABORTED_KEY,
                bytes(48),
                bytes(4 * 6),  # six empty lists
                b"\x00",  # no survivor digest
                b"\x00",  # no graph seed
            )
        )
        return _finish(body, state_key)
    parts = [
        _HEAD.pack(MAGIC, STATE_VERSION, int(s._aborted), int(s._next), s.client_id),
        _binding(s.config, s.client_id, s._identity, s._peer_ids is not None),
        s._c.private_bytes(),
        s._s.private_bytes(),
        s._b_seed,
        s._rand,
        _U32.pack(len(s._peers)),
        *(_PEER.pack(i, c, k) for i, (c, k) in sorted(s._peers.items())),
        _ids(s._graph_neighbours),
        _ids(s._neighbours),
        _U32.pack(len(s._nbr_sets)),
        *(_U32.pack(u) + _ids(nb) for u, nb in sorted(s._nbr_sets.items())),
        _U32.pack(len(s._held)),
        *(
            _HELD.pack(u, shamir.share_to_bytes(b), shamir.share_to_bytes(k))
            for u, (b, k) in sorted(s._held.items())
        ),
        _ids(s._mask_set),
        b"\x00" if s._survivors is None else b"\x01" + s._survivors,
        bytes([len(s._seed)]) + s._seed,
    ]
    return _finish(b"".join(parts), state_key)


def _finish(body: bytes, state_key: bytes | None) -> bytes:
    plain = body + hashlib.sha256(body).digest()
    if state_key is None:
        return plain
    nonce = os.urandom(12)
    return SEALED_MAGIC + bytes([STATE_VERSION]) + nonce + AESGCM(state_key).encrypt(nonce, plain, _AAD)


def _unseal(data: bytes, state_key: bytes | None) -> bytes:
    _check_key(state_key)
    sealed = data[:4] == SEALED_MAGIC
    if state_key is None:
        if sealed:
            raise InvalidStateError("the state is sealed: pass the state_key it was exported with")
        return data
    if not sealed:
        raise InvalidStateError("expected a sealed state (exported with state_key)")
    if len(data) < 4 + 1 + 12 + 16 or data[4] != STATE_VERSION:
        raise InvalidStateError("sealed state is truncated or of another version")
    try:
        return AESGCM(state_key).decrypt(data[5:17], data[17:], _AAD)
    except InvalidTag:
        raise InvalidStateError("sealed state failed authentication (tampered or another key)") from None


def import_client(
    cls: type[ClientSession],
    data: bytes,
    config: SecAggConfig,
    identity_key: Ed25519PrivateKey | None,
    peer_identity_keys: Mapping[int, Ed25519PublicKey | bytes] | None,
    state_key: bytes | None,
) -> ClientSession:
    """`ClientSession.from_state`."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidStateError(f"state must be bytes, got {type(data).__name__}")
    raw = _unseal(bytes(data), state_key)
    if len(raw) < _HEAD.size + 32:
        raise InvalidStateError(f"state of {len(raw)} bytes is truncated")
    body, check = raw[:-32], raw[-32:]
    if hashlib.sha256(body).digest() != check:
        raise InvalidStateError("state checksum mismatch (truncated, corrupted or altered)")
    try:
        return _parse(cls, body, config, identity_key, peer_identity_keys)
    except InvalidStateError:
        raise
    except InvalidMessageError as exc:  # the reader's bounds errors
        raise InvalidStateError(f"malformed state: {exc}") from None
    except ValueError as exc:  # a key that does not parse
        raise InvalidStateError(f"malformed state: {exc}") from None


def _parse(
    cls: type[ClientSession],
    body: bytes,
    config: SecAggConfig,
    identity_key: Ed25519PrivateKey | None,
    peer_identity_keys: Mapping[int, Ed25519PublicKey | bytes] | None,
) -> ClientSession:
    r = _Reader(body)
    magic, version, flags, nxt, cid = _HEAD.unpack(r.take(_HEAD.size))
    if magic != MAGIC:
        raise InvalidStateError(f"not a secagg client state (magic {magic!r})")
    if version != STATE_VERSION:
        raise InvalidStateError(f"unsupported state version {version}, expected {STATE_VERSION}")
    if flags > 1 or nxt not in tuple(Stage):
        raise InvalidStateError(f"bad flags {flags} or stage {nxt}")
    if cid not in config.cohort:
        raise InvalidStateError(f"state of client {cid}, who is not in this config's cohort")
    s = cls.__new__(cls)
    s._setup(config, cid, identity_key, peer_identity_keys)
    if r.take(32) != _binding(config, cid, identity_key, s._peer_ids is not None):
        raise InvalidStateError(
            "state belongs to another round, config, client or identity key (or peer checks differ)"
        )
    s._aborted, s._next = bool(flags), Stage(nxt)
    s._c = kex.KeyPair(kex.load_private(r.take(32)))
    s._s = kex.KeyPair(kex.load_private(r.take(32)))
    s._b_seed, s._rand = r.take(16), r.take(32)
    cohort = config.cohort
    for _ in range(r.count(_PEER.size)):
        i, c_pk, s_pk = _PEER.unpack(r.take(_PEER.size))
        if i not in cohort or i in s._peers:
            raise InvalidStateError(f"peer {i} is outside the cohort or repeated")
        s._peers[i] = (c_pk, s_pk)
    s._graph_neighbours = r.ids()
    s._neighbours = r.ids()
    for _ in range(r.count(8)):
        u = r.u32()
        if u in s._nbr_sets:
            raise InvalidStateError(f"holders of {u} repeated")
        s._nbr_sets[u] = r.ids()
    for _ in range(r.count(_HELD.size)):
        u, b, k = _HELD.unpack(r.take(_HELD.size))
        if u in s._held:
            raise InvalidStateError(f"held shares of {u} repeated")
        s._held[u] = (shamir.share_from_bytes(b), shamir.share_from_bytes(k))
    s._mask_set = r.ids()
    if r.u8():
        s._survivors = r.take(32)
    s._seed = r.take(r.u8())
    r.end()
    _check_stage(s)
    return s


def _check_stage(s: ClientSession) -> None:
    """What each stage must (and must not) hold: a state that passes its checksum may still have been
    written by a buggy or foreign encoder; refuse one that does not describe a reachable session."""
    nxt, me = s._next, s.client_id
    lists = (s._peers, s._graph_neighbours, s._neighbours, s._nbr_sets, s._held, s._mask_set)
    if s._aborted:  # exported without secrets or round data (export_client)
        if (
            any(lists)
            or s._seed
            or s._survivors is not None
            or any(x.strip(b"\0") for x in (s._b_seed, s._rand))
        ):
            raise InvalidStateError("an aborted session's state must hold no secrets or round data")
        return
    graph = set(s._graph_neighbours)
    if len(s._seed) != (32 if nxt >= Stage.MASKED_INPUT else 0):
        raise InvalidStateError("graph seed present before (or missing after) key sharing")
    if nxt >= Stage.MASKED_INPUT:
        if s._peers.get(me) != (s._c.public_bytes, s._s.public_bytes):
            raise InvalidStateError("own public keys missing from the state or not matching its private keys")
        s._out = s._holders()  # drawn from the client's own keys: recomputed, never trusted from the state
        out, ins = set(s._out), set(s._nbr_sets)
        if me in graph or graph != out | ins or any(me not in nb for nb in s._nbr_sets.values()):
            raise InvalidStateError("graph neighbourhood does not match the client's holders and choosers")
        present = {v for v in out if v in s._peers}
        if set(s._neighbours) != present | ins or set(s._neighbours) != set(s._peers) - {me}:
            raise InvalidStateError("neighbours do not match the peers whose keys the state holds")
        if len(present) < s.config.threshold:
            raise InvalidStateError("fewer than t share holders")
    elif any(lists[:4]):
        raise InvalidStateError(f"stage {nxt.name} state holds key-sharing data")
    if nxt >= Stage.CONSISTENCY:
        need = max(s.config.threshold, s.config.min_mask_survivors)
        mask = set(s._mask_set)
        if not set(s._held) <= mask or not set(s._held) <= set(s._nbr_sets) or len(mask & set(s._out)) < need:
            raise InvalidStateError("held shares do not match the signed mask set and neighbours")
        if not mask <= set(s._neighbours):
            raise InvalidStateError("mask set outside the neighbours")
    elif s._held or s._mask_set:
        raise InvalidStateError(f"stage {nxt.name} state holds shares or a mask set")
    if (s._survivors is not None) != (nxt == Stage.UNMASK):
        raise InvalidStateError("survivor digest present before (or missing after) the consistency stage")
