"""Known answers and invariants for dp.events and dp.accountant."""

from __future__ import annotations

import json
import math

import dp_accounting as dpa
import pytest
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant
from opacus.accountants import PRVAccountant
from opacus.accountants.analysis import rdp as opacus_rdp

from dp import events as E
from dp.accountant import (
    ClientLedgers,
    PrivacyAccountant,
    _quick_groups,
    delta_for,
    epsilon_for,
    event_from_dict,
    event_to_dict,
    rounds_within,
)
from dp.errors import BudgetExceededError, DeltaWarning, InvalidPrivacyParameterError


def test_known_answer_dp_accounting_pld_test_vector() -> None:
    # dp_accounting pld_privacy_accountant_test.test_self_composed_subsampled_gaussian:
    # q=0.2, z=0.5, 3 steps -> delta(eps=1) = 0.15594 (+-1e-3).
    assert delta_for(0.5, 0.2, 3, 1.0) == pytest.approx(0.15594, abs=1e-3)
    assert epsilon_for(0.5, 0.2, 3, 0.15594) == pytest.approx(1.0, abs=1e-3)


def test_known_answer_abadi_2016_moments_accountant() -> None:
    # Abadi et al. CCS 2016, Sec. 3.1: q=0.01, sigma=4, delta=1e-5, T=10,000 steps gives eps ~= 1.26 by the
    # moments accountant (integer orders). RDP with fractional orders is at most that; PLD is tighter still.
    rdp = epsilon_for(4.0, 0.01, 10_000, 1e-5, method="rdp")
    pld = epsilon_for(4.0, 0.01, 10_000, 1e-5, method="pld")
    assert 0.9 < rdp <= 1.26
    assert 0.85 < pld < rdp


def test_rdp_matches_opacus_independent_implementation() -> None:
    # Opacus' own RDP analysis (independent code) on the same orders as dp_accounting's default set.
    q, z, steps, delta = 0.01, 1.1, 3000, 1e-5
    orders = [1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) + [128, 256, 512]
    rdp = opacus_rdp.compute_rdp(q=q, noise_multiplier=z, steps=steps, orders=orders)
    eps_opacus, _ = opacus_rdp.get_privacy_spent(orders=orders, rdp=rdp, delta=delta)
    ours = epsilon_for(z, q, steps, delta, method="rdp")
    assert ours == pytest.approx(eps_opacus, rel=0.02)


def test_pld_matches_opacus_prv_accountant() -> None:
    # Gopi et al. 2021 PRV accountant (Opacus' implementation) and PLD agree closely.
    q, z, steps, delta = 0.02, 1.0, 500, 1e-5
    prv = PRVAccountant()
    prv.history = [(z, q, steps)]
    eps_prv = prv.get_epsilon(delta=delta, eps_error=0.01)
    assert epsilon_for(z, q, steps, delta) == pytest.approx(eps_prv, rel=0.01)


@pytest.mark.parametrize("z,q,n", [(0.8, 0.05, 50), (1.0, 0.01, 1000), (2.0, 1.0, 10), (1.2, 0.3, 7)])
def test_pld_not_above_rdp(z: float, q: float, n: int) -> None:
    assert epsilon_for(z, q, n, 1e-5) <= epsilon_for(z, q, n, 1e-5, method="rdp")


def test_accountant_equals_dp_accounting_pld_for_mixed_ledger() -> None:
    acc = PrivacyAccountant(delta=1e-6)
    a, b = E.poisson_round(1.0, 0.05), E.poisson_round(1.5, 0.1)
    for r in range(4):
        acc.commit(a, round_id=r)
    acc.commit(b, round_id=4, count=3)
    # a ledger of Poisson-sampled Gaussians reports quick_epsilon's certified bound: never below a PLD on a
    # grid finer than any it used, within 0.5% above it, and within 0.5% of the old 1e-4 grid's value
    _, grid = _quick_groups(((1.0, 0.05, 4), (1.5, 0.1, 3)), 1e-6, 0.005)
    fine = pld_privacy_accountant.PLDAccountant(value_discretization_interval=min(1e-4, grid / 2))
    fine.compose(a, 4).compose(b, 3)
    old = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-4).compose(a, 4).compose(b, 3)
    assert fine.get_epsilon(1e-6) <= acc.epsilon() <= 1.005 * fine.get_epsilon(1e-6)
    assert acc.epsilon() == pytest.approx(old.get_epsilon(1e-6), rel=0.005)
    assert acc.report().method == "pld" and acc.report().epsilon_pld == acc.epsilon()


