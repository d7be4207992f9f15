"""fl_core: the federated core of privagg.

Clients train locally and answer with model deltas; a server samples cohorts, handles dropouts and
stragglers, aggregates with a `Strategy`, and records every round. `run_experiment(config)` runs a
whole study (FL plus a centralized baseline) from a validated `RunConfig`. What depends on the privacy
mode is a `Mechanism`, how updates travel an `Aggregator`; the server's round is written once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fl_core.aggregators import (
        Aggregator,
        PlaintextAggregator,
        SecureAggregator,
        Transmission,
    )
    from fl_core.centralized import (
        train_centralized,
    )
    from fl_core.client import (
        Client,
    )
    from fl_core.config import (
        RunConfig,
        build_config,
        load_config,
    )
    from fl_core.data import (
        Dataset,
        dataset_from_arrays,
        dataset_from_torch,
        load_dataset,
        partition,
    )
    from fl_core.errors import (
        ConfigError,
        DataError,
        FLError,
        PartitionError,
        RunDirectoryError,
        TrainingDivergedError,
        UpdateRejectedError,
    )
    from fl_core.experiment import (
        ExperimentResult,
        run_experiment,
    )
    from fl_core.mechanisms import (
        Contribution,
        Mechanism,
        RoundContext,
        Sums,
        VectorLayout,
        build_mechanism,
    )
    from fl_core.models import (
        build_model,
        get_flat,
        num_parameters,
        set_flat,
    )
    from fl_core.privacy import (
        PrivacySpec,
    )
    from fl_core.recipes import (
        RoundAbortedError,
        distributed_dp_sum,
    )
    from fl_core.rundir import (
        RunFolder,
        read_run,
    )
    from fl_core.sampling import (
        ClientSampler,
    )
    from fl_core.server import (
        FaultModel,
        FederatedServer,
        build_aggregator,
    )
    from fl_core.strategies import (
        FedAdam,
        FedAvg,
        FedProx,
        FedYogi,
        Strategy,
        build_strategy,
    )
    from fl_core.torch_client import (
        TorchClient,
    )
    from fl_core.types import (
        ClientUpdate,
        ModelVector,
        RoundConfig,
        RoundRecord,
    )

#: public name -> the module that defines it (imported on first use: `import fl_core` stays light)
_EXPORTS: dict[str, str] = {
    "train_centralized": "fl_core.centralized",
    "Client": "fl_core.client",
    "RunConfig": "fl_core.config",
    "build_config": "fl_core.config",
    "load_config": "fl_core.config",
    "Dataset": "fl_core.data",
    "dataset_from_arrays": "fl_core.data",
    "dataset_from_torch": "fl_core.data",
    "load_dataset": "fl_core.data",
    "partition": "fl_core.data",
    "ConfigError": "fl_core.errors",
    "DataError": "fl_core.errors",
    "FLError": "fl_core.errors",
    "PartitionError": "fl_core.errors",
    "RunDirectoryError": "fl_core.errors",
    "UpdateRejectedError": "fl_core.errors",
    "TrainingDivergedError": "fl_core.errors",
    "ExperimentResult": "fl_core.experiment",
    "run_experiment": "fl_core.experiment",
    "build_model": "fl_core.models",
    "get_flat": "fl_core.models",
    "num_parameters": "fl_core.models",
    "set_flat": "fl_core.models",
    "ClientSampler": "fl_core.sampling",
    "FaultModel": "fl_core.server",
    "FederatedServer": "fl_core.server",
    "build_aggregator": "fl_core.server",
    "FedAdam": "fl_core.strategies",
    "FedAvg": "fl_core.strategies",
    "FedProx": "fl_core.strategies",
    "FedYogi": "fl_core.strategies",
    "Strategy": "fl_core.strategies",
    "build_strategy": "fl_core.strategies",
    "TorchClient": "fl_core.torch_client",
    "ClientUpdate": "fl_core.types",
    "ModelVector": "fl_core.types",
    "RoundConfig": "fl_core.types",
    "RoundRecord": "fl_core.types",
    "PrivacySpec": "fl_core.privacy",
    "Mechanism": "fl_core.mechanisms",
    "Contribution": "fl_core.mechanisms",
    "RoundContext": "fl_core.mechanisms",
    "Sums": "fl_core.mechanisms",
    "VectorLayout": "fl_core.mechanisms",
    "build_mechanism": "fl_core.mechanisms",
    "Aggregator": "fl_core.aggregators",
    "PlaintextAggregator": "fl_core.aggregators",
    "SecureAggregator": "fl_core.aggregators",
    "Transmission": "fl_core.aggregators",
    "RunFolder": "fl_core.rundir",
    "read_run": "fl_core.rundir",
    "distributed_dp_sum": "fl_core.recipes",
    "RoundAbortedError": "fl_core.recipes",
}
__all__ = [
    "Aggregator",
    "build_aggregator",
    "build_config",
    "build_mechanism",
    "build_model",
    "build_strategy",
    "Client",
    "ClientSampler",
    "ClientUpdate",
    "ConfigError",
    "Contribution",
    "DataError",
    "Dataset",
    "dataset_from_arrays",
    "dataset_from_torch",
    "ExperimentResult",
    "FaultModel",
    "FedAdam",
    "FedAvg",
    "FederatedServer",
    "FedProx",
    "FedYogi",
    "FLError",
    "get_flat",
    "load_config",
    "load_dataset",
    "Mechanism",
    "ModelVector",
    "num_parameters",
    "partition",
    "PartitionError",
    "PlaintextAggregator",
    "PrivacySpec",
    "read_run",
    "distributed_dp_sum",
    "RoundAbortedError",
    "RoundConfig",
    "RoundContext",
    "RoundRecord",
    "run_experiment",
    "RunConfig",
    "RunDirectoryError",
    "RunFolder",
    "SecureAggregator",
    "set_flat",
    "Strategy",
    "Sums",
    "TorchClient",
    "train_centralized",
    "TrainingDivergedError",
    "Transmission",
    "UpdateRejectedError",
    "VectorLayout",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fl_core' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if module.endswith("." + name) else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
