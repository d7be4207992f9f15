"""Benchmark privagg's SecAgg+ against its cost floor and, optionally, Flower's SecAgg+ on the same inputs.

Run by hand (one process, one core of work at a time):
    .venv/bin/python benchmarks/secagg_bench.py                          # quick default subset
    .venv/bin/python benchmarks/secagg_bench.py --n 100 --d 1000000 --drop 0.1 \
        --flower-python /work/flwr-venv/bin/python                       # plus Flower, same point
    .venv/bin/python benchmarks/secagg_bench.py --primitives --n 20 --d 10300 --drop 0.3
                                                                         # one client's cost, per primitive
CPU seconds are thread CPU time (time.thread_time), never elapsed time; the server's wall seconds are a
separate column (issue 13, "one clock"). Parameters are sized for the dropout that happens (--design-drop
overrides). Columns: per-client CPU s (median survivor, fixed-point encoding included), server CPU s,
bytes up/down per client, upload / (4 d), and ratios to the cost floor (PRG expansions alone, timed in this
run), to the primitives floor (every primitive the server must run, counted and each timed alone: mask
expansions and their adds, X25519 + HKDF per dropped client's surviving neighbour, one checked Shamir
reconstruction per secret) and to Flower's unmodified SecAggPlusWorkflow + secaggplus_mod
(benchmarks/anchors/flower_secaggplus_bench.py).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from secagg import FixedPointEncoding, SecAggConfig, SecAggConfigError, aggregate  # noqa: E402
from secagg.hazmat import aead, kex, shamir  # noqa: E402
from secagg.hazmat.prg import PrgBuffer  # noqa: E402
from secagg.messages import SHARE_PLAINTEXT_BYTES  # noqa: E402

ANCHOR = ROOT / "benchmarks" / "anchors" / "flower_secaggplus_bench.py"


def prg_seconds(d: int, reps: int = 7) -> float:
    """CPU seconds of one PRG expansion of d words (median), the unit of the cost floor."""
    buf, key, times = PrgBuffer(d), bytes(range(16)), []
    for _ in range(reps):
        c0 = time.thread_time()
        buf.expand(key)
        times.append(time.thread_time() - c0)
    return statistics.median(times)


def encode_seconds(d: int, n: int, reps: int = 3) -> float:
    """CPU seconds to clip + scale + stochastically round one float32 vector (median)."""
    enc = FixedPointEncoding.for_clients(n, 1.0)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.05, d).astype(np.float32)
    times = []
    for _ in range(reps):
        c0 = time.thread_time()
        enc.encode(x, rng)
        times.append(time.thread_time() - c0)
    return statistics.median(times)


def add_seconds(d: int, reps: int = 7) -> float:
    """CPU seconds of one in-place uint32 subtract of d words (removing one mask), median."""
    a, b, times = np.zeros(d, dtype=np.uint32), np.ones(d, dtype=np.uint32), []
    for _ in range(reps):
        c0 = time.thread_time()
        np.subtract(a, b, out=a)
        times.append(time.thread_time() - c0)
    return statistics.median(times)


def unit_costs(k: int, t: int, m: int) -> tuple[float, float]:
    """CPU seconds of one X25519 agreement + HKDF (a dropped client's mask seed) and of one checked
    Shamir reconstruction from m shares at threshold t (positions in 1..k, as the server rebuilds)."""
    a, b = kex.KeyPair(), kex.KeyPair()
    pk = kex.load_public(b.public_bytes)
    x25519 = _best_us(lambda: kex.agree(a.private, pk, b"info", 16), 200) / 1e6
    xs = list(range(1, k + 1))[: max(m, t)]
    pts = list(zip(xs, shamir.split(12345, t, xs), strict=True))
    rec = _best_us(lambda: shamir.reconstruct_checked(pts, t, universe=k), 50) / 1e6
    return x25519, rec


def run_privagg(n: int, d: int, drop: float, seed: int, design: float | None = None) -> dict:
    rng = np.random.default_rng(seed)
    design = drop if design is None else design
    cfg = SecAggConfig.create(range(n), d, dropout_rate=design)
    bases = [rng.integers(0, 2**32, d, dtype=np.uint32) for _ in range(4)]
    xs = [bases[i % 4] for i in range(n)]
    n_drop = int(round(drop * n))
    dropped = rng.choice(n, n_drop, replace=False).tolist() if n_drop else []
    r = aggregate(xs, cfg, dropouts={c: "masked_input" for c in dropped}, record_transcript=False)
    expect = np.zeros(d, dtype=np.uint32)
    for c in r.survivors:
        expect += xs[c]
    enc_s = encode_seconds(d, n)
    k = min(cfg.neighbours, n - 1)
    deg = mask_degree(n, k)
    surv = r.survivors
    t_prg = prg_seconds(d)
    return {
        "system": "privagg",
        "n": n,
        "d": d,
        "drop": drop,
        "k": k,
        "t": cfg.threshold,
        "ok": bool(np.array_equal(expect, r.sum)),
        "client_s": statistics.median(r.client_cpu_s[c] for c in surv) + enc_s,
        "server_s": r.server_cpu_s,
        "server_wall_s": r.server_wall_s,
        "verified": r.verified,
        "up": statistics.median(sum(r.bytes_up[c].values()) for c in surv),
        "down": statistics.median(sum(r.bytes_down[c].values()) for c in surv),
        # floor: a client expands its self mask and a pairwise mask per mask-neighbour (its k holders and
        # the clients that drew it: `deg` expected); the server expands each survivor's self mask and, per
        # dropped client, the masks with its surviving mask-neighbours (expected deg (1 - drop))
        "client_floor_s": (deg + 1) * t_prg,
        "server_floor_s": (len(surv) + n_drop * deg * (1 - drop)) * t_prg,
        # every primitive the server must run, counted and timed alone: each expansion, its subtract, one
        # add per masked input, one X25519 + HKDF per (dropped, surviving neighbour) pair, one checked
        # reconstruction per secret (n of them) from the expected k (1 - drop) shares
        "server_primitives_s": _primitives_floor(n, d, drop, k, deg, cfg.threshold, len(surv), n_drop, t_prg),
    }


def mask_degree(n: int, k: int) -> float:
    """Expected mask-neighbours of a client: its k holders plus the clients that drew it and are not among
    them (each of the other n - 1 - k draws it with probability k / (n - 1)); n - 1 at the complete graph."""
    if k >= n - 1:
        return float(n - 1)
    return k + (n - 1 - k) * k / (n - 1)


def _primitives_floor(
    n: int, d: int, drop: float, k: int, deg: float, t: int, m: int, n_drop: int, t_prg: float
) -> float:
    t_add = add_seconds(d)
    pairs = n_drop * deg * (1 - drop)
    x25519, rec = unit_costs(k, t, round(k * (1 - drop)))
    return (m + pairs) * (t_prg + t_add) + m * t_add + pairs * x25519 + (m + n_drop) * rec


def run_flower(python: str, n: int, d: int, drop: float, reps: int, timeout: int) -> dict | None:
    cmd = [python, str(ANCHOR), "--n", str(n), "--d", str(d), "--drop", str(drop), "--reps", str(reps)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True).stdout
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"  flower run failed for n={n} d={d} drop={drop}: {exc}", file=sys.stderr)
        return None
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    if not rows:
        return None
    med = lambda key: statistics.median(r[key] for r in rows)  # noqa: E731
    return {
        "system": "flower",
        "n": n,
        "d": d,
        "drop": drop,
        "k": rows[0]["k"],
        "t": rows[0]["t"],
        "ok": all(r["completed"] for r in rows),
        "client_s": med("client_cpu_median_s"),
        "server_s": med("server_cpu_s"),
        "up": med("bytes_up_per_client"),
        "down": med("bytes_down_per_client"),
    }


def _best_us(fn: Callable[[], object], reps: int) -> float:
    """Best of 5 batches of `reps` calls, in microseconds per call (the primitive's own speed)."""
    best = math.inf
    for _ in range(5):
        c0 = time.thread_time()
        for _ in range(reps):
            fn()
        best = min(best, (time.thread_time() - c0) / reps)
    return 1e6 * best


def primitives(n: int, d: int, drop: float, rounds: int = 15) -> None:
    """One client's secagg work as counts of primitives x their measured unit cost, against a whole round.

    Shows where a client's time goes and how close the protocol runs to the sum of its parts.
    """
    cfg = SecAggConfig.create(range(n), d, dropout_rate=drop)
    k, t = cfg.neighbours, cfg.threshold
    deg = round(mask_degree(n, k))  # mask-neighbours: its k holders and the clients that drew it
    me, peer = kex.KeyPair(), kex.KeyPair()
    peer_pk = kex.load_public(peer.public_bytes)
    info = kex.pair_info(kex.PURPOSE_MASK_SEED, cfg.round_id, b"", 0, 1)
    buf, y, seed, key32 = PrgBuffer(d), np.zeros(d, dtype=np.uint32), bytes(16), bytes(32)
    enc, rng = FixedPointEncoding.for_clients(n, 1.0), np.random.default_rng(0)
    x = rng.normal(0, 0.05, d)
    xs = list(range(1, k + 1))
    parts = [  # (primitive, calls per client per round, unit cost in us)
        (
            "X25519 agreement (share key + mask seed per mask-neighbour)",
            2 * deg,
            _best_us(lambda: me.private.exchange(peer_pk), 300),
        ),
        ("X25519 key generation", 2, _best_us(kex.KeyPair, 300)),
        ("X25519 public key parse", 2 * deg, _best_us(lambda: kex.load_public(peer.public_bytes), 2000)),
        ("HKDF-SHA256", 2 * deg, _best_us(lambda: kex.hkdf_sha256(bytes(32), info, 16), 2000)),
        (
            "AES-GCM seal or open of one share pair",
            deg,
            _best_us(lambda: aead.seal(key32, bytes(SHARE_PLAINTEXT_BYTES), b"ad"), 2000),
        ),
        (f"Shamir split, t = {t} of {k}", 2, _best_us(lambda: shamir.split(12345, t, xs), 200)),
        (f"AES-CTR mask expansion, d = {d}", deg + 1, _best_us(lambda: buf.expand(seed), 300)),
        ("mask add / subtract", deg + 1, _best_us(lambda: np.add(y, buf.words, out=y), 2000)),
        ("fixed-point encoding", 1, _best_us(lambda: enc.encode(x, rng), 100)),
    ]
    clients, servers = [], []
    vecs = [enc.encode(x, rng) for _ in range(n)]
    for _ in range(rounds):
        r = aggregate(vecs, SecAggConfig.create(range(n), d, dropout_rate=drop), record_transcript=False)
        clients.append(statistics.median(r.client_cpu_s.values()))
        servers.append(r.server_cpu_s)
    total = sum(c * us for _, c, us in parts) / 1e3
    print(f"n = {n}, d = {d}, designed for {drop:.0%} dropout: k = {k}, t = {t}\n")
    print("| primitive | calls / client / round | us each | ms / client / round | share |")
    print("|---|---|---|---|---|")
    for name, calls, us in parts:
        ms = calls * us / 1e3
        print(f"| {name} | {calls} | {us:.2f} | {ms:.3f} | {ms / total:.0%} |")
    measured = statistics.median(clients) + parts[-1][2] / 1e6  # aggregate() times all but the encoding
    print(f"| **sum of the parts** | | | **{total:.3f}** | |")
    print(
        f"\nmeasured, median of {rounds} rounds: client {1e3 * measured:.3f} ms "
        f"({measured * 1e3 / total:.2f}x the sum of its parts, messages and checks included), "
        f"server {1e3 * statistics.median(servers):.3f} ms; a round of {n} clients: "
        f"{1e3 * (n * measured + statistics.median(servers)):.1f} ms of CPU"
    )


def fmt_bytes(b: float) -> str:
    return f"{b / 1e6:.2f} MB" if b >= 1e5 else f"{b / 1e3:.1f} kB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--d", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--drop", type=float, nargs="+", default=[0.0, 0.1])
    ap.add_argument("--design-drop", type=float, default=None, help="size k, t for this dropout rate")
    ap.add_argument("--reps", type=int, default=1, help="privagg repetitions per point (median reported)")
    ap.add_argument("--flower-python", default=None, help="interpreter with flwr==1.42.0 installed")
    ap.add_argument("--flower-reps", type=int, default=1)
    ap.add_argument("--flower-timeout", type=int, default=1800)
    ap.add_argument("--json", default=None, help="append every row as JSON to this file")
    ap.add_argument("--primitives", action="store_true", help="one client's cost per primitive (first n, d)")
    args = ap.parse_args()
    if args.primitives:
        primitives(args.n[0], args.d[0], args.drop[0] if args.drop[0] > 0 else 0.1)
        return

    rows = []
    for n in args.n:
        for d in args.d:
            for drop in args.drop:
                try:
                    reps = [run_privagg(n, d, drop, seed, args.design_drop) for seed in range(args.reps)]
                except SecAggConfigError as exc:
                    print(f"skip n={n} drop={drop}: {exc}", file=sys.stderr)
                    continue
                ours = dict(reps[0])
                for key in ("client_s", "server_s", "server_wall_s"):
                    ours[key] = statistics.median(r[key] for r in reps)
                ours["ok"] = all(r["ok"] for r in reps)
                fl = None
                if args.flower_python:
                    fl = run_flower(args.flower_python, n, d, drop, args.flower_reps, args.flower_timeout)
                ours["flower"] = fl
                rows.append(ours)
                print(json.dumps(ours), file=sys.stderr, flush=True)
                if args.json:
                    with open(args.json, "a") as f:
                        f.write(json.dumps(ours) + "\n")

    head = (
        "| n | d | drop | k / t | exact | client CPU s | server CPU s | server wall s | up / client "
        "| up / 4d | down / client "
        "| client / floor | server / floor | server / primitives "
        "| Flower client s | Flower server s | Flower up "
        "| server vs Flower |"
    )
    print(head)
    print("|" + "|".join(["---"] * (head.count("|") - 1)) + "|")
    for r in rows:
        fl = r["flower"]
        fcols = (
            f"{fl['client_s']:.3f} | {fl['server_s']:.2f} | {fmt_bytes(fl['up'])} | "
            f"{fl['server_s'] / r['server_s']:.1f}x faster"
            if fl
            else "- | - | - | -"
        )
        print(
            f"| {r['n']} | {r['d']:.0e} | {r['drop']:.0%} | {r['k']} / {r['t']} "
            f"| {'yes' if r['ok'] else 'NO'} | {r['client_s']:.4f} | {r['server_s']:.3f} "
            f"| {r['server_wall_s']:.3f} "
            f"| {fmt_bytes(r['up'])} | {r['up'] / (4 * r['d']):.3f} "
            f"| {fmt_bytes(r['down'])} | {r['client_s'] / r['client_floor_s']:.1f} "
            f"| {r['server_s'] / r['server_floor_s']:.1f} "
            f"| {r['server_s'] / r['server_primitives_s']:.2f} | {fcols} |"
        )


if __name__ == "__main__":
    main()