def test_zero_repeat_count_is_rejected_not_read_as_free() -> None:
    # SelfComposed(NonPrivate, 0) would make count * curve = 0 * inf = NaN, and the RDP epsilon 0 (review).
    acc = PrivacyAccountant(delta=1e-5)
    bad = dpa.ComposedDpEvent([dpa.SelfComposedDpEvent(dpa.NonPrivateDpEvent(), 0), dpa.GaussianDpEvent(2.0)])
    with pytest.raises(InvalidPrivacyParameterError, match="count must be an int >= 1"):
        acc.commit(bad, round_id=0)
    with pytest.raises(InvalidPrivacyParameterError, match="count must be an int >= 1"):
        acc.projected_epsilon(bad, method="rdp")
    assert acc.entries == ()


def test_accountant_equals_dp_accounting_pld_as_the_ledger_grows() -> None:
    # Every prefix of a growing ledger (counts > 1 as DP-SGD rounds charge steps): epsilon is the quick
    # certified bound (never below dp_accounting's PLDAccountant on a finer grid, at most 0.5% above);
    # delta_for stays dp_accounting's PLD on the ledger's own grid, exactly.
    acc = PrivacyAccountant(delta=1e-6, pld_discretization=1e-3)
    ref = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-3)
    a, b = E.poisson_round(1.1, 0.07), E.poisson_round(0.9, 0.02)
    counts = {a: 0, b: 0}
    history: list[tuple[dpa.DpEvent, int]] = []
    for r, (ev, count) in enumerate([(a, 1), (a, 1), (a, 3), (b, 1), (a, 1), (b, 4), (b, 1), (a, 2)]):
        acc.commit(ev, round_id=r, count=count)  # counts > 1: DP-SGD steps per round
        ref.compose(ev, count)
        counts[ev] += count
        history.append((ev, count))
        parts = tuple(
            sorted((e.event.noise_multiplier, e.sampling_probability, c) for e, c in counts.items() if c)
        )
        _, grid = _quick_groups(parts, 1e-6, 0.005)
        fine = pld_privacy_accountant.PLDAccountant(value_discretization_interval=min(1e-4, grid / 2))
        for e, c in history:
            fine.compose(e, c)
        assert fine.get_epsilon(1e-6) <= acc.epsilon() <= 1.005 * fine.get_epsilon(1e-6)
        assert acc.delta_for(1.0) == pytest.approx(ref.get_delta(1.0), rel=1e-8)


def test_accountant_equals_dp_accounting_rdp_for_mixed_ledger_as_it_grows() -> None:
    # The RDP path caches each event's curve and adds count * curve; every prefix of a growing ledger
    # must give dp_accounting's own RdpAccountant numbers (epsilon and delta), replace-one neighbours.
    acc = PrivacyAccountant(delta=1e-5, neighbouring="replace")
    ref = rdp_privacy_accountant.RdpAccountant(neighboring_relation=dpa.NeighboringRelation.REPLACE_ONE)
    wor = E.fixed_cohort_round(1.0, 20, 100)
    ledger = [(wor, 1), (wor, 2), (dpa.GaussianDpEvent(4.0), 1), (dpa.LaplaceDpEvent(3.0), 2), (wor, 5)]
    for r, (ev, count) in enumerate(ledger):
        acc.commit(ev, round_id=r, count=count)
        ref.compose(ev, count)
        assert acc.epsilon(method="rdp") == pytest.approx(ref.get_epsilon(1e-5), rel=1e-12)
        assert acc.delta_for(5.0, method="rdp") == pytest.approx(ref.get_delta(5.0), rel=1e-12)


