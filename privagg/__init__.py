"""privagg: privacy-preserving aggregation for federated learning, in one import.

    import privagg
    result = privagg.run_experiment(privagg.build_config(overrides=["secagg.enabled=true",
                                                                     "dp.mode=distributed"]),
                                    out="runs/private")
    print(result.privacy["statement"])

The packages underneath: `fl_core` (federated core), `secagg` (SecAgg+), `dp` (differential privacy),
`audits` (measurements). This face re-exports what a user needs and adds nothing of its own; names are
imported on first use, so `import privagg` (and `privagg --help`) does not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

if TYPE_CHECKING:
    from dp import PrivacyAccountant, calibrate_noise, epsilon_for
    from dp.errors import BudgetExceededError, DPError
    from fl_core import (
        Client,
        ClientUpdate,
        FedAdam,
        FedAvg,
        FederatedServer,
        FedProx,
        FedYogi,
        FLError,
        PrivacySpec,
        RunConfig,
        build_config,
        dataset_from_arrays,
        load_config,
        load_dataset,
        read_run,
        run_experiment,
    )
    from privagg.errors import USER_ERRORS
    from secagg import SecAggConfig, SecAggError, aggregate, secure_sum

_EXPORTS: dict[str, str] = {
    "PrivacyAccountant": "dp", "calibrate_noise": "dp", "epsilon_for": "dp",
    "BudgetExceededError": "dp.errors", "DPError": "dp.errors",
    "Client": "fl_core", "ClientUpdate": "fl_core", "FedAdam": "fl_core", "FedAvg": "fl_core",
    "FederatedServer": "fl_core", "FedProx": "fl_core", "FedYogi": "fl_core", "FLError": "fl_core",
    "PrivacySpec": "fl_core", "RunConfig": "fl_core", "build_config": "fl_core",
    "dataset_from_arrays": "fl_core", "load_config": "fl_core", "load_dataset": "fl_core",
    "read_run": "fl_core", "run_experiment": "fl_core",
    "USER_ERRORS": "privagg.errors",
    "SecAggConfig": "secagg", "SecAggError": "secagg", "aggregate": "secagg", "secure_sum": "secagg",
}  # fmt: skip

__all__ = [
    "USER_ERRORS", "BudgetExceededError", "Client", "ClientUpdate", "DPError", "FLError", "FedAdam", "FedAvg",
    "FedProx", "FedYogi", "FederatedServer", "PrivacyAccountant", "PrivacySpec", "RunConfig", "SecAggConfig",
    "SecAggError", "__version__", "aggregate", "build_config", "calibrate_noise", "dataset_from_arrays",
    "epsilon_for", "load_config", "load_dataset", "read_run", "run_experiment", "secure_sum",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'privagg' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
