"""What the per-round checkpoint costs (run by hand; prints a Markdown table).

    .venv/bin/python benchmarks/checkpoint_cost.py               # private_round.py's workload, 10 rounds
    .venv/bin/python benchmarks/checkpoint_cost.py --rounds 30 --rows 0 3

Each row runs the same job as `benchmarks/private_round.py` (digits, CNN, 100 IID clients, 20 a round,
E = 5, B = 10) into a run folder, so a checkpoint (fl_core.checkpoint.save: state, npz, two fsyncs and
renames) is written after every round. The checkpoint's wall time is measured around each save and
compared with the round's own wall time (`wall_s`, measured by the server) in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from fl_core import checkpoint
from fl_core.config import build_config
from fl_core.experiment import run_experiment

BASE = [
    "data.dataset=digits",
    "model.name=cnn",
    "data.num_clients=100",
    "data.partition=iid",
    "sampling.clients_per_round=20",
    "train.local_epochs=5",
    "train.batch_size=10",
    "centralized.enabled=false",
    "run.seed=0",
]
ROWS = [
    ("plaintext FedAvg", []),
    ("+ secagg", ["secagg.enabled=true"]),
    ("+ secagg + distributed DP (z=1, C=1)", ["secagg.enabled=true", "dp.mode=distributed",
                                              "dp.noise_multiplier=1.0", "dp.seed=0"]),
    ("FedAdam + central DP, Poisson q=0.2", ["strategy.name=fedadam", "dp.mode=central",
                                             "dp.noise_multiplier=1.0", "sampling.mode=poisson",
                                             "sampling.rate=0.2", "dp.seed=0"]),
]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--rows", type=int, nargs="*", default=list(range(len(ROWS))))
    args = ap.parse_args()
    spent: list[float] = []
    sizes: list[int] = []
    real_save = checkpoint.save

    def timed_save(folder: Path, *a, **k) -> None:  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        real_save(folder, *a, **k)
        spent.append(time.perf_counter() - t0)
        files = [folder / checkpoint.STATE_FILE, *folder.glob(checkpoint.ARRAYS_PATTERN)]
        sizes.append(sum(f.stat().st_size for f in files))

    checkpoint.save = timed_save  # type: ignore[assignment]
    print(f"checkpoint cost per round, {args.rounds} rounds per row (wall time, median over rounds)\n")
    print("| row | round wall s | checkpoint wall ms | checkpoint / round | checkpoint bytes |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for i in args.rows:
            name, extra = ROWS[i]
            spent.clear()
            sizes.clear()
            cfg = build_config(overrides=[*BASE, *extra, f"run.rounds={args.rounds}"])
            out = Path(tmp) / f"row{i}"
            res = run_experiment(cfg, out=out)
            walls = [r.wall_s for r in res.history]
            ratios = [s / w for s, w in zip(spent, walls, strict=False)]
            print(
                f"| {name} | {statistics.median(walls):.3f} | {1e3 * statistics.median(spent):.2f} | "
                f"{100 * statistics.median(ratios):.2f}% | {sizes[-1] / 1e3:.0f} kB (last round) |",
                flush=True,
            )


if __name__ == "__main__":
    main()
