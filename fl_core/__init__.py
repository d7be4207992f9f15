"""fl_core: the federated core of privagg.

Clients train locally and answer with model deltas; a server samples cohorts, handles dropouts and
stragglers, aggregates with a `Strategy`, and records every round. `run_experiment(config)` runs a
whole study (FL plus a centralized baseline) from a validated `RunConfig`.
"""

from fl_core.centralized import train_centralized
from fl_core.client import Client
from fl_core.config import RunConfig, build_config, load_config
from fl_core.data import Dataset, dataset_from_arrays, dataset_from_torch, load_dataset, partition
from fl_core.errors import (
    ConfigError,
    DataError,
    FLError,
    PartitionError,
    RunDirectoryError,
    UpdateRejectedError,
)
from fl_core.experiment import ExperimentResult, run_experiment
from fl_core.models import build_model, get_flat, num_parameters, set_flat
from fl_core.sampling import ClientSampler
from fl_core.server import FaultModel, FederatedServer
from fl_core.strategies import FedAdam, FedAvg, FedProx, FedYogi, Strategy, build_strategy
from fl_core.torch_client import TorchClient
from fl_core.types import ClientUpdate, ModelVector, RoundConfig, RoundRecord

__all__ = [
    "Client",
    "ClientSampler",
    "ClientUpdate",
    "ConfigError",
    "DataError",
    "Dataset",
    "ExperimentResult",
    "FLError",
    "FaultModel",
    "FedAdam",
    "FedAvg",
    "FedProx",
    "FedYogi",
    "FederatedServer",
    "ModelVector",
    "PartitionError",
    "RoundConfig",
    "RoundRecord",
    "RunConfig",
    "RunDirectoryError",
    "Strategy",
    "TorchClient",
    "UpdateRejectedError",
    "build_config",
    "build_model",
    "build_strategy",
    "dataset_from_arrays",
    "dataset_from_torch",
    "get_flat",
    "load_config",
    "load_dataset",
    "num_parameters",
    "partition",
    "run_experiment",
    "set_flat",
    "train_centralized",
]
