"""The errors tasks and their callers share."""


class TaskrelayError(Exception):
    """Base of every error taskrelay raises on purpose."""


class InvalidArgument(TaskrelayError):
    """A task was called with an argument that does not fit its declaration."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class TransientError(TaskrelayError):
    """A failure worth retrying: the same call may succeed later."""


class PoisonTaskError(TaskrelayError):
    """A task whose worker died every time it ran; it goes to the dead letters."""
