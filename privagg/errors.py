"""The typed errors a user can cause, from every privagg package, in one tuple for the CLI."""

from __future__ import annotations

from dp.errors import DPError
from fl_core.errors import ConfigError, FLError
from secagg.errors import SecAggError

USER_ERRORS: tuple[type[BaseException], ...] = (FLError, DPError, SecAggError)


def user_errors() -> tuple[type[BaseException], ...]:
    """USER_ERRORS plus the audits' error when audits was imported (an AuditError cannot exist otherwise,
    and importing audits just to check would pull in torch)."""
    import sys

    if "audits.errors" in sys.modules:
        return (*USER_ERRORS, sys.modules["audits.errors"].AuditError)
    return USER_ERRORS


__all__ = ["USER_ERRORS", "ConfigError", "DPError", "FLError", "SecAggError", "user_errors"]
