"""PrivAggStrategy + privagg_mod on Flower's Message API, in process (LocalGrid: Flower's protobuf encoding
for every message and for each node's context.state between messages, as a fresh process per message)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp.strategy import FedAvg  # noqa: E402

from fl_core.errors import ConfigError  # noqa: E402
from fl_core.flower import PrivAggStrategy, privagg_config, privagg_mod  # noqa: E402
from fl_core.flower.local import LocalGrid  # noqa: E402
from fl_core.flower.protocol import RECORD, STATE_RECORD, Stage  # noqa: E402
from fl_core.flower.strategy import content_bytes  # noqa: E402

N = 6
SHAPES = ((3, 4), (5,))


def step(pid: int) -> float:
    return 0.01 * (pid + 1)


def make_app(seen: list | None = None) -> ClientApp:
    """Each node adds step(pid) to every weight; reports 10 * (pid + 1) examples and a loss of pid."""
    app = ClientApp()

    @app.train(mods=[privagg_mod])
    def train(msg: Message, context: Context) -> Message:
        pid = int(context.node_config["partition-id"])
        arrays = msg.content["arrays"]
        if seen is not None:
            seen.append((pid, sorted(msg.content.keys())))
        out = ArrayRecord(array_dict={k: Array(a.numpy() + step(pid)) for k, a in arrays.items()})
        metrics = MetricRecord({"num-examples": 10 * (pid + 1), "train_loss": float(pid)})
        return Message(RecordDict({"arrays": out, "metrics": metrics}), reply_to=msg)

    return app


def init() -> ArrayRecord:
    return ArrayRecord([np.zeros(s, np.float32) for s in SHAPES])


def run(run_config: dict, *, rounds: int = 1, stop_at: dict | None = None, nodes: int = N):
    grid = LocalGrid(make_app(), nodes, run_config, stop_at=stop_at)
    strategy = PrivAggStrategy(FedAvg(fraction_train=1.0, fraction_evaluate=0.0), run_config)
    result = strategy.start(grid=grid, initial_arrays=init(), num_rounds=rounds)
    return strategy, result, grid


def record_replies(grid: LocalGrid) -> list[Message]:
    """Every reply the server receives through `grid` from now on (appended as they arrive)."""
    replies: list[Message] = []
    send = grid.send_and_receive

    def spy(messages, *, timeout=None):  # type: ignore[no-untyped-def]
        out = list(send(messages, timeout=timeout))
        replies.extend(out)
        return out

    grid.send_and_receive = spy  # type: ignore[method-assign]
    return replies


def weighted_step(pids) -> float:
    w = [10 * (p + 1) for p in pids]
    return sum(wi * step(p) for wi, p in zip(w, pids, strict=True)) / sum(w)


@pytest.fixture(autouse=True)
def quiet() -> None:
    logging.getLogger("flwr").setLevel(logging.ERROR)


def test_secure_sum_equals_the_weighted_fedavg_of_the_plain_updates() -> None:
    strategy, result, grid = run({"secagg.enabled": True}, rounds=2)
    want = 2 * weighted_step(range(N))
    for a in result.arrays.values():
        np.testing.assert_allclose(a.numpy(), want, atol=1e-6)
    assert [r.survivors for r in strategy.history] == [N, N]
    assert all(r.verified for r in strategy.history)
    assert not grid.errors
    # the example-weighted mean loss travelled inside the sum
    assert result.train_metrics_clientapp[1]["train_loss"] == pytest.approx(
        sum(10 * (p + 1) * p for p in range(N)) / sum(10 * (p + 1) for p in range(N)), abs=1e-4
    )


def test_the_server_never_receives_an_array_or_a_plain_metric() -> None:
    """Every reply the strategy gets carries only privagg's record: a secagg message (masked), no arrays."""
    grid = LocalGrid(make_app(), N, {"secagg.enabled": True})
    strategy = PrivAggStrategy(FedAvg(fraction_train=1.0, fraction_evaluate=0.0), {"secagg.enabled": True})
    replies = record_replies(grid)
    strategy.start(grid=grid, initial_arrays=init(), num_rounds=1)
    assert len(replies) == 5 * N
    for r in replies:
        assert not r.content.array_records and not r.content.metric_records
        assert list(r.content.config_records) == [RECORD]


