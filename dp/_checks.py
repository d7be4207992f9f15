"""Boundary checks shared by the dp modules: raise InvalidPrivacyParameterError with the value found."""

from __future__ import annotations

import math
import numbers
import warnings

from dp.errors import DeltaWarning, InvalidPrivacyParameterError


def _finite(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as err:
        raise InvalidPrivacyParameterError(f"{name} must be a number, found {value!r}") from err
    if math.isnan(v):
        raise InvalidPrivacyParameterError(f"{name} must be a number, found {value!r}")
    return v


def check_delta(delta: float, population: int | None = None) -> float:
    """delta in (0, 1); warn (DeltaWarning) when delta >= 1/population."""
    d = _finite("delta", delta)
    if not 0.0 < d < 1.0:
        raise InvalidPrivacyParameterError(f"delta must be in (0, 1), found {delta!r}")
    if population is not None and population > 0 and d >= 1.0 / population:
        warnings.warn(
            f"delta={d!r} >= 1/N for N={population}: such a guarantee permits releasing a record outright; "
            f"use delta well below {1.0 / population:.3g}",
            DeltaWarning,
            stacklevel=3,
        )
    return d


def check_positive(name: str, value: float, *, allow_inf: bool = False) -> float:
    """value > 0 (and finite unless allow_inf)."""
    v = _finite(name, value)
    if not v > 0.0 or (math.isinf(v) and not allow_inf):
        raise InvalidPrivacyParameterError(f"{name} must be > 0 and finite, found {value!r}")
    return v


def check_nonnegative(name: str, value: float) -> float:
    """value >= 0 and finite."""
    v = _finite(name, value)
    if not v >= 0.0 or math.isinf(v):
        raise InvalidPrivacyParameterError(f"{name} must be >= 0 and finite, found {value!r}")
    return v


def check_rate(name: str, value: float) -> float:
    """A sampling rate in (0, 1]."""
    v = _finite(name, value)
    if not 0.0 < v <= 1.0:
        raise InvalidPrivacyParameterError(f"{name} must be in (0, 1], found {value!r}")
    return v


#: the most rounds (or steps) an accounting query takes: beyond it no accountant answers in bounded time
MAX_COUNT = 10**9


def check_count(name: str, value: int, minimum: int = 1, maximum: int | None = MAX_COUNT) -> int:
    """An integer in [minimum, maximum] (bools, NaN and infinities rejected)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or int(value) != value
    ):
        raise InvalidPrivacyParameterError(f"{name} must be an integer >= {minimum}, found {value!r}")
    if value < minimum:
        raise InvalidPrivacyParameterError(f"{name} must be an integer >= {minimum}, found {value!r}")
    if maximum is not None and value > maximum:
        raise InvalidPrivacyParameterError(f"{name} must be at most {maximum:.0e}, found {value!r}")
    return int(value)


def check_epsilon(epsilon: float, name: str = "epsilon") -> float:
    """epsilon > 0 and finite."""
    return check_positive(name, epsilon)
