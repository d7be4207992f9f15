"""Tradeoff arithmetic with known answers (seed intervals, Pareto frontier, recommendation), and the rows
read from run folders agreeing with the folders. `write_fake_run` / `fake_study` build run folders in the
format fl_core writes, with chosen numbers, for this file and the report tests."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
import tomli_w

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from audits.tradeoff import (
    Interval,
    TradeoffError,
    aggregate,
    collect_runs,
    empirical_epsilon,
    frontier,
    mean_interval,
    pareto_front,
    recommend,
    run_rows,
    write_results_csv,
)

# ---------------------------------------------------------------- fake run folders


def write_fake_run(
    folder: Path,
    *,
    seed: int,
    accuracy: float,
    epsilon: float | None,
    model: str = "cnn",
    noise: float | None = None,
    centralized: float | None = 0.97,
    devices: dict[str, float] | None = None,
    partition: str = "iid",
    secagg: bool = False,
    rounds: int = 4,
    audit: float | None = None,
) -> Path:
    """A finished run folder with the files a report reads; accuracy climbs to `accuracy` at the end."""
    folder.mkdir(parents=True)
    dp_mode = "none" if epsilon is None else "central"
    config: dict[str, Any] = {
        "run": {"name": "fake", "seed": seed, "rounds": rounds},
        "data": {"dataset": "digits", "num_clients": 10, "partition": partition, "alpha": 0.5},
        "model": {"name": model},
        "dp": {"mode": dp_mode, "clip_norm": 1.0, **({"noise_multiplier": noise} if noise else {})},
        "secagg": {"enabled": secagg},
        "devices": {"mix": devices or {}},
    }
    (folder / "config.toml").write_text(tomli_w.dumps(config))
    privacy: dict[str, Any] = {"dp_mode": dp_mode, "secagg": secagg}
    if epsilon is not None:
        privacy.update({"epsilon": epsilon, "delta": 1e-5, "noise_multiplier": noise})
    up, down = 1000 * (3 if secagg else 2), 2000
    rows = [
        {
            "round": r,
            "test_accuracy": accuracy * r / rounds,
            "bytes_up": up,
            "bytes_down": down,
            "wall_s": 0.5,
            "sim_round_s": 2.0 * r,
        }
        for r in range(1, rounds + 1)
    ]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = {
        "primary_metric": "accuracy",
        "rounds": rounds,
        "fl": {"loss": 0.3, "accuracy": accuracy},
        "centralized": {"accuracy": centralized} if centralized is not None else {},
        "bytes_up_total": up * rounds,
        "bytes_down_total": down * rounds,
        "clients_dropped_total": 0,
        "stopped": None,
        "privacy": privacy,
        "dataset": "digits",
        "task": "classification",
        "model": model,
        "num_clients": 10,
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "privacy.json").write_text(json.dumps({**privacy, "statement": "fake"}))
    if audit is not None:
        (folder / "audit.json").write_text(json.dumps({"attacks": {"loss": {"epsilon_lower_bound": audit}}}))
    return folder


#: (noise multiplier, epsilon, per-seed accuracies): more noise, smaller epsilon, lower accuracy.
FAKE_DP = [
    (0.5, 8.0, (0.90, 0.92, 0.91)),
    (1.0, 3.0, (0.84, 0.86, 0.85)),
    (2.0, 1.0, (0.60, 0.70, 0.65)),
]
FAKE_PLAIN = (0.95, 0.96, 0.94)


def fake_study(root: Path, *, audits: bool = False) -> Path:
    """A sweep-like folder: 3 DP settings + 1 non-private, 3 seeds each, on two device classes' worth."""
    runs = root / "runs"
    for seed in range(3):
        write_fake_run(runs / f"plain_seed={seed}", seed=seed, accuracy=FAKE_PLAIN[seed], epsilon=None)
        for noise, eps, accs in FAKE_DP:
            write_fake_run(
                runs / f"dp_noise={noise}_seed={seed}",
                seed=seed,
                accuracy=accs[seed],
                epsilon=eps,
                noise=noise,
                devices={"lowend_phone": 1} if noise == 2.0 else None,
                audit=eps / 4 if audits else None,
            )
    return root


