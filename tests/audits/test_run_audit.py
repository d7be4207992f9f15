"""audit_run on a real (small) run folder: what it writes, and the one-line errors."""

import json
import shutil

import pytest

from audits import AuditError, audit_run
from fl_core import build_config, run_experiment


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "small"
    cfg = build_config(
        overrides=[
            "run.rounds=2", "data.num_clients=6", "model.name=mlp", "centralized.enabled=false",
            "train.local_epochs=1", "dp.mode=central", "dp.noise_multiplier=1.0", "audit.canary_clients=10",
        ]
    )  # fmt: skip
    run_experiment(cfg, out=out)
    return out


def test_audit_writes_report_and_figures(run_dir):
    calls = []
    rep = audit_run(
        run_dir,
        shadows=2,
        progress=lambda d, t, w: calls.append((d, t, w)),
        shadow_training="federated",
        inversion_iterations=20,
    )
    assert rep["audits"] == ["loss", "lira", "rmia", "canary", "inversion", "secagg"]
    for f in ["audit.json", "audit.md", "audit_roc_global.png", "audit_roc_client.png", "audit_epsilons.png",
              "audit_reconstructions.png"]:  # fmt: skip
        assert (run_dir / f).is_file(), f
    data = json.loads((run_dir / "audit.json").read_text())
    assert set(data["membership"]["global"]["attacks"]) == {"loss", "lira_online", "lira_offline", "rmia"}
    assert data["membership"]["global"]["members"] + data["membership"]["global"]["nonmembers"] == 1797
    assert data["proven"]["epsilon"] == pytest.approx(rep["budget"]["epsilon"])
    assert data["canary"]["m"] == 10
    assert data["inversion"]["method"] == "exact" and data["inversion"]["plain"]["psnr"] > 60
    assert data["inversion"]["secure_aggregate"]["psnr"] < 25
    assert data["secagg"]["only_the_sum_decodes"] and data["secagg"]["passed"]
    assert data["exceeds_proven"] == []  # every lower bound below the accountant's epsilon
    assert (2, 2, "global model: shadow models trained") in calls
    md = (run_dir / "audit.md").read_text()
    assert "## Empirical epsilon beside the proven one" in md and "(allowed)" in md
    assert "repeats the federated run" in md


def test_centralized_shadows_are_the_default(run_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    rep = audit_run(copy, attacks=["lira"], shadows=2, shadow_epochs=1)
    assert rep["membership"]["shadow_training"] == "centralized" and rep["membership"]["shadow_epochs"] == 1
    assert set(rep["membership"]["global"]["attacks"]) == {"lira_online", "lira_offline"}
    assert rep["skipped"] == {} and "canary" not in rep


def test_bad_input_is_one_line(run_dir, tmp_path):
    with pytest.raises(AuditError, match="not a run folder"):
        audit_run(tmp_path / "nothing")
    no_canaries = tmp_path / "no_canaries"
    shutil.copytree(run_dir, no_canaries)
    (no_canaries / "canaries.npz").unlink()
    with pytest.raises(AuditError, match="'canary' does not fit this run: the run had no canary clients"):
        audit_run(no_canaries, attacks=["canary"])
    with pytest.raises(AuditError, match="unknown audit 'magic'"):
        audit_run(no_canaries, attacks=["magic"])
    with pytest.raises(AuditError, match="even"):
        audit_run(no_canaries, shadows=3)
    with pytest.raises(AuditError, match="shadow_training"):
        audit_run(no_canaries, shadow_training="magic")
    (no_canaries / "model.npz").write_bytes(b"tampered")
    with pytest.raises(AuditError, match="SHA-256") as err:
        audit_run(no_canaries, attacks=["loss"])
    assert "\n" not in str(err.value)
    (no_canaries / "model.npz").unlink()
    with pytest.raises(AuditError, match="model.npz"):
        audit_run(no_canaries, attacks=["loss"])
