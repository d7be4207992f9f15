"""The ServerApp: plain FedAvg, Flower's SecAgg+ workflow, or PrivAggStrategy around FedAvg."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from flwr.app import ArrayRecord, Context
from flwr.common import ndarrays_to_parameters
from flwr.server import LegacyContext, ServerConfig
from flwr.server.strategy import FedAvg as LegacyFedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from fl_core.flower import PrivAggStrategy
from fl_core.flower.arrays import flatten

app = ServerApp()
log = logging.getLogger("flwr.privagg")


@app.main()
def main(grid: Grid, context: Context) -> None:
    from privagg_flower import task

    rc = context.run_config
    cfg = task.app_config(rc)
    rounds = int(rc["num-server-rounds"])
    timeout = float(rc["stage-timeout"])
    init = task.initial_arrays(cfg)
    nodes = len(list(grid.get_node_ids()))
    contender = str(rc["contender"])
    t0 = time.perf_counter()
    if contender == "secaggplus":  # Flower's own SecAgg+, its legacy workflow, every node in every round
        strategy = LegacyFedAvg(
            fraction_fit=1.0,
            fraction_evaluate=0.0,
            min_fit_clients=nodes,
            min_available_clients=nodes,
            initial_parameters=ndarrays_to_parameters(init.to_numpy_ndarrays()),
        )
        ctx = LegacyContext(
            context, config=ServerConfig(num_rounds=rounds, round_timeout=timeout), strategy=strategy
        )
        k = 2 * (nodes - 1).bit_length() + 1  # SecAgg+ style: k ~ 2 log2 n + 1, t = (k + 1) / 2
        if k >= nodes:  # small cohorts: everyone shares with everyone, half reconstruct
            workflow = SecAggPlusWorkflow(num_shares=1.0, reconstruction_threshold=0.5)
        else:
            workflow = SecAggPlusWorkflow(num_shares=k, reconstruction_threshold=(k + 1) // 2)
        DefaultWorkflow(fit_workflow=workflow)(grid, ctx)
    else:
        inner = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_available_nodes=nodes)
        strategy = inner if contender == "plain" else PrivAggStrategy(inner, rc, timeout=timeout)
        result = strategy.start(grid=grid, initial_arrays=init, num_rounds=rounds, timeout=timeout)
        acc = task.evaluate(cfg, flatten(result.arrays if isinstance(result.arrays, ArrayRecord) else init))
        log.info("bench accuracy %.4f", acc["accuracy"])
    wall = time.perf_counter() - t0
    log.info("bench %s: %d nodes, %d rounds, %.3f s wall", contender, nodes, rounds, wall)
    out = str(rc.get("result-file", ""))
    if out:  # the driver waits for this file (Flower's log stream can end before the run does)
        tmp = Path(out).with_suffix(".partial")
        tmp.write_text(json.dumps({"contender": contender, "nodes": nodes, "rounds": rounds, "wall_s": wall}))
        tmp.replace(out)