# ---------------------------------------------------------------- known answers


def test_mean_interval_known_answers() -> None:
    # mean 2, s = 1, t_{0.975, 2} = 4.3027 (any t table): half width 4.3027 / sqrt(3) = 2.4841.
    iv = mean_interval([1.0, 2.0, 3.0])
    assert iv.mean == 2.0 and iv.n == 3 and iv.std == pytest.approx(1.0)
    assert iv.half_width == pytest.approx(4.302653 / math.sqrt(3), abs=1e-5)
    assert (iv.low, iv.high) == pytest.approx((2.0 - 2.484138, 2.0 + 2.484138), abs=1e-5)
    # mean 13, s = sqrt(20/3) = 2.58199, t_{0.975, 3} = 3.18245: half width 3.18245 * 2.58199 / 2 = 4.10851.
    iv4 = mean_interval([10.0, 12.0, 14.0, 16.0])
    assert (iv4.low, iv4.high) == pytest.approx((13.0 - 4.10851, 13.0 + 4.10851), abs=1e-4)
    # 90%: t_{0.95, 3} = 2.35336.
    iv90 = mean_interval([10.0, 12.0, 14.0, 16.0], level=0.90)
    assert iv90.half_width == pytest.approx(2.35336 * math.sqrt(20 / 3) / 2, abs=1e-4)


def test_mean_interval_edge_cases() -> None:
    same = mean_interval([0.9, 0.9, 0.9])
    assert same.low == same.high == pytest.approx(0.9)
    one = mean_interval([0.7])
    assert one.mean == 0.7 and one.n == 1 and math.isnan(one.low) and math.isnan(one.high)
    inf = mean_interval([math.inf, math.inf])
    assert inf.mean == inf.low == inf.high == math.inf
    assert math.isnan(mean_interval([0.5, math.nan]).mean)
    with pytest.raises(TradeoffError, match="at least one"):
        mean_interval([])
    with pytest.raises(TradeoffError, match="level"):
        mean_interval([1.0, 2.0], level=1.0)


def test_pareto_front_known_answer() -> None:
    points = [
        (1.0, 0.5),  # 0: on the frontier
        (2.0, 0.7),  # 1: on
        (2.0, 0.6),  # 2: beaten by 1 (same epsilon, less accurate)
        (4.0, 0.7),  # 3: beaten by 1 (more epsilon, same accuracy)
        (8.0, 0.9),  # 4: on
        (math.inf, 0.95),  # 5: no DP but the most accurate: on
        (3.0, math.nan),  # 6: unusable
        (0.5, 0.4),  # 7: the most private: on
        (math.inf, 0.9),  # 8: no DP and not better than 4: off
    ]
    assert pareto_front(points) == [7, 0, 1, 4, 5]


def test_pareto_front_ties_and_trivial_cases() -> None:
    assert pareto_front([(1.0, 1.0), (1.0, 1.0)]) == [0, 1]
    assert pareto_front([]) == []
    assert pareto_front([(2.0, 0.5)]) == [0]
    # Strictly better in both: a single winner.
    assert pareto_front([(2.0, 0.5), (1.0, 0.6), (3.0, 0.4)]) == [1]


def test_empirical_epsilon_reads_top_level_then_nested() -> None:
    assert empirical_epsilon(None) is None and empirical_epsilon({}) is None
    assert empirical_epsilon({"empirical_epsilon": 0.7, "attacks": {"x": {"epsilon_lower_bound": 5}}}) == 0.7
    nested = {"attacks": [{"epsilon_lower_bound": 0.2}, {"epsilon_lb": 0.9}, {"auc": 0.6}]}
    assert empirical_epsilon(nested) == 0.9
    assert empirical_epsilon({"attacks": {"loss": {"auc": 0.5}}}) is None


