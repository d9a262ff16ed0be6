"""Errors the command line reports to a person, without a traceback."""


class SetupError(Exception):
    """The system cannot start as asked; the message says what to change."""
