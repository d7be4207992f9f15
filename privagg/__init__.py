"""privagg: privacy-preserving aggregation for federated learning, in one import.

    import privagg
    result = privagg.run_experiment(privagg.build_config(overrides=["secagg.enabled=true",
                                                                     "dp.mode=distributed"]))
    print(result.privacy["statement"])

The packages underneath: `fl_core` (federated core), `secagg` (SecAgg+), `dp` (differential privacy),
`audits` (measurements). This face re-exports what a user needs and adds nothing of its own.
"""

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
    RunConfig,
    build_config,
    dataset_from_arrays,
    load_config,
    load_dataset,
    run_experiment,
)
from fl_core.privacy import PrivacySpec
from privagg.errors import USER_ERRORS
from secagg import SecAggConfig, SecAggError, aggregate, secure_sum

__version__ = "0.1.0"

__all__ = [
    "USER_ERRORS", "BudgetExceededError", "Client", "ClientUpdate", "DPError", "FLError", "FedAdam", "FedAvg",
    "FedProx", "FedYogi", "FederatedServer", "PrivacyAccountant", "PrivacySpec", "RunConfig", "SecAggConfig",
    "SecAggError", "aggregate", "build_config", "calibrate_noise", "dataset_from_arrays", "epsilon_for",
    "load_config", "load_dataset", "run_experiment", "secure_sum",
]  # fmt: skip
