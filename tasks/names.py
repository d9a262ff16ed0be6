"""Celery names of taskrelay's tasks, and the public names HTTP uses."""

# Celery names of HTTP tasks; the public name is what follows the prefix.
TASK_NAME_PREFIX = "taskrelay.tasks."


def celery_name(public: str) -> str:
    return TASK_NAME_PREFIX + public


def public_name(celery: str) -> str:
    return celery.removeprefix(TASK_NAME_PREFIX)
