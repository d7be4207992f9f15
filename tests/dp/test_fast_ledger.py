"""Ledgers of Poisson-sampled Gaussians report quick_epsilon's certified bound; everything else is unchanged.

The reference for "never below" is dp_accounting's own PLDAccountant on a grid twice finer than the one
the quick bound settled on (both discretize pessimistically, so both are upper bounds and the finer is the
tighter); "the old value" is the fixed 1e-4 grid every ledger used before.
"""

from __future__ import annotations

import json

import dp_accounting as dpa
import pytest
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.pld import privacy_loss_distribution as pld_lib
from dp_accounting.rdp import rdp_privacy_accountant

import dp.accountant as acc_mod
from dp import events as E
from dp.accountant import ClientLedgers, PrivacyAccountant, epsilon_for, quick_epsilon
from dp.errors import BudgetExceededError

DELTA = 1e-5


def _dpa(parts: tuple[tuple[float, float, int], ...], grid: float) -> float:
    ref = pld_privacy_accountant.PLDAccountant(value_discretization_interval=grid)
    for z, q, count in parts:
        ref.compose(dpa.PoissonSampledDpEvent(q, dpa.GaussianDpEvent(z)), count)
    return float(ref.get_epsilon(DELTA))


def _ledger(entries: list[tuple[dpa.DpEvent, int]]) -> PrivacyAccountant:
    acc = PrivacyAccountant(delta=DELTA)
    for r, (ev, count) in enumerate(entries):
        acc.commit(ev, round_id=r, count=count)
    return acc


LEDGERS = {
    # one (z, q) every round: the common ledger
    "300 rounds z=1 q=0.01": [(E.poisson_round(1.0, 0.01), 1)] * 300,
    # DP-SGD rounds charged as SelfComposed steps, plus single steps of the same (z, q): one part
    "dp-sgd rounds": [(E.dp_sgd(1.1, 0.03125, 64), 1)] * 5 + [(E.poisson_round(1.1, 0.03125), 3)],
    # small epsilon, where the 1e-4 grid is itself 0.3% high
    "small epsilon": [(E.poisson_round(2.0, 0.001), 10_000)],
    # large epsilon
    "large epsilon": [(E.poisson_round(0.8, 0.05), 200)],
    # a few distinct (z, q) groups (adaptive schedules, a changed cohort rate)
    "three groups": [
        (E.poisson_round(1.0, 0.05), 40),
        (E.poisson_round(1.5, 0.1), 7),
        (E.poisson_round(0.9, 0.02), 100),
    ],
}


@pytest.mark.parametrize("name", sorted(LEDGERS))
def test_fast_ledger_within_half_a_percent_of_the_fine_pld_never_below(name: str) -> None:
    acc = _ledger(LEDGERS[name])
    parts = acc_mod._quick_parts(acc._groups(), acc.neighbouring)
    assert parts is not None
    eps, grid = acc_mod._quick_groups(parts, DELTA, acc_mod.QUICK_TOLERANCE)
    assert acc.epsilon() == eps
    fine = _dpa(parts, min(1e-4, grid / 2))
    old = _dpa(parts, 1e-4)  # what the ledger reported before
    assert fine <= acc.epsilon() <= 1.005 * fine
    assert acc.epsilon() == pytest.approx(old, rel=0.005)


def test_the_ledger_epsilon_for_and_quick_epsilon_give_one_number() -> None:
    # audits rebuild a ledger and compare it with epsilon_for; privagg budget prints epsilon_for(pld)
    acc = _ledger([(E.poisson_round(1.0, 0.01), 1)] * 300)
    quick = quick_epsilon(1.0, 0.01, 300, DELTA)
    assert acc.epsilon() == quick
    assert epsilon_for(1.0, 0.01, 300, DELTA, method="pld") == quick
    assert acc.projected_epsilon(E.poisson_round(1.0, 0.01)) == quick_epsilon(1.0, 0.01, 301, DELTA)
    assert acc.report().epsilon == quick and acc.report().method == "pld"


def test_a_round_query_builds_no_fine_pld(monkeypatch: pytest.MonkeyPatch) -> None:
    # the cost, without a clock: the 1e-4 grid built a 56,000-point base PLD per (z, q) and self-composed
    # it every round; the quick bound builds bases of a few thousand points, once
    acc = _ledger([(E.poisson_round(1.0, 0.01), 1)] * 300)
    ev = E.poisson_round(1.0, 0.01)
    points: list[float] = []
    real = pld_lib.from_gaussian_mechanism

    def recording(*args, **kwargs):
        pld = real(*args, **kwargs)
        points.append(pld._pmf_remove.size)
        return pld

    acc_mod.clear_caches()
    monkeypatch.setattr(acc_mod._PLD, "from_gaussian_mechanism", recording)
    acc.epsilon()
    acc.projected_epsilon(ev)
    assert points and max(points) <= 10_000
    built = len(points)
    acc.commit(ev, round_id=300)  # the next round: its epsilon is the projection already computed
    acc.epsilon()
    acc.projected_epsilon(ev)  # and the round after composes on the bases already built
    assert len(points) == built


