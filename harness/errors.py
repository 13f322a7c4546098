"""Errors that end a command with a one-line message and exit code 2."""


class UsageError(Exception):
    """The command was asked something it cannot do (bad option value, missing file...)."""