def test_two_phase_can_spend_costs_nothing() -> None:
    acc = PrivacyAccountant(max_epsilon=2.0, delta=1e-5)
    ev = E.poisson_round(1.0, 0.1)
    acc.commit(ev, round_id=0)
    before = acc.epsilon()
    for _ in range(5):
        assert acc.can_spend(ev)
    assert acc.epsilon() == before
    assert len(acc.entries) == 1


def test_budget_stop_at_right_round() -> None:
    z, q, cap, delta = 1.0, 0.1, 2.0, 1e-5
    last_ok = rounds_within(z, q, cap, delta, max_rounds=200)
    assert epsilon_for(z, q, last_ok, delta) <= cap < epsilon_for(z, q, last_ok + 1, delta)
    acc = PrivacyAccountant(max_epsilon=cap, delta=delta)
    ev = E.poisson_round(z, q)
    acc.commit(ev, count=last_ok - 1)
    assert acc.can_spend(ev)
    acc.commit(ev, round_id=last_ok - 1)
    assert not acc.can_spend(ev)
    with pytest.raises(BudgetExceededError, match="max_epsilon=2.0"):
        acc.commit(ev, round_id=last_ok)
    assert sum(e.count for e in acc.entries) == last_ok  # the refused round left no trace


def test_json_round_trip_exact() -> None:
    acc = PrivacyAccountant(max_epsilon=8.0, delta=1e-5, pld_discretization=1e-3)
    acc.commit(E.poisson_round(0.7321, 0.0123456789), label="round", round_id=0)
    acc.commit(E.dp_sgd(1.1, 0.03125, 64), label="local", round_id=1)
    acc.commit(E.zcdp(0.0123), label="ddg", round_id=2)
    text = acc.to_json()
    back = PrivacyAccountant.from_json(text)
    assert back.to_json() == text
    assert back == acc
    assert back.entries == acc.entries
    assert back.epsilon() == acc.epsilon()


def test_from_json_rejects_malformed_state() -> None:
    good = json.loads(PrivacyAccountant(delta=1e-5).to_json())
    with pytest.raises(InvalidPrivacyParameterError, match="version"):
        PrivacyAccountant.from_json(json.dumps(good | {"version": 99}))
    with pytest.raises(InvalidPrivacyParameterError, match="entries"):
        PrivacyAccountant.from_json(json.dumps({k: v for k, v in good.items() if k != "entries"}))
    with pytest.raises(InvalidPrivacyParameterError, match="parse"):
        PrivacyAccountant.from_json("{not json")


def test_event_dict_round_trip_and_rejects_foreign_types() -> None:
    ev = dpa.ComposedDpEvent([E.fixed_cohort_round(1.0, 10, 1000), E.rounds(2.0, 0.5, 3)])
    assert event_from_dict(json.loads(json.dumps(event_to_dict(ev)))) == ev
    with pytest.raises(InvalidPrivacyParameterError, match="os.system"):
        event_from_dict({"type": "os.system"})


def test_fixed_cohort_needs_rdp_and_replace() -> None:
    ev = E.fixed_cohort_round(1.0, 100, 10_000)
    acc = PrivacyAccountant(delta=1e-5, neighbouring="replace")
    acc.commit(ev, count=100)
    rep = acc.report()
    assert rep.method == "rdp" and rep.epsilon_pld is None and math.isfinite(rep.epsilon)
    with pytest.raises(InvalidPrivacyParameterError, match="pld"):
        acc.epsilon(method="pld")


