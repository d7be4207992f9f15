"""Typed errors of the dp package: one root, named after what went wrong (pyca/cryptography style)."""

from __future__ import annotations


class DPError(Exception):
    """Root of every error raised by privagg's differential-privacy package."""


class InvalidPrivacyParameterError(DPError, ValueError):
    """A privacy parameter is out of range; the message names the parameter and the value found."""


class BudgetExceededError(DPError):
    """Committing an event would take epsilon past the accountant's max_epsilon."""


class CalibrationError(DPError):
    """No mechanism parameter meets the target; the message says why."""


class UnsupportedModelError(DPError):
    """Opacus cannot compute per-sample gradients for a layer; names the layer and the fix."""


class DeltaWarning(UserWarning):
    """delta >= 1/N: the guarantee allows publishing one of N records outright."""
