"""The typed errors a user can cause, from every privagg package, in one tuple for the CLI."""

from __future__ import annotations

from dp.errors import DPError
from fl_core.errors import ConfigError, FLError
from secagg.errors import SecAggError

USER_ERRORS: tuple[type[BaseException], ...] = (FLError, DPError, SecAggError)

__all__ = ["USER_ERRORS", "ConfigError", "DPError", "FLError", "SecAggError"]
