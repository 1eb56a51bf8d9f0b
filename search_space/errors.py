"""The one base of every error a user can cause.

Each layer raises its own subclass (``SpecError``, ``TableError``, ``SearchError``, ...),
whose message names the problem and the fix; the command line catches
:class:`EvitNasError` alone and prints that message as one line, exit code 2.
"""

from __future__ import annotations

__all__ = ["EvitNasError"]


class EvitNasError(Exception):
    """A problem the user can fix; the message says what is wrong and what to do."""
