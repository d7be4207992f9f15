"""Audit benchmark (run by hand): the time of each audit on a 100-client digits run, and the README table
of accountant epsilon beside empirical leakage for digits without DP and at epsilon 8, 3, 1 (client-level
DP-FedAvg and sample-level DP-SGD).

    .venv/bin/python benchmarks/audit_bench.py --parts timing --shadows 16      # each audit, timed
    .venv/bin/python benchmarks/audit_bench.py --parts table --shadows 8        # the README table
    .venv/bin/python benchmarks/audit_bench.py --parts table --rounds 10 --model mlp --shadows 4  # quick
    ... --shadow-training federated       # each shadow repeats the federated run (slower)

Runs and their audit.json/audit.md stay under --out (default runs/audit_bench). One torch thread.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from audits import audit_run  # noqa: E402
from fl_core import build_config, run_experiment  # noqa: E402

TABLE_SETTINGS: list[tuple[str, list[str]]] = [
    ("no DP", ["dp.mode=none"]),
    *[
        (
            f"client-level eps {e}",
            ["dp.mode=central", f"dp.target_epsilon={e}", "sampling.mode=poisson", "sampling.rate=0.5"],
        )  # fmt: skip
        for e in (8, 3, 1)
    ],
    *[(f"sample-level eps {e}", ["dp.mode=local", f"dp.target_epsilon={e}"]) for e in (8, 3, 1)],
]


def make_run(out: Path, overrides: list[str]) -> Path:
    if out.exists():
        shutil.rmtree(out)
    run_experiment(build_config(overrides=overrides), out=out)
    return out


def timing(args: argparse.Namespace) -> None:
    base = [f"run.rounds={args.rounds}", "data.num_clients=100", f"model.name={args.model}",
            "centralized.enabled=false", "audit.canary_clients=100"]  # fmt: skip
    t0 = time.perf_counter()
    run = make_run(args.out / "timing-100-clients", base)
    made = time.perf_counter() - t0
    rows = [("make the run (training)", made)]
    for audit in ("loss", "lira", "rmia", "canary", "inversion", "secagg"):
        t = time.perf_counter()
        audit_run(run, attacks=[audit], shadows=args.shadows, seed=0, shadow_training=args.shadow_training)
        rows.append((f"{audit}" + (f" ({args.shadows} shadows)" if audit in ("lira", "rmia") else ""),
                     time.perf_counter() - t))  # fmt: skip
    print(f"\ndigits, 100 clients, {args.model}, {args.rounds} rounds; one torch thread\n")
    print("| audit | seconds |\n|---|---:|")
    for name, s in rows:
        print(f"| {name} | {s:.1f} |")


def _best(report: dict[str, Any]) -> dict[str, Any]:
    glob = report.get("membership", {}).get("global", {}).get("attacks", {})
    auc = max((a["metrics"]["auc"] for a in glob.values()), default=float("nan"))
    tpr = max((a["metrics"]["tpr_at_1%_fpr"] for a in glob.values()), default=float("nan"))
    bounds = [
        e["epsilon"] for e in report["empirical"] if "lower bound" in e["kind"] and e["epsilon"] is not None
    ]
    rigorous = [e["epsilon"] for e in report["empirical"] if e.get("rigorous")]
    return {"auc": auc, "tpr1": tpr, "lb": max(bounds, default=0.0), "rigorous": max(rigorous, default=None)}


def table(args: argparse.Namespace) -> None:
    base = [f"run.rounds={args.rounds}", f"model.name={args.model}", "centralized.enabled=false"]
    rows = []
    for name, extra in TABLE_SETTINGS:
        canary = ["audit.canary_clients=50"] if "client-level" in name or name == "no DP" else []
        run = make_run(args.out / name.replace(" ", "-"), base + extra + canary)
        report = audit_run(run, shadows=args.shadows, seed=0, shadow_training=args.shadow_training)
        summary = json.loads((run / "summary.json").read_text())
        rows.append((name, report["proven"]["epsilon"], _best(report), summary["fl"].get("accuracy")))
        print(f"done: {name}", flush=True)
    print(f"\ndigits, 20 clients, {args.model}, {args.rounds} rounds, {args.shadows} shadows; delta 1e-5\n")
    print("| setting | accuracy | accountant epsilon | best empirical lower bound (canary one-run) "
          "| membership AUC | TPR at 1% FPR |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    for name, eps, b, acc in rows:
        eps_s = "none (no DP)" if eps is None else f"{eps:.2f}"
        rig = "" if b["rigorous"] is None else f" ({b['rigorous']:.2f})"
        print(f"| {name} | {acc:.3f} | {eps_s} | {b['lb']:.2f}{rig} | {b['auc']:.3f} | {b['tpr1']:.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="timing,table")
    ap.add_argument("--shadows", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--out", type=Path, default=Path("runs/audit_bench"))
    ap.add_argument("--shadow-training", default="centralized", choices=("centralized", "federated"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    parts = args.parts.split(",")
    if "timing" in parts:
        timing(args)
    if "table" in parts:
        table(args)


if __name__ == "__main__":
    main()
