"""The private round: secagg == plaintext within the quantization bound, distributed noise has the
stated variance, the server never holds an individual update, dropouts at every stage end in a correct
round or a clean abort, and the budget stops the run at the right round. The mechanisms and aggregators
are driven directly here, as the server's round drives them."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from dp.accountant import rounds_within
from fl_core.aggregators import SecureAggregator
from fl_core.errors import ConfigError
from fl_core.mechanisms import Contribution, RoundContext, build_mechanism
from fl_core.privacy import PrivacySpec
from fl_core.sampling import ClientSampler
from fl_core.server import FaultModel, FederatedServer, build_aggregator
from fl_core.strategies import FedAvg
from fl_core.types import ClientUpdate, RoundConfig
from secagg import messages

DIM = 64


class TargetClient:
    """Moves the model a fixed fraction towards its own target (numpy only: fast and exact)."""

    def __init__(self, cid: int, target: np.ndarray, n: int) -> None:
        self.client_id, self.num_examples, self.target = cid, n, target.astype(np.float32)

    def fit(self, w: np.ndarray, config: RoundConfig) -> ClientUpdate:
        delta = (0.3 * (self.target - w)).astype(np.float32)
        return ClientUpdate(
            self.client_id, delta, self.num_examples, {"train_loss": float(np.abs(delta).sum())}
        )

    def evaluate(self, w: np.ndarray, config: RoundConfig) -> dict[str, float]:
        return {}


def _clients(m: int, seed: int = 0) -> list[TargetClient]:
    rng = np.random.default_rng(seed)
    return [TargetClient(i, rng.uniform(-1, 1, DIM), int(rng.integers(5, 50))) for i in range(m)]


def _parts(spec: PrivacySpec, dim: int, sampler: ClientSampler, upload_bits: int = 32):
    """The mechanism and aggregator a server would build for `spec`."""
    mech = build_mechanism(spec, dim=dim, sampler=sampler, upload_bits=upload_bits)
    return mech, build_aggregator(spec, upload_bits)


def _ctx(started: int, round_: int = 1) -> RoundContext:
    return RoundContext(round_, started, os.urandom(16))


def _server(clients, spec: PrivacySpec, *, sampler=None, faults=None, seed=0) -> FederatedServer:
    return FederatedServer(
        clients,
        FedAvg(),
        np.zeros(DIM, np.float32),
        base_config=RoundConfig(round=0),
        sampler=sampler or ClientSampler(len(clients), "fixed", len(clients)),
        faults=faults,
        privacy=spec,
        seed=seed,
    )


def test_secagg_equals_plaintext_within_the_quantization_bound() -> None:
    plain = _server(_clients(12), PrivacySpec())
    secure = _server(_clients(12), PrivacySpec(secagg=True))
    plain.run(5)
    secure.run(5)
    errs = [r.extra["secagg_max_abs_error"] for r in secure.history]
    weight_sum = sum(c.num_examples for c in secure.clients) / 1000  # weights travel as n / weight_cap
    # per round: |mean error| <= (e_num + |mean| e_den) / W <= 2 e / W; five contracting rounds add up
    bound = 5 * 2 * max(errs) / weight_sum
    diff = np.max(np.abs(plain.weights - secure.weights))
    assert 0 < max(errs) and diff <= bound
    assert not np.allclose(secure.weights, 0)  # the model really moved
    assert [r.completed for r in secure.history] == [12] * 5
    loss_p = [r.train_loss for r in plain.history]
    loss_s = [r.train_loss for r in secure.history]
    np.testing.assert_allclose(loss_s, loss_p, rtol=1e-4)  # metrics travel inside the sum too


def test_distributed_noise_in_the_decoded_sum_has_the_stated_variance() -> None:
    m, z, c, dim = 10, 1.5, 1.0, 4000
    spec = PrivacySpec(mode="distributed", secagg=True, noise_multiplier=z, clip_norm=c, seed=7)
    mech, agg = _parts(spec, dim, ClientSampler(m, "fixed", m))
    ctx = _ctx(m)
    rng = np.random.default_rng(1)
    raw = [rng.standard_normal(dim).astype(np.float32) * 0.004 for _ in range(m)]  # norm ~0.25 < C
    contributions = {i: mech.client_side(ClientUpdate(i, raw[i], 10), ctx) for i in range(m)}
    tx = agg.aggregate(ctx, contributions, {}, mech, np.zeros(dim, np.float32))
    assert tx.sums is not None and len(tx.sums.survivors) == m
    noise = tx.sums.delta - np.sum(raw, axis=0, dtype=np.float64)
    m_min = mech.min_survivors(ctx)
    stated = (z * c) ** 2 * m / m_min  # every survivor's share is sized for the smallest allowed cohort
    assert stated >= (z * c) ** 2
    assert abs(noise.var() / stated - 1) < 0.1
    assert abs(noise.mean()) < 4 * math.sqrt(stated / dim)


def test_server_never_holds_an_individual_update() -> None:
    m = 8
    spec = PrivacySpec(secagg=True)
    mech, _ = _parts(spec, 2000, ClientSampler(m, "fixed", m))
    agg = SecureAggregator(record_transcript=True)
    ctx = _ctx(m)
    rng = np.random.default_rng(3)
    updates = {i: ClientUpdate(i, rng.uniform(-0.5, 0.5, 2000).astype(np.float32), 20) for i in range(m)}
    contributions = {i: mech.client_side(u, ctx) for i, u in updates.items()}
    tx = agg.aggregate(ctx, contributions, {}, mech, np.zeros(2000, np.float32))
    assert tx.transcript, "the server side must have received messages"
    plain_bytes = [u.delta.tobytes()[:64] for u in updates.values()]
    masked_seen = 0
    for entry in tx.transcript:
        assert not any(p in entry.payload for p in plain_bytes)
        if entry.direction != "up" or entry.stage != "masked_input":
            continue
        msg = messages.decode(entry.payload)
        masked = msg.masked.astype(np.float64)
        masked_seen += 1
        for c in contributions.values():
            packed = agg.pack(c, mech, 1.0)[: len(masked)]
            r = np.corrcoef(masked[: packed.size], packed)[0, 1]
            assert abs(r) < 0.1  # 2000 samples: |r| of independent vectors is ~0.02
    assert masked_seen == m
    np.testing.assert_allclose(
        tx.sums.delta,
        sum(u.num_examples / 1000 * u.delta.astype(np.float64) for u in updates.values()),
        atol=tx.max_abs_error,
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dropouts_at_every_stage_give_correct_rounds_or_clean_aborts(seed: int) -> None:
    clients = _clients(15, seed)
    server = _server(clients, PrivacySpec(secagg=True), faults=FaultModel(dropout_rate=0.35), seed=seed)
    for r in range(1, 9):
        before = server.weights.copy()
        rec = server.run_round(r)
        assert rec is not None
        tx = server.last_transmission
        if rec.extra["secagg_aborted"]:
            assert np.array_equal(server.weights, before)  # nothing applied, nothing revealed
            assert rec.completed == 0
            assert rec.bytes_up > 0  # what the aborted round cost is still counted
            continue
        survivors = tx.sums.survivors
        assert rec.completed == len(survivors) >= 2
        deltas = {
            c.client_id: c.fit(before, RoundConfig(round=r)) for c in clients if c.client_id in survivors
        }
        w = sum(min(u.num_examples, 1000) for u in deltas.values())
        expected = before + sum(u.num_examples * u.delta.astype(np.float64) for u in deltas.values()) / w
        np.testing.assert_allclose(server.weights, expected, atol=50 * tx.max_abs_error)
    assert len(server.history) == 8  # the server survived every abort


@pytest.mark.parametrize(("mode", "z"), [("central", 1.2), ("distributed", 4.0)])
def test_budget_stop_with_secagg_happens_at_the_right_round(mode: str, z: float) -> None:
    # central: the headline is an observer of the model (Poisson amplification); distributed: the server,
    # which draws the cohorts (no amplification: Gaussian z/2 under replace-one for every round)
    from dp.accountant import PrivacyAccountant
    from dp.events import gaussian

    n, q, cap, delta = 40, 0.5, 6.0, 1e-5
    spec = PrivacySpec(mode=mode, secagg=True, noise_multiplier=z, max_epsilon=cap, delta=delta, seed=0)
    server = _server(_clients(n), spec, sampler=ClientSampler(n, "poisson", rate=q))
    history = server.run(100)
    if mode == "central":
        expected = rounds_within(z, q, cap, delta, max_rounds=100)
    else:
        acc, expected = PrivacyAccountant(delta=delta), 0  # z/2 at unit sensitivity (2C over C)
        while acc.projected_epsilon(gaussian(z / 2)) <= cap:
            acc.commit(gaussian(z / 2))
            expected += 1
    assert 0 < expected < 100
    assert len(history) == expected
    assert server.stopped is not None and "max_epsilon" in server.stopped
    eps = [r.extra["epsilon"] for r in history]
    assert eps == sorted(eps) and eps[-1] <= cap
    by = server.mechanism.epsilons()
    # against the server there is no amplification: never less than against an observer
    assert by["server_knowing_cohort"] >= by["observer_of_model"]


def test_central_dp_reveals_no_counts_and_adds_noise() -> None:
    spec = PrivacySpec(mode="central", noise_multiplier=1.0, clip_norm=0.1, seed=3)
    server = _server(_clients(10), spec)
    rec = server.run_round(1)
    assert math.isnan(rec.train_loss)  # no loss is revealed under client-level DP
    assert rec.extra["epsilon"] > 0
    # noise std z C / m = 0.01 per coordinate around a mean delta bounded by C / m = 0.01 in norm
    assert 0.005 < float(np.std(server.weights)) < 0.02


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"mode": "distributed"}, "needs secagg"),
        ({"mode": "local", "adaptive_clipping": True}, "adaptive"),
        ({"max_epsilon": 1.0}, "no budget"),
        ({"mode": "central", "noise_multiplier": 0.0}, "noise_multiplier"),
        ({"mode": "central", "clip_norm": -1.0}, "clip_norm"),
        ({"mode": "central", "clip_norm": float("inf")}, "clip_norm must be finite"),
        ({"secagg": True, "dropout_tolerance": 1.0}, "dropout_tolerance"),
        ({"mode": "laplace"}, "dp.mode"),
    ],
)
def test_senseless_combinations_are_config_errors(kwargs: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        PrivacySpec(**kwargs)


def test_upload_bits_need_plaintext() -> None:
    with pytest.raises(ConfigError, match="upload_bits"):
        build_mechanism(PrivacySpec(secagg=True), dim=4, sampler=ClientSampler(3, "fixed", 3), upload_bits=8)
    with pytest.raises(ConfigError, match="upload_bits"):
        build_mechanism(PrivacySpec(), dim=4, sampler=ClientSampler(3, "fixed", 3), upload_bits=4)


def test_fixed_cohort_round_is_charged_with_half_the_multiplier_once() -> None:
    # A full cohort (m = N) without sampling under replace-one is a Gaussian of multiplier z/2 (sensitivity
    # 2C): the charged epsilon must equal that Gaussian's, not z/4's (double halving) nor z's.
    from dp.accountant import PrivacyAccountant
    from dp.events import gaussian

    z = 2.0
    mech, _ = _parts(PrivacySpec(mode="central", noise_multiplier=z), 4, ClientSampler(10, "fixed", 10))
    charged = PrivacyAccountant(delta=1e-5, neighbouring="replace")
    charged.commit(mech.round_event(_ctx(10)))
    reference = PrivacyAccountant(delta=1e-5, neighbouring="replace")
    reference.commit(gaussian(z / 2.0))
    assert charged.epsilon(method="rdp") == pytest.approx(reference.epsilon(method="rdp"), rel=0.02)


class FixedNormClient:
    """Always sends the same update, of a known norm (so the clip norm has a known target quantile)."""

    def __init__(self, cid: int, norm: float) -> None:
        self.client_id, self.num_examples = cid, 10
        self.delta = np.full(DIM, norm / np.sqrt(DIM), np.float32)

    def fit(self, w: np.ndarray, config: RoundConfig) -> ClientUpdate:
        return ClientUpdate(self.client_id, self.delta, self.num_examples)

    def evaluate(self, w: np.ndarray, config: RoundConfig) -> dict[str, float]:
        return {}


def test_adaptive_clipping_with_distributed_noise_tracks_the_median_norm() -> None:
    norms = np.exp(np.random.default_rng(5).normal(0.0, 0.5, 20))  # median ~1
    clients = [FixedNormClient(i, float(v)) for i, v in enumerate(norms)]
    spec = PrivacySpec(
        mode="distributed",
        secagg=True,
        noise_multiplier=0.5,
        clip_norm=0.05,
        adaptive_clipping=True,
        clip_learning_rate=0.5,
        seed=2,
    )
    server = _server(clients, spec)
    server.run(40)
    final = server.mechanism.clip_norm
    below = float(np.mean(norms <= final))
    assert 0.3 <= below <= 0.7, (final, below)  # the target quantile is 0.5; it started at 0.05


def test_distributed_discrete_gaussian_round_decodes_within_the_stated_error() -> None:
    m, dim = 10, 1000
    spec = PrivacySpec(
        mode="distributed",
        secagg=True,
        mechanism="discrete_gaussian",
        noise_multiplier=1.0,
        clip_norm=1.0,
        ddg_bits=16,
        seed=4,
    )
    mech, agg = _parts(spec, dim, ClientSampler(m, "poisson", rate=1.0))
    ctx = _ctx(m)
    rng = np.random.default_rng(2)
    raw = [rng.standard_normal(dim).astype(np.float32) * 0.01 for _ in range(m)]  # norm ~0.3 < C
    contributions = {i: mech.client_side(ClientUpdate(i, raw[i], 10), ctx) for i in range(m)}
    tx = agg.aggregate(ctx, contributions, {}, mech, np.zeros(dim, np.float32))
    assert tx.sums is not None and len(tx.sums.survivors) == m
    params = mech.params(m)
    err = tx.sums.delta - np.sum(raw, axis=0, dtype=np.float64)
    # stated: rounding + noise std at the minimum cohort; m >= m_min survivors carry a little more noise
    stated = params.error_stddev * np.sqrt(m / params.min_clients)
    assert abs(err.std() / stated - 1) < 0.15
    # the round is charged as the mechanism's own zCDP bound, not as a continuous Gaussian
    assert type(mech.round_event(ctx)).__name__ == "ZCDpEvent"


def test_discrete_gaussian_needs_distributed_mode() -> None:
    with pytest.raises(ConfigError, match="distributed"):
        PrivacySpec(mode="central", mechanism="discrete_gaussian")
    with pytest.raises(ConfigError, match="adaptive"):
        PrivacySpec(mode="distributed", secagg=True, mechanism="discrete_gaussian", adaptive_clipping=True)
    ddg = PrivacySpec(mode="distributed", secagg=True, mechanism="discrete_gaussian")
    with pytest.raises(ConfigError, match="poisson"):  # replace-one would double its sensitivity
        build_mechanism(ddg, dim=4, sampler=ClientSampler(5, "fixed", 5))


def test_central_dp_server_enforces_unit_weight_and_clip_on_plaintext_uploads() -> None:
    spec = PrivacySpec(mode="central", noise_multiplier=1.0, clip_norm=1.0)
    mech, agg = _parts(spec, DIM, ClientSampler(3, "fixed", 3), upload_bits=8)
    big = np.full(DIM, 5.0, np.float32)  # a client that skipped its own clipping and claims 50 examples
    cheat = Contribution(0, big, 50.0)
    tx = agg.aggregate(_ctx(1), {0: cheat}, {}, mech, np.zeros(DIM, np.float32))
    assert tx.sums is not None
    assert np.linalg.norm(tx.sums.delta) <= 1.0 + 1e-6 and tx.sums.weight == 1.0


def test_secagg_reports_coordinates_beyond_its_range() -> None:
    mech, agg = _parts(
        PrivacySpec(secagg=True, clip_range=1.0, weight_cap=10), DIM, ClientSampler(3, "fixed", 3)
    )
    ctx = _ctx(3)
    ups = {i: ClientUpdate(i, np.zeros(DIM, np.float32), 10) for i in range(3)}
    ups[1] = ClientUpdate(1, np.r_[np.full(5, 3.0), np.zeros(DIM - 5)].astype(np.float32), 10)
    tx = agg.aggregate(
        ctx, {i: mech.client_side(u, ctx) for i, u in ups.items()}, {}, mech, np.zeros(DIM, np.float32)
    )
    assert tx.sums is not None and tx.sums.clipped_coords == 5


def test_local_dp_calibration_covers_the_worst_client_not_just_the_smallest() -> None:
    from dp.accountant import epsilon_for
    from dp.calibration import dp_sgd_steps
    from fl_core.config import build_config
    from fl_core.experiment import _calibrate_local

    cfg = build_config(
        overrides=[
            "dp.mode=local",
            "dp.target_epsilon=3.0",
            "train.batch_size=32",
            "train.local_epochs=1",
            "run.rounds=5",
        ]
    )
    sizes = [20, 33, 64, 200]
    z = _calibrate_local(cfg, sizes)
    for n in sizes:
        b = min(32, n)
        assert epsilon_for(z, b / n, 5 * dp_sgd_steps(n, b, 1), 1e-5) <= 3.0


@pytest.mark.parametrize("secure", [False, True])
def test_local_dp_rounds_are_unweighted_and_reveal_no_loss(secure: bool) -> None:
    mech, agg = _parts(PrivacySpec(mode="local", secagg=secure), DIM, ClientSampler(4, "fixed", 4))
    ctx = _ctx(4)
    ups = {
        i: mech.client_side(
            ClientUpdate(i, np.full(DIM, 0.2 * i, np.float32), 10 * (i + 1), {"train_loss": 2.0}), ctx
        )
        for i in range(4)
    }
    tx = agg.aggregate(ctx, ups, {}, mech, np.zeros(DIM, np.float32))
    assert tx.sums is not None and tx.sums.weight == pytest.approx(4.0, abs=1e-6)
    mean, _ = mech.server_side(tx.sums, ctx)
    new = FedAvg().apply(np.zeros(DIM, np.float32), mean, 1)
    np.testing.assert_allclose(new, np.full(DIM, 0.3), atol=1e-5)  # plain mean of 0, .2, .4, .6
    assert np.isnan(mech.train_loss(tx.sums)) and tx.sums.loss == 0  # missing, not a fake 0.0


def test_device_side_work_counts_in_the_simulated_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # Clipping / noise shares and the discrete-Gaussian encoding (the mechanism's client_side) run on the
    # device, so a slow one must show in the client's simulated compute (review: both were untimed).
    import time

    from fl_core.mechanisms import DistributedDiscreteGaussian, NoPrivacy

    nap = 0.03
    real_side, real_encode = NoPrivacy.client_side, DistributedDiscreteGaussian.encode

    def slow_side(self, *a, **k):
        time.sleep(nap)
        return real_side(self, *a, **k)

    def slow_encode(self, *a, **k):
        time.sleep(nap)
        return real_encode(self, *a, **k)

    monkeypatch.setattr(NoPrivacy, "client_side", slow_side)
    spec = PrivacySpec(mode="none", secagg=True)
    rec = _server(_clients(4), spec).run_round(1)
    assert rec is not None and rec.sim_round_s >= nap
    assert rec.wall_s >= 4 * nap  # the round's own clock still spans every client

    monkeypatch.setattr(DistributedDiscreteGaussian, "encode", slow_encode)
    m = 4
    spec = PrivacySpec(
        mode="distributed", secagg=True, mechanism="discrete_gaussian", noise_multiplier=1.0, clip_norm=1.0
    )
    fast = FederatedServer(
        [FixedNormClient(i, 0.1) for i in range(m)],
        FedAvg(),
        np.zeros(DIM, np.float32),
        base_config=RoundConfig(round=0),
        sampler=ClientSampler(m, "poisson", rate=1.0),
        privacy=spec,
    )
    rec = fast.run_round(1)
    assert rec is not None and rec.completed == m and rec.sim_round_s >= nap


def test_a_local_budget_check_never_changes_a_ledger() -> None:
    # review: a run stopped before round 1 listed client "0" with epsilon 0, created by the budget check
    from dp.events import dp_sgd

    mech, _ = _parts(PrivacySpec(mode="local", max_epsilon=0.01), DIM, ClientSampler(4, "fixed", 4))
    ctx = RoundContext(1, 4, os.urandom(16), {c: dp_sgd(0.5, 0.1, 50) for c in range(4)})
    assert "max_epsilon" in (mech.budget_stop(ctx) or "")
    assert mech.ledgers.epsilons() == {} and mech.summary()["client_epsilons"] == {}


def test_secagg_reports_cpu_and_wall_apart_and_whether_the_sum_was_checked() -> None:
    server = _server(_clients(6), PrivacySpec(secagg=True))
    rec = server.run_round(1)
    tx = server.last_transmission
    assert rec is not None and tx is not None and rec.extra["secagg_verified"] in (True, False)
    assert set(tx.client_wall_s) == set(tx.client_cpu_s) == set(range(6))
    assert all(v > 0 for v in tx.client_wall_s.values()) and tx.server_wall_s > 0


def test_a_sum_secagg_refuses_to_vouch_for_aborts_the_round(monkeypatch: pytest.MonkeyPatch) -> None:
    # a share off its polynomial or a decoded sum out of range is an InvalidMessageError in secagg: the
    # round must abort with the model unchanged, never apply that sum
    import secagg

    def bad_sum(*a, **k):
        raise secagg.InvalidMessageError("decoded sum out of range")

    server = _server(_clients(6), PrivacySpec(secagg=True))
    monkeypatch.setattr(secagg, "secure_sum", bad_sum)
    before = server.weights.copy()
    rec = server.run_round(1)
    assert rec is not None and rec.extra["secagg_aborted"] and rec.completed == 0
    assert np.array_equal(server.weights, before)
