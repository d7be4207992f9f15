"""Client state machine: advertise keys -> share keys -> masked input -> consistency -> unmask.

Sans-IO: each method consumes the server's message for the stage and returns the client's reply
(Bonawitz et al. 2017, Fig. 4; SecAgg+ neighbourhoods of Bell et al. 2020). Any error aborts the session.
"""

from __future__ import annotations

import bisect
import hashlib
import secrets
import struct
from collections.abc import Callable, Mapping
from typing import TypeVar

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from secagg import _common
from secagg.config import SecAggConfig
from secagg.errors import (
    InvalidMessageError,
    SecAggConfigError,
    SecAggError,
    StageError,
    ThresholdError,
    UnsafeRequestError,
)
from secagg.graph import cohort_seed, contribution_leaf, out_neighbours, root_from_path, round_seed
from secagg.hazmat import aead, drbg, kex, shamir, sign
from secagg.hazmat.prg import PrgBuffer
from secagg.messages import (
    AdvertiseKeys,
    ConsistencySignature,
    KeysBroadcast,
    MaskedInput,
    MaskSet,
    ShareKeys,
    SharesDelivery,
    Stage,
    SurvivorList,
    UnmaskRequest,
    UnmaskShares,
    validate,
)

__all__ = ["ClientSession"]


def _digest(ids: tuple[int, ...]) -> bytes:
    """SHA-256 of an id list: what a client remembers of the survivor list it confirmed."""
    return hashlib.sha256(struct.pack(f"<{len(ids)}I", *ids)).digest()


T = TypeVar("T")


def _path_length(n: int) -> int:
    """Hashes in a Merkle path over n leaves (the tree of `graph.contribution_tree`)."""
    return (n - 1).bit_length()


_PAIR = struct.Struct("<II")


