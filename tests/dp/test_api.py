"""The public face of dp: every exported name resolves, and dp never imports the packages above it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dp

DP_DIR = Path(dp.__file__).parent


def test_every_exported_name_resolves() -> None:
    for name in dp.__all__:
        assert getattr(dp, name) is not None, name
    with pytest.raises(AttributeError, match="nope"):
        _ = dp.nope


@pytest.mark.parametrize("path", sorted(DP_DIR.glob("*.py")), ids=lambda p: p.name)
def test_no_upward_imports(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            forbidden = {"fl_core", "secagg", "audits", "privagg", "pickle", "random"}
            assert top not in forbidden, (path.name, name)


def test_error_hierarchy() -> None:
    assert issubclass(dp.InvalidPrivacyParameterError, dp.DPError)
    assert issubclass(dp.InvalidPrivacyParameterError, ValueError)
    for cls in (dp.BudgetExceededError, dp.CalibrationError, dp.UnsupportedModelError):
        assert issubclass(cls, dp.DPError)
    assert issubclass(dp.DeltaWarning, UserWarning)