def test_a_heterogeneous_ledger_gives_the_old_answer_exactly() -> None:
    # Poisson rounds beside an unsampled Gaussian: the fixed-grid PLD, as dp_accounting composes it
    a, g = E.poisson_round(1.0, 0.05), E.gaussian(8.0)
    acc = _ledger([(a, 20), (g, 2), (a, 5)])
    ref = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-4)
    ref.compose(a, 25).compose(g, 2)
    assert acc.epsilon() == pytest.approx(ref.get_epsilon(DELTA), rel=1e-9)
    # Poisson rounds beside a zCDP event (the discrete mechanism): RDP, as dp_accounting composes it
    z = E.zcdp(0.01)
    acc = _ledger([(a, 20), (z, 3)])
    rdp = rdp_privacy_accountant.RdpAccountant().compose(a, 20).compose(z, 3)
    assert acc.epsilon() == pytest.approx(rdp.get_epsilon(DELTA), rel=1e-12)
    assert acc.report().method == "rdp"
    # replace-one neighbours: fixed cohorts, RDP
    wor = E.fixed_cohort_round(1.0, 20, 100)
    acc = PrivacyAccountant(delta=DELTA, neighbouring="replace")
    acc.commit(wor, count=30)
    rdp = rdp_privacy_accountant.RdpAccountant(neighboring_relation=dpa.NeighboringRelation.REPLACE_ONE)
    assert acc.epsilon() == pytest.approx(rdp.compose(wor, 30).get_epsilon(DELTA), rel=1e-12)


#: to_json of the ledger below, as written before the quick bound (a checkpoint from an older run)
GOLDEN = (
    '{"delta": 1e-05, "entries": [{"count": 1, "event": {"event": {"noise_multiplier": 1.0, "type": '
    '"GaussianDpEvent"}, "sampling_probability": 0.01, "type": "PoissonSampledDpEvent"}, "label": "round", '
    '"round_id": 1}, {"count": 1, "event": {"count": 64, "event": {"event": {"noise_multiplier": 1.1, '
    '"type": "GaussianDpEvent"}, "sampling_probability": 0.03125, "type": "PoissonSampledDpEvent"}, '
    '"type": "SelfComposedDpEvent"}, "label": "local", "round_id": 2}], "max_epsilon": 8.0, '
    '"neighbouring": "add_or_remove", "pld_discretization": 0.0001, "version": 1}'
)


def test_checkpoint_round_trip_unchanged() -> None:
    acc = PrivacyAccountant(max_epsilon=8.0, delta=DELTA)
    acc.commit(E.poisson_round(1.0, 0.01), label="round", round_id=1)
    acc.commit(E.dp_sgd(1.1, 0.03125, 64), label="local", round_id=2)
    assert acc.to_json() == GOLDEN
    back = PrivacyAccountant.from_json(GOLDEN)
    assert back.to_json() == GOLDEN and back == acc
    assert back.epsilon() == acc.epsilon()
    assert back.projected_epsilon(E.poisson_round(1.0, 0.01)) == acc.projected_epsilon(
        E.poisson_round(1.0, 0.01)
    )


def test_a_budget_check_never_changes_a_ledger() -> None:
    acc = PrivacyAccountant(max_epsilon=5.0, delta=DELTA)
    ev = E.poisson_round(1.0, 0.05)
    acc.commit(ev, count=30, round_id=0)
    before = acc.to_json()
    acc.epsilon()
    acc.epsilon(method="rdp")
    acc.delta_for(1.0)
    acc.report()
    acc.projected_epsilon(ev, count=10**4)
    assert acc.can_spend(ev) and not acc.can_spend(ev, count=10**4)
    with pytest.raises(BudgetExceededError):
        acc.commit(ev, count=10**4)
    assert acc.to_json() == before  # byte-identical

    led = ClientLedgers(delta=DELTA)
    led.commit("a", ev, round_id=0)
    before = led.to_json()
    assert led.projected_epsilon("b", ev) == led.epsilon("a")  # a client with no ledger yet
    assert led.epsilon("never-charged") == 0.0
    led.epsilons()
    led.max_epsilon()
    assert led.to_json() == before  # no ledger was created by a query
    assert json.loads(led.to_json())["clients"].keys() == {"a"}
