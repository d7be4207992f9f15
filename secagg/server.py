"""Server state machine: collect keys, route sealed shares, sum masked inputs, check consistency, unmask.

The server keeps only the running sum of masked inputs. After the unmask stage it removes each survivor's
self mask and, for each dropped client, the pairwise masks with its surviving neighbours only
(Bonawitz et al. 2017, Fig. 4; Bell et al. 2020). A failed threshold raises ThresholdError before any
secret is reconstructed or any sum is returned.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from secagg import _common
from secagg.config import SecAggConfig
from secagg.errors import (
    InconsistentSharesError,
    InvalidMessageError,
    SecAggError,
    StageError,
    ThresholdError,
)
from secagg.graph import (
    cohort_seed,
    contribution_path,
    contribution_tree,
    in_neighbours,
    out_neighbours,
    round_seed,
)
from secagg.hazmat import kex, shamir, sign
from secagg.hazmat.prg import PrgBuffer
from secagg.messages import (
    AdvertiseKeys,
    ConsistencySignature,
    KeyEntry,
    KeysBroadcast,
    MaskedInput,
    MaskSet,
    Message,
    ShareKeys,
    SharesDelivery,
    Stage,
    SurvivorList,
    UnmaskRequest,
    UnmaskShares,
    validate,
)

__all__ = ["ServerSession"]

_EXPECTS = {
    Stage.ADVERTISE_KEYS: AdvertiseKeys,
    Stage.SHARE_KEYS: ShareKeys,
    Stage.MASKED_INPUT: MaskedInput,
    Stage.CONSISTENCY: ConsistencySignature,
    Stage.UNMASK: UnmaskShares,
}


class ServerSession:
    """The aggregator of one round: `receive` client messages; the stage methods close a stage and answer."""

    def __init__(
        self,
        config: SecAggConfig,
        *,
        peer_identity_keys: Mapping[int, Ed25519PublicKey | bytes] | None = None,
    ) -> None:
        self.config = config
        self._peer_ids = (
            {int(i): sign.load_identity(k) for i, k in peer_identity_keys.items()}
            if peer_identity_keys
            else None
        )
        self._stage = Stage.ADVERTISE_KEYS
        self._done = False
        self._aborted = False
        self._keys: dict[int, AdvertiseKeys] = {}
        self._nbrs: dict[int, tuple[int, ...]] = {}  # u -> its holders that advertised (it shares to them)
        self._full: dict[int, tuple[int, ...]] = {}  # u -> the k holders it drew (share x = position + 1)
        self._rel: dict[int, tuple[int, ...]] = {}  # u -> its holders and the clients that chose it
        self._held_by: dict[int, frozenset[int]] = {}  # holder -> the clients whose shares it received
        self._mask_members: dict[int, frozenset[int]] = {}  # survivor -> the clients it masked with
        self._xpos: dict[int, dict[int, int]] = {}
        self._cts: dict[int, ShareKeys] = {}
        self._u2: frozenset[int] = frozenset()
        self._u3: set[int] = set()
        self._routed: dict[int, tuple[int, ...]] = {}  # recipient -> senders whose shares it got
        self._mask_sets: dict[int, MaskSet] = {}
        self._survivors: tuple[int, ...] = ()
        self._dropped_set: frozenset[int] = frozenset()
        self._dropped: tuple[int, ...] = ()
        self._sigs: dict[int, bytes] = {}
        self._u4: frozenset[int] = frozenset()
        self._shares: dict[int, UnmaskShares] = {}
        self._unverified: tuple[int, ...] = ()
        self._sum = np.zeros(config.vector_length, dtype=np.uint32)
        self._seed = b""

    def _identity_of(self, cid: int) -> Ed25519PublicKey:
        """The identity key of a cohort member, or InvalidMessageError when none was configured."""
        key = self._peer_ids.get(cid) if self._peer_ids is not None else None
        if key is None:
            raise InvalidMessageError(f"no identity key for client {cid}")
        return key

    @property
    def stage(self) -> Stage:
        """The stage whose client messages the server is collecting."""
        return self._stage

    @property
    def graph_seed(self) -> bytes:
        """The round's graph seed, fixed when stage 1 closes (`broadcast_keys`): the cohort seed mixed with
        the Merkle root of the advertised keys (`graph.round_seed`); empty before."""
        return self._seed

    @property
    def survivors(self) -> tuple[int, ...]:
        """Clients whose masked input reached the server (their inputs are in the sum)."""
        return self._survivors

    @property
    def dropped(self) -> tuple[int, ...]:
        """Clients that shared keys but never delivered a masked input."""
        return self._dropped

    @property
    def unverified(self) -> tuple[int, ...]:
        """Clients whose secret (self-mask seed or mask key) was rebuilt from exactly t shares, so no
        error detection was possible: a holder that altered its share would have gone unnoticed. With
        more than t shares every secret is checked (`shamir.reconstruct_checked`)."""
        return self._unverified

    def _guard(self, stage: Stage) -> None:
        if self._aborted or self._done:
            raise StageError("server session is finished or aborted")
        if stage != self._stage:
            raise StageError(f"server is in stage {self._stage.name}, not {stage.name}")

    def _abort(self, exc: SecAggError) -> SecAggError:
        self._aborted = True
        self._sum = np.zeros(0, dtype=np.uint32)  # drop everything learned so far
        return exc

    # --- receiving ------------------------------------------------------------------------------
    def receive(self, msg: Message) -> None:
        """Validate and store one client message of the current stage (InvalidMessageError otherwise)."""
        if self._aborted or self._done:
            raise StageError("server session is finished or aborted")
        expected = _EXPECTS[self._stage]
        if not isinstance(msg, expected):
            raise InvalidMessageError(
                f"expected {expected.__name__} in stage {self._stage.name}, got {type(msg).__name__}"
            )
        validate(msg)
        if msg.round_id != self.config.round_id:
            raise InvalidMessageError("message from another round")
        if msg.model_hash != self.config.model_hash:
            raise InvalidMessageError(
                f"message for another model from client {getattr(msg, 'sender', '?')}: its model hash "
                "differs from this round's"
            )
        getattr(self, f"_on_{self._stage.name.lower()}")(msg)

    def _on_advertise_keys(self, m: AdvertiseKeys) -> None:
        if m.sender not in self.config.client_ids:
            raise InvalidMessageError(f"client {m.sender} is not in the cohort")
        if m.sender in self._keys:
            raise InvalidMessageError(f"duplicate (replayed) AdvertiseKeys from client {m.sender}")
        if self._peer_ids is not None:
            payload = _common.advertise_payload(self.config, m.sender, m.c_pk, m.s_pk)
            sign.verify(self._identity_of(m.sender), m.signature, payload, m.sender)
        self._keys[m.sender] = m

    def _on_share_keys(self, m: ShareKeys) -> None:
        if m.sender not in self._nbrs:
            raise InvalidMessageError(f"ShareKeys from client {m.sender}, who is not in the key broadcast")
        if m.sender in self._cts:
            raise InvalidMessageError(f"duplicate (replayed) ShareKeys from client {m.sender}")
        if tuple(v for v, _ in m.ciphertexts) != self._nbrs[m.sender]:
            raise InvalidMessageError(
                f"client {m.sender} must address exactly the holders it drew (those that advertised)"
            )
        self._cts[m.sender] = m

    def _on_masked_input(self, m: MaskedInput) -> None:
        if m.sender not in self._u2:
            raise InvalidMessageError(f"MaskedInput from client {m.sender}, who did not share keys")
        if m.sender in self._u3:
            raise InvalidMessageError(f"duplicate (replayed) MaskedInput from client {m.sender}")
        if m.masked.shape != (self.config.vector_length,):
            raise InvalidMessageError(
                f"masked input of length {m.masked.shape[0]}, expected {self.config.vector_length}"
            )
        if m.mask_neighbours != self._routed.get(m.sender):
            raise InvalidMessageError(
                f"client {m.sender} claims to have masked with neighbours other than those routed to it"
            )
        if self._peer_ids is not None:
            payload = _common.mask_set_payload(self.config, m.sender, m.mask_neighbours, self._seed)
            sign.verify(self._identity_of(m.sender), m.signature, payload, m.sender)
        np.add(self._sum, m.masked, out=self._sum)
        self._u3.add(m.sender)
        self._mask_sets[m.sender] = MaskSet(m.sender, m.mask_neighbours, m.signature)
        self._mask_members[m.sender] = frozenset(m.mask_neighbours)

    def _on_consistency(self, m: ConsistencySignature) -> None:
        if m.sender not in self._u3:
            raise InvalidMessageError(f"consistency reply from client {m.sender}, who is not a survivor")
        if m.sender in self._sigs:
            raise InvalidMessageError(f"duplicate (replayed) consistency reply from client {m.sender}")
        if self._peer_ids is not None:
            payload = _common.consistency_payload(self.config, self._survivors, self._seed)
            sign.verify(self._identity_of(m.sender), m.signature, payload, m.sender)
        self._sigs[m.sender] = m.signature

    def _on_unmask(self, m: UnmaskShares) -> None:
        if m.sender not in self._u4:
            raise InvalidMessageError(f"unmask reply from client {m.sender}, who was not asked")
        if m.sender in self._shares:
            raise InvalidMessageError(f"duplicate (replayed) unmask reply from client {m.sender}")
        nbrs = self._held_by[m.sender]  # whose shares it was sent
        surv, drop = self._u3, self._dropped_set  # sets built once per round: O(k) per message
        for owner, _ in m.self_mask_shares:
            if owner not in nbrs or owner not in surv:
                raise InvalidMessageError(
                    f"client {m.sender} sent a self-mask share of {owner} it cannot hold"
                )
        for owner, _ in m.key_shares:
            if owner not in nbrs or owner not in drop:
                raise InvalidMessageError(f"client {m.sender} sent a key share of {owner} it cannot hold")
        self._shares[m.sender] = m

    # --- closing stages -------------------------------------------------------------------------
    def _holders_ok(self, alive: frozenset[int] | set[int], what: str) -> None:
        """Every client in U2 must keep at least t of its share holders among `alive`, or the round aborts."""
        t = self.config.threshold
        for u in self._u2:
            have = sum(1 for v in self._nbrs[u] if v in alive)
            if have < t:
                raise self._abort(ThresholdError(f"client {u} keeps {have} share holders {what}, need t={t}"))

    def broadcast_keys(self) -> dict[int, KeysBroadcast]:
        """Close stage 1: fix U1; each client's k holders are drawn from its own advertised keys
        (`graph.out_neighbours`). Send each client in U1 its own entry, its holders' and those of the
        clients that chose it (O(k) per client; Bell et al. 2020, Sec. 4), with the Merkle root of every
        advertised key and its own path (the root is the signatures' graph seed)."""
        self._guard(Stage.ADVERTISE_KEYS)
        cfg = self.config
        need = max(cfg.threshold + 1, cfg.min_survivors)
        if len(self._keys) < need:
            raise self._abort(ThresholdError(f"{len(self._keys)} clients advertised keys, need {need}"))
        entries = {i: KeyEntry(i, m.c_pk, m.s_pk, m.signature) for i, m in self._keys.items()}
        levels = contribution_tree(cfg.client_ids, {i: (m.c_pk, m.s_pk) for i, m in self._keys.items()})
        root = levels[-1][0]
        base = cohort_seed(cfg.round_id, cfg.model_hash, cfg.client_ids)
        self._seed = round_seed(base, root)
        keys, ids, k = self._keys, cfg.client_ids, cfg.neighbours
        full = {u: out_neighbours(ids, k, base, u, m.c_pk, m.s_pk) for u, m in sorted(keys.items())}
        ins = in_neighbours(full)
        self._full = full
        self._nbrs = {u: tuple(v for v in out if v in keys) for u, out in full.items()}
        self._rel = {u: tuple(sorted(set(out).union(ins.get(u, ())))) for u, out in full.items()}
        # a holder's share of u sits at x = its position among u's k holders (1..k): every owner's points
        # lie in 1..k, so reconstruction needs no inversion per secret (shamir._universe)
        self._xpos = {u: {v: i + 1 for i, v in enumerate(out)} for u, out in full.items()}
        index = {c: i for i, c in enumerate(ids)}
        self._stage = Stage.SHARE_KEYS
        return {
            u: KeysBroadcast(
                cfg.round_id,
                tuple(entries[v] for v in sorted({u, *self._nbrs[u], *ins.get(u, ())})),
                model_hash=cfg.model_hash,
                root=root,
                path=contribution_path(levels, index[u]),
            )
            for u in sorted(keys)
        }

    def route_shares(self) -> dict[int, SharesDelivery]:
        """Close stage 2: U2 = clients that shared keys; deliver each one the shares addressed to it and
        the list of its own holders in U2 (it masks with both)."""
        self._guard(Stage.SHARE_KEYS)
        self._u2 = u2 = frozenset(self._cts)
        if len(u2) < self.config.min_survivors:
            raise self._abort(
                ThresholdError(f"{len(u2)} clients shared keys, need {self.config.min_survivors}")
            )
        self._holders_ok(u2, "after key sharing")
        inbox: dict[int, list[tuple[int, bytes]]] = {v: [] for v in u2}
        for u in sorted(u2):
            for v, ct in self._cts[u].ciphertexts:
                if v in inbox:
                    inbox[v].append((u, ct))
        self._cts.clear()
        alive = {v: tuple(w for w in self._nbrs[v] if w in u2) for v in u2}
        self._held_by = {v: frozenset(u for u, _ in items) for v, items in inbox.items()}
        self._routed = {v: tuple(sorted(self._held_by[v].union(alive[v]))) for v in u2}
        self._stage = Stage.MASKED_INPUT
        rid = self.config.round_id
        return {
            v: SharesDelivery(rid, v, tuple(items), alive[v], model_hash=self.config.model_hash)
            for v, items in inbox.items()
        }

    def request_consistency(self) -> dict[int, SurvivorList]:
        """Close stage 3: U3 = clients whose masked input arrived; ask each to confirm the list.

        Each survivor is also shown the signed mask-neighbour sets of its surviving neighbours, whose
        shares it holds, so it can refuse to help unmask one that keeps too few surviving mask-neighbours.
        An honest server checks the same first and aborts instead (issue 13 finding 1)."""
        self._guard(Stage.MASKED_INPUT)
        u3 = self._u3
        if len(u3) < self.config.min_survivors:
            raise self._abort(ThresholdError(f"{len(u3)} masked inputs, need {self.config.min_survivors}"))
        self._holders_ok(u3, "after masked input")
        need = self.config.min_mask_survivors
        full, members = self._full, self._mask_members
        for u in u3:
            alive = sum(1 for v in full[u] if v in u3 and v in members[u])
            if alive < need:
                raise self._abort(
                    ThresholdError(f"client {u} keeps {alive} surviving mask-neighbours, need {need}")
                )
        self._survivors = tuple(sorted(u3))
        self._dropped_set = self._u2 - u3
        self._dropped = tuple(sorted(self._dropped_set))
        self._stage = Stage.CONSISTENCY
        rid, mh = self.config.round_id, self.config.model_hash
        sets, held = self._mask_sets, self._held_by
        if self._peer_ids is not None:  # with identity keys every client signs the whole list
            return {
                w: SurvivorList(
                    rid, self._survivors, tuple(sets[u] for u in sorted(held[w]) if u in u3), model_hash=mh
                )
                for w in self._survivors
            }
        # without them, each survivor gets the part its checks read (O(k)): the survivors among itself,
        # its holders and those that chose it, and each held survivor's surviving holders it masked with
        total = len(u3)
        cut = {
            u: MaskSet(u, tuple(v for v in full[u] if v in u3 and v in members[u])) for u in self._survivors
        }
        return {
            w: SurvivorList(
                rid,
                tuple(sorted((w, *(v for v in self._rel[w] if v in u3)))),
                tuple(cut[u] for u in sorted(held[w]) if u in u3),
                model_hash=mh,
                total=total,
            )
            for w in self._survivors
        }

    def request_unmask(self) -> UnmaskRequest:
        """Close stage 4: ask the confirming survivors for one share per neighbour (b or key, never both)."""
        self._guard(Stage.CONSISTENCY)
        u4 = frozenset(self._sigs)
        if len(u4) < self.config.min_survivors:
            raise self._abort(
                ThresholdError(f"{len(u4)} consistency replies, need {self.config.min_survivors}")
            )
        self._holders_ok(u4, "after the consistency round")
        self._u4 = u4
        sigs = tuple(sorted(self._sigs.items())) if self._peer_ids is not None else ()
        self._stage = Stage.UNMASK
        return UnmaskRequest(
            self.config.round_id, self._survivors, self._dropped, sigs, model_hash=self.config.model_hash
        )

    def request_unmask_each(self) -> dict[int, UnmaskRequest]:
        """`request_unmask`, one message per confirming survivor: without identity keys each gets only
        itself, its holders and the clients that chose it from the survivor and dropped lists (O(k)
        download, issue 13 item 4); with identity keys every client needs the whole signed list, and
        all get the same one."""
        full = self.request_unmask()
        if self._peer_ids is not None:
            return dict.fromkeys(sorted(self._u4), full)
        u3, drop, total, rid = self._u3, self._dropped_set, len(self._u3), self.config.round_id
        out = {}
        for w in sorted(self._u4):
            nb = self._rel[w]
            out[w] = UnmaskRequest(
                rid,
                tuple(sorted((w, *(v for v in nb if v in u3)))),
                tuple(v for v in nb if v in drop),
                model_hash=self.config.model_hash,
                total=total,
            )
        return out

    def finish(self) -> np.ndarray:
        """Close stage 5: rebuild survivors' b_u and dropped clients' keys, remove masks, return the sum."""
        self._guard(Stage.UNMASK)
        cfg, t = self.config, self.config.threshold
        b_pts: dict[int, list[tuple[int, int]]] = {u: [] for u in self._survivors}
        s_pts: dict[int, list[tuple[int, int]]] = {u: [] for u in self._dropped}
        for v, m in self._shares.items():
            for owner, y in m.self_mask_shares:
                b_pts[owner].append((self._xpos[owner][v], y))
            for owner, y in m.key_shares:
                s_pts[owner].append((self._xpos[owner][v], y))
        short = [u for u, p in (*b_pts.items(), *s_pts.items()) if len(p) < t]
        if short:
            raise self._abort(ThresholdError(f"fewer than t={t} shares arrived for clients {short[:10]}"))
        unverified: set[int] = set()

        def rebuild(owner: int, pts: list[tuple[int, int]], what: str) -> bytes:
            try:
                secret, checked = shamir.reconstruct_checked(pts, t, universe=len(self._full[owner]))
            except InconsistentSharesError as exc:
                senders = tuple(self._full[owner][x - 1] for x in exc.suspects)
                raise self._abort(
                    InconsistentSharesError(
                        f"the {what} shares of client {owner} do not lie on one polynomial; "
                        f"altered by one of clients {list(senders)[:10]}",
                        suspects=senders,
                    )
                ) from None
            if not checked:
                unverified.add(owner)
            return secret.to_bytes(33, "little")

        b_seeds = {u: rebuild(u, p, "self-mask") for u, p in b_pts.items()}
        for u, seed in b_seeds.items():
            if seed[16:] != bytes(17):
                raise self._abort(
                    InvalidMessageError(f"reconstructed self-mask seed of client {u} is invalid")
                )
        dropped_keys = {}
        for u, p in s_pts.items():
            raw = rebuild(u, p, "mask-key")
            if raw[32] != 0:
                raise self._abort(InvalidMessageError(f"reconstructed key of client {u} is out of range"))
            key = kex.load_private(raw[:32])
            if key.public_key().public_bytes_raw() != self._keys[u].s_pk:
                raise self._abort(
                    InvalidMessageError(f"key shares of client {u} do not match its public key")
                )
            dropped_keys[u] = key
        self._unverified = tuple(sorted(unverified))
        total = self._sum
        buf = PrgBuffer(cfg.vector_length)
        for u in self._survivors:
            np.subtract(total, buf.expand(b_seeds[u][:16]), out=total)
        surv, members = self._u3, self._mask_members
        public: dict[int, X25519PublicKey] = {}  # each survivor's key parsed once, however many dropped peers
        for u, key in dropped_keys.items():
            for v in self._rel[u]:  # the survivors that masked with u
                if v not in surv or u not in members[v]:
                    continue
                pk = public.get(v)
                if pk is None:
                    pk = public[v] = kex.load_public(self._keys[v].s_pk)
                seed = _common.mask_seed(cfg, u, key, v, pk)
                # survivor v added sign(v, u) PRG(s_vu): + when v < u
                if v < u:
                    np.subtract(total, buf.expand(seed), out=total)
                else:
                    np.add(total, buf.expand(seed), out=total)
        self._done = True
        self._sum = np.zeros(0, dtype=np.uint32)
        return total