@pytest.mark.parametrize("stage", [s.value for s in Stage])
def test_a_node_that_stops_answering_at_any_stage(stage: str) -> None:
    """One of 6 nodes vanishes at each stage: the round finishes with the others (their exact sum) or, when
    it vanished after its masked input arrived, with it; the next round runs without it."""
    strategy, result, grid = run({"secagg.enabled": True}, rounds=2, stop_at={3: (1, stage)})
    first, second = strategy.history
    assert first.aborted is None and second.aborted is None
    in_sum = N if stage in ("consistency", "unmask") else N - 1
    assert first.survivors == in_sum
    assert second.started == N - 1 and second.survivors == N - 1
    others = [p for p in range(N) if p != 2]
    want = (weighted_step(range(N)) if in_sum == N else weighted_step(others)) + weighted_step(others)
    for a in result.arrays.values():
        np.testing.assert_allclose(a.numpy(), want, atol=1e-6)


def test_too_many_dropouts_abort_the_round_reveal_nothing_and_charge_nothing() -> None:
    rc = {"secagg.enabled": True, "dp.mode": "distributed", "dp.noise_multiplier": 1.0}
    stops = {n: (1, "train") for n in (1, 2, 3, 4)}
    strategy, result, _ = run(rc, rounds=1, stop_at=stops)
    (rec,) = strategy.history
    assert rec.aborted is not None and rec.survivors == 0
    assert strategy.epsilons() == {"observer_of_model": 0.0, "server_knowing_cohort": 0.0}
    for a in result.arrays.values():  # the model did not move
        assert not a.numpy().any()


def test_distributed_dp_charges_both_adversaries_like_privaggs_own_mechanism() -> None:
    from dp.accountant import PrivacyAccountant
    from dp.events import fixed_cohort_round, gaussian

    rc = {"secagg.enabled": True, "dp.mode": "distributed", "dp.noise_multiplier": 2.0, "dp.clip_norm": 0.05}
    strategy, result, _ = run(rc, rounds=2)
    server = PrivacyAccountant(delta=1e-5)
    server.commit(gaussian(1.0), count=2)  # z/2 against the server that knows the cohort, every round
    observer = PrivacyAccountant(delta=1e-5, neighbouring="replace")
    observer.commit(fixed_cohort_round(2.0, N, N), count=2)
    eps = strategy.epsilons()
    assert eps["server_knowing_cohort"] == pytest.approx(server.epsilon(), rel=1e-9)
    assert eps["observer_of_model"] == pytest.approx(observer.epsilon(), rel=1e-9)
    assert strategy.history[-1].epsilon == eps["server_knowing_cohort"]  # the headline: the server
    # the update moved by the noised mean of clipped unit updates: noise sd z C / m per coordinate
    moved = np.concatenate([a.numpy().ravel() for a in result.arrays.values()])
    assert 0.0 < np.std(moved) < 10 * 2.0 * 0.05 / N


def test_max_epsilon_stops_before_the_round_that_would_exceed_it() -> None:
    rc = {
        "secagg.enabled": True, "dp.mode": "distributed", "dp.noise_multiplier": 2.0,
        "dp.max_epsilon": 8.0, "dp.delta": 1e-5,
    }  # fmt: skip
    strategy, _, _ = run(rc, rounds=6)
    eps = [r.epsilon for r in strategy.history if r.aborted is None]
    assert strategy.stopped is not None and "max_epsilon" in strategy.stopped
    assert 0 < len(eps) < 6 and max(eps) <= 8.0


def test_a_node_refuses_a_plain_train_message_when_its_config_asks_for_privagg() -> None:
    app = make_app()
    ctx = Context(run_id=1, node_id=1, node_config={"partition-id": 0}, state=RecordDict(),
                  run_config={"secagg.enabled": True})  # fmt: skip
    msg = Message(RecordDict({"arrays": init(), "config": ConfigRecord({"server-round": 1})}), 1, "train")
    msg.metadata.__dict__["_message_id"] = "m1"
    reply = app(msg, ctx)
    assert reply.has_error() and "refusing to send an unprotected update" in reply.error.reason


