"""The ServerApp: Flower's FedAvg inside privagg's PrivAggStrategy, configured from the run config."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

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
    timeout = float(context.run_config.get("stage-timeout", 120.0))  # a node silent this long has dropped
    state_file = str(context.run_config.get("state-file", "")) or None  # the budget survives a restart
    strategy = PrivAggStrategy(
        FedAvg(fraction_train=1.0, fraction_evaluate=0.0),
        context.run_config,
        timeout=timeout,
        state_file=state_file,
    )

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        return MetricRecord(task.evaluate(cfg, flatten(arrays)))

    result = strategy.start(
        grid=grid,
        initial_arrays=task.initial_arrays(cfg),
        num_rounds=rounds,
        evaluate_fn=evaluate,
        timeout=timeout,
    )
    for r in strategy.history:
        line = "privagg round %d: %d of %d survived, aborted=%s"
        log.info(line, r.round, r.survivors, r.started, r.aborted)
    final = result.evaluate_metrics_serverapp.get(rounds)
    log.info("privagg: final accuracy %s, epsilon %s", final, strategy.epsilons())
    summary_file = str(context.run_config.get("summary-file", ""))
    if summary_file:  # what the run did, for scripts and tests (written last: its presence means done)
        summary = {
            "rounds": [dataclasses.asdict(r) for r in strategy.history],
            "final": dict(final) if final is not None else None,
            "epsilon": strategy.epsilons(),
        }
        tmp = Path(summary_file).with_suffix(".partial")
        tmp.write_text(json.dumps(summary, indent=1))
        tmp.replace(summary_file)
