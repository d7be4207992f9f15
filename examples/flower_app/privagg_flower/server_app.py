"""The ServerApp: Flower's FedAvg inside privagg's PrivAggStrategy, configured from the run config."""

from __future__ import annotations

import logging

from flwr.app import ArrayRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from fl_core.flower import PrivAggStrategy
from fl_core.flower.arrays import flatten
from privagg_flower import task

app = ServerApp()
log = logging.getLogger("flwr.privagg")


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = task.app_config(context.run_config)
    rounds = int(context.run_config.get("num-server-rounds", cfg.run.rounds))
    strategy = PrivAggStrategy(FedAvg(fraction_train=1.0, fraction_evaluate=0.0), context.run_config)

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        return MetricRecord(task.evaluate(cfg, flatten(arrays)))

    result = strategy.start(
        grid=grid, initial_arrays=task.initial_arrays(cfg), num_rounds=rounds, evaluate_fn=evaluate
    )
    log.info(
        "privagg: final accuracy %s, epsilon %s",
        result.evaluate_metrics_serverapp.get(rounds),
        strategy.epsilons(),
    )
