"""examples/flower_app on an in-process grid: 10 nodes, 3 rounds, secagg on, gives the model privagg's own
simulation gives (same data split, model, local training), within secagg's quantization error."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import tomllib

pytest.importorskip("flwr")

from flwr.app import ArrayRecord, Context, RecordDict  # noqa: E402
from flwr.serverapp.strategy import FedAvg  # noqa: E402

from fl_core.flower import PrivAggStrategy  # noqa: E402
from fl_core.flower.arrays import flatten  # noqa: E402
from fl_core.flower.local import LocalGrid  # noqa: E402

APP = Path(__file__).parents[3] / "examples" / "flower_app"


def flat(d: dict, prefix: str = "") -> dict:
    out: dict = {}
    for k, v in d.items():
        out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


@pytest.fixture(scope="module")
def app_modules():
    sys.path.insert(0, str(APP))
    try:
        from privagg_flower import client_app, task

        yield client_app, task
    finally:
        sys.path.remove(str(APP))


def test_the_example_app_gives_privaggs_own_model(app_modules) -> None:
    client_app, task = app_modules
    logging.getLogger("flwr").setLevel(logging.ERROR)
    rc = flat(tomllib.loads((APP / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"])
    rc.update({"dp.mode": "none", "num-server-rounds": 3})
    cfg = task.app_config(rc)
    grid = LocalGrid(client_app.app, 10, rc)
    strategy = PrivAggStrategy(FedAvg(fraction_train=1.0, fraction_evaluate=0.0), rc)
    result = strategy.start(grid=grid, initial_arrays=task.initial_arrays(cfg), num_rounds=3)
    assert not grid.errors and all(r.survivors == 10 for r in strategy.history)
    flower_w = flatten(result.arrays)

    from fl_core.experiment import _prepare

    sim = cfg.model_copy(update={"run": cfg.run.model_copy(update={"rounds": 3})})
    prepared = _prepare(sim, None, None)
    prepared.server.run(3)
    own_w = prepared.server.weights
    assert flower_w.shape == own_w.shape
    moved = np.abs(own_w - flatten(task.initial_arrays(cfg))).max()
    assert moved > 1e-2  # the models trained
    np.testing.assert_allclose(flower_w, own_w, atol=1e-4)
    acc = task.evaluate(cfg, flower_w)["accuracy"]
    assert acc == pytest.approx(prepared.evaluate_global(own_w)["accuracy"], abs=0.01)


def test_the_app_runs_with_distributed_dp_and_reports_epsilon(app_modules) -> None:
    client_app, task = app_modules
    logging.getLogger("flwr").setLevel(logging.ERROR)
    rc = flat(tomllib.loads((APP / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"])
    rc["num-server-rounds"] = 1
    from privagg_flower.server_app import main

    grid = LocalGrid(client_app.app, 10, rc)
    main(grid, Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=rc))
    assert not grid.errors
    assert isinstance(task.initial_arrays(task.app_config(rc)), ArrayRecord)


def test_the_app_runs_privaggs_dp_sgd_on_each_node(app_modules) -> None:
    """dp.mode = "local": each node's training is privagg's DP-SGD and its ledger, in its context.state,
    holds exactly the DP-SGD event of its one round."""
    from dp.accountant import PrivacyAccountant
    from fl_core.flower import node_epsilon

    client_app, task = app_modules
    logging.getLogger("flwr").setLevel(logging.ERROR)
    rc = flat(tomllib.loads((APP / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"])
    rc.update({"dp.mode": "local", "dp.noise_multiplier": 1.0, "num-server-rounds": 1, "data.num_clients": 4})
    cfg = task.app_config(rc)
    grid = LocalGrid(client_app.app, 4, rc)
    strategy = PrivAggStrategy(FedAvg(fraction_train=1.0, fraction_evaluate=0.0), rc)
    strategy.start(grid=grid, initial_arrays=task.initial_arrays(cfg), num_rounds=1)
    assert not grid.errors and strategy.history[0].survivors == 4
    for nid in grid.node_ids:
        c = task.client(cfg, nid - 1)
        from fl_core.types import RoundConfig

        t = cfg.train
        rcfg = RoundConfig(round=1, local_epochs=t.local_epochs, batch_size=t.batch_size, lr=t.lr, seed=0)
        want = PrivacyAccountant(delta=cfg.dp.delta)
        want.commit(c.dp_sgd.event(c.num_examples, rcfg))
        ctx = Context(run_id=1, node_id=nid, node_config={}, state=grid._state[nid], run_config=rc)
        assert node_epsilon(ctx) == pytest.approx(want.epsilon(), rel=1e-9) and node_epsilon(ctx) > 0
