"""Cost of privacy per round (run by hand; prints a Markdown table).

    .venv/bin/python benchmarks/private_round.py                 # digits CNN, 100 clients, 20 a round
    .venv/bin/python benchmarks/private_round.py --rounds 10     # quicker
    .venv/bin/python benchmarks/private_round.py --only 0 3 --repeats 3 --local-epochs 1 --batch-size 8

Every row is the same federated job (same data split, model, initial weights, seed) with one more
privacy layer; times and bytes are compared with the plaintext FedAvg row measured in the same run.
The default local work is FedAvg's CNN setting (E = 5 local epochs, batch B = 10; McMahan et al. 2017,
Sec. 3). Wall time is this process's time per round (all clients simulated in turn on one core): every
client's training, encoding and masking, the server's unmasking, and the accounting. The rows run round
by round in turn (row 0's round 1, row 1's round 1, ...), so that drift in the machine's speed hits
every row alike; `--repeats R` does it R times and pools the rounds. A ratio is the median over
paired rounds (same repeat and round index) of the row's time over plaintext's. "secagg CPU" is the
protocol's own work per round (all clients' encoding, key agreement, sharing and masking, plus the
server's), timed inside the round. The simulated round time is what a round takes when the devices
work in parallel on this machine's speed with no network: the slowest client's measured compute
(training plus its secagg work) and transfers, plus the server's secagg work.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading

from fl_core.config import build_config
from fl_core.experiment import run_experiment

ROWS = [
    ("plaintext FedAvg", []),
    ("plaintext, 16-bit uploads", ["train.upload_bits=16"]),
    ("plaintext, 8-bit uploads", ["train.upload_bits=8"]),
    ("+ secagg", ["secagg.enabled=true"]),
    (
        "+ secagg + distributed DP (z=1, C=1), fixed cohort",
        ["secagg.enabled=true", "dp.mode=distributed", "dp.noise_multiplier=1.0", "dp.clip_norm=1.0"],
    ),
    (
        "+ secagg + distributed DP (z=1, C=1), Poisson q=0.2",
        [
            "secagg.enabled=true",
            "dp.mode=distributed",
            "dp.noise_multiplier=1.0",
            "dp.clip_norm=1.0",
            "sampling.mode=poisson",
            "sampling.rate=0.2",
        ],
    ),
    (
        "+ secagg + central DP, adaptive clip, Poisson q=0.2",
        [
            "secagg.enabled=true",
            "dp.mode=central",
            "dp.noise_multiplier=1.0",
            "dp.adaptive_clipping=true",
            "sampling.mode=poisson",
            "sampling.rate=0.2",
        ],
    ),
    ("+ local DP-SGD (z=1, C=1)", ["dp.mode=local", "dp.noise_multiplier=1.0", "dp.clip_norm=1.0"]),
    (
        "+ secagg + local DP-SGD",
        ["secagg.enabled=true", "dp.mode=local", "dp.noise_multiplier=1.0", "dp.clip_norm=1.0"],
    ),
]


def run_interleaved(configs: list) -> list:
    """Run the experiments round by round in turn (row 0 round 1, row 1 round 1, ..., row 0 round 2, ...).

    Each experiment runs in its own thread, but a token passed in `on_round` lets exactly one run at a
    time, so every row's round r is timed next to the others' round r and drift in the machine's speed
    (other tenants, frequency scaling) hits all rows alike instead of whichever row ran during it.
    """
    n = len(configs)
    if n == 0:
        return []
    turn = [threading.Semaphore(0) for _ in range(n)]
    done = [False] * n
    results: list = [None] * n
    errors: list[BaseException | None] = [None] * n

    def pass_turn(j: int) -> None:
        for k in (*range(j + 1, n), *range(j + 1)):
            if not done[k]:
                turn[k].release()
                return

    def worker(j: int) -> None:
        turn[j].acquire()

        def on_round(_record: object) -> None:
            pass_turn(j)
            turn[j].acquire()

        try:
            results[j] = run_experiment(configs[j], on_round=on_round)
        except BaseException as exc:  # reported after the others finish
            errors[j] = exc
        finally:
            done[j] = True
            pass_turn(j)

    threads = [threading.Thread(target=worker, args=(j,), daemon=True) for j in range(n)]
    for t in threads:
        t.start()
    turn[0].release()
    for t in threads:
        t.join()
    for exc in errors:
        if exc is not None:
            raise exc
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--per-round", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip", nargs="*", default=[], help="row numbers (0-based) to skip")
    ap.add_argument("--only", nargs="*", default=[], help="row numbers (0-based) to run (default: all)")
    ap.add_argument("--local-epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=1, help="interleaved repetitions of the rows")
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    base = [
        f"run.rounds={args.rounds}",
        f"data.num_clients={args.clients}",
        f"sampling.clients_per_round={args.per_round}",
        "data.partition=iid",
        "centralized.enabled=false",
        f"run.seed={args.seed}",
        f"train.local_epochs={args.local_epochs}",
        f"train.batch_size={args.batch_size}",
        "data.min_size=4",
        "dp.seed=0",  # reproducible DP noise for the table (a seeded run is not for production)
    ]
    rows = [
        (i, label, extra)
        for i, (label, extra) in enumerate(ROWS)
        if str(i) not in args.skip and (not args.only or str(i) in args.only)
    ]
    if not rows:
        ap.error(f"no rows selected; rows are 0..{len(ROWS) - 1}")
    print(
        f"digits, cnn, {args.clients} clients (IID), {args.per_round} a round, {args.rounds} rounds, "
        f"{args.local_epochs} local epoch(s), batch {args.batch_size}, {args.repeats} repeat(s)\n",
        flush=True,
    )
    # warm-up (imports, torch kernels, caches), discarded: the first row measured must not pay for it
    run_experiment(build_config(overrides=[*base, "run.rounds=2", "secagg.enabled=true"]))
    history: dict[int, list] = {i: [] for i, _, _ in rows}
    results = {}
    for rep in range(args.repeats):
        print(
            f"  repeat {rep + 1}/{args.repeats}: {len(rows)} rows, interleaved ...",
            file=sys.stderr,
            flush=True,
        )
        runs = run_interleaved([build_config(overrides=[*base, *extra]) for _, _, extra in rows])
        for (i, _, _), res in zip(rows, runs, strict=True):
            history[i].extend(res.history)
            results.setdefault(i, res)  # seeded: every repeat trains the same model
    print(
        "| pipeline | wall s / round (median) | x plaintext | secagg CPU ms / round | simulated round s "
        "| x plaintext | kB up / client / round | x plaintext | kB down / client / round | final accuracy "
        "| epsilon |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")

    def ratio(hist: list, ref: list | None, key: str) -> float:
        """Median over paired rounds (same repeat, same round) of this row's time / the reference's:
        robust to drift between rounds; a ratio of medians when the rows ran different rounds."""
        if ref is None:
            return 1.0
        if len(hist) == len(ref):
            return statistics.median(
                getattr(a, key) / getattr(b, key) for a, b in zip(hist, ref, strict=True)
            )
        return statistics.median(getattr(r, key) for r in hist) / statistics.median(
            getattr(r, key) for r in ref
        )

    ref_hist = ref_up = None
    for i, label, _ in rows:
        hist, res = history[i], results[i]
        wall = statistics.median(r.wall_s for r in hist)
        sim = statistics.median(r.sim_round_s for r in hist)
        wall_x, sim_x = ratio(hist, ref_hist, "wall_s"), ratio(hist, ref_hist, "sim_round_s")
        sa = [
            r.extra["secagg_client_cpu_s"] + r.extra["secagg_server_cpu_s"]
            for r in hist
            if "secagg_client_cpu_s" in r.extra
        ]
        sa_ms = f"{1e3 * statistics.median(sa):.1f}" if sa else "-"
        clients = sum(r.completed for r in hist) or 1
        up = sum(r.bytes_up for r in hist) / clients / 1e3
        down = sum(r.bytes_down for r in hist) / max(sum(r.sampled for r in hist), 1) / 1e3
        if ref_hist is None:
            ref_hist, ref_up = hist, up
        eps = _epsilon(res.privacy)
        print(
            f"| {label} | {wall:.3f} | {wall_x:.2f} | {sa_ms} | {sim:.4f} | {sim_x:.2f} | "
            f"{up:.1f} | {up / ref_up:.2f} | {down:.1f} | "
            f"{100 * res.final['accuracy']:.1f}% | {eps} |",
            flush=True,
        )


def _epsilon(privacy: dict) -> str:
    """The run's epsilon, against each adversary where privacy.json names more than one (headline first)."""
    eps = privacy.get("epsilon")
    if eps is None:
        return "-"
    by = privacy.get("epsilon_by_adversary") or {}
    if len(by) < 2:
        return f"{eps:.2f}"
    names = {"server_knowing_cohort": "server", "observer_of_model": "observer"}
    head = privacy.get("headline_adversary")
    order = sorted(by, key=lambda who: who != head)
    return "; ".join(f"{by[who]:.2f} ({names.get(who, who)})" for who in order)


if __name__ == "__main__":
    main()
