"""The small flat set of exceptions raised by secagg, named after what went wrong."""

from __future__ import annotations

__all__ = [
    "SecAggError",
    "SecAggConfigError",
    "StageError",
    "ThresholdError",
    "DropoutThresholdError",
    "InvalidMessageError",
    "InconsistentSharesError",
    "InvalidStateError",
    "SumOutOfRangeError",
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


class InvalidStateError(InvalidMessageError):
    """An exported session state is malformed, truncated, tampered with, of another version, or belongs to
    another round, client or identity key (`ClientSession.from_state`)."""


class InconsistentSharesError(InvalidMessageError):
    """More than t Shamir shares of one secret arrived and they do not lie on one polynomial of degree
    < t: some sender altered its share. `suspects` holds the x-coordinates (or, from the server, the
    client ids) whose removal makes the rest consistent, or all senders when one removal does not."""

    def __init__(self, message: str, suspects: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.suspects = suspects


class SumOutOfRangeError(InvalidMessageError):
    """The decoded sum lies outside what the survivors' clipped inputs can add up to (per coordinate, or
    in L2 norm when a bound is given): some client sent a garbage masked vector. Nothing individual is
    revealed; the sum must not be used."""


class UnsafeRequestError(SecAggError):
    """An honest client refused a server request that could reveal one input (Bonawitz 2017)."""
