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

from fl_core.flower.accountant import PldAccountant
from fl_core.flower.mod import node_epsilon, privagg_mod
from fl_core.flower.protocol import dp_sgd_record
from fl_core.flower.settings import FlowerPrivacy, privagg_config
from fl_core.flower.strategy import PrivAggStrategy, RoundLog

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
