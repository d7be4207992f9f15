"""privagg's settings from Flower's run config (`[tool.flwr.app.config]`, flat dotted keys).

Flower flattens the app's config table, so `dp.mode = "distributed"` and `secagg.enabled = true` under
`[tool.flwr.app.config]` arrive as the keys "dp.mode" and "secagg.enabled": the same names as privagg's
own run config, validated by the same rules (`fl_core.config.RunConfig`). Keys whose first part is not a
privagg section (Flower's own `num-server-rounds`, the app's keys) are left alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fl_core.config import RunConfig, build_config, set_dotted
from fl_core.errors import ConfigError
from fl_core.privacy import PrivacySpec, spec_from_config
from fl_core.sampling import ClientSampler

SECTIONS = frozenset(RunConfig.model_fields)
DEFAULT_WEIGHT_CAP = 1000


def privagg_config(run_config: Mapping[str, Any]) -> RunConfig:
    """The privagg RunConfig that Flower's flat run config describes; ConfigError with a one-line reason."""
    data: dict[str, Any] = {}
    for key, value in run_config.items():
        if not isinstance(key, str) or key.split(".", 1)[0] not in SECTIONS or "." not in key:
            continue
        set_dotted(data, key, value)
    rounds = run_config.get("num-server-rounds")
    if isinstance(rounds, int) and not isinstance(rounds, bool) and rounds > 0 and "run" not in data:
        data["run"] = {"rounds": rounds}
    try:
        return build_config(data)
    except ConfigError as exc:
        raise ConfigError(f"[tool.flwr.app.config]: {exc}") from None


@dataclass(frozen=True)
class FlowerPrivacy:
    """What the server wrapper and the client mod must agree on, derived on each side from the same run
    config (never taken from the server's messages: a client checks what it is asked against it)."""

    config: RunConfig

    @classmethod
    def from_run_config(cls, run_config: Mapping[str, Any]) -> FlowerPrivacy:
        return cls(privagg_config(run_config))

    @property
    def secagg(self) -> bool:
        return self.config.secagg.enabled

    @property
    def mode(self) -> str:
        return self.config.dp.mode

    def sampler(self, n: int, population: int) -> ClientSampler:
        """How this round's cohort was drawn, as the accountant must see it: privagg draws it itself
        (`PrivAggStrategy`, from the OS's CSPRNG) by `sampling.mode`: "poisson" with `sampling.rate`
        (amplification against observers of the model), or "fixed" with `sampling.clients_per_round`
        (every node when unset, as here: n of `population`)."""
        s = self.config.sampling
        if s.mode == "poisson":
            return ClientSampler(num_clients=population, mode="poisson", rate=s.rate)
        return ClientSampler(num_clients=max(population, n), mode="fixed", clients_per_round=max(n, 1))

    def noise_multiplier(self, clients_per_round: int, num_clients: int) -> float:
        """z as configured, or calibrated to dp.target_epsilon over run.rounds (the same rules as
        `privagg run`: distributed mode calibrates against the server, Gaussian(z/2) every round)."""
        d = self.config.dp
        if d.noise_multiplier is not None or d.target_epsilon is None:
            return d.noise_multiplier if d.noise_multiplier is not None else 1.0
        from dp.calibration import calibrate_noise
        from dp.errors import DPError

        try:
            if d.mode == "distributed":
                return 2.0 * calibrate_noise(d.target_epsilon, d.delta, 1.0, self.config.run.rounds)
            # the config allows a target only with Poisson sampling (fl_core.config): rate q
            return calibrate_noise(
                d.target_epsilon, d.delta, self.config.sampling.rate, self.config.run.rounds
            )
        except DPError as exc:
            raise ConfigError(f"dp.target_epsilon={d.target_epsilon}: {exc}") from None

    def spec(self, clients_per_round: int, num_clients: int) -> PrivacySpec:
        """The PrivacySpec of a round of `clients_per_round` out of `num_clients` nodes."""
        if self.mode == "local" and self.config.dp.noise_multiplier is None:
            raise ConfigError(
                "dp.mode='local' under Flower needs dp.noise_multiplier: the server cannot calibrate to a "
                "target epsilon without the nodes' dataset sizes (each node keeps its own ledger)"
            )
        cap = self.config.secagg.weight_cap or DEFAULT_WEIGHT_CAP
        z = self.noise_multiplier(clients_per_round, num_clients)
        return spec_from_config(self.config, z, cap)
