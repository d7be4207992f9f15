"""Frozen message types of the five stages and their versioned, canonical byte encoding.

Layout: magic "PASA" | version u8 | type u8 | round id (u8 length + bytes) | model hash (u8 length +
bytes) | body. Every message carries the round's model hash, so a party on another model is refused at
the first message (issue 13 finding 2). Integers are
little-endian struct fields, id lists are strictly increasing, arrays are little-endian uint32 with an
explicit length. `decode` validates every field and length and raises InvalidMessageError (never pickle).
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass, field
from enum import IntEnum
from functools import cached_property
from typing import ClassVar

import numpy as np

from secagg.errors import InvalidMessageError
from secagg.hazmat.aead import NONCE_BYTES, TAG_BYTES
from secagg.hazmat.shamir import SHARE_BYTES, share_from_bytes, share_to_bytes
from secagg.hazmat.sign import SIGNATURE_BYTES

__all__ = [
    "VERSION",
    "Stage",
    "AdvertiseKeys",
    "KeysBroadcast",
    "KeyEntry",
    "MaskSet",
    "ShareKeys",
    "SharesDelivery",
    "MaskedInput",
    "SurvivorList",
    "ConsistencySignature",
    "UnmaskRequest",
    "UnmaskShares",
    "Message",
    "decode",
    "validate",
    "SHARE_PLAINTEXT_BYTES",
    "SEALED_SHARE_BYTES",
]

MAGIC = b"PASA"
VERSION = 5
_HEADER = struct.Struct("<4sBB")
_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")
KEY_BYTES = 32
SHARE_PLAINTEXT_BYTES = 8 + 2 * SHARE_BYTES  # sender, recipient, self-mask share, key share
SEALED_SHARE_BYTES = NONCE_BYTES + SHARE_PLAINTEXT_BYTES + TAG_BYTES
MAX_COUNT = 2**24
ROOT_BYTES = 32
MAX_PATH = 32  # a cohort of up to 2^32 ids
# Fixed-size records of the repeated fields, parsed in one pass (decoding is on every party's hot path).
_KEY_ENTRY = struct.Struct(f"<I{KEY_BYTES}s{KEY_BYTES}sB")  # id, c_pk, s_pk, signature length
_CT_RECORD = struct.Struct(f"<I{SEALED_SHARE_BYTES}s")
_SHARE_RECORD = struct.Struct(f"<I{SHARE_BYTES}s")
_SIG_RECORD = struct.Struct(f"<I{SIGNATURE_BYTES}s")


class Stage(IntEnum):
    """The five protocol stages, in order (Bonawitz et al. 2017, Fig. 4)."""

    ADVERTISE_KEYS = 1
    SHARE_KEYS = 2
    MASKED_INPUT = 3
    CONSISTENCY = 4
    UNMASK = 5


class _Reader:
    """Bounds-checked cursor over a received message."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise InvalidMessageError(
                f"truncated message: need {n} bytes at offset {self.pos}, have {len(self.data)}"
            )
        out = self.data[self.pos : end]
        self.pos = end
        return out

    def skip(self, n: int) -> int:
        """Advance over n bytes without copying them; returns the start offset."""
        start = self.pos
        if n < 0 or start + n > len(self.data):
            raise InvalidMessageError(
                f"truncated message: need {n} bytes at offset {start}, have {len(self.data)}"
            )
        self.pos = start + n
        return start

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return _U16.unpack(self.take(2))[0]

    def u32(self) -> int:
        return _U32.unpack(self.take(4))[0]

    def count(self, item_bytes: int) -> int:
        n = self.u32()
        if n > MAX_COUNT or n * item_bytes > len(self.data) - self.pos:
            raise InvalidMessageError(f"count {n} exceeds the message length")
        return n

    def signature(self) -> bytes:
        n = self.u8()
        if n not in (0, SIGNATURE_BYTES):
            raise InvalidMessageError(f"signature length must be 0 or {SIGNATURE_BYTES}, got {n}")
        return self.take(n)

    def ids(self) -> tuple[int, ...]:
        """An id list as `_ids` writes it: count, then the first id and the gaps (u16 or u32 each)."""
        n = self.count(2)
        if n == 0:
            return ()
        width = self.u8()
        if width not in (2, 4):
            raise InvalidMessageError(f"id gap width must be 2 or 4 bytes, got {width}")
        first = self.u32()
        gaps = struct.unpack(f"<{n - 1}{'H' if width == 2 else 'I'}", self.take(width * (n - 1)))
        if gaps and min(gaps) == 0:
            raise InvalidMessageError("id list must be strictly increasing (a zero gap)")
        ids = tuple(itertools.accumulate(gaps, initial=first))
        if ids[-1] > 0xFFFFFFFF:
            raise InvalidMessageError("id list must be strictly increasing within [0, 2^32)")
        return ids

    def end(self) -> None:
        if self.pos != len(self.data):
            raise InvalidMessageError(f"{len(self.data) - self.pos} trailing bytes after message")


