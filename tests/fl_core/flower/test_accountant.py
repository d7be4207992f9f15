"""PldAccountant: Flower's PrivacyAccountant protocol on privagg's PLD accountant."""

from __future__ import annotations

import pytest

pytest.importorskip("flwr")

import dp_accounting as dpa  # noqa: E402
from flwr.supercore.privacy_accounting import (  # noqa: E402
    GaussianPrivacyEvent,
    NeighboringRelation,
    PrivacyConfig,
    SamplingMethod,
)
from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant  # noqa: E402

from dp.errors import InvalidPrivacyParameterError  # noqa: E402
from fl_core.flower import PldAccountant  # noqa: E402

DELTA = 1e-5


def config(method: SamplingMethod, relation=NeighboringRelation.ADD_OR_REMOVE_ONE, cap=None) -> PrivacyConfig:
    return PrivacyConfig(DELTA, 1000, relation, method, max_epsilon=cap)


def reference_pld(event: dpa.DpEvent, count: int, relation) -> float:
    acc = dpa.pld.PLDAccountant(relation, value_discretization_interval=1e-4)
    acc.compose(event, count)
    return acc.get_epsilon(DELTA)


@pytest.mark.parametrize("z", [0.8, 1.5])
def test_no_amplification_is_tight_and_below_flowers_rdp(z: float) -> None:
    cfg = config(SamplingMethod.NO_AMPLIFICATION)
    ours, theirs = PldAccountant(cfg), RdpAccountant(cfg)
    ev = GaussianPrivacyEvent(z, 100, 1000)
    ours.compose(ev, 20)
    theirs.compose(ev, 20)
    ref = reference_pld(dpa.GaussianDpEvent(z), 20, dpa.NeighboringRelation.ADD_OR_REMOVE_ONE)
    assert ours.get_epsilon(DELTA) == pytest.approx(ref, rel=2e-3)
    assert ours.get_epsilon(DELTA) < theirs.get_epsilon(DELTA)
    spent = ours.get_privacy_spent()
    assert spent.accounting_method == "pld" and spent.num_releases == 20


def test_poisson_sampling_is_amplified_like_dp_accounting() -> None:
    cfg = config(SamplingMethod.POISSON)
    ours, theirs = PldAccountant(cfg), RdpAccountant(cfg)
    ev = GaussianPrivacyEvent(1.0, 10, 1000)
    ours.compose(ev, 200)
    theirs.compose(ev, 200)
    ref = reference_pld(
        dpa.PoissonSampledDpEvent(0.01, dpa.GaussianDpEvent(1.0)),
        200,
        dpa.NeighboringRelation.ADD_OR_REMOVE_ONE,
    )
    assert ours.get_epsilon(DELTA) == pytest.approx(ref, rel=1e-2)
    assert ours.get_epsilon(DELTA) < theirs.get_epsilon(DELTA)


def test_would_exceed_charges_nothing_and_state_round_trips() -> None:
    cfg = config(SamplingMethod.NO_AMPLIFICATION, cap=5.0)
    acc = PldAccountant(cfg)
    ev = GaussianPrivacyEvent(2.0, 100, 1000)
    assert not acc.would_exceed(ev)
    assert acc.num_releases == 0 and acc.get_epsilon(DELTA) == 0.0
    acc.compose(ev, 3)
    assert acc.would_exceed(ev, count=100)
    again = PldAccountant(cfg)
    again.load_state_dict(acc.state_dict())
    assert again.get_epsilon(DELTA) == acc.get_epsilon(DELTA) and again.num_releases == 3
    assert 0 < acc.get_delta(acc.get_epsilon(DELTA)) <= DELTA * 1.01


def test_flowers_own_dp_wrapper_accepts_it() -> None:
    from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, FedAvg

    acc = PldAccountant(config(SamplingMethod.NO_AMPLIFICATION))
    s = DifferentialPrivacyServerSideFixedClipping(FedAvg(), noise_multiplier=1.0, clipping_norm=1.0,
                                                   num_sampled_clients=10, accountant=acc)  # fmt: skip
    assert s.accountant is acc


def test_bad_input_is_typed() -> None:
    acc = PldAccountant(config(SamplingMethod.NO_AMPLIFICATION))
    with pytest.raises(InvalidPrivacyParameterError, match="population"):
        acc.compose(GaussianPrivacyEvent(1.0, 10, 999))
    with pytest.raises(InvalidPrivacyParameterError, match="count"):
        acc.compose(GaussianPrivacyEvent(1.0, 10, 1000), 0)
    with pytest.raises(InvalidPrivacyParameterError, match="max_epsilon"):
        acc.would_exceed(GaussianPrivacyEvent(1.0, 10, 1000))
    with pytest.raises(InvalidPrivacyParameterError, match="GaussianPrivacyEvent"):
        acc.compose("gaussian")  # type: ignore[arg-type]
    with pytest.raises(InvalidPrivacyParameterError):
        acc.load_state_dict({"schema_version": 1})
