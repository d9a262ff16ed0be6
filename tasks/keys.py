"""The project's Redis key space: every key taskrelay writes is named here.

The web and the workers build keys only through these functions, so both sides
agree by construction and channel-name validation can refuse the whole space.
"""

PREFIX = "taskrelay:"

# Celery's own result keys; the Redis result backend also PUBLISHes every state
# change on a channel with the same name, which the task event stream follows.
CELERY_RESULT_PREFIX = "celery-task-meta-"

TASK_INDEX = PREFIX + "tasks"
DEAD_LETTER_INDEX = PREFIX + "deadletters"
REVOKED = PREFIX + "revoked"


def task_record(task_id: str) -> str:
    return f"{PREFIX}task:{task_id}"


def idempotency(key: str) -> str:
    return f"{PREFIX}idem:{key}"


def dead_letter(task_id: str) -> str:
    return f"{PREFIX}deadletter:{task_id}"


def celery_result(task_id: str) -> str:
    return CELERY_RESULT_PREFIX + task_id


def queue_consumers(queue: str) -> str:
    """Sorted set of the workers consuming a queue, scored by their last beat."""
    return f"{PREFIX}consumers:{queue}"