def test_a_model_other_than_the_one_the_keys_were_bound_to_is_refused() -> None:
    """A server that sends one node a different model after the key stages gets an error, not an update."""
    grid = LocalGrid(make_app(), N, {"secagg.enabled": True})
    strategy = PrivAggStrategy(FedAvg(fraction_train=1.0, fraction_evaluate=0.0), {"secagg.enabled": True})
    configure = strategy.configure_train

    def tamper(server_round, arrays, config, grid_):
        msgs = list(configure(server_round, arrays, config, grid_))
        other = ArrayRecord([np.full(s, 0.5, np.float32) for s in SHAPES])
        msgs[0].content["arrays"] = other
        return msgs

    strategy.configure_train = tamper  # type: ignore[method-assign]
    strategy.start(grid=grid, initial_arrays=init(), num_rounds=1)
    assert strategy.history[0].survivors == N - 1


def test_secagg_state_lives_in_context_state_not_in_the_process() -> None:
    """Between the key stages and training the node's secagg session is a bytes record in context.state."""
    grid = LocalGrid(make_app(), 3, {"secagg.enabled": True})
    strategy = PrivAggStrategy(FedAvg(fraction_train=1.0, fraction_evaluate=0.0), {"secagg.enabled": True})
    msgs = strategy.configure_train(1, init(), ConfigRecord(), grid)
    assert len(list(msgs)) == 3
    for nid in grid.node_ids:
        rec = grid._state[nid].config_records[STATE_RECORD]
        assert isinstance(rec["state"], bytes) and len(rec["state"]) > 64


def test_bytes_privagg_counts_are_the_bytes_flower_counts() -> None:
    """privagg's per-round bytes are Flower's own count (`count_bytes`) of exactly the records it sent and
    received; the wire (protobuf) adds only framing on top."""
    grid = LocalGrid(make_app(), N, {"secagg.enabled": True})
    strategy = PrivAggStrategy(FedAvg(fraction_train=1.0, fraction_evaluate=0.0), {"secagg.enabled": True})
    down = up = 0
    send = grid.send_and_receive

    def spy(messages, *, timeout=None):
        nonlocal down, up
        messages = list(messages)
        down += sum(content_bytes(m.content) for m in messages)
        out = list(send(messages, timeout=timeout))
        up += sum(content_bytes(r.content) for r in out if r.has_content())
        return out

    grid.send_and_receive = spy  # type: ignore[method-assign]
    strategy.start(grid=grid, initial_arrays=init(), num_rounds=1)
    rec = strategy.history[0]
    assert (rec.bytes_down, rec.bytes_up) == (down, up)
    assert sum(grid.bytes_down.values()) >= down and sum(grid.bytes_up.values()) >= up


def test_central_dp_without_secagg_reclips_on_the_server() -> None:
    """secagg off, dp central: the plain uploads are clipped by the server itself (unit weight, norm C)."""
    rc = {"dp.mode": "central", "dp.noise_multiplier": 1e-6, "dp.clip_norm": 0.01}
    _, result, _ = run(rc, rounds=1)
    moved = np.concatenate([a.numpy().ravel() for a in result.arrays.values()])
    assert np.linalg.norm(moved) <= 0.01 + 1e-4  # every update (norm >= 0.035) was clipped to 0.01


def test_bad_configs_are_refused_with_a_reason() -> None:
    with pytest.raises(ConfigError, match="secagg.enabled"):
        PrivAggStrategy(FedAvg(), {"dp.mode": "distributed"})
    with pytest.raises(ConfigError, match=r"tool.flwr.app.config.*dp"):
        privagg_config({"dp.mode": "sometimes"})
    with pytest.raises(ConfigError, match="Strategy"):
        PrivAggStrategy(object(), {})  # type: ignore[arg-type]
    assert privagg_config({"num-server-rounds": 7, "lr": 0.1, "dp.clip_norm": 2.0}).dp.clip_norm == 2.0
    assert privagg_config({"num-server-rounds": 7}).run.rounds == 7


