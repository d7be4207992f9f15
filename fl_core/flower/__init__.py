"""privagg inside Flower (flwr >= 1.42, Message API): secure aggregation and client-level DP as a strategy
wrapper on the server and a mod on the client, configured from `[tool.flwr.app.config]`.

    # server_app.py
    strategy = PrivAggStrategy(FedAvg(fraction_train=1.0), context.run_config)
    strategy.start(grid=grid, initial_arrays=arrays, num_rounds=3)

    # client_app.py
    @app.train(mods=[privagg_mod])
    def train(msg, context): ...

    # pyproject.toml
    [tool.flwr.app.config]
    secagg.enabled = true
    dp.mode = "distributed"
    dp.noise_multiplier = 1.0

`PldAccountant` gives Flower's own DP wrappers privagg's PLD accounting (Flower's `PrivacyAccountant`).
Install with `pip install "privagg[flower]"`.
"""

from __future__ import annotations

try:
    import flwr  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "fl_core.flower needs Flower: pip install 'privagg[flower]' (flwr>=1.42,<1.43)"
    ) from exc

from typing import TYPE_CHECKING, Any

# Each name imports its module on first use: a ClientApp that only needs `privagg_mod` starts without
# dp_accounting and scipy (a SuperNode may start a fresh process for every message).
_EXPORTS = {
    "FlowerPrivacy": "fl_core.flower.settings",
    "PldAccountant": "fl_core.flower.accountant",
    "PrivAggStrategy": "fl_core.flower.strategy",
    "RoundLog": "fl_core.flower.strategy",
    "dp_sgd_record": "fl_core.flower.protocol",
    "node_epsilon": "fl_core.flower.mod",
    "privagg_config": "fl_core.flower.settings",
    "privagg_mod": "fl_core.flower.mod",
}
__all__ = [
    "FlowerPrivacy",
    "PldAccountant",
    "PrivAggStrategy",
    "RoundLog",
    "dp_sgd_record",
    "node_epsilon",
    "privagg_config",
    "privagg_mod",
]

if TYPE_CHECKING:
    from fl_core.flower.accountant import PldAccountant
    from fl_core.flower.mod import node_epsilon, privagg_mod
    from fl_core.flower.protocol import dp_sgd_record
    from fl_core.flower.settings import FlowerPrivacy, privagg_config
    from fl_core.flower.strategy import PrivAggStrategy, RoundLog


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fl_core.flower' has no attribute {name!r}")
