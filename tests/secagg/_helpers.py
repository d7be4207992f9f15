"""Drive sessions by hand for the protocol tests."""

from __future__ import annotations

import numpy as np

from secagg import ClientSession, SecAggConfig, ServerSession
from secagg.messages import decode


def make_config(n: int = 8, k: int = 4, t: int = 3, d: int = 16, **kw) -> SecAggConfig:
    return SecAggConfig(tuple(range(n)), d, threshold=t, neighbours=k, round_id=b"round-1", **kw)


def vectors(cfg: SecAggConfig, seed: int = 0) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {c: rng.integers(0, 2**32, cfg.vector_length, dtype=np.uint32) for c in cfg.client_ids}


def wire(msg):
    """Every message crosses a byte boundary, as on a network."""
    return decode(msg.to_bytes())


def run_to_unmask(cfg: SecAggConfig, xs: dict[int, np.ndarray], drop_masked: tuple[int, ...] = ()):
    """Run stages 1-4 honestly; return (clients, server, unmask request)."""
    clients = {c: ClientSession(cfg, c) for c in cfg.client_ids}
    server = ServerSession(cfg)
    for c in clients.values():
        server.receive(wire(c.advertise_keys()))
    b = server.broadcast_keys()
    for cid, c in clients.items():
        server.receive(wire(c.share_keys(wire(b[cid]))))
    routed = server.route_shares()
    for cid, c in clients.items():
        if cid not in drop_masked:
            server.receive(wire(c.masked_input(wire(routed[cid]), xs[cid])))
    lists = server.request_consistency()
    alive = {cid: c for cid, c in clients.items() if cid not in drop_masked}
    for cid, c in alive.items():
        server.receive(wire(c.consistency(wire(lists[cid]))))
    return alive, server, server.request_unmask()
