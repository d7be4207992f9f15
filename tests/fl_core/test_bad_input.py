"""Bad input is refused before anything is written: one line on stderr, exit code 2, no folder left.
Plus fuzzing: the config loader and the wire decoders raise only their typed errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fl_core.config import build_config
from fl_core.errors import ConfigError, UpdateRejectedError
from fl_core.types import ClientUpdate, RoundConfig
from fl_core.wire import decode_global, decode_update, encode_global, encode_update
from privagg.cli import main

TINY = ["data.dataset=breast_cancer", "model.name=logreg", "data.num_clients=4", "run.rounds=2",
        "centralized.enabled=false"]  # fmt: skip


@pytest.mark.parametrize(
    ("sets", "needle"),
    [
        (["run.rounds=true"], "must be a number, got true"),
        (["dp.mode=central", "dp.clip_norm=inf"], "finite number"),
        (["secagg.clip_range=inf"], "finite number"),
        (["dp.mode=distributed"], "needs secagg.enabled=true"),
        (["devices.mix={quantum_phone = 1}"], "quantum_phone"),
        (["data.num_clients=400"], "cannot give num_clients=400"),
        (["secagg.enabled=true", "sampling.clients_per_round=1"], "a sum of one client"),
        (["secagg.enabled=true", "data.num_clients=1"], "a sum of one client"),
        (["secagg.enabled=true", "secagg.corrupt_fraction=0.45", "secagg.dropout_tolerance=0.5",
          "data.num_clients=20"], "no safe parameters"),
    ],
)  # fmt: skip
def test_refused_before_anything_is_written(tmp_path: Path, capsys, sets: list[str], needle: str) -> None:
    args = [x for item in [*TINY, *sets] for x in ("--set", item)]
    out = tmp_path / "r"
    assert main(["run", *args, "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and err.startswith("error:")
    assert len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # no run folder, no .partial


def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"[run]\nname = \"\xff\xfe\"\n")
    assert main(["run", str(bad), "--out", str(tmp_path / "r"), "-q"]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    assert not (tmp_path / "r.partial").exists()


def test_out_naming_an_existing_file_is_refused_up_front(tmp_path: Path, capsys) -> None:
    target = tmp_path / "taken"
    target.write_text("x")
    args = [x for item in TINY for x in ("--set", item)]
    assert main(["run", *args, "--out", str(target), "-q"]) == 2
    assert "not a folder" in capsys.readouterr().err and target.read_text() == "x"


SECTIONS = ["run", "data", "model", "train", "strategy", "sampling", "dp", "secagg", "devices", "audit", "x"]
KEYS = ["rounds", "seed", "mode", "clip_norm", "num_clients", "name", "rate", "enabled", "mix", "x"]
VALUES = st.one_of(
    st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers()),
)  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(SECTIONS), st.dictionaries(st.sampled_from(KEYS), VALUES), max_size=4))
def test_config_loader_fuzz_raises_only_config_errors(data: dict) -> None:
    try:
        build_config(data)
    except ConfigError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 3))
def test_wire_decoders_fuzz_raise_only_typed_errors(blob: bytes, where: int) -> None:
    good = encode_update(ClientUpdate(1, np.ones(4, np.float32), 3, {"train_loss": 0.5}), 2)
    data = good[:where * 8] + blob if where else blob
    try:
        decode_update(data, expected_round=2, expected_size=4)
    except UpdateRejectedError:
        pass
    glob = encode_global(np.ones(4, np.float32), RoundConfig(round=1))
    try:
        decode_global(glob[: where * 8] + blob)
    except UpdateRejectedError:
        pass
