"""`privagg budget`: PLD below RDP, calibration never overshoots, bad input exits 2 with the value named."""

from __future__ import annotations

import json

from privagg.cli import main


def _json(capsys, args: list[str]) -> dict:
    assert main(["budget", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_epsilon_for_noise_pld_below_rdp(capsys) -> None:
    out = _json(capsys, ["-z", "1.0", "--rate", "0.01", "-r", "1000", "-d", "1e-5"])
    assert 0 < out["epsilon_pld"] < out["epsilon_rdp"]
    # Abadi et al. 2016-style setting; PLD about 1.8 here (RDP ~2.1), see docs/dp.md
    assert 1.5 < out["epsilon_pld"] < 2.1


def test_noise_for_target_never_overshoots(capsys) -> None:
    out = _json(capsys, ["-e", "3", "--rate", "0.01", "-r", "1000"])
    assert out["epsilon_pld_at_pld_noise"] <= 3.0
    assert out["noise_multiplier_rdp"] >= out["noise_multiplier_pld"]


def test_bad_values_exit_2_naming_them(capsys) -> None:
    assert main(["budget", "-z", "-1", "--rate", "0.01", "-r", "10"]) == 2
    assert "-1" in capsys.readouterr().err
    assert main(["budget", "-z", "1", "--rate", "1.5", "-r", "10"]) == 2
    assert "1.5" in capsys.readouterr().err
    assert main(["budget", "--rate", "0.1", "-r", "10"]) == 2  # neither -z nor -e