def _check_increasing(ids: tuple[int, ...] | list[int], what: str) -> None:
    for a, b in zip(ids, ids[1:]):  # noqa: B905 - offsets by one on purpose
        if b <= a:
            raise InvalidMessageError(f"{what} must be strictly increasing, got {a} then {b}")


def _sig(sig: bytes) -> bytes:
    return bytes([len(sig)]) + sig


def _ids(ids: tuple[int, ...]) -> bytes:
    """Count u32, then (if any) the gap width u8 (2 when every gap fits in u16, else 4), the first id u32
    and the n - 1 gaps: about half the bytes of u32 ids for the neighbour sets and survivor parts that
    dominate a client's download (issue 13 item 4)."""
    n = len(ids)
    if n == 0:
        return _U32.pack(0)
    gaps = [(b - a) & 0xFFFFFFFF for a, b in zip(ids, ids[1:])]  # noqa: B905 - offsets by one on purpose
    wide = bool(gaps) and max(gaps) > 0xFFFF  # a decreasing list (only in tests) wraps and is refused
    return (
        _U32.pack(n)
        + bytes([4 if wide else 2])
        + _U32.pack(ids[0])
        + struct.pack(f"<{n - 1}{'I' if wide else 'H'}", *gaps)
    )


_PACKED: dict[int, tuple[tuple[int, ...], bytes]] = {}  # id(tuple) -> (the tuple, its packed bytes)


def _round_ids(ids: tuple[int, ...]) -> bytes:
    """`_ids` of a round-wide list (the survivors): the server sends the same tuple to every survivor,
    so it is packed once, not n times. Keyed by object identity (hashing n scattered ints per message was
    itself O(n^2) per round); the entry holds the tuple, so its id cannot be reused while cached."""
    hit = _PACKED.get(id(ids))
    if hit is not None and hit[0] is ids:
        return hit[1]
    out = _ids(ids)
    if len(_PACKED) >= 4:
        _PACKED.clear()
    _PACKED[id(ids)] = (ids, out)
    return out


@dataclass(frozen=True)
class _Base:
    TYPE: ClassVar[int] = 0
    STAGE: ClassVar[Stage] = Stage.ADVERTISE_KEYS

    round_id: bytes
    model_hash: bytes = field(default=b"", kw_only=True)

    def _header(self) -> bytes:
        return b"".join(
            (
                _HEADER.pack(MAGIC, VERSION, self.TYPE),
                bytes([len(self.round_id)]),
                self.round_id,
                bytes([len(self.model_hash)]),
                self.model_hash,
            )
        )

    @property
    def stage(self) -> Stage:
        """The protocol stage this message belongs to."""
        return self.STAGE


@dataclass(frozen=True)
class AdvertiseKeys(_Base):
    """Client -> server: the two X25519 public keys (share encryption, mask agreement), optionally signed."""

    TYPE: ClassVar[int] = 1
    STAGE: ClassVar[Stage] = Stage.ADVERTISE_KEYS
    sender: int
    c_pk: bytes
    s_pk: bytes
    signature: bytes = b""

    def to_bytes(self) -> bytes:
        return self._header() + _U32.pack(self.sender) + self.c_pk + self.s_pk + _sig(self.signature)

    @classmethod
    def _read(cls, r: _Reader, round_id: bytes, model_hash: bytes) -> AdvertiseKeys:
        return cls(
            round_id, r.u32(), r.take(KEY_BYTES), r.take(KEY_BYTES), r.signature(), model_hash=model_hash
        )


@dataclass(frozen=True)
class KeyEntry:
    """One client's advertised keys as relayed by the server."""

    client_id: int
    c_pk: bytes
    s_pk: bytes
    signature: bytes = b""

    @cached_property
    def wire(self) -> bytes:
        """The record's bytes, packed once: the server relays each entry to k + 1 clients."""
        return _U32.pack(self.client_id) + self.c_pk + self.s_pk + _sig(self.signature)