def test_fixed_cohort_full_population_is_gaussian_with_double_sensitivity() -> None:
    # Known answer: sampling all N of N is no sampling (Wang-Balle-Kasiviswanathan 2019 Thm. 27 at q=1),
    # and under replace-one neighbours the L2 sensitivity of a clipped sum is 2C, so the round must cost
    # exactly a Gaussian of multiplier z/2 under add/remove.
    z, n, delta = 3.0, 50, 1e-5
    acc = PrivacyAccountant(delta=delta, neighbouring="replace")
    acc.commit(E.fixed_cohort_round(z, n, n), count=5)
    assert acc.epsilon() == pytest.approx(epsilon_for(z / 2, 1.0, 5, delta, method="rdp"), rel=1e-9)


def test_zcdp_event_uses_rdp_known_answer() -> None:
    # rho-zCDP has RDP rho*alpha; converted with Canonne-Kamath-Steinke 2020 (Prop. 12), computed by hand here
    # over dp_accounting's default orders. Also below Bun & Steinke 2016's rho + 2 sqrt(rho log(1/delta)).
    rho, delta = 0.05, 1e-5
    acc = PrivacyAccountant(delta=delta)
    acc.commit(E.zcdp(rho))
    orders = [a for a in rdp_privacy_accountant.DEFAULT_RDP_ORDERS if a > 1]
    by_hand = min(
        max(0.0, rho * a + (math.log(1 / delta) + (a - 1) * math.log1p(-1 / a) - math.log(a)) / (a - 1))
        for a in orders
    )
    assert acc.report().method == "rdp"
    assert acc.epsilon() == pytest.approx(by_hand, rel=1e-6)
    assert acc.epsilon() <= rho + 2 * math.sqrt(rho * math.log(1 / delta))


def test_client_ledgers() -> None:
    led = ClientLedgers(delta=1e-5)
    led.commit("a", E.dp_sgd(1.0, 0.1, 20), round_id=0)
    led.commit("b", E.dp_sgd(1.0, 0.1, 20), round_id=0)
    led.commit("b", E.dp_sgd(1.0, 0.1, 20), round_id=1)
    eps = led.epsilons()
    assert eps["a"] < eps["b"] == led.max_epsilon()
    back = ClientLedgers.from_json(led.to_json())
    assert back.to_json() == led.to_json() and back.epsilons() == eps


@pytest.mark.parametrize(
    "call,value",
    [
        (lambda: epsilon_for(1.0, 0.1, 10, 0.0), "0.0"),
        (lambda: epsilon_for(1.0, 0.1, 10, 1.0), "1.0"),
        (lambda: epsilon_for(1.0, 0.1, 10, -1e-5), "-1e-05"),
        (lambda: epsilon_for(0.0, 0.1, 10, 1e-5), "0.0"),
        (lambda: epsilon_for(-2.0, 0.1, 10, 1e-5), "-2.0"),
        (lambda: epsilon_for(1.0, 1.5, 10, 1e-5), "1.5"),
        (lambda: epsilon_for(1.0, 0.0, 10, 1e-5), "0.0"),
        (lambda: epsilon_for(1.0, 0.1, 0, 1e-5), "0"),
        (lambda: epsilon_for(1.0, 0.1, 2.5, 1e-5), "2.5"),
        (lambda: delta_for(1.0, 0.1, 10, 0.0), "0.0"),
        (lambda: delta_for(1.0, 0.1, 10, -3.0), "-3.0"),
        (lambda: E.gaussian(float("nan")), "nan"),
        (lambda: E.fixed_cohort_round(1.0, 11, 10), "11"),
        (lambda: PrivacyAccountant(max_epsilon=-1.0, delta=1e-5), "-1.0"),
        (lambda: PrivacyAccountant(neighbouring="swap"), "swap"),
        (lambda: PrivacyAccountant().epsilon(), "None"),
    ],
)
def test_bad_parameters_raise_typed_error_with_value(call, value: str) -> None:
    with pytest.raises(InvalidPrivacyParameterError) as info:
        call()
    assert value in str(info.value)
    assert isinstance(info.value, ValueError)


def test_delta_warning_for_large_delta() -> None:
    from dp._checks import check_delta

    with pytest.warns(DeltaWarning, match="1/N"):
        check_delta(1e-3, population=5000)


