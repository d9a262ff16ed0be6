"""Defaults shared by the web and the workers, each with its unit."""

# How long a task record (and its result) is kept after submission.
TASK_RECORD_TTL_S = 86_400
# How many states a task's history keeps (the newest; consecutive PROGRESS count once).
TASK_HISTORY_MAX_ENTRIES = 50
# How many task state changes the events stream keeps for resuming (about: MAXLEN ~).
TASK_EVENTS_MAX_ENTRIES = 50_000
# How many ids an id-prefix search considers at most (the first in id order).
TASK_SEARCH_MAX_MATCHES = 1_000
# The longest window of GET /api/tasks/stats, its bucket, and how long a bucket
# outlives the window (a request at a minute's end still finds the first bucket).
TASK_STATS_WINDOW_MAX_S = 3_600
TASK_STATS_BUCKET_S = 60
TASK_STATS_TTL_S = TASK_STATS_WINDOW_MAX_S + 2 * TASK_STATS_BUCKET_S
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
