"""The report: files written, plots embedded as real PNGs, tables and recommendation that match the runs,
the empirical column filled only when audits exist, and a report made from a real (tiny) sweep."""

from __future__ import annotations

import base64
import csv
import json
import re
import struct
from pathlib import Path

import pytest

from audits.report import build_report
from audits.sweep import run_sweep
from audits.tradeoff import TradeoffError
from tests.audits.test_tradeoff import fake_study

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    assert data[:8] == PNG_MAGIC
    return struct.unpack(">II", data[16:24])


def _embedded_images(page: str) -> list[bytes]:
    return [
        base64.b64decode(m) for m in re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    ]


def test_report_files_and_embedded_plots(tmp_path: Path) -> None:
    fake_study(tmp_path)
    html_path = build_report([tmp_path], target_accuracy=0.8)
    assert html_path == tmp_path / "report.html"
    page = html_path.read_text()
    images = _embedded_images(page)
    # tradeoff, convergence, costs (no audit, one distribution and one client count: no heterogeneity plot).
    assert len(images) == page.count("<img") == 3
    for data in images:
        width, height = _png_size(data)
        assert width > 100 and height > 100
    # Self-contained: nothing fetched from anywhere.
    assert not re.search(r'(src|href)="(?!data:)', page)
    md = (tmp_path / "report.md").read_text()
    for stem in ("tradeoff", "convergence", "costs"):
        assert f"(report_{stem}.png)" in md and (tmp_path / f"report_{stem}.png").is_file()
    assert "no empirical epsilons yet" in md and "report_empirical.png" not in md


def test_report_summary_table_and_recommendation_match_the_runs(tmp_path: Path) -> None:
    fake_study(tmp_path)
    build_report(tmp_path, target_accuracy=0.8)
    md = (tmp_path / "report.md").read_text()
    # Non-private best 0.95, centralized 0.97; recommended: epsilon 3 (mean 0.85), the smallest reaching 0.8.
    assert "the best non-private federated setting (dp=none mix=ideal) has accuracy 0.950" in md
    assert "centralized training on pooled data reaches 0.970" in md
    assert re.search(
        r"recommendation: for accuracy >= 0.8, use [^:]*noise_multiplier=1[^:]*: accuracy 0.850", md
    )
    # The most accurate private setting (epsilon 8, 0.91) against the same config without DP (0.95).
    assert "the same setting without DP reaches 0.950, so DP costs 0.040" in md
    # One table row per setting: 4 settings, 3 seeds each, epsilon 1 / 3 / 8 all on the frontier.
    rows = [line for line in md.splitlines() if line.startswith("| digits |")]
    assert len(rows) == 4 and all("| 3 |" in r for r in rows)
    assert sum(r.rstrip().endswith("| yes |") for r in rows) == 3
    assert "accuracy 0.650 [0.526, 0.774]" in md  # 0.60 / 0.70 / 0.65 with the t interval
    with open(tmp_path / "results.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 12


def test_report_with_audits_draws_empirical_against_proven(tmp_path: Path) -> None:
    fake_study(tmp_path, audits=True)
    page = build_report(tmp_path).read_text()
    assert "Empirical against proven epsilon" in page and len(_embedded_images(page)) == 4
    md = (tmp_path / "report.md").read_text()
    assert "(report_empirical.png)" in md and "no empirical epsilons yet" not in md
    # epsilon 8 was audited at 2.0 (eps / 4 in the fake study): the table shows both.
    assert re.search(r"\| 8 \| 2 \|", md)


def test_report_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(TradeoffError, match="no finished run folders"):
        build_report(tmp_path)
    fake_study(tmp_path)
    with pytest.raises(TradeoffError, match="target_epsilon must be > 0"):
        build_report(tmp_path, target_epsilon=0.0)


def test_report_from_a_real_sweep_lists_failures_and_agrees_with_its_folders(tmp_path: Path) -> None:
    spec = {
        "base": {
            "run": {"rounds": 2},
            "model": {"name": "logreg"},
            "data": {"num_clients": 3, "partition": "iid"},
            "train": {"local_epochs": 1},
        },
        "grid": {"data.partition": ["iid", "natural", "dirichlet"]},
        "seeds": [0, 1],
    }
    result = run_sweep(spec, tmp_path, jobs=1)
    assert len(result.ran) == 4 and len(result.failed) == 2
    build_report(tmp_path, target_accuracy=0.5)
    md = (tmp_path / "report.md").read_text()
    assert "## Failed points" in md and md.count("PartitionError") == 2
    with open(tmp_path / "results.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert sorted(r["run"] for r in table) == sorted(result.ran)
    for row in table:
        summary = json.loads((Path(row["path"]) / "summary.json").read_text())
        assert float(row["fl_metric"]) == summary["fl"]["accuracy"]
        assert float(row["centralized_metric"]) == summary["centralized"]["accuracy"]
        assert row["epsilon"] == "inf" and row["dp_mode"] == "none"
    assert "heterogeneity" in md.lower()  # iid against dirichlet(0.5): the heterogeneity plot is drawn


def test_headline_table_one_row_per_context(tmp_path: Path) -> None:
    fake_study(tmp_path)
    build_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    section = md.split("## Headline", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| digits / cnn")]
    # Best non-private 0.95 [0.925, 0.975]; centralized 0.97; no secagg runs; most accurate DP 0.91 at eps 8;
    # most private DP 0.65 at eps 1.
    assert rows == [
        "| digits / cnn | accuracy | 0.950 [0.925, 0.975] | 0.970 |  | 0.910 [0.885, 0.935] (eps 8) "
        "| 0.650 [0.526, 0.774] (eps 1) |"
    ]
