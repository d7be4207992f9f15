"""FL vs the centralized baseline under label skew (run by hand; prints a Markdown table).

    .venv/bin/python benchmarks/fl_vs_centralized.py            # full table (a few minutes, one core)
    .venv/bin/python benchmarks/fl_vs_centralized.py --quick    # digits only, 10 clients

For each dataset the centralized baseline is trained once (same model, initial weights, optimizer,
batch size and number of passes as FL with full participation) and every FL row is compared to it.
"""

from __future__ import annotations

import argparse
import time

from fl_core.config import build_config
from fl_core.errors import PartitionError
from fl_core.experiment import run_experiment

SETUPS = {"digits": "cnn", "breast_cancer": "mlp"}
PARTITIONS = [
    ("IID", ["data.partition=iid"]),
    ("Dirichlet 1.0", ["data.partition=dirichlet", "data.alpha=1.0"]),
    ("Dirichlet 0.1", ["data.partition=dirichlet", "data.alpha=0.1"]),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--local-epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=0.05, help="client and centralized SGD learning rate")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clients", type=int, nargs="+", default=[10, 50])
    ap.add_argument("--datasets", nargs="+", default=list(SETUPS))
    ap.add_argument("--quick", action="store_true", help="digits, 10 clients only")
    args = ap.parse_args()
    if args.quick:
        args.datasets, args.clients = ["digits"], [10]
    print(
        f"rounds={args.rounds} local_epochs={args.local_epochs} lr={args.lr} seed={args.seed}, "
        "all clients every round\n"
    )
    print(
        "| dataset | model | clients | partition | FL acc | centralized acc | gap (pts) "
        "| rounds to 95% of central "
        "| MB transferred | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for dataset in args.datasets:
        model = SETUPS[dataset]
        base = [
            f"data.dataset={dataset}",
            f"model.name={model}",
            f"run.rounds={args.rounds}",
            f"train.local_epochs={args.local_epochs}",
            f"train.lr={args.lr}",
            f"run.seed={args.seed}",
        ]
        central: float | None = None
        for n in args.clients:
            for label, part in PARTITIONS:
                over = [
                    *base,
                    f"data.num_clients={n}",
                    *part,
                    f"centralized.enabled={central is None}".lower(),
                ]
                t0 = time.perf_counter()
                try:
                    res = run_experiment(build_config(overrides=over))
                except PartitionError as exc:
                    print(f"| {dataset} | {model} | {n} | {label} | partition infeasible: {exc} |||||")
                    continue
                wall = time.perf_counter() - t0
                if central is None:
                    central = res.centralized[-1]["accuracy"]
                acc = res.final["accuracy"]
                reach = next((r.round for r in res.history if r.test["accuracy"] >= 0.95 * central), None)
                mb = sum(r.bytes_up + r.bytes_down for r in res.history) / 1e6
                print(
                    f"| {dataset} | {model} | {n} | {label} | {100 * acc:.1f} | {100 * central:.1f} | "
                    f"{100 * (central - acc):+.1f} | {reach if reach is not None else 'never'} | {mb:.1f} | "
                    f"{wall:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