@dataclass(frozen=True)
class KeysBroadcast(_Base):
    """Server -> one client that advertised: its own, its holders' and its choosers' keys, in id order,
    with the Merkle root of every advertised key and the path proving its own leaf.

    The root (wire version 3) is the graph seed inside every signature: a majority-signed survivor list
    certifies one set of advertised keys. The graph itself is each client's own draw from its own keys
    (`graph.out_neighbours`), which no root can move (issue 13 finding 3b)."""

    TYPE: ClassVar[int] = 2
    STAGE: ClassVar[Stage] = Stage.ADVERTISE_KEYS
    entries: tuple[KeyEntry, ...]
    root: bytes = field(default=b"", kw_only=True)
    path: tuple[bytes, ...] = field(default=(), kw_only=True)

    def to_bytes(self) -> bytes:
        parts = [self._header(), _U32.pack(len(self.entries))]
        for e in self.entries:
            parts.append(e.wire)
        parts.append(bytes([len(self.root)]) + self.root + bytes([len(self.path)]))
        parts.extend(self.path)
        return b"".join(parts)

    @classmethod
    def _read(cls, r: _Reader, round_id: bytes, model_hash: bytes) -> KeysBroadcast:
        n = r.count(_KEY_ENTRY.size)
        entries = []
        for _ in range(n):  # records differ in length (signed or not): one struct read each, no slicing
            start = r.skip(_KEY_ENTRY.size)
            cid, c_pk, s_pk, siglen = _KEY_ENTRY.unpack_from(r.data, start)
            if siglen not in (0, SIGNATURE_BYTES):
                raise InvalidMessageError(f"signature length must be 0 or {SIGNATURE_BYTES}, got {siglen}")
            entries.append(KeyEntry(cid, c_pk, s_pk, r.take(siglen) if siglen else b""))
        _check_increasing([e.client_id for e in entries], "advertised client ids")
        nroot = r.u8()
        if nroot not in (0, ROOT_BYTES):
            raise InvalidMessageError(f"contribution root must be 0 or {ROOT_BYTES} bytes, got {nroot}")
        root = r.take(nroot)
        npath = r.u8()
        if npath > MAX_PATH:
            raise InvalidMessageError(f"Merkle path of {npath} hashes, at most {MAX_PATH}")
        path = tuple(r.take(ROOT_BYTES) for _ in range(npath))
        return cls(round_id, tuple(entries), model_hash=model_hash, root=root, path=path)


def _write_cts(items: tuple[tuple[int, bytes], ...]) -> bytes:
    """Count, then the (id, sealed share) records: packed in one C loop when every share has its fixed
    length (the server writes n k of them); written as given otherwise ("s" would pad or cut them), so a
    malformed object still encodes to bytes that `decode` refuses."""
    head = _U32.pack(len(items))
    if all(len(ct) == SEALED_SHARE_BYTES for _, ct in items):
        return head + b"".join(itertools.starmap(_CT_RECORD.pack, items))
    return head + b"".join(_U32.pack(i) + ct for i, ct in items)


def _read_cts(r: _Reader) -> tuple[tuple[int, bytes], ...]:
    n = r.count(_CT_RECORD.size)
    start = r.skip(n * _CT_RECORD.size)
    items = tuple(_CT_RECORD.iter_unpack(r.data[start : r.pos]))  # (id, sealed bytes) records
    _check_increasing([i for i, _ in items], "share ciphertext ids")
    return items


@dataclass(frozen=True)
class ShareKeys(_Base):
    """Client -> server: one sealed share pair per neighbour, (recipient id, ciphertext) in id order."""

    TYPE: ClassVar[int] = 3
    STAGE: ClassVar[Stage] = Stage.SHARE_KEYS
    sender: int
    ciphertexts: tuple[tuple[int, bytes], ...]

    def to_bytes(self) -> bytes:
        return self._header() + _U32.pack(self.sender) + _write_cts(self.ciphertexts)

    @classmethod
    def _read(cls, r: _Reader, round_id: bytes, model_hash: bytes) -> ShareKeys:
        sender = r.u32()
        cts = _read_cts(r)
        if any(i == sender for i, _ in cts):
            raise InvalidMessageError(f"client {sender} addressed a share to itself")
        return cls(round_id, sender, cts, model_hash=model_hash)