class ClientSession:
    """One honest client in one round. Call the five stage methods in order; each returns the reply."""

    def __init__(
        self,
        config: SecAggConfig,
        client_id: int,
        *,
        identity_key: Ed25519PrivateKey | None = None,
        peer_identity_keys: Mapping[int, Ed25519PublicKey | bytes] | None = None,
    ) -> None:
        self._setup(config, client_id, identity_key, peer_identity_keys)
        self._c = kex.KeyPair()  # share-encryption keys
        self._s = kex.KeyPair()  # mask-agreement keys (private part is Shamir-shared)
        self._b_seed = secrets.token_bytes(16)  # self-mask seed b_u
        self._rand = secrets.token_bytes(32)  # keys the DRBG of Shamir coefficients and nonces

    def _setup(
        self,
        config: SecAggConfig,
        client_id: int,
        identity_key: Ed25519PrivateKey | None,
        peer_identity_keys: Mapping[int, Ed25519PublicKey | bytes] | None,
    ) -> None:
        """Everything but the round's secrets: shared by `__init__` and `from_state`."""
        if not isinstance(config, SecAggConfig):
            raise SecAggConfigError(f"config must be a SecAggConfig, got {type(config).__name__}")
        if client_id not in config.client_ids:
            raise SecAggConfigError(f"client {client_id} is not in the round's cohort")
        self.config = config
        self.client_id = client_id
        self._identity = identity_key
        self._peer_ids = (
            {int(i): sign.load_identity(k) for i, k in peer_identity_keys.items()}
            if peer_identity_keys
            else None
        )
        if self._peer_ids is not None and identity_key is None:
            raise SecAggConfigError("a client that verifies peer signatures needs its own identity_key")
        self._next = Stage.ADVERTISE_KEYS
        self._aborted = False
        self._peers: dict[int, tuple[bytes, bytes]] = {}
        self._neighbours: tuple[int, ...] = ()
        self._held: dict[int, tuple[int, int]] = {}  # owner -> (self-mask share, key share)
        self._share_keys_cache: dict[int, bytes] = {}  # peer -> AES-GCM key (one X25519 per peer)
        self._survivors: bytes | None = None  # SHA-256 of the confirmed list (O(1) memory per client)
        self._nbr_sets: dict[int, tuple[int, ...]] = {}  # the holders of each client that chose us
        self._graph_neighbours: tuple[int, ...] = ()  # our holders and who chose us, sorted
        self._out: tuple[int, ...] = ()  # the k holders we drew from our own keys (stage 2)
        self._mask_set: tuple[int, ...] = ()  # the neighbours this client masked with (signed, stage 3)
        self._seed = b""  # the round's graph seed (cohort seed + advertised keys' Merkle root), stage 2

    # --- state export (a fresh process per message, e.g. a Flower SuperNode) ---------------------
    def export_state(self, *, state_key: bytes | None = None) -> bytes:
        """The session's whole state as versioned, length-prefixed bytes (see `secagg.state`).

        It holds the round's secrets (both X25519 private keys, the self-mask seed, the held shares):
        keep it where the client keeps its keys, never send it to the server, and replace it after every
        stage call (resuming an older state and answering a stage twice with different inputs would show
        the server two maskings under the same masks). `state_key` (32 bytes) seals it with AES-256-GCM."""
        from secagg import state

        return state.export_client(self, state_key)

    @classmethod
    def from_state(
        cls,
        data: bytes,
        config: SecAggConfig,
        *,
        identity_key: Ed25519PrivateKey | None = None,
        peer_identity_keys: Mapping[int, Ed25519PublicKey | bytes] | None = None,
        state_key: bytes | None = None,
    ) -> ClientSession:
        """Resume a session from `export_state` bytes, with the same config and identity keys it was
        created with (they are not secret state and are passed again). A resumed session sends
        byte-identical messages to the original's. Bad, truncated, tampered or foreign state raises
        `InvalidStateError` (an `InvalidMessageError`)."""
        from secagg import state

        return state.import_client(cls, data, config, identity_key, peer_identity_keys, state_key)

    def _identity_of(self, cid: int) -> Ed25519PublicKey:
        """The identity key of a cohort member, or InvalidMessageError when none was configured."""
        key = self._peer_ids.get(cid) if self._peer_ids is not None else None
        if key is None:
            raise InvalidMessageError(f"no identity key for client {cid}")
        return key

    # --- plumbing -------------------------------------------------------------------------------
    def _run(self, stage: Stage, fn: Callable[[], T]) -> T:
        if self._aborted:
            raise StageError(f"client {self.client_id}: session aborted earlier")
        if stage != self._next:
            raise StageError(f"client {self.client_id}: expected stage {self._next.name}, got {stage.name}")
        try:
            out = fn()
        except SecAggError:
            self._aborted = True
            raise
        self._next = Stage(stage + 1) if stage < Stage.UNMASK else Stage.UNMASK
        if stage == Stage.UNMASK:
            self._aborted = True  # a client answers one unmask request per round, ever
        return out

    def _check(self, msg: object, cls: type, stage: Stage) -> None:
        if not isinstance(msg, cls):
            raise InvalidMessageError(
                f"client {self.client_id}: expected {cls.__name__} in stage {stage.name}, "
                f"got {type(msg).__name__}"
            )
        validate(msg)
        if msg.round_id != self.config.round_id:  # type: ignore[attr-defined]
            raise InvalidMessageError(f"client {self.client_id}: message from another round")
        if msg.model_hash != self.config.model_hash:  # type: ignore[attr-defined]
            raise InvalidMessageError(
                f"client {self.client_id}: message for another model (model hash differs from this round's)"
            )

    # --- stage 1 --------------------------------------------------------------------------------
    def advertise_keys(self) -> AdvertiseKeys:
        """Two fresh X25519 public keys, signed with the identity key when there is one."""

        def step() -> AdvertiseKeys:
            sig = b""
            if self._identity is not None:
                payload = _common.advertise_payload(
                    self.config, self.client_id, self._c.public_bytes, self._s.public_bytes
                )
                sig = sign.sign(self._identity, payload)
            return AdvertiseKeys(
                self.config.round_id,
                self.client_id,
                self._c.public_bytes,
                self._s.public_bytes,
                sig,
                model_hash=self.config.model_hash,
            )

        return self._run(Stage.ADVERTISE_KEYS, step)

    # --- stage 2 --------------------------------------------------------------------------------
    def share_keys(self, broadcast: KeysBroadcast) -> ShareKeys:
        """Check the advertised keys, derive the neighbour graph, send each neighbour sealed shares."""
        return self._run(Stage.SHARE_KEYS, lambda: self._share_keys(broadcast))

    def _share_keys(self, msg: KeysBroadcast) -> ShareKeys:
        """The broadcast holds only this client's own entry, its holders' and those of the clients that
        chose it (O(k) download, Bell et al. 2020, Sec. 4). The holders are drawn from this client's own
        fresh keys (`graph.out_neighbours`), so nothing the server sends changes them (issue 13 finding
        3b). Entries of other cohort members are ignored; the cohort-wide minimum is enforced on the
        survivor list (consistency stage)."""
        self._check(msg, KeysBroadcast, Stage.SHARE_KEYS)
        cfg, me = self.config, self.client_id
        cohort = cfg.cohort
        # The signatures' graph seed mixes in the Merkle root of every advertised key; our own leaf must be
        # in it at our cohort position (the path is O(log n) download).
        if len(msg.root) != 32:
            raise InvalidMessageError(f"client {me}: key broadcast without the contribution root")
        index = bisect.bisect_left(cfg.client_ids, me)
        leaf = contribution_leaf(me, self._c.public_bytes, self._s.public_bytes)
        if len(msg.path) != _path_length(cfg.n) or root_from_path(leaf, index, msg.path) != msg.root:
            raise InvalidMessageError(
                f"client {me}: the contribution root does not contain this client's advertised keys"
            )
        base = cohort_seed(cfg.round_id, cfg.model_hash, cfg.client_ids)
        self._seed = round_seed(base, msg.root)
        self._out = self._holders()
        out = set(self._out)
        ins: dict[int, tuple[int, ...]] = {}
        seen_keys: set[bytes] = set()
        for e in msg.entries:
            cid = e.client_id
            if cid not in cohort:
                raise InvalidMessageError(f"advertised client {cid} is not in the cohort")
            if cid != me:
                # did it choose us? (its draw from its own keys: the server cannot make one up)
                chosen = out_neighbours(cfg.client_ids, cfg.neighbours, base, cid, e.c_pk, e.s_pk)
                if me in chosen:
                    ins[cid] = chosen
                elif cid not in out:
                    continue  # neither our holder nor one of those we hold shares for
            if e.c_pk in seen_keys or e.s_pk in seen_keys or e.c_pk == e.s_pk:
                raise InvalidMessageError(f"client {cid} advertises a repeated public key")
            seen_keys.update((e.c_pk, e.s_pk))
            if self._peer_ids is not None:
                key = self._peer_ids.get(cid)
                if key is None:
                    raise InvalidMessageError(f"no identity key for advertised client {cid}")
                payload = _common.advertise_payload(cfg, cid, e.c_pk, e.s_pk)
                sign.verify(key, e.signature, payload, cid)
            self._peers[cid] = (e.c_pk, e.s_pk)
        if self._peers.get(me) != (self._c.public_bytes, self._s.public_bytes):
            raise InvalidMessageError(f"client {me}: own keys missing or altered in the broadcast")
        # what the consistency check needs: the holders of each client we may hold shares of
        self._nbr_sets = ins
        self._graph_neighbours = tuple(sorted(out.union(ins)))
        present = tuple(v for v in self._out if v in self._peers)
        self._neighbours = tuple(sorted(set(present).union(ins)))
        t = cfg.threshold
        if len(present) < t:
            raise ThresholdError(f"client {me} has {len(present)} share holders, fewer than t={t}")
        # x = position of the holder among our k chosen holders (1..k), as the server rebuilds it
        xpos = {v: i + 1 for i, v in enumerate(self._out)}
        xs = [xpos[v] for v in present]
        # Coefficients and nonces from the session's keyed DRBG (secret seed from `secrets`): the same
        # polynomials whatever subset of holders is present, so a resumed session (export_state) or a
        # replayed stage seals the same plaintext under the same (key, nonce), never another one.
        rng = drbg.Drbg(drbg.derive(self._rand, b"shamir"))
        b_sh = shamir.split(int.from_bytes(self._b_seed, "little"), t, xs, randbelow=rng.randbelow)
        s_sh = shamir.split(int.from_bytes(self._s.private_bytes(), "little"), t, xs, randbelow=rng.randbelow)
        cts = []
        for v, yb, ys in zip(present, b_sh, s_sh, strict=True):
            key = self._share_key(v)
            pt = _PAIR.pack(me, v) + shamir.share_to_bytes(yb) + shamir.share_to_bytes(ys)
            nonce = drbg.derive(self._rand, b"nonce" + struct.pack("<I", v), aead.NONCE_BYTES)
            cts.append((v, aead.seal(key, pt, aead.associated_data(cfg.round_id, me, v), nonce)))
        return ShareKeys(cfg.round_id, me, tuple(cts), model_hash=cfg.model_hash)

    def _holders(self) -> tuple[int, ...]:
        """The k holders this client draws from its own public keys (all others at the complete graph)."""
        cfg = self.config
        base = cohort_seed(cfg.round_id, cfg.model_hash, cfg.client_ids)
        return out_neighbours(
            cfg.client_ids, cfg.neighbours, base, self.client_id, self._c.public_bytes, self._s.public_bytes
        )

    def _share_key(self, peer: int) -> bytes:
        """The pair's share-encryption key, derived once: sealing (stage 2) and opening (stage 3) reuse it."""
        key = self._share_keys_cache.get(peer)
        if key is None:
            pk = kex.load_public(self._peers[peer][0])
            key = _common.share_key(self.config, self.client_id, self._c.private, peer, pk)
            self._share_keys_cache[peer] = key
        return key

    # --- stage 3 --------------------------------------------------------------------------------
    def masked_input(self, delivery: SharesDelivery, vector: np.ndarray) -> MaskedInput:
        """Open the shares addressed to us; return y = x + PRG(b) + sum_v +-PRG(s_uv) mod 2^32."""
        return self._run(Stage.MASKED_INPUT, lambda: self._masked_input(delivery, vector))

    def _masked_input(self, msg: SharesDelivery, vector: np.ndarray) -> MaskedInput:
        self._check(msg, SharesDelivery, Stage.MASKED_INPUT)
        cfg, me = self.config, self.client_id
        x = np.asarray(vector)
        if x.dtype != np.uint32 or x.shape != (cfg.vector_length,):
            raise SecAggConfigError(
                f"input must be a uint32 vector of length {cfg.vector_length}, got {x.dtype} {x.shape}"
            )
        if msg.recipient != me:
            raise InvalidMessageError(f"client {me} received shares addressed to {msg.recipient}")
        ins = self._nbr_sets
        for u, ct in msg.ciphertexts:
            if u not in ins:
                raise InvalidMessageError(f"client {me} received shares from {u}, who did not choose it")
            key = self._share_key(u)
            pt = aead.open_sealed(key, ct, aead.associated_data(cfg.round_id, u, me))
            if len(pt) != 8 + 2 * shamir.SHARE_BYTES or _PAIR.unpack(pt[:8]) != (u, me):
                raise InvalidMessageError(f"share plaintext from {u} is malformed or misaddressed")
            self._held[u] = (
                shamir.share_from_bytes(pt[8 : 8 + shamir.SHARE_BYTES]),
                shamir.share_from_bytes(pt[8 + shamir.SHARE_BYTES :]),
            )
        out = set(self._out)
        alive_out = msg.out_alive
        if not out.issuperset(alive_out) or any(v not in self._peers for v in alive_out):
            raise InvalidMessageError(f"client {me}: holders named alive that it did not share with")
        # The server chooses whom it names alive, so it chooses our mask set: refuse one with fewer of our
        # own holders than t (what the correctness bound promises) or than must contain an honest one.
        # Only our holders count: we drew them, while anyone may have chosen us (issue 13 finding 3b).
        need = max(cfg.threshold, cfg.min_mask_survivors)
        if len(alive_out) < need:
            raise ThresholdError(
                f"client {me}: only {len(alive_out)} of its holders shared keys, need {need} "
                f"(t={cfg.threshold}, up to {cfg.corrupt_neighbours} corrupt holders)"
            )
        mask_set = tuple(sorted(set(alive_out).union(self._held)))
        y = x.copy()
        buf = PrgBuffer(cfg.vector_length)
        np.add(y, buf.expand(self._b_seed), out=y)
        for v in mask_set:
            seed = _common.mask_seed(cfg, me, self._s.private, v, kex.load_public(self._peers[v][1]))
            if me < v:
                np.add(y, buf.expand(seed), out=y)
            else:
                np.subtract(y, buf.expand(seed), out=y)
        self._mask_set = mask_set
        sig = b""
        if self._identity is not None:
            sig = sign.sign(self._identity, _common.mask_set_payload(cfg, me, self._mask_set, self._seed))
        return MaskedInput(cfg.round_id, me, y, self._mask_set, sig, model_hash=cfg.model_hash)

    # --- stage 4 --------------------------------------------------------------------------------
    def consistency(self, request: SurvivorList) -> ConsistencySignature:
        """Check and sign the survivor list (the signature is empty without an identity key)."""
        return self._run(Stage.CONSISTENCY, lambda: self._consistency(request))

    def _consistency(self, msg: SurvivorList) -> ConsistencySignature:
        self._check(msg, SurvivorList, Stage.CONSISTENCY)
        if self._peer_ids is not None and msg.total:
            raise UnsafeRequestError(
                "with identity keys a client signs only the whole survivor list, not a part of it"
            )
        self._check_survivors(msg.survivors, msg.total)
        self._check_mask_sets(msg)
        self._survivors = self._confirmed_digest(msg.survivors)
        sig = b""
        if self._identity is not None:
            sig = sign.sign(
                self._identity, _common.consistency_payload(self.config, msg.survivors, self._seed)
            )
        return ConsistencySignature(
            self.config.round_id, self.client_id, sig, model_hash=self.config.model_hash
        )

    def _confirmed_digest(self, survivors: tuple[int, ...]) -> bytes:
        """What the client remembers of the list it confirmed, compared with the unmask request's: with
        identity keys the whole list (it is what was signed), without them the survivors among itself, its
        holders and the clients that drew it, the only ones its checks and unmask answer read (O(k)
        download)."""
        if self._peer_ids is not None:
            return _digest(survivors)
        mine = {self.client_id, *self._graph_neighbours}
        return _digest(tuple(v for v in survivors if v in mine))

    def _check_survivors(self, survivors: tuple[int, ...], total: int = 0) -> None:
        """`total` = 0: `survivors` is the whole list; otherwise it is this client's part of a list of
        `total` survivors (without identity keys; the count is the server's word, as the list was)."""
        me, cfg = self.client_id, self.config
        if me not in survivors:
            raise UnsafeRequestError(f"client {me} delivered its input but is not on the survivor list")
        unknown = [v for v in survivors if v not in cfg.cohort]
        if unknown:
            raise UnsafeRequestError(f"survivor list names clients outside the cohort: {unknown[:10]}")
        count = total or len(survivors)
        if total and len(survivors) > total:
            raise UnsafeRequestError(f"a part of {len(survivors)} survivors of a list of {total}")
        if count < cfg.min_survivors:
            raise UnsafeRequestError(
                f"survivor set of {count} is below this client's minimum cohort {cfg.min_survivors}"
            )

    def _check_mask_sets(self, msg: SurvivorList) -> None:
        """Refuse to confirm a survivor list under which a survivor whose shares we hold (or we ourselves)
        keeps fewer than `min_mask_survivors` surviving mask-neighbours: its input could then be unmasked
        alone. The sets are those the survivors signed with their masked inputs (issue 13 finding 1)."""
        cfg, me = self.config, self.client_id
        survivors = set(msg.survivors)
        need = cfg.min_mask_survivors
        sets: dict[int, MaskSet] = {}
        for m in msg.mask_sets:
            if m.client_id in sets:
                raise InvalidMessageError(f"mask set of client {m.client_id} appears twice")
            sets[m.client_id] = m
        partial = msg.total > 0
        for u in (me, *sorted(self._held)):
            if u not in survivors:
                continue
            if u == me:
                alive = len(survivors.intersection(self._mask_set, self._out))
            else:
                m = sets.get(u)
                if m is None:
                    raise UnsafeRequestError(f"the mask-neighbour set of survivor {u} was not shown")
                if self._peer_ids is not None:
                    payload = _common.mask_set_payload(cfg, u, m.neighbours, self._seed)
                    sign.verify(self._identity_of(u), m.signature, payload, u)
                # only u's own holders count (u drew them; corrupt clients may all have chosen u); in a
                # part (no identity keys) the server shows u's surviving holders it masked with
                holders = self._nbr_sets[u]
                shown = set(m.neighbours).intersection(holders)
                alive = len(shown) if partial else len(survivors.intersection(shown))
            if alive < need:
                raise UnsafeRequestError(
                    f"survivor {u} keeps {alive} surviving mask-neighbours among its holders, need {need} "
                    f"to contain an honest one (up to {cfg.corrupt_neighbours} corrupt holders): its input "
                    "could be unmasked alone"
                )

    # --- stage 5 --------------------------------------------------------------------------------
    def unmask(self, request: UnmaskRequest) -> UnmaskShares:
        """Reveal b-shares of surviving neighbours and key shares of dropped ones: never both for one peer."""
        return self._run(Stage.UNMASK, lambda: self._unmask(request))

    def _unmask(self, msg: UnmaskRequest) -> UnmaskShares:
        self._check(msg, UnmaskRequest, Stage.UNMASK)
        cfg, me = self.config, self.client_id
        survivors, dropped = set(msg.survivors), set(msg.dropped)
        both = survivors & dropped
        if both:
            raise UnsafeRequestError(f"server lists {sorted(both)} both as survivors and as dropped")
        if self._peer_ids is not None and msg.total:
            raise UnsafeRequestError("with identity keys an unmask request must carry the whole signed list")
        if self._confirmed_digest(msg.survivors) != self._survivors:
            raise UnsafeRequestError(
                "unmask request's survivor list differs from the one in the consistency round"
            )
        self._check_survivors(msg.survivors, msg.total)
        if self._peer_ids is not None:
            signers: set[int] = set()
            payload = _common.consistency_payload(cfg, msg.survivors, self._seed)
            for i, s in msg.signatures:
                if i not in survivors:
                    raise UnsafeRequestError(f"consistency signature from {i}, who is not a survivor")
                if i in signers:
                    raise UnsafeRequestError(f"consistency signature from {i} appears twice")
                sign.verify(self._identity_of(i), s, payload, i)
                signers.add(i)
            # A cohort-wide majority: honest clients sign one list each, so two different lists cannot
            # both gather more than (n + c) / 2 signatures (c = the corrupt clients the config tolerates).
            # A per-neighbourhood t would not do: a server could show each group its own list (review).
            need = max(cfg.threshold, (cfg.n + cfg.max_corrupt) // 2 + 1)
            if len(signers) < need:
                raise UnsafeRequestError(
                    f"only {len(signers)} consistency signatures on this survivor list, need {need} "
                    f"(cohort of {cfg.n}, up to {cfg.max_corrupt} corrupt tolerated)"
                )
        b_out, s_out = [], []
        for u in sorted(self._held):
            b_share, s_share = self._held[u]
            if u in survivors:
                b_out.append((u, b_share))
            elif u in dropped:
                s_out.append((u, s_share))
            else:
                raise UnsafeRequestError(
                    f"neighbour {u} is neither survivor nor dropped in the unmask request"
                )
        self._held.clear()  # nothing left to give
        return UnmaskShares(cfg.round_id, me, tuple(b_out), tuple(s_out), model_hash=cfg.model_hash)