def make_dp_sgd_app(event) -> ClientApp:  # type: ignore[no-untyped-def]
    """The toy app's train step, reporting `event` as its DP-SGD cost (or no event when None)."""
    from fl_core.flower import dp_sgd_record
    from fl_core.flower.protocol import DP_SGD_RECORD

    app = ClientApp()

    @app.train(mods=[privagg_mod])
    def train(msg: Message, context: Context) -> Message:
        pid = int(context.node_config["partition-id"])
        arrays = msg.content["arrays"]
        out = ArrayRecord(array_dict={k: Array(a.numpy() + step(pid)) for k, a in arrays.items()})
        content = RecordDict({"arrays": out, "metrics": MetricRecord({"num-examples": 10})})
        if event is not None:
            content[DP_SGD_RECORD] = dp_sgd_record(event)
        return Message(content, reply_to=msg)

    return app


def test_local_dp_sgd_is_charged_to_each_nodes_own_ledger_and_capped_there() -> None:
    """dp.mode = "local": each node charges its train function's DP-SGD event to a ledger in its own
    context.state; past dp.max_epsilon it drops its update itself (the round aborts: too few survivors).
    The event never leaves the node."""
    from dp.accountant import PrivacyAccountant
    from dp.events import dp_sgd
    from fl_core.flower import node_epsilon

    event = dp_sgd(1.0, 0.1, 50)
    one = PrivacyAccountant(delta=1e-5)
    one.commit(event)
    two = PrivacyAccountant(delta=1e-5)
    two.commit(event, count=2)
    cap = (one.epsilon() + two.epsilon()) / 2  # round 1 fits, round 2 would not
    rc = {"secagg.enabled": True, "dp.mode": "local", "dp.noise_multiplier": 1.0, "dp.max_epsilon": cap}
    grid = LocalGrid(make_dp_sgd_app(event), N, rc)
    strategy = PrivAggStrategy(FedAvg(fraction_train=1.0, fraction_evaluate=0.0), rc)
    replies = record_replies(grid)
    result = strategy.start(grid=grid, initial_arrays=init(), num_rounds=2)
    first, second = strategy.history
    assert first.survivors == N and second.aborted is not None  # every node refused round 2 itself
    for nid in grid.node_ids:
        ctx = Context(run_id=1, node_id=nid, node_config={}, state=grid._state[nid], run_config=rc)
        assert node_epsilon(ctx) == pytest.approx(one.epsilon(), rel=1e-9)
    assert all(list(r.content.config_records) == [RECORD] for r in replies if r.has_content())
    for a in result.arrays.values():  # round 1's unweighted mean step only
        np.testing.assert_allclose(a.numpy(), np.mean([step(p) for p in range(N)]), atol=1e-6)


def test_local_mode_without_a_dp_sgd_event_is_refused() -> None:
    rc = {"secagg.enabled": True, "dp.mode": "local", "dp.noise_multiplier": 1.0}
    grid = LocalGrid(make_dp_sgd_app(None), 3, rc)
    strategy = PrivAggStrategy(FedAvg(fraction_train=1.0, fraction_evaluate=0.0), rc)
    strategy.start(grid=grid, initial_arrays=init(), num_rounds=1)
    assert strategy.history[0].aborted is not None and strategy.history[0].survivors == 0
    with pytest.raises(ConfigError, match="noise_multiplier"):
        PrivAggStrategy(FedAvg(), {"dp.mode": "local", "dp.target_epsilon": 3.0}).privacy.spec(3, 3)


