"""Run config: defaults are the documented default job; bad keys and values are one-line ConfigErrors."""

from __future__ import annotations

from pathlib import Path

import pytest

from fl_core.config import build_config, load_config, parse_override
from fl_core.errors import ConfigError


def test_defaults_are_the_default_job() -> None:
    cfg = build_config()
    assert (cfg.data.dataset, cfg.data.num_clients, cfg.data.partition, cfg.data.alpha) == (
        "digits",
        20,
        "dirichlet",
        0.5,
    )
    assert (cfg.model.name, cfg.strategy.name) == ("cnn", "fedavg")


def test_overrides_are_typed_toml_values() -> None:
    cfg = build_config(
        overrides=[
            "data.num_clients=50",
            "strategy.name=fedprox",
            "train.lr=0.1",
            "centralized.enabled=false",
        ]
    )
    assert cfg.data.num_clients == 50 and cfg.strategy.name == "fedprox" and cfg.train.lr == 0.1
    assert cfg.centralized.enabled is False
    assert parse_override('run.name="x y"') == (["run", "name"], "x y")


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["data.num_clientz=3"], "unknown config key 'data.num_clientz'"),
        (["nosection.x=1"], "unknown config key 'nosection'"),
        (["data.num_clients=0"], "data.num_clients"),
        (["data.num_clients=-4"], "data.num_clients"),
        (["data.alpha=0"], "data.alpha"),
        (["data.dataset=mnist"], "data.dataset"),
        (["model.name=transformer"], "model.name"),
        (["strategy.name=fedsgd"], "strategy.name"),
        (["sampling.dropout_rate=1.0"], "sampling.dropout_rate"),
        (["sampling.clients_per_round=30"], "exceeds data.num_clients=20"),
        (["run.rounds=abc"], "run.rounds"),
        (["novalue"], "key=value"),
        (["data=3"], "config key 'data'"),
    ],
)
def test_bad_values_name_the_key(overrides: list[str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_config(overrides=overrides)
    msg = str(info.value)
    assert needle in msg and "\n" not in msg


def test_load_config_file_and_errors(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[data]\ndataset = "breast_cancer"\nnum_clients = 5\n[model]\nname = "mlp"\n')
    cfg = load_config(p, ["run.rounds=2"])
    assert (cfg.data.dataset, cfg.data.num_clients, cfg.model.name, cfg.run.rounds) == (
        "breast_cancer",
        5,
        "mlp",
        2,
    )
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_resolved_config_round_trips_through_toml(tmp_path: Path) -> None:
    import tomli_w

    cfg = build_config(overrides=["sampling.deadline_s=2.5"])
    p = tmp_path / "r.toml"
    p.write_text(tomli_w.dumps(cfg.to_dict()))
    assert load_config(p) == cfg