@dataclass(frozen=True)
class SharesDelivery(_Base):
    """Server -> one client: the sealed shares addressed to it by the clients that chose it as a holder,
    (sender id, ciphertext), and which of its own holders shared keys (`out_alive`, wire version 5): the
    recipient masks with both (issue 13 finding 3b: holders are drawn by each client)."""

    TYPE: ClassVar[int] = 4
    STAGE: ClassVar[Stage] = Stage.SHARE_KEYS
    recipient: int
    ciphertexts: tuple[tuple[int, bytes], ...]
    out_alive: tuple[int, ...] = ()

    def to_bytes(self) -> bytes:
        return (
            self._header() + _U32.pack(self.recipient) + _write_cts(self.ciphertexts) + _ids(self.out_alive)
        )

    @classmethod
    def _read(cls, r: _Reader, round_id: bytes, model_hash: bytes) -> SharesDelivery:
        recipient = r.u32()
        cts = _read_cts(r)
        if any(i == recipient for i, _ in cts):
            raise InvalidMessageError(f"delivery to {recipient} contains a share from itself")
        alive = r.ids()
        if recipient in alive:
            raise InvalidMessageError(f"delivery to {recipient} names the recipient as its own holder")
        return cls(round_id, recipient, cts, alive, model_hash=model_hash)


@dataclass(frozen=True, eq=False)
class MaskedInput(_Base):
    """Client -> server: y_u = x_u + PRG(b_u) + sum_v +-PRG(s_uv) mod 2^32, as little-endian uint32,
    with the neighbours u masked with (those whose shares reached it) and u's signature on that set.

    The signed set is what lets the holders of u's shares check, at the consistency stage, that enough
    of u's pairwise masks stay with surviving peers (issue 13 finding 1; Bell et al. 2020, Sec. 4)."""

    TYPE: ClassVar[int] = 5
    STAGE: ClassVar[Stage] = Stage.MASKED_INPUT
    sender: int
    masked: np.ndarray
    mask_neighbours: tuple[int, ...] = ()
    signature: bytes = b""

    def to_bytes(self) -> bytes:
        arr = np.ascontiguousarray(self.masked, dtype="<u4")
        return b"".join(
            (
                self._header(),
                _U32.pack(self.sender),
                _U32.pack(arr.size),
                memoryview(arr).cast("B"),
                _ids(self.mask_neighbours),
                _sig(self.signature),
            )
        )

    @classmethod
    def _read(cls, r: _Reader, round_id: bytes, model_hash: bytes) -> MaskedInput:
        sender = r.u32()
        n = r.count(4)
        start = r.skip(4 * n)
        arr = np.frombuffer(r.data, dtype="<u4", count=n, offset=start)
        nbrs = r.ids()
        if sender in nbrs:
            raise InvalidMessageError(f"client {sender} lists itself among its mask neighbours")
        return cls(round_id, sender, arr, nbrs, r.signature(), model_hash=model_hash)


@dataclass(frozen=True)
class MaskSet:
    """One survivor's signed mask-neighbour set, as relayed to the holders of its shares."""

    client_id: int
    neighbours: tuple[int, ...]
    signature: bytes = b""

    @cached_property
    def wire(self) -> bytes:
        """The record's bytes, packed once: the server relays each set to up to k survivors."""
        return _U32.pack(self.client_id) + _ids(self.neighbours) + _sig(self.signature)


@dataclass(frozen=True)
class SurvivorList(_Base):
    """Server -> one survivor: who delivered a masked input (U3), for the consistency check, with the
    signed mask-neighbour sets of the survivors whose shares the recipient holds.

    `total` = 0: `survivors` is the whole list (what a client signs with identity keys). `total` > 0:
    `survivors` is the recipient's part of a list of `total` survivors, those among itself, its holders
    and the clients that chose it, and each mask set is cut to its owner's surviving holders (O(k)
    download without identity keys, issue 13 item 4)."""

    TYPE: ClassVar[int] = 6
    STAGE: ClassVar[Stage] = Stage.CONSISTENCY
    survivors: tuple[int, ...]
    mask_sets: tuple[MaskSet, ...] = ()
    total: int = field(default=0, kw_only=True)

    def to_bytes(self) -> bytes:
        parts = [self._header(), _round_ids(self.survivors), _U32.pack(len(self.mask_sets))]
        for m in self.mask_sets:
            parts.append(m.wire)
        parts.append(_U32.pack(self.total))
        return b"".join(parts)

    @classmethod
    def _read(cls, r: _Reader, round_id: bytes, model_hash: bytes) -> SurvivorList:
        survivors = r.ids()
        n = r.count(9)  # id, empty id list, signature length: at least 9 bytes a set
        sets = []
        for _ in range(n):
            cid = r.u32()
            nbrs = r.ids()
            if cid in nbrs:
                raise InvalidMessageError(f"mask set of client {cid} lists the client itself")
            sets.append(MaskSet(cid, nbrs, r.signature()))
        _check_increasing([m.client_id for m in sets], "mask-set owner ids")
        return cls(round_id, survivors, tuple(sets), model_hash=model_hash, total=r.u32())


