"""The run configuration, validated by pydantic: unknown keys and bad values are errors naming the key.

The defaults are the embedded default job: digits, 20 clients, Dirichlet(0.5) label skew, the small CNN,
FedAvg, every client every round, next to a centralized baseline.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from fl_core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bools_for_numbers(cls, data: Any) -> Any:
        """TOML `true` is not a number: `run.rounds = true` must not run one round."""
        if isinstance(data, dict):
            for key, value in data.items():
                field = cls.model_fields.get(key)
                if field is None or not isinstance(value, bool):
                    continue
                if "bool" not in str(field.annotation):
                    raise ValueError(f"{key} must be a number, got {str(value).lower()}")
        return data


class RunSection(_Section):
    name: str = "default"
    seed: int = Field(0, ge=0)
    rounds: PositiveInt = 30
    threads: PositiveInt = 1


class DataSection(_Section):
    #: a bundled dataset (`fl_core.data.DATASETS`), a MedMNIST file "medmnist:PATH", or your own:
    #: "package.module:function" returning a `fl_core.data.Dataset` (called with test_fraction=, seed=)
    dataset: str = "digits"
    num_clients: PositiveInt = 20
    partition: Literal["iid", "dirichlet", "shards", "quantity", "natural"] = "dirichlet"
    alpha: PositiveFloat = 0.5
    shards_per_client: PositiveInt = 2
    quantity_sigma: PositiveFloat = 1.0
    min_size: PositiveInt = 2
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, v: str) -> str:
        from fl_core.data.datasets import dataset_problem

        problem = dataset_problem(v)
        if problem is not None:
            raise ValueError(problem)
        return v


def _is_reference(v: str) -> bool:
    """'package.module:function' (an import path) or 'prefix:argument' (a loader with an argument)."""
    head, sep, tail = v.partition(":")
    return bool(sep and head and tail)


MODEL_NAMES = ("logreg", "linear", "mlp", "cnn", "resnet", "conv1d", "gru")


class ModelSection(_Section):
    #: a model of the zoo, or "package.module:function" called as function(input_shape, num_outputs)
    name: str = "cnn"

    @field_validator("name")
    @classmethod
    def _known_model(cls, v: str) -> str:
        if v in MODEL_NAMES or _is_reference(v):
            return v
        raise ValueError(
            f"unknown model {v!r}: use one of {', '.join(MODEL_NAMES)} "
            "or an import path 'package.module:function'"
        )


class TrainSection(_Section):
    local_epochs: PositiveInt = 2
    batch_size: PositiveInt = 16
    lr: PositiveFloat = 0.05
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    upload_bits: Literal[32, 16, 8] = 32


class StrategySection(_Section):
    name: Literal["fedavg", "fedprox", "fedadam", "fedyogi"] = "fedavg"
    server_lr: PositiveFloat | None = None
    proximal_mu: float = Field(0.01, ge=0.0)
    beta1: float = Field(0.9, ge=0.0, lt=1.0)
    beta2: float = Field(0.99, ge=0.0, lt=1.0)
    tau: PositiveFloat = 1e-3


class SamplingSection(_Section):
    mode: Literal["fixed", "poisson"] = "fixed"
    clients_per_round: PositiveInt | None = None
    rate: float = Field(0.5, gt=0.0, le=1.0)
    dropout_rate: float = Field(0.0, ge=0.0, lt=1.0)
    deadline_s: PositiveFloat | None = None


class CentralizedSection(_Section):
    enabled: bool = True


class DPSection(_Section):
    """Differential privacy. client-level: central | distributed; sample-level: local (DP-SGD)."""

    mode: Literal["none", "central", "distributed", "local"] = "none"
    noise_multiplier: PositiveFloat | None = None
    target_epsilon: PositiveFloat | None = None
    clip_norm: PositiveFloat = 1.0
    adaptive_clipping: bool = False
    target_quantile: float = Field(0.5, gt=0.0, lt=1.0)
    clip_learning_rate: PositiveFloat = 0.2
    #: std of the noise on the adaptive-clipping count (Andrew et al. 2021); default: expected cohort / 20
    count_stddev: PositiveFloat | None = None
    delta: float = Field(1e-5, gt=0.0, lt=1.0)
    max_epsilon: PositiveFloat | None = None
    seed: int | None = Field(None, ge=0)
    mechanism: Literal["gaussian", "discrete_gaussian"] = "gaussian"
    ddg_bits: int = Field(16, ge=2, le=32)

    @model_validator(mode="after")
    def _noise_xor_target(self) -> DPSection:
        if self.noise_multiplier is not None and self.target_epsilon is not None:
            raise ValueError("give dp.noise_multiplier or dp.target_epsilon, not both")
        return self


class SecAggSection(_Section):
    """Secure aggregation (SecAgg+): the server sees only masked vectors and their sum."""

    enabled: bool = False
    clip_range: PositiveFloat = 1.0
    weight_cap: PositiveInt | None = None
    dropout_tolerance: float = Field(0.3, ge=0.0, lt=1.0)
    corrupt_fraction: float = Field(0.05, ge=0.0, lt=0.5)


class AuditSection(_Section):
    """What a run keeps for audits: canary clients (Andrew et al. 2024), each inserted with probability 1/2,
    that always send `canary_norm` times a fixed random unit vector (default norm: dp.clip_norm)."""

    canary_clients: int = Field(0, ge=0)
    canary_norm: PositiveFloat | None = None


class DevicesSection(_Section):
    """Edge-device mix: profile name -> weight (empty: every client is this machine, never failing)."""

    mix: dict[str, float] = Field(default_factory=dict)


class RunConfig(_Section):
    """The whole experiment; `privagg run` prints it resolved and saves it as config.toml."""

    run: RunSection = RunSection()
    data: DataSection = DataSection()
    model: ModelSection = ModelSection()
    train: TrainSection = TrainSection()
    strategy: StrategySection = StrategySection()
    sampling: SamplingSection = SamplingSection()
    centralized: CentralizedSection = CentralizedSection()
    dp: DPSection = DPSection()
    secagg: SecAggSection = SecAggSection()
    devices: DevicesSection = DevicesSection()
    audit: AuditSection = AuditSection()

    @model_validator(mode="after")
    def _cross_checks(self) -> RunConfig:
        m = self.sampling.clients_per_round
        if m is not None and m > self.data.num_clients:
            raise ValueError(
                f"sampling.clients_per_round={m} exceeds data.num_clients={self.data.num_clients}"
            )
        if self.dp.mode == "local" and self.strategy.name == "fedprox":
            raise ValueError("dp.mode='local' (Opacus DP-SGD) does not support FedProx's proximal term")
        if self.dp.mechanism == "discrete_gaussian" and self.dp.target_epsilon is not None:
            raise ValueError(
                "dp.target_epsilon calibrates the Gaussian mechanism; give dp.noise_multiplier "
                "for dp.mechanism='discrete_gaussian'"
            )
        if self.dp.mode in ("central", "distributed") and self.dp.target_epsilon is not None:
            if self.sampling.mode != "poisson":
                raise ValueError("dp.target_epsilon calibration needs sampling.mode='poisson'")
        _check_privacy(self)
        if self.audit.canary_clients and self.dp.mode == "local":
            raise ValueError(
                "audit.canary_clients audits client-level privacy; under dp.mode='local' (sample-level "
                "DP-SGD) audit with the membership attacks instead"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """Resolved config as plain data, with None values dropped (TOML has no null)."""
        return _drop_none(self.model_dump(mode="json"))


def _check_privacy(cfg: RunConfig) -> None:
    """The privacy rules live in one place, `PrivacySpec`: build it from the config to apply them here."""
    from fl_core.privacy import spec_from_config

    try:
        spec = spec_from_config(cfg, cfg.dp.noise_multiplier or 1.0, cfg.secagg.weight_cap or 1)
        spec.check_setup(sampling_mode=cfg.sampling.mode, upload_bits=cfg.train.upload_bits)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


def _drop_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    return obj


def _format_error(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        return f"unknown config key {loc!r}"
    got = first.get("input")
    where = f"config key {loc!r}: " if loc else "config: "
    if isinstance(got, dict | list) or got is None:
        return f"{where}{msg}"
    return f"{where}{msg} (got {got!r})"


def parse_override(item: str) -> tuple[list[str], Any]:
    """`a.b=value` -> (["a", "b"], value); the value is read as TOML (numbers, booleans, quoted strings)
    and falls back to a bare string."""
    if "=" not in item:
        raise ConfigError(f"--set expects key=value, got {item!r}")
    key, raw = item.split("=", 1)
    path = key.strip().split(".")
    if not all(path):
        raise ConfigError(f"--set has an empty key part in {item!r}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return path, value


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """data["a"]["b"] = value for key "a.b", creating sections; ConfigError for an empty part or a key
    that runs through a value (shared by --set overrides and sweep grids)."""
    parts = key.split(".")
    if not all(parts):
        raise ConfigError(f"config key {key!r} has an empty part")
    node = data
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"config key {key!r}: {part!r} is not a section")
        node = nxt
    node[parts[-1]] = value


def build_config(data: dict[str, Any] | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Validate a config dict plus `key=value` overrides; raises ConfigError with a one-line message."""
    merged: dict[str, Any] = _deep_copy(data or {})
    for item in overrides or []:
        path, value = parse_override(item)
        try:
            set_dotted(merged, ".".join(path), value)
        except ConfigError as exc:
            raise ConfigError(f"--set {item!r}: {exc}") from None
    try:
        return RunConfig.model_validate(merged)
    except ValidationError as err:
        raise ConfigError(_format_error(err)) from None


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Read a TOML file (or nothing: the default job) and apply overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} does not exist")
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except UnicodeDecodeError as err:
            where = f"{err.reason} at byte {err.start}"
            raise ConfigError(f"config file {str(p)!r} is not UTF-8 text: {where}") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"config file {str(p)!r} is not valid TOML: {err}") from None
    return build_config(data, overrides)


def _deep_copy(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _deep_copy(v) for k, v in obj.items()}
    return obj
