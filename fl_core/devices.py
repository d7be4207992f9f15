"""Edge-device profiles and the simulated wall time of a client's round.

A client's simulated time is its measured compute time on this machine times the profile's slowdown,
plus the time its real message bytes take over the profile's links, plus per-message latency. The
profiles are order-of-magnitude assumptions for device classes (documented in the README), not
measurements of specific devices: they make heterogeneity, stragglers and dropouts concrete.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from fl_core.errors import ConfigError


@dataclass(frozen=True)
class DeviceProfile:
    """One device class. Bandwidths in megabits per second; availability = P(online when sampled);
    failure_rate = P(it vanishes mid-round once it has started)."""

    name: str
    slowdown: float
    up_mbps: float
    down_mbps: float
    latency_s: float
    availability: float
    failure_rate: float

    def __post_init__(self) -> None:
        for key in ("slowdown", "up_mbps", "down_mbps"):
            v = getattr(self, key)
            if not np.isfinite(v) or v <= 0:
                raise ConfigError(f"device {self.name!r}: {key} must be > 0, got {v}")
        if not self.latency_s >= 0:
            raise ConfigError(f"device {self.name!r}: latency_s must be >= 0, got {self.latency_s}")
        if not 0.0 < self.availability <= 1.0:
            raise ConfigError(
                f"device {self.name!r}: availability must be in (0, 1], got {self.availability}"
            )
        if not 0.0 <= self.failure_rate < 1.0:
            raise ConfigError(
                f"device {self.name!r}: failure_rate must be in [0, 1), got {self.failure_rate}"
            )

    def round_time(self, compute_s: float, bytes_down: int, bytes_up: int, messages: int = 2) -> float:
        """Simulated seconds: scaled compute + transfer of the real byte counts + latency per message."""
        transfer = 8.0 * bytes_down / (self.down_mbps * 1e6) + 8.0 * bytes_up / (self.up_mbps * 1e6)
        return compute_s * self.slowdown + transfer + messages * self.latency_s


#: Seven device classes, from a wired edge gateway to a microcontroller-class sensor.
PROFILES: dict[str, DeviceProfile] = {
    p.name: p
    for p in (
        DeviceProfile("edge_gateway", 1.0, 100.0, 100.0, 0.005, 0.99, 0.005),
        DeviceProfile("flagship_phone", 1.5, 20.0, 100.0, 0.03, 0.90, 0.02),
        DeviceProfile("tablet", 2.0, 15.0, 60.0, 0.03, 0.75, 0.03),
        DeviceProfile("midrange_phone", 3.0, 8.0, 40.0, 0.05, 0.80, 0.05),
        DeviceProfile("single_board_computer", 6.0, 40.0, 40.0, 0.01, 0.95, 0.02),
        DeviceProfile("lowend_phone", 8.0, 2.0, 10.0, 0.10, 0.60, 0.10),
        DeviceProfile("iot_sensor", 100.0, 0.1, 0.25, 0.30, 0.70, 0.15),
    )
}

#: This machine, never failing: the profile every client gets when no device mix is configured.
IDEAL = DeviceProfile("ideal", 1.0, 1e6, 1e6, 0.0, 1.0, 0.0)


def assign_profiles(
    num_clients: int, mix: Mapping[str, float], rng: np.random.Generator
) -> tuple[DeviceProfile, ...]:
    """Draw each client's device class with probabilities proportional to `mix` (name -> weight)."""
    if not mix:
        return tuple(IDEAL for _ in range(num_clients))
    unknown = sorted(set(mix) - set(PROFILES))
    if unknown:
        raise ConfigError(f"unknown device profile(s) {unknown}; known: {', '.join(PROFILES)}")
    names = sorted(mix)
    w = np.array([mix[n] for n in names], dtype=float)
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ConfigError(f"devices.mix weights must be >= 0 with a positive sum, got {dict(mix)}")
    picks = rng.choice(len(names), size=num_clients, p=w / w.sum())
    return tuple(PROFILES[names[i]] for i in picks)