@dataclass(frozen=True)
class ConsistencySignature(_Base):
    """Client -> server: its Ed25519 signature on (round, survivor list), empty without identity keys."""

    TYPE: ClassVar[int] = 7
    STAGE: ClassVar[Stage] = Stage.CONSISTENCY
    sender: int
    signature: bytes = b""

    def to_bytes(self) -> bytes:
        return self._header() + _U32.pack(self.sender) + _sig(self.signature)

    @classmethod
    def _read(cls, r: _Reader, round_id: bytes, model_hash: bytes) -> ConsistencySignature:
        return cls(round_id, r.u32(), r.signature(), model_hash=model_hash)


@dataclass(frozen=True)
class UnmaskRequest(_Base):
    """Server -> survivors: the survivor list, the dropped list, and the collected consistency signatures.

    `total` as in SurvivorList: 0 for the whole lists, else the recipient's part (itself and its graph
    neighbours) of a round of `total` survivors."""

    TYPE: ClassVar[int] = 8
    STAGE: ClassVar[Stage] = Stage.UNMASK
    survivors: tuple[int, ...]
    dropped: tuple[int, ...]
    signatures: tuple[tuple[int, bytes], ...] = ()
    total: int = field(default=0, kw_only=True)

    def to_bytes(self) -> bytes:
        sigs = _U32.pack(len(self.signatures)) + b"".join(_U32.pack(i) + s for i, s in self.signatures)
        return self._header() + _round_ids(self.survivors) + _ids(self.dropped) + sigs + _U32.pack(self.total)

    @classmethod
    def _read(cls, r: _Reader, round_id: bytes, model_hash: bytes) -> UnmaskRequest:
        survivors, dropped = r.ids(), r.ids()
        n = r.count(_SIG_RECORD.size)
        start = r.skip(n * _SIG_RECORD.size)
        sigs = tuple(_SIG_RECORD.iter_unpack(r.data[start : r.pos]))
        _check_increasing([i for i, _ in sigs], "signature ids")
        return cls(round_id, survivors, dropped, sigs, model_hash=model_hash, total=r.u32())


def _write_shares(items: tuple[tuple[int, int], ...]) -> bytes:
    return _U32.pack(len(items)) + b"".join(_U32.pack(i) + share_to_bytes(y) for i, y in items)


def _read_shares(r: _Reader) -> tuple[tuple[int, int], ...]:
    n = r.count(_SHARE_RECORD.size)
    start = r.skip(n * _SHARE_RECORD.size)
    items = tuple((i, share_from_bytes(y)) for i, y in _SHARE_RECORD.iter_unpack(r.data[start : r.pos]))
    _check_increasing([i for i, _ in items], "share owner ids")
    return items


@dataclass(frozen=True)
class UnmaskShares(_Base):
    """Client -> server: self-mask shares of surviving neighbours, key shares of dropped ones (never both)."""

    TYPE: ClassVar[int] = 9
    STAGE: ClassVar[Stage] = Stage.UNMASK
    sender: int
    self_mask_shares: tuple[tuple[int, int], ...]
    key_shares: tuple[tuple[int, int], ...]

    def to_bytes(self) -> bytes:
        return (
            self._header()
            + _U32.pack(self.sender)
            + _write_shares(self.self_mask_shares)
            + _write_shares(self.key_shares)
        )

    @classmethod
    def _read(cls, r: _Reader, round_id: bytes, model_hash: bytes) -> UnmaskShares:
        sender = r.u32()
        a, b = _read_shares(r), _read_shares(r)
        both = {i for i, _ in a} & {i for i, _ in b}
        if both:
            raise InvalidMessageError(f"client {sender} sent both shares for clients {sorted(both)}")
        return cls(round_id, sender, a, b, model_hash=model_hash)


