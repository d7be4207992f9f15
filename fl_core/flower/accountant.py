"""`PldAccountant`: Flower's `PrivacyAccountant` protocol (`flwr.supercore.privacy_accounting`) on privagg's
PLD accountant (`dp.accountant.PrivacyAccountant`, dp_accounting's privacy loss distributions).

Flower's own DP wrappers (`DifferentialPrivacyServerSideFixedClipping` and friends) ship an RDP
accountant; this one gives them the tighter PLD epsilon (Koskela et al. 2020; the Gaussian in closed
form), with the same events: Poisson sampling under add/remove, sampling without replacement under
replace-one (privagg's `fixed_cohort_round`), or no amplification.
"""

from __future__ import annotations

import json
import math
from typing import Any

from flwr.supercore.privacy_accounting import (
    GaussianPrivacyEvent,
    NeighboringRelation,
    PrivacyConfig,
    PrivacySpent,
    SamplingMethod,
)

from dp import events as dp_events
from dp.accountant import PrivacyAccountant
from dp.errors import DPError, InvalidPrivacyParameterError

_STATE_VERSION = 1


class PldAccountant:
    """Cumulative client-level privacy under Flower's accounting model, computed by PLD."""

    def __init__(self, config: PrivacyConfig) -> None:
        if not isinstance(config, PrivacyConfig):
            raise InvalidPrivacyParameterError(
                f"config must be a flwr PrivacyConfig, got {type(config).__name__}"
            )
        self._config = config
        replace = config.neighboring_relation is NeighboringRelation.REPLACE_ONE
        self._acc = PrivacyAccountant(
            delta=config.target_delta, neighbouring="replace" if replace else "add_or_remove"
        )
        self._events: list[tuple[GaussianPrivacyEvent, int]] = []

    @property
    def config(self) -> PrivacyConfig:
        return self._config

    @property
    def num_releases(self) -> int:
        return sum(count for _, count in self._events)

    def _event(self, event: GaussianPrivacyEvent) -> Any:
        if not isinstance(event, GaussianPrivacyEvent):
            raise InvalidPrivacyParameterError(
                f"event must be a GaussianPrivacyEvent, got {type(event).__name__}"
            )
        if event.population_size != self._config.population_size:
            raise InvalidPrivacyParameterError(
                f"event population {event.population_size} differs from the config's "
                f"{self._config.population_size}"
            )
        z, m, n = event.noise_multiplier, event.sample_size, event.population_size
        method = self._config.sampling_method
        if method is SamplingMethod.POISSON:
            return dp_events.poisson_round(z, m / n)
        if method is SamplingMethod.WITHOUT_REPLACEMENT:
            return dp_events.fixed_cohort_round(z, m, n)
        return dp_events.gaussian(z)

    def compose(self, event: GaussianPrivacyEvent, count: int = 1) -> None:
        self._acc.commit(self._event(event), count=_count(count), label="flower release")
        self._events.append((event, count))

    def get_epsilon(self, delta: float) -> float:
        return float(self._acc.epsilon(delta)) if self._events else 0.0

    def get_delta(self, epsilon: float) -> float:
        return float(self._acc.delta_for(epsilon)) if self._events else 0.0

    def get_privacy_spent(self, delta: float | None = None) -> PrivacySpent:
        d = self._config.target_delta if delta is None else delta
        return PrivacySpent(
            epsilon=self.get_epsilon(d), delta=d, num_releases=self.num_releases, accounting_method="pld"
        )

    def would_exceed(
        self, event: GaussianPrivacyEvent, max_epsilon: float | None = None, count: int = 1
    ) -> bool:
        cap = self._config.max_epsilon if max_epsilon is None else max_epsilon
        if cap is None:
            raise InvalidPrivacyParameterError(
                "max_epsilon must be given in PrivacyConfig or to would_exceed()"
            )
        projected = self._acc.projected_epsilon(
            self._event(event), self._config.target_delta, count=_count(count)
        )
        return bool(projected > cap)

    def state_dict(self) -> dict[str, object]:
        c = self._config
        return {
            "schema_version": _STATE_VERSION,
            "backend": "pld",
            "config": {
                "target_delta": c.target_delta,
                "population_size": c.population_size,
                "neighboring_relation": c.neighboring_relation.value,
                "sampling_method": c.sampling_method.value,
                "max_epsilon": c.max_epsilon,
            },
            "compositions": [
                {"noise_multiplier": e.noise_multiplier, "sample_size": e.sample_size, "count": k}
                for e, k in self._events
            ],
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Replay a `state_dict` (its config must equal this accountant's)."""
        try:
            if state["schema_version"] != _STATE_VERSION or state["backend"] != "pld":
                raise InvalidPrivacyParameterError(f"not a PldAccountant state: {json.dumps(state)[:80]}")
            if state["config"] != self.state_dict()["config"]:
                raise InvalidPrivacyParameterError(
                    "the state's privacy config differs from this accountant's"
                )
            comps = list(state["compositions"])  # type: ignore[call-overload]
            fresh = PldAccountant(self._config)
            for c in comps:
                ev = GaussianPrivacyEvent(
                    float(c["noise_multiplier"]), int(c["sample_size"]), self._config.population_size
                )
                fresh.compose(ev, int(c["count"]))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, DPError):
                raise
            raise InvalidPrivacyParameterError(f"malformed PldAccountant state: {exc}") from None
        self._acc, self._events = fresh._acc, fresh._events


def _count(count: int) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1 or not math.isfinite(count):
        raise InvalidPrivacyParameterError(f"count must be an int >= 1, got {count!r}")
    return count
