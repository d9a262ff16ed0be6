"""The benchmark's one error: a step could not run (a process died, a wait timed out)."""

from taskrelay.errors import SetupError


class BenchError(SetupError):
    """A benchmark step failed; the message says which and why."""