Message = (
    AdvertiseKeys
    | KeysBroadcast
    | ShareKeys
    | SharesDelivery
    | MaskedInput
    | SurvivorList
    | ConsistencySignature
    | UnmaskRequest
    | UnmaskShares
)
_TYPES: dict[int, type] = {
    c.TYPE: c
    for c in (
        AdvertiseKeys,
        KeysBroadcast,
        ShareKeys,
        SharesDelivery,
        MaskedInput,
        SurvivorList,
        ConsistencySignature,
        UnmaskRequest,
        UnmaskShares,
    )
}


_DECODED = "_secagg_decoded"


def decode(data: bytes | bytearray | memoryview) -> Message:
    """Parse and validate one encoded message; raise InvalidMessageError on any malformation."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidMessageError(f"expected bytes, got {type(data).__name__}")
    r = _Reader(bytes(data))
    magic, version, mtype = _HEADER.unpack(r.take(_HEADER.size))
    if magic != MAGIC:
        raise InvalidMessageError(f"bad magic {magic!r}")
    if version != VERSION:
        raise InvalidMessageError(f"unsupported protocol version {version}, expected {VERSION}")
    cls = _TYPES.get(mtype)
    if cls is None:
        raise InvalidMessageError(f"unknown message type {mtype}")
    round_id = r.take(r.u8())
    model_hash = r.take(r.u8())
    msg = cls._read(r, round_id, model_hash)
    r.end()
    object.__setattr__(msg, _DECODED, True)  # built from checked bytes: `validate` need not look again
    return msg


# --- objects handed to a session without crossing the wire --------------------------------------------
_U32_MAX = 2**32 - 1


def _bad(msg: object, what: str) -> InvalidMessageError:
    return InvalidMessageError(f"{type(msg).__name__}: {what}")


def _u32(msg: object, v: object, what: str) -> None:
    if type(v) is not int or not 0 <= v <= _U32_MAX:  # bool and numpy integers are refused too
        raise _bad(msg, f"{what} must be an int in [0, 2^32), got {type(v).__name__}")


def _raw(msg: object, v: object, what: str, sizes: tuple[int, ...] | None = None, limit: int = 255) -> None:
    if type(v) is not bytes:
        raise _bad(msg, f"{what} must be bytes, got {type(v).__name__}")
    if (sizes is not None and len(v) not in sizes) or len(v) > limit:
        raise _bad(msg, f"{what} has length {len(v)}")


def _id_tuple(msg: object, v: object, what: str) -> None:
    if type(v) is not tuple:
        raise _bad(msg, f"{what} must be a tuple of ids, got {type(v).__name__}")
    if not all(type(i) is int for i in v):  # bool and numpy integers are refused too
        raise _bad(msg, f"{what} must hold ints")
    _check_increasing(v, what)
    if v and (v[0] < 0 or v[-1] > _U32_MAX):  # increasing: the ends bound every id
        raise _bad(msg, f"{what} must be ids in [0, 2^32)")


def _pairs(msg: object, v: object, what: str, check_value: object) -> None:
    if type(v) is not tuple:
        raise _bad(msg, f"{what} must be a tuple, got {type(v).__name__}")
    prev = -1
    for item in v:
        if type(item) is not tuple or len(item) != 2:
            raise _bad(msg, f"{what} must hold (id, value) pairs")
        i = item[0]
        if type(i) is not int or not prev < i <= _U32_MAX:
            raise _bad(msg, f"{what} ids must be strictly increasing ints in [0, 2^32), got {i!r}"[:200])
        prev = i
        check_value(item[1])  # type: ignore[operator]


def _share_value(msg: object) -> object:
    def check(y: object) -> None:
        if type(y) is not int or not 0 <= y < 2**264:
            raise _bad(msg, "share values must be ints of at most 33 bytes")

    return check


def validate(msg: object) -> None:
    """Check the types and sizes of a message object's fields, raising InvalidMessageError.

    `decode` builds only well-typed objects; sessions call this at their boundary as well, so an object
    built by hand (a float or int64 masked vector, a list instead of a tuple or array, `entries=None`)
    is refused with a typed error instead of failing deep inside (issue 13 finding 2)."""
    if not isinstance(msg, _Base):
        raise InvalidMessageError(f"expected a secagg message, got {type(msg).__name__}")
    if msg.__dict__.get(_DECODED) is True:
        return  # `decode` built it field by field from validated bytes (dataclasses.replace drops the mark)
    _raw(msg, msg.round_id, "round_id")
    _raw(msg, msg.model_hash, "model_hash")
    sig = (0, SIGNATURE_BYTES)
    if isinstance(msg, AdvertiseKeys):
        _u32(msg, msg.sender, "sender")
        _raw(msg, msg.c_pk, "c_pk", (KEY_BYTES,))
        _raw(msg, msg.s_pk, "s_pk", (KEY_BYTES,))
        _raw(msg, msg.signature, "signature", sig)
    elif isinstance(msg, KeysBroadcast):
        if type(msg.entries) is not tuple:
            raise _bad(msg, f"entries must be a tuple, got {type(msg.entries).__name__}")
        for e in msg.entries:  # one inlined test per entry: this list has an entry per cohort member
            if not (
                type(e) is KeyEntry
                and type(e.client_id) is int
                and 0 <= e.client_id <= _U32_MAX
                and type(e.c_pk) is bytes
                and len(e.c_pk) == KEY_BYTES
                and type(e.s_pk) is bytes
                and len(e.s_pk) == KEY_BYTES
                and type(e.signature) is bytes
                and len(e.signature) in sig
            ):
                raise _bad(msg, f"entries must be well-typed KeyEntry records, got {e!r}"[:200])
        _check_increasing([e.client_id for e in msg.entries], "advertised client ids")
        _raw(msg, msg.root, "root", (0, ROOT_BYTES))
        if type(msg.path) is not tuple or len(msg.path) > MAX_PATH:
            raise _bad(msg, f"path must be a tuple of at most {MAX_PATH} hashes")
        for h in msg.path:
            _raw(msg, h, "path hash", (ROOT_BYTES,))
    elif isinstance(msg, (ShareKeys, SharesDelivery)):
        _u32(msg, msg.sender if isinstance(msg, ShareKeys) else msg.recipient, "sender or recipient")

        def ct(v: object) -> None:
            _raw(msg, v, "sealed share", (SEALED_SHARE_BYTES,), SEALED_SHARE_BYTES)

        _pairs(msg, msg.ciphertexts, "ciphertexts", ct)
        if isinstance(msg, SharesDelivery):
            _id_tuple(msg, msg.out_alive, "out_alive")
    elif isinstance(msg, MaskedInput):
        _u32(msg, msg.sender, "sender")
        a = msg.masked
        if type(a) is not np.ndarray or a.dtype.kind != "u" or a.dtype.itemsize != 4 or a.ndim != 1:
            what = f"{type(a).__name__} {getattr(a, 'dtype', '')} {getattr(a, 'shape', '')}".strip()
            raise _bad(msg, f"masked must be a 1-D uint32 numpy array, got {what}")
        _id_tuple(msg, msg.mask_neighbours, "mask_neighbours")
        _raw(msg, msg.signature, "signature", sig)
    elif isinstance(msg, SurvivorList):
        _id_tuple(msg, msg.survivors, "survivors")
        _u32(msg, msg.total, "total")
        if type(msg.mask_sets) is not tuple:
            raise _bad(msg, f"mask_sets must be a tuple, got {type(msg.mask_sets).__name__}")
        for m in msg.mask_sets:
            if not isinstance(m, MaskSet):
                raise _bad(msg, f"mask_sets must hold MaskSet, got {type(m).__name__}")
            _u32(msg, m.client_id, "mask-set owner")
            _id_tuple(msg, m.neighbours, "mask-set neighbours")
            _raw(msg, m.signature, "signature", sig)
    elif isinstance(msg, ConsistencySignature):
        _u32(msg, msg.sender, "sender")
        _raw(msg, msg.signature, "signature", sig)
    elif isinstance(msg, UnmaskRequest):
        _id_tuple(msg, msg.survivors, "survivors")
        _u32(msg, msg.total, "total")
        _id_tuple(msg, msg.dropped, "dropped")

        def sg(v: object) -> None:
            _raw(msg, v, "signature", (SIGNATURE_BYTES,))

        _pairs(msg, msg.signatures, "signatures", sg)
    elif isinstance(msg, UnmaskShares):
        _u32(msg, msg.sender, "sender")
        _pairs(msg, msg.self_mask_shares, "self_mask_shares", _share_value(msg))
        _pairs(msg, msg.key_shares, "key_shares", _share_value(msg))