def test_privagg_draws_the_cohort_and_charges_the_sampling_it_did() -> None:
    """sampling.clients_per_round = 4 of 8: privagg draws each cohort (the inner FedAvg takes what it is
    offered) and charges SampledWithoutReplacement(4 of 8) against observers, Gaussian(z/2) against the
    server; sampling.mode = poisson charges PoissonSampled(q)."""
    from dp.accountant import PrivacyAccountant
    from dp.events import fixed_cohort_round, gaussian, poisson_round

    rc = {"secagg.enabled": True, "dp.mode": "distributed", "dp.noise_multiplier": 2.0,
          "sampling.clients_per_round": 4, "data.num_clients": 8}  # fmt: skip
    strategy, _, _ = run(rc, rounds=3, nodes=8)
    assert [r.started for r in strategy.history] == [4, 4, 4]
    observer = PrivacyAccountant(delta=1e-5, neighbouring="replace")
    observer.commit(fixed_cohort_round(2.0, 4, 8), count=3)
    server = PrivacyAccountant(delta=1e-5)
    server.commit(gaussian(1.0), count=3)
    eps = strategy.epsilons()
    assert eps["observer_of_model"] == pytest.approx(observer.epsilon(), rel=1e-9)
    assert eps["server_knowing_cohort"] == pytest.approx(server.epsilon(), rel=1e-9)

    rc = {"secagg.enabled": True, "dp.mode": "distributed", "dp.noise_multiplier": 2.0,
          "sampling.mode": "poisson", "sampling.rate": 0.5, "data.num_clients": 8}  # fmt: skip
    grid = LocalGrid(make_app(), 8, rc)
    inner = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_available_nodes=2, min_train_nodes=2)
    strategy = PrivAggStrategy(inner, rc)
    strategy.start(grid=grid, initial_arrays=init(), num_rounds=3)
    released = [r for r in strategy.history if r.aborted is None]
    observer = PrivacyAccountant(delta=1e-5)
    observer.commit(poisson_round(2.0, 0.5), count=len(released))
    assert strategy.epsilons()["observer_of_model"] == pytest.approx(observer.epsilon(), rel=1e-9)


def test_a_sampled_cohort_below_the_inner_strategys_minimum_skips_the_round_instead_of_waiting() -> None:
    rc = {"secagg.enabled": True, "sampling.mode": "poisson", "sampling.rate": 0.001, "data.num_clients": 3}
    strategy, result, _ = run(rc, rounds=2, nodes=3)  # two of three sampled: p = 3e-6 a round
    assert all(r.aborted == "cohort too small" for r in strategy.history)
    for a in result.arrays.values():
        assert not a.numpy().any()


def test_an_inner_strategy_that_sends_nodes_different_models_is_refused() -> None:
    class Split(FedAvg):
        def configure_train(self, server_round, arrays, config, grid):  # type: ignore[no-untyped-def]
            msgs = list(super().configure_train(server_round, arrays, config, grid))
            other = ArrayRecord([np.full(s, 0.5, np.float32) for s in SHAPES])
            md = msgs[0].metadata
            msgs[0] = Message(
                RecordDict({"arrays": other, "config": ConfigRecord()}), md.dst_node_id, "train"
            )
            return msgs

    rc = {"secagg.enabled": True}
    strategy = PrivAggStrategy(Split(fraction_train=1.0, fraction_evaluate=0.0), rc)
    with pytest.raises(ConfigError, match="different models"):
        strategy.start(grid=LocalGrid(make_app(), N, rc), initial_arrays=init(), num_rounds=1)


