"""The audits' one error type: bad input to an audit, said in one line (the CLI maps it to exit code 2)."""

from __future__ import annotations

__all__ = ["AuditError"]


class AuditError(Exception):
    """An audit cannot run: not a run folder, a run without its model, an attack that does not fit the run,
    or an argument out of range. The message is one line that says what was found."""
