"""Defaults shared by the web and the workers, each with its unit."""

# How long a task record (and its result) is kept after submission.
TASK_RECORD_TTL_S = 86_400
# How many task ids the "recent tasks" index keeps.
TASK_INDEX_MAX_ENTRIES = 10_000
# How many workflow ids the "recent workflows" index keeps.
WORKFLOW_INDEX_MAX_ENTRIES = 10_000
# How long an Idempotency-Key remembers its first task.
IDEMPOTENCY_TTL_S = 86_400
# How many dead letters are kept before the oldest are discarded.
DEAD_LETTER_MAX_ENTRIES = 10_000

# Retry policy of tasks declared retryable: exponential backoff with full jitter.
RETRY_BACKOFF_BASE_S = 1
RETRY_BACKOFF_MAX_S = 60
RETRY_MAX_ATTEMPTS = 5