def test_the_mod_imports_without_torch_or_dp_accounting() -> None:
    """A SuperNode may start a fresh ClientApp process for every message: importing the mod (and answering
    the key stages) must not pull in torch or dp_accounting (scipy), which cost seconds per message."""
    import subprocess
    import sys

    code = (
        "import sys; from fl_core.flower import privagg_mod; "
        "print(sorted(m for m in ('torch', 'dp_accounting', 'scipy', 'opacus') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_target_epsilon_calibrates_the_noise_like_privagg_run() -> None:
    """dp.target_epsilon with Poisson sampling: both sides calibrate z from the same config to the same
    value as `privagg run` (dp.calibration), so the run ends at or under the target."""
    from dp.calibration import calibrate_noise
    from fl_core.flower import FlowerPrivacy

    rc = {"dp.mode": "central", "dp.target_epsilon": 4.0, "sampling.mode": "poisson", "sampling.rate": 0.5,
          "num-server-rounds": 3, "data.num_clients": 6}  # fmt: skip
    privacy = FlowerPrivacy.from_run_config(rc)
    assert privacy.spec(3, 6).noise_multiplier == calibrate_noise(4.0, 1e-5, 0.5, 3)
    rc_d = {**rc, "dp.mode": "distributed", "secagg.enabled": True}
    assert FlowerPrivacy.from_run_config(rc_d).spec(3, 6).noise_multiplier == 2.0 * calibrate_noise(
        4.0, 1e-5, 1.0, 3
    )
    with pytest.raises(ConfigError, match="poisson"):
        FlowerPrivacy.from_run_config({"dp.mode": "central", "dp.target_epsilon": 4.0})


def test_a_restarted_server_keeps_spending_the_same_budget(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """state_file: the accountants survive a ServerApp restart, so 2 + 2 rounds cost what 4 rounds cost and
    the cap still holds across the restart; a state of another setup is refused."""
    from dp.accountant import PrivacyAccountant
    from dp.events import gaussian

    rc = {"secagg.enabled": True, "dp.mode": "distributed", "dp.noise_multiplier": 2.0}
    path = tmp_path / "privacy.json"
    for _ in range(2):
        strategy = PrivAggStrategy(FedAvg(fraction_train=1.0, fraction_evaluate=0.0), rc, state_file=path)
        strategy.start(grid=LocalGrid(make_app(), N, rc), initial_arrays=init(), num_rounds=2)
    four = PrivacyAccountant(delta=1e-5)
    four.commit(gaussian(1.0), count=4)
    assert strategy.epsilons()["server_knowing_cohort"] == pytest.approx(four.epsilon(), rel=1e-9)

    capped = {**rc, "dp.max_epsilon": 8.0}
    cap_path = tmp_path / "capped.json"
    charged = 0
    for _ in range(3):  # three restarts of 2 rounds each: the cap stops the run at the same round
        strategy = PrivAggStrategy(
            FedAvg(fraction_train=1.0, fraction_evaluate=0.0), capped, state_file=cap_path
        )
        strategy.start(grid=LocalGrid(make_app(), N, capped), initial_arrays=init(), num_rounds=2)
        charged += sum(1 for r in strategy.history if r.aborted is None)
    assert strategy.epsilons()["server_knowing_cohort"] <= 8.0 and charged == 2

    other = {"secagg.enabled": True, "dp.mode": "central", "dp.noise_multiplier": 2.0}
    strategy = PrivAggStrategy(FedAvg(fraction_train=1.0, fraction_evaluate=0.0), other, state_file=path)
    with pytest.raises(ConfigError, match="another privagg setup"):
        strategy.start(grid=LocalGrid(make_app(), N, other), initial_arrays=init(), num_rounds=1)


def test_a_garbage_masked_input_aborts_the_round_instead_of_moving_the_model() -> None:
    """A node whose masked vector is replaced by random words: the decoded sum is out of the range the
    survivors' encodings can reach (secagg.check_sum), so the round aborts and the model stays."""
    import dataclasses
    import secrets

    import secagg

    rc = {"secagg.enabled": True}
    grid = LocalGrid(make_app(), N, rc)
    send = grid.send_and_receive

    def corrupt(messages, *, timeout=None):  # type: ignore[no-untyped-def]
        out = list(send(messages, timeout=timeout))
        for r in out:
            rec = r.content.config_records.get(RECORD) if r.has_content() else None
            msg = secagg.messages.decode(rec["payload"]) if rec is not None and "payload" in rec else None
            if isinstance(msg, secagg.messages.MaskedInput) and msg.sender == 0:
                noise = np.frombuffer(secrets.token_bytes(4 * msg.masked.size), dtype="<u4")
                rec["payload"] = dataclasses.replace(msg, masked=noise.copy()).to_bytes()
        return out

    grid.send_and_receive = corrupt  # type: ignore[method-assign]
    strategy = PrivAggStrategy(FedAvg(fraction_train=1.0, fraction_evaluate=0.0), rc)
    result = strategy.start(grid=grid, initial_arrays=init(), num_rounds=1)
    assert strategy.history[0].aborted is not None and "SumOutOfRange" in strategy.history[0].aborted
    for a in result.arrays.values():
        assert not a.numpy().any()
