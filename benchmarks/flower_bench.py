"""Flower: the same app (the example's digits CNN) as (a) plain FedAvg, (b) Flower's own SecAgg+ (legacy
workflow, `secaggplus_mod`) and (c) privagg's plug-in (`PrivAggStrategy` + `privagg_mod`, SecAgg+ on).

    python benchmarks/flower_bench.py --nodes 10 --rounds 2 --repeats 2

In process: every contender on `fl_core.flower.local.LocalGrid`, whose byte counts are Flower's protobuf
encoding of each message and reply (what the Deployment Engine sends), per node per round, and the CPU
time of the whole round in one process (every node's training, encoding, masking and the server).
Wall time: every contender on Flower's Deployment Engine on this machine's loopback
(`fl_core.flower.deploy.LocalDeployment`: one SuperLink, N SuperNodes), one `flwr run` each, the
contenders alternated on the same deployment; per-round wall = the ServerApp's wall time / rounds.
`--scale 10,20,40` runs privagg alone at each size and reports the largest that finished.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "benchmarks" / "flower_app"
EXAMPLE = ROOT / "examples" / "flower_app"
CONTENDERS = ("plain", "secaggplus", "privagg")


def run_config(contender: str, nodes: int, rounds: int) -> dict[str, object]:
    rc: dict[str, object] = {
        "contender": contender, "num-server-rounds": rounds, "stage-timeout": 600.0, "run.seed": 0,
        "data.dataset": "digits", "data.num_clients": nodes, "data.partition": "iid", "model.name": "cnn",
        "train.local_epochs": 1, "train.batch_size": 16, "train.lr": 0.05,
        "secagg.enabled": contender == "privagg",
    }  # fmt: skip
    return rc


def in_process(contender: str, nodes: int) -> tuple[float, float, float]:
    """(bytes down, bytes up) per node and the CPU seconds of one round with every node in this process
    (LocalGrid: Flower's protobuf encoding of every message, local training included)."""
    from flower_bench_app.client_app import app as client_app
    from flower_bench_app.server_app import main
    from flwr.app import Context, RecordDict

    from fl_core.flower.local import LocalGrid

    logging.getLogger("flwr").setLevel(logging.ERROR)  # after flwr's import, which sets its own level
    rc = run_config(contender, nodes, 1)
    grid = LocalGrid(client_app, nodes, rc)
    c0 = time.process_time()
    main(grid, Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=rc))
    cpu = time.process_time() - c0
    if grid.errors:
        raise RuntimeError(f"{contender}: {grid.errors[:2]}")
    return sum(grid.bytes_down.values()) / nodes, sum(grid.bytes_up.values()) / nodes, cpu


def deployed_round_wall(dep, contender: str, nodes: int, rounds: int, timeout: float = 3600) -> float:  # type: ignore[no-untyped-def]
    rc = run_config(contender, nodes, rounds)
    result = dep.dir / f"result-{contender}-{time.monotonic_ns()}.json"
    rc["result-file"] = str(result)
    settings = " ".join(f"{k}={_toml(v)}" for k, v in rc.items())
    dep.run(APP, run_config=settings)
    if not dep.wait_for_file(result, timeout):
        raise RuntimeError(f"{contender} did not finish:\n{dep.log(dep.last_run)[-2000:]}")
    got = json.loads(result.read_text())
    if got["nodes"] != nodes:
        raise RuntimeError(f"{contender} ran with {got['nodes']} of {nodes} nodes")
    return float(got["wall_s"]) / int(got["rounds"])


def _toml(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    return str(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1, help="deployed runs per contender (alternated)")
    ap.add_argument("--scale", default="", help="comma-separated node counts for privagg alone")
    ap.add_argument("--skip-deploy", action="store_true", help="bytes only (in process)")
    ap.add_argument("--scale-only", action="store_true", help="only the --scale search")
    args = ap.parse_args()
    sys.path[:0] = [str(APP), str(EXAMPLE)]
    logging.getLogger("flwr").setLevel(logging.ERROR)
    if args.scale_only:
        return scale(args.scale)

    runs: dict[str, list[tuple[float, float, float]]] = {c: [] for c in CONTENDERS}
    in_process("plain", args.nodes)  # warm-up: imports, data, first torch calls
    for rep in range(args.repeats):
        for c in CONTENDERS if rep % 2 == 0 else tuple(reversed(CONTENDERS)):
            runs[c].append(in_process(c, args.nodes))
    print(f"in process (LocalGrid), {args.nodes} nodes, one round, {args.repeats} run(s) each, alternated:")
    med = {c: tuple(statistics.median(r[i] for r in runs[c]) for i in range(3)) for c in CONTENDERS}
    base_b, base_cpu = med["plain"][0] + med["plain"][1], med["plain"][2]
    head = ("contender", "down B/node", "up B/node", "bytes / plain", "CPU s", "CPU / plain")
    print(f"{head[0]:<12} {head[1]:>12} {head[2]:>10} {head[3]:>14} {head[4]:>8} {head[5]:>12}")
    for c, (d, u, cpu) in med.items():
        print(f"{c:<12} {d:>12.0f} {u:>10.0f} {(d + u) / base_b:>14.2f} {cpu:>8.2f} {cpu / base_cpu:>12.2f}")
    if args.skip_deploy:
        return

    from fl_core.flower.deploy import LocalDeployment

    path = [str(ROOT), str(EXAMPLE)]
    walls: dict[str, list[float]] = {c: [] for c in CONTENDERS}
    t0 = time.perf_counter()
    with LocalDeployment(args.nodes, pythonpath=path) as dep:
        for rep in range(args.repeats):
            order = CONTENDERS if rep % 2 == 0 else tuple(reversed(CONTENDERS))
            for c in order:
                walls[c].append(deployed_round_wall(dep, c, args.nodes, args.rounds))
    print(f"\nDeployment Engine on loopback, {args.nodes} SuperNodes, {args.rounds} rounds, "
          f"{args.repeats} run(s) each, alternated ({time.perf_counter() - t0:.0f} s in all):")  # fmt: skip
    plain = statistics.median(walls["plain"])
    print(f"{'contender':<12} {'wall s / round':>15} {'vs plain':>9}")
    for c in CONTENDERS:
        w = statistics.median(walls[c])
        print(f"{c:<12} {w:>15.2f} {w / plain:>9.2f}")

    if args.scale:
        scale(args.scale)


def scale(sizes: str) -> None:
    """privagg alone on the Deployment Engine at each size, one round; stops at the first that fails."""
    from fl_core.flower.deploy import LocalDeployment

    print("\nprivagg alone, one round on the Deployment Engine at each size (the last that finished fits):")
    for n in (int(x) for x in sizes.split(",")):
        try:
            with LocalDeployment(n, pythonpath=[str(ROOT), str(EXAMPLE)]) as dep:
                w = deployed_round_wall(dep, "privagg", n, 1, timeout=1200)
            print(f"{n:>6} nodes {w:>10.1f} s wall", flush=True)
        except Exception as exc:  # noqa: BLE001 - report where it stopped fitting
            print(f"{n:>6} nodes: did not finish ({type(exc).__name__}: {str(exc)[:200]})", flush=True)
            break


if __name__ == "__main__":
    main()
