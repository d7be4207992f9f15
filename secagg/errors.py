"""The small flat set of exceptions raised by secagg, named after what went wrong."""

from __future__ import annotations

__all__ = [
    "SecAggError",
    "SecAggConfigError",
    "StageError",
    "ThresholdError",
    "DropoutThresholdError",
    "InvalidMessageError",
    "UnsafeRequestError",
]


class SecAggError(Exception):
    """Root of every error secagg raises on purpose."""


class SecAggConfigError(SecAggError, ValueError):
    """A parameter is out of range or the parameters are inconsistent with each other."""


class StageError(SecAggError):
    """A session method was called out of protocol order, or on a session that already aborted."""


class ThresholdError(SecAggError):
    """Too few clients remain (in the round or in one neighbourhood) to finish safely; nothing is revealed."""


DropoutThresholdError = ThresholdError


class InvalidMessageError(SecAggError, ValueError):
    """A message failed validation: bad version, stage, ids, lengths, bounds, signature or tag."""


class UnsafeRequestError(SecAggError):
    """An honest client refused a server request that could reveal one input (Bonawitz 2017)."""
