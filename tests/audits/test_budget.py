"""The budget report replays a client-level ledger round by round and rebuilds sample-level ledgers."""

import json

import pytest

from audits.budget import budget_markdown, budget_report, describe_event
from audits.errors import AuditError
from dp import PrivacyAccountant, epsilon_for
from dp import events as dp_events
from dp.calibration import dp_sgd_steps


def _central(rounds=5, z=1.1, q=0.1):
    acc = PrivacyAccountant(delta=1e-5)
    for r in range(1, rounds + 1):
        acc.commit(dp_events.poisson_round(z, q), label="dp-fedavg round", round_id=r)
    return {"dp_mode": "central", "delta": 1e-5, "epsilon": acc.epsilon(), "statement": "x",
            "ledger": json.loads(acc.to_json())}  # fmt: skip


def test_client_level_epsilon_per_round_matches_the_closed_composition():
    rep = budget_report(_central())
    eps = [r["epsilon_pld"] for r in rep["per_round"]]
    assert [r["round"] for r in rep["per_round"]] == [1, 2, 3, 4, 5]
    for r, e in enumerate(eps, start=1):
        assert e == pytest.approx(epsilon_for(1.1, 0.1, r, 1e-5), rel=1e-6)
    assert all(r["epsilon_rdp"] >= r["epsilon_pld"] for r in rep["per_round"])  # RDP is the looser one
    assert rep["mechanisms"] == [{"label": "dp-fedavg round", "mechanism": "Poisson(q=0.1) Gaussian(z=1.1)",
                                  "rounds": 5}]  # fmt: skip
    md = budget_markdown(rep)
    assert "| 5 |" in md and "epsilon = " in md


def test_sample_level_ledgers_rebuilt_and_checked():
    sizes, batch, epochs, z = [40, 100], 10, 2, 1.2
    membership = {"clients": [list(range(n)) for n in sizes], "participants": [[0, 1], [1], [0, 1]]}
    rounds = [2, 3]
    truth = {
        str(c): epsilon_for(z, batch / n, rounds[c] * dp_sgd_steps(n, batch, epochs), 1e-5)
        for c, n in enumerate(sizes)
    }
    privacy = {"dp_mode": "local", "delta": 1e-5, "noise_multiplier": z, "epsilon": max(truth.values()),
               "client_epsilons": truth}  # fmt: skip
    cfg = {"train": {"batch_size": batch, "local_epochs": epochs}}
    rep = budget_report(privacy, config=cfg, membership=membership)
    assert rep["ledgers_match_privacy_json"]
    assert rep["per_client"]["1"]["rounds_trained"] == 3
    assert rep["per_client"]["0"]["epsilon"] == pytest.approx(truth["0"], rel=1e-6)
    assert rep["per_round"][-1]["epsilon_pld"] == pytest.approx(truth[rep["worst_client"]], rel=1e-6)
    wrong = {**privacy, "client_epsilons": {"0": 0.1, "1": 0.1}}
    assert not budget_report(wrong, config=cfg, membership=membership)["ledgers_match_privacy_json"]


def test_no_dp_and_bad_input():
    rep = budget_report({"dp_mode": "none", "statement": "no differential privacy"})
    assert rep["epsilon"] is None and "no epsilon is proven" in rep["plain_language"]
    with pytest.raises(AuditError, match="dp_mode"):
        budget_report({})
    with pytest.raises(AuditError, match="ledger"):
        budget_report({"dp_mode": "central", "delta": 1e-5})
    with pytest.raises(AuditError, match="membership"):
        budget_report({"dp_mode": "local", "delta": 1e-5, "noise_multiplier": 1.0})


def test_describe_event():
    ev = {"type": "SampledWithoutReplacementDpEvent", "sample_size": 10, "source_dataset_size": 100,
          "event": {"type": "GaussianDpEvent", "noise_multiplier": 0.8}}  # fmt: skip
    assert describe_event(ev) == "sampled 10 of 100 Gaussian(z=0.8)"
