"""One shared round test for every mechanism x aggregator: the server's round is written once.

The round must not grow a branch on the privacy mode: everything mode-specific lives in the mechanism
(fl_core.mechanisms), everything transport-specific in the aggregator (fl_core.aggregators)."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest

import fl_core.server
from dp.events import dp_sgd
from fl_core.privacy import PrivacySpec
from fl_core.sampling import ClientSampler
from fl_core.server import FederatedServer
from fl_core.strategies import FedAvg
from fl_core.types import RoundConfig
from tests.fl_core.test_pipeline import DIM, _clients

DP = {"noise_multiplier": 0.5, "seed": 1}
CASES = {
    "none/plain": PrivacySpec(),
    "none/secagg": PrivacySpec(secagg=True),
    "central/plain": PrivacySpec(mode="central", clip_norm=2.0, **DP),
    "central/secagg": PrivacySpec(mode="central", secagg=True, clip_norm=2.0, **DP),
    "central-adaptive/plain": PrivacySpec(mode="central", adaptive_clipping=True, **DP),
    "distributed/secagg": PrivacySpec(mode="distributed", secagg=True, clip_norm=2.0, **DP),
    "ddg/secagg": PrivacySpec(
        mode="distributed", secagg=True, mechanism="discrete_gaussian", clip_norm=2.0, **DP
    ),
    "local/plain": PrivacySpec(mode="local", seed=1),
    "local/secagg": PrivacySpec(mode="local", secagg=True, seed=1),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_every_mechanism_and_aggregator_runs_the_same_round(name: str) -> None:
    spec = CASES[name]
    m = 12
    sampler = ClientSampler(m, "poisson", rate=1.0) if spec.mechanism == "discrete_gaussian" else None
    server = FederatedServer(
        _clients(m),
        FedAvg(),
        np.zeros(DIM, np.float32),
        base_config=RoundConfig(round=0),
        sampler=sampler or ClientSampler(m, "fixed", m),
        privacy=spec,
        local_event=(lambda cid: dp_sgd(1.0, 0.1, 10)) if spec.mode == "local" else None,
    )
    history = server.run(3)
    assert len(history) == 3 and server.stopped is None
    assert [r.completed for r in history] == [m] * 3 and all(r.rejected == 0 for r in history)
    assert np.all(np.isfinite(server.weights)) and not np.allclose(server.weights, 0)
    assert all(r.bytes_up > 0 and r.bytes_down > 0 and r.sim_round_s > 0 for r in history)
    assert server.participants == [tuple(range(m))] * 3
    # what each mechanism reveals and charges
    eps = [r.extra.get("epsilon") for r in history]
    if spec.mode == "none":
        assert eps == [None] * 3 and all(math.isfinite(r.train_loss) for r in history)
    else:
        assert 0 < eps[0] < eps[1] < eps[2] and all(math.isnan(r.train_loss) for r in history)
    assert ("secagg_aborted" in history[0].extra) == spec.secagg
    # the model moves toward the clients' mean target (contracting rounds; noise is small here)
    targets = np.mean([c.target for c in server.clients], axis=0)
    assert np.linalg.norm(server.weights - targets) < np.linalg.norm(targets)


MODE_WORDS = {"none", "central", "distributed", "local", "gaussian", "discrete_gaussian"}


def test_the_server_round_has_no_branch_on_the_privacy_mode() -> None:
    tree = ast.parse(Path(fl_core.server.__file__).read_text())
    server = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "FederatedServer")
    for node in ast.walk(server):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            where = f"line {node.lineno}: the round names a mode ({node.value!r})"
            assert node.value not in MODE_WORDS, where
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
            inner = node.value
            if isinstance(inner.value, ast.Name) and inner.value.id == "self" and inner.attr == "spec":
                raise AssertionError(f"line {node.lineno}: the round reads self.spec.{node.attr}")
        if isinstance(node, ast.Attribute) and node.attr in ("client_level_dp", "secagg", "mode"):
            raise AssertionError(f"line {node.lineno}: the round reads .{node.attr}")


def test_a_mechanism_that_needs_a_secure_sum_is_refused_a_plaintext_one() -> None:
    # review: injecting the mechanism without a spec fell back to plaintext uploads of noise shares
    from fl_core.errors import ConfigError
    from fl_core.mechanisms import DistributedGaussian

    sampler = ClientSampler(6, "fixed", 6)
    spec = PrivacySpec(mode="distributed", secagg=True, noise_multiplier=1.0)
    mech = DistributedGaussian(spec, dim=DIM, sampler=sampler)
    with pytest.raises(ConfigError, match="secure aggregator"):
        FederatedServer(
            _clients(6), FedAvg(), np.zeros(DIM, np.float32), base_config=RoundConfig(round=0),
            sampler=sampler, mechanism=mech,
        )  # fmt: skip


def test_seeded_sum_noise_and_count_noise_are_different_streams() -> None:
    # review: both came from noise_source(seed), so the count noise repeated the sum noise's draws
    from fl_core.mechanisms import CentralGaussian

    spec = PrivacySpec(mode="central", adaptive_clipping=True, noise_multiplier=1.0, seed=7)
    mech = CentralGaussian(spec, dim=DIM, sampler=ClientSampler(100, "fixed", 100))
    assert mech.clipper is not None
    assert mech.noise.generator.normal() != mech.clipper._source.generator.normal()


def test_the_discrete_gaussian_charges_replace_one_against_the_server() -> None:
    # review: the server's ledger got the add/remove bound; replace-one is a group of two: (2 xi, 4 rho)
    from dp.accountant import PrivacyAccountant

    spec = CASES["ddg/secagg"]
    server = FederatedServer(
        _clients(10), FedAvg(), np.zeros(DIM, np.float32), base_config=RoundConfig(round=0),
        sampler=ClientSampler(10, "poisson", rate=1.0), privacy=spec,
    )  # fmt: skip
    server.run(2)
    by = server.mechanism.epsilons()
    assert by["server_knowing_cohort"] > by["observer_of_model"] > 0
    ev = server.mechanism.server_event(_ctx_for(10))
    obs = server.mechanism.round_event(_ctx_for(10))
    assert ev.rho == pytest.approx(4 * obs.rho) and ev.xi == pytest.approx(2 * obs.xi)
    fresh = PrivacyAccountant(delta=1e-5)
    assert fresh.projected_epsilon(ev) > fresh.projected_epsilon(obs)


def _ctx_for(started: int):
    import os

    from fl_core.mechanisms import RoundContext

    return RoundContext(1, started, os.urandom(16))