def test_empirical_epsilon_reads_privagg_audit_output() -> None:
    # The shape `privagg audit` writes: only entries whose kind is a lower bound count, never estimates,
    # and the proven epsilon beside them is not an empirical one.
    audit = {
        "proven": {"epsilon": 8.0, "delta": 1e-5},
        "membership": {"global": {"attacks": {"loss": {"epsilon_lower_bound": {"epsilon": 0.4}}}}},
        "empirical": [
            {"source": "loss", "epsilon": 0.4, "kind": "lower bound, Clopper-Pearson over examples"},
            {"source": "loss, GDP", "epsilon": 3.0, "kind": "estimate (Gaussian trade-off assumed)"},
            {
                "source": "canaries, one run",
                "epsilon": 1.2,
                "kind": "lower bound at 95% (Steinke et al. 2023)",
            },
            {"source": "canaries, one-shot", "epsilon": 5.0, "kind": "estimate (Andrew et al. 2024)"},
        ],
    }
    assert empirical_epsilon(audit) == 1.2
    assert empirical_epsilon({"empirical": [{"epsilon": 2.0, "kind": "estimate"}]}) is None
    assert empirical_epsilon({"empirical": []}) is None


# ---------------------------------------------------------------- rows, CSV, aggregation


def test_rows_and_csv_agree_with_the_run_folders(tmp_path: Path) -> None:
    fake_study(tmp_path, audits=True)
    records, failed = collect_runs([tmp_path])
    assert len(records) == 12 and failed == ()
    rows = run_rows(records)
    path = write_results_csv(rows, tmp_path / "results.csv")
    with open(path, newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 12
    for row in table:
        folder = Path(row["path"])
        summary = json.loads((folder / "summary.json").read_text())
        privacy = json.loads((folder / "privacy.json").read_text())
        assert float(row["fl_metric"]) == summary["fl"]["accuracy"]
        assert float(row["centralized_metric"]) == summary["centralized"]["accuracy"]
        assert float(row["epsilon"]) == privacy.get("epsilon", math.inf)
        assert float(row["bytes_up_per_round"]) == summary["bytes_up_total"] / summary["rounds"]
        lines = (folder / "metrics.jsonl").read_text().splitlines()
        sim = [json.loads(line)["sim_round_s"] for line in lines]
        assert float(row["sim_round_s"]) == pytest.approx(sum(sim) / len(sim))
        config = tomllib.loads((folder / "config.toml").read_text())
        assert int(row["seed"]) == config["run"]["seed"]
        assert row["dp_mode"] == config["dp"]["mode"]
        audit = folder / "audit.json"
        if audit.exists():
            assert (
                float(row["empirical_epsilon"])
                == json.loads(audit.read_text())["attacks"]["loss"]["epsilon_lower_bound"]
            )
        else:
            assert row["empirical_epsilon"] == ""
    # The varying config keys become columns; the seed never does.
    assert "cfg:dp.noise_multiplier" in table[0] and "cfg:run.seed" not in table[0]


def test_aggregate_over_seeds_known_answer(tmp_path: Path) -> None:
    fake_study(tmp_path)
    settings = aggregate(run_rows(collect_runs([tmp_path])[0]))
    assert len(settings) == 4 and all(s.utility.n == 3 for s in settings)
    by_eps = {s.epsilon.mean: s for s in settings}
    low = by_eps[1.0]
    # 0.60, 0.70, 0.65: mean 0.65, s = 0.05, half width 4.302653 * 0.05 / sqrt(3) = 0.124207.
    assert low.utility.mean == pytest.approx(0.65)
    assert (low.utility.low, low.utility.high) == pytest.approx((0.65 - 0.124207, 0.65 + 0.124207), abs=1e-6)
    assert low.devices == "lowend_phone" and low.private
    plain = by_eps[math.inf]
    assert not plain.private and plain.utility.mean == pytest.approx(0.95)
    # Settings that differ only in the noise are one curve; the device class (eps 1 ran on low-end phones)
    # starts another.
    assert by_eps[8.0].curve_key == by_eps[3.0].curve_key != by_eps[1.0].curve_key
    assert [s.epsilon.mean for s in frontier(settings)] == [1.0, 3.0, 8.0]


def test_recommend_for_accuracy_and_epsilon_targets(tmp_path: Path) -> None:
    fake_study(tmp_path)
    settings = aggregate(run_rows(collect_runs([tmp_path])[0]))
    rec = recommend(settings, target_accuracy=0.8)
    assert rec.setting is not None and rec.setting.epsilon.mean == 3.0
    assert "smallest epsilon" in rec.text and "0.850" in rec.text and "3 seeds" in rec.text
    rec = recommend(settings, target_epsilon=5.0)
    assert rec.setting is not None and rec.setting.epsilon.mean == 3.0
    rec = recommend(settings, target_epsilon=10.0)
    assert rec.setting is not None and rec.setting.epsilon.mean == 8.0
    rec = recommend(settings, target_accuracy=0.8, target_epsilon=2.0)
    assert rec.setting is None and "no private setting reaches" in rec.text and "epsilon 1" in rec.text
    with pytest.raises(TradeoffError, match="target"):
        recommend(settings)


def test_collect_refuses_empty_and_reads_failures(tmp_path: Path) -> None:
    with pytest.raises(TradeoffError, match="no finished run folders"):
        collect_runs([tmp_path])
    with pytest.raises(TradeoffError, match="does not exist"):
        collect_runs([tmp_path / "nope"])
    fake_study(tmp_path)
    (tmp_path / "runs" / "broken.partial").mkdir()
    state = {"points": [{"name": "bad", "group": "", "status": "failed", "error": "PartitionError: x"}]}
    (tmp_path / "sweep.json").write_text(json.dumps(state))
    records, failed = collect_runs([tmp_path, tmp_path / "runs" / "plain_seed=0"])
    assert len(records) == 12  # a run given twice is read once; a .partial folder is not a run
    assert [(f.name, f.error) for f in failed] == [("bad", "PartitionError: x")]


def test_interval_is_frozen() -> None:
    iv = Interval(1.0, 0.0, 2.0, 3, 1.0)
    with pytest.raises(AttributeError):
        iv.mean = 2.0  # type: ignore[misc]


def test_twins_pair_settings_that_differ_only_in_privacy(tmp_path: Path) -> None:
    from audits.report import summary_lines
    from audits.tradeoff import nonprivate_twin, secagg_pairs

    for seed in (0, 1):
        write_fake_run(tmp_path / f"plain{seed}", seed=seed, accuracy=0.9, epsilon=None)
        write_fake_run(tmp_path / f"sa{seed}", seed=seed, accuracy=0.88, epsilon=None, secagg=True)
        write_fake_run(tmp_path / f"skew{seed}", seed=seed, accuracy=0.7, epsilon=None, partition="shards")
        write_fake_run(tmp_path / f"dp{seed}", seed=seed, accuracy=0.8, epsilon=2.0, noise=1.0)
    settings = aggregate(run_rows(collect_runs([tmp_path])[0]))
    dp = next(s for s in settings if s.private)
    twin = nonprivate_twin(dp, settings)
    # The twin is the IID, plain-aggregation run: not the secagg one, not the shards one.
    assert twin is not None and twin.utility.mean == pytest.approx(0.9) and not twin.secagg
    pairs = secagg_pairs(settings)
    assert len(pairs) == 1 and not pairs[0][0].secagg and pairs[0][1].secagg
    assert pairs[0][0].distribution == pairs[0][1].distribution == "iid"
    text = " ".join(summary_lines(settings))
    assert "so DP costs 0.100" in text
    # 3000 against 2000 upload bytes per round in the fake runs.
    assert "changes accuracy by -0.020 and costs 1.50x the upload bytes" in text
