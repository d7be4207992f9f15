"""The typed errors a user can cause, from every privagg package, in one tuple for the CLI."""

from __future__ import annotations

from fl_core.errors import ConfigError, FLError

USER_ERRORS: tuple[type[BaseException], ...] = (FLError,)

__all__ = ["USER_ERRORS", "ConfigError", "FLError"]