def test_tiny_noise_is_answered_not_a_memory_error() -> None:
    # review: z = 1e-3 asked dp_accounting for a 38 GiB PLD; the grid now coarsens with the loss range,
    # which can only raise epsilon (pessimistic rounding), so PLD stays below RDP
    from dp.accountant import pld_grid

    pld = epsilon_for(1e-3, 0.01, 1, 1e-5)
    rdp = epsilon_for(1e-3, 0.01, 1, 1e-5, method="rdp")
    assert math.isfinite(pld) and 0 < pld <= rdp
    assert pld_grid(1.0, 1e-4, 0.01) == 1e-4 and pld_grid(2.0, 1e-4, 0.1) == 1e-4  # usual z: as asked
    assert pld_grid(0.3, 1e-4, 0.1) > 1e-4  # 360,000 points at 1e-4: coarser (3.9 s before)


@pytest.mark.parametrize("rounds", [float("nan"), float("inf"), 10**20, 0, True, 2.5])
def test_bad_round_counts_are_typed_errors(rounds) -> None:
    with pytest.raises(InvalidPrivacyParameterError, match="rounds"):
        epsilon_for(1.0, 0.01, rounds, 1e-5)


@pytest.mark.parametrize(("z", "count"), [(1.0, 10), (2.0, 20), (1.0, 1), (0.8, 7)])
def test_unsampled_gaussians_compose_in_closed_form_equal_to_dp_accounting(z: float, count: int) -> None:
    # the server-side ledger of client-level DP (no amplification) is plain Gaussians: composed exactly
    # into one Gaussian, whose epsilon must match dp_accounting's PLD accountant
    acc = PrivacyAccountant(delta=1e-5)
    acc.commit(E.gaussian(z), count=count)
    acc.commit(E.gaussian(2 * z))
    ref = pld_privacy_accountant.PLDAccountant().compose(dpa.GaussianDpEvent(z), count)
    ref = ref.compose(dpa.GaussianDpEvent(2 * z)).get_epsilon(1e-5)
    assert acc.epsilon() == pytest.approx(ref, rel=1e-6)
    assert acc.epsilon() <= acc.epsilon(method="rdp")


def test_the_closed_form_is_only_used_under_add_or_remove() -> None:
    # review: under replace, dp_accounting's PLD doubles a Gaussian's sensitivity; the shortcut did not
    acc = PrivacyAccountant(delta=1e-5, neighbouring="replace")
    acc.commit(E.gaussian(2.0), count=10)
    ref = pld_privacy_accountant.PLDAccountant(dpa.NeighboringRelation.REPLACE_ONE)
    ref = ref.compose(dpa.GaussianDpEvent(2.0), 10).get_epsilon(1e-5)
    assert acc.epsilon() == pytest.approx(ref, rel=1e-3)


def test_a_pld_that_does_not_fit_in_memory_is_a_typed_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    import dp.accountant as acc_mod

    def too_big(*a, **k):
        raise MemoryError("Unable to allocate 33 TiB")

    acc_mod.clear_caches()
    monkeypatch.setattr(acc_mod, "_cached_accountant", too_big)  # the fixed-grid path (mixed ledgers)
    acc = PrivacyAccountant(delta=1e-5)
    acc.commit(E.poisson_round(0.5, 0.1), count=100)
    acc.commit(E.gaussian(3.0))
    with pytest.raises(InvalidPrivacyParameterError, match="method='rdp'"):
        acc.epsilon()
    monkeypatch.setattr(acc_mod, "_pld_epsilon_parts", too_big)  # the quick bound (Poisson ledgers)
    with pytest.raises(InvalidPrivacyParameterError, match="method='rdp'"):
        epsilon_for(0.5, 0.1, 100, 1e-5)
    with pytest.raises(InvalidPrivacyParameterError, match="method='rdp'"):
        PrivacyAccountant(delta=1e-5).projected_epsilon(E.poisson_round(0.5, 0.1), count=100)
