"""Typed errors of the federated core: every bad input ends here, never deep inside numpy or torch."""

from __future__ import annotations


class FLError(Exception):
    """Root of fl_core's errors."""


class ConfigError(FLError, ValueError):
    """A run, model or strategy parameter is invalid (the message names the key and the value)."""


class DataError(FLError, ValueError):
    """A dataset is unknown, malformed, or contains non-finite values."""


class PartitionError(DataError):
    """A partition request cannot be satisfied (more clients than examples, alpha <= 0, ...)."""


class UpdateRejectedError(FLError):
    """A client update is malformed (wrong length, NaN/Inf, non-positive weight) and is not aggregated."""


class RunDirectoryError(FLError):
    """The output folder exists (and --overwrite was not given) or cannot be written."""


class TrainingDivergedError(FLError):
    """Training produced non-finite values (usually a learning rate too large for the task)."""
