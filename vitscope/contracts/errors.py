"""Errors a person can act on.

`UserError` is raised anywhere (model loading, dataset parsing, analyses) when the cause is
the input, not a bug. The CLI prints it as one line and exits non-zero, the API answers it
with a 4xx JSON error, and a job that hits it is marked failed with the same message.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input: the message says what was wrong and what to do instead."""


class CliError(UserError):
    """A user error raised by the command line itself."""
