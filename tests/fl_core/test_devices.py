"""Edge-device profiles: the seven classes, the simulated round time, assignment, stragglers under secagg."""

from __future__ import annotations

import numpy as np
import pytest

from fl_core.devices import PROFILES, DeviceProfile, assign_profiles
from fl_core.errors import ConfigError


def test_seven_named_profiles_with_sane_ordering() -> None:
    assert len(PROFILES) >= 7
    assert (
        PROFILES["iot_sensor"].slowdown
        > PROFILES["lowend_phone"].slowdown
        > PROFILES["flagship_phone"].slowdown
    )
    assert (
        PROFILES["iot_sensor"].up_mbps < PROFILES["midrange_phone"].up_mbps < PROFILES["edge_gateway"].up_mbps
    )


def test_round_time_known_answer() -> None:
    p = DeviceProfile(
        "x", slowdown=2.0, up_mbps=8.0, down_mbps=16.0, latency_s=0.1, availability=1.0, failure_rate=0.0
    )
    # 0.5 s compute * 2 + 2 MB down at 16 Mb/s (1 s) + 1 MB up at 8 Mb/s (1 s) + 2 messages * 0.1 s
    assert p.round_time(0.5, 2_000_000, 1_000_000) == pytest.approx(1.0 + 1.0 + 1.0 + 0.2)


def test_assignment_follows_the_mix_and_rejects_unknown_names() -> None:
    rng = np.random.default_rng(0)
    profiles = assign_profiles(1000, {"iot_sensor": 1.0, "tablet": 3.0}, rng)
    share = sum(p.name == "tablet" for p in profiles) / 1000
    assert 0.70 < share < 0.80
    with pytest.raises(ConfigError, match="unknown device"):
        assign_profiles(3, {"toaster": 1.0}, rng)
    with pytest.raises(ConfigError):
        assign_profiles(3, {"tablet": -1.0}, rng)
    with pytest.raises(ConfigError):
        DeviceProfile("bad", 1.0, 1.0, 1.0, 0.0, availability=0.0, failure_rate=0.0)
