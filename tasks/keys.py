"""The project's Redis key space: every key taskrelay writes is named here.

The web and the workers build keys only through these functions, so both sides
agree by construction and channel-name validation can refuse the whole space.
"""

PREFIX = "taskrelay:"

# Celery's own result keys; the Redis result backend also PUBLISHes every state
# change on a channel with the same name, which the task event stream follows.
CELERY_RESULT_PREFIX = "celery-task-meta-"

# The task indexes (tasks/task_index.py), kept as records change and bounded by the
# record TTL: every task id scored by its submission time (epoch seconds), the same
# per task name, per state and per (state, name); every id at score 0, in id order,
# for prefix search. A task's state in the indexes is the record's "index_state",
# its score there the record's "index_score".
TASK_INDEX = PREFIX + "tasks"
TASK_IDS = PREFIX + "tasks:ids"
TASK_NAME_INDEX_PREFIX = PREFIX + "tasks:name:"
TASK_STATE_INDEX_PREFIX = PREFIX + "tasks:state:"
TASK_STATE_NAME_INDEX_PREFIX = PREFIX + "tasks:state-name:"
# Every task's state changes, newest last, trimmed to defaults.TASK_EVENTS_MAX_ENTRIES:
# what GET /api/tasks/events streams and resumes from.
TASK_EVENTS = PREFIX + "task-events"
# A task's states, oldest first (the newest defaults.TASK_HISTORY_MAX_ENTRIES), kept
# beside its record for as long.
TASK_HISTORY_PREFIX = PREFIX + "task-history:"
# Per-minute figures of every task name (finished, wait and run histograms), one
# hash per minute, expiring a little after the longest stats window.
TASK_STATS_PREFIX = PREFIX + "task-stats:"
# Workers by their last beat, and each worker's last beacon (queues, running tasks).
WORKERS = PREFIX + "workers"
WORKER_PREFIX = PREFIX + "worker:"
DEAD_LETTER_INDEX = PREFIX + "deadletters"
REVOKED = PREFIX + "revoked"
# Countdown/eta tasks accepted and not yet started, scored by when they are due
# (tasks/delayed.py): the count behind TASKRELAY_MAX_DELAYED_TASKS.
DELAYED_TASKS = PREFIX + "delayed"
# Cluster-wide counters and histograms behind GET /metrics (tasks/metrics.py).
METRICS_TASK_EVENTS = PREFIX + "metrics:task-events"
METRICS_TASK_RUNTIME = PREFIX + "metrics:task-runtime"


def task_record(task_id: str) -> str:
    return f"{PREFIX}task:{task_id}"


# A task record's count of one attempt's deliveries (fetch.lua writes it too).
DELIVERIES_FIELD_PREFIX = "deliveries:"


def deliveries_field(attempt: int) -> str:
    return f"{DELIVERIES_FIELD_PREFIX}{attempt}"


def task_name_index(name: str) -> str:
    return TASK_NAME_INDEX_PREFIX + name


def task_state_index(state: str) -> str:
    return TASK_STATE_INDEX_PREFIX + state


def task_state_name_index(state: str, name: str) -> str:
    # A state has no colon, so the name after the first one is the whole name.
    return f"{TASK_STATE_NAME_INDEX_PREFIX}{state}:{name}"


def task_history(task_id: str) -> str:
    return TASK_HISTORY_PREFIX + task_id


def task_stats(minute_start_s: int) -> str:
    return f"{TASK_STATS_PREFIX}{minute_start_s}"


def worker(hostname: str) -> str:
    return WORKER_PREFIX + hostname


def idempotency(key: str) -> str:
    return f"{PREFIX}idem:{key}"


def dead_letter(task_id: str) -> str:
    return f"{PREFIX}deadletter:{task_id}"


def celery_result(task_id: str) -> str:
    return CELERY_RESULT_PREFIX + task_id


def queue_consumers(queue: str) -> str:
    """Sorted set of the workers consuming a queue, scored by their last beat."""
    return f"{PREFIX}consumers:{queue}"


# Channels: each has a stream (its retained history), a hash from message id to
# stream position (kept in step with the stream's trimming), the bytes its stream
# retains, and a pub/sub channel under the prefix, so one pattern subscription
# hears every channel and nothing else (not Celery's result or pidbox traffic).
# The first three expire when the channel is idle (tasks/channels/bounds.py).
# The index of channels is two sorted sets: every name at score 0 (pages in name
# order) and every name by when it expires, its last publish plus its idle time
# to live, in seconds (expiry and the cap on channels).
CHANNEL_NAMES = PREFIX + "channels:names"
CHANNEL_EXPIRY = PREFIX + "channels:expiry"
# The recent index: every channel's newest messages in one order, as references
# (channel, position, id), and a hash from message id to its place there; a
# pattern subscriber catches up from it (tasks/channels/recent.py).
CHANNEL_RECENT = PREFIX + "channels:recent"
CHANNEL_RECENT_IDS = PREFIX + "channels:recent-ids"
CHANNEL_PUBSUB_PREFIX = PREFIX + "pubsub:"
# Every web process's subscriber counts, scored by their last beat.
HUB_INDEX = PREFIX + "hubs"


def channel_stream(channel: str) -> str:
    return f"{PREFIX}stream:{channel}"


def channel_positions(channel: str) -> str:
    return f"{PREFIX}positions:{channel}"


def channel_bytes(channel: str) -> str:
    """The bytes of the messages a channel's stream retains (its byte bound counts these)."""
    return f"{PREFIX}stream-bytes:{channel}"


def channel_pubsub(channel: str) -> str:
    return CHANNEL_PUBSUB_PREFIX + channel


def relayed(channel: str, message_id: str) -> str:
    """Marks a message as relayed, so a redelivered relay task does not publish it again."""
    return f"{PREFIX}relayed:{channel}:{message_id}"


def hub_subscribers(hub_id: str) -> str:
    return f"{PREFIX}hub:{hub_id}"


# Cluster-wide channel counters, one hash each, by channel name.
METRICS_CHANNEL_PUBLISHED = PREFIX + "metrics:channel-published"
METRICS_CHANNEL_DELIVERED = PREFIX + "metrics:channel-delivered"
METRICS_CHANNEL_DROPPED = PREFIX + "metrics:channel-dropped"
# Channel messages accepted but not yet relayed, by message id (a hash of the
# message and a sorted set by acceptance time): the relay worker's sweeper
# relays what the broker lost (tasks/celery_ext/relay_sweeper.py).
RELAY_PENDING = PREFIX + "relay:pending"
RELAY_PENDING_INDEX = PREFIX + "relay:pending-index"
# Restarts of each role of ``taskrelay up`` in its current run, by role name: the
# supervisor writes the hash, /readyz and /metrics read it (tasks/role_restarts.py).
ROLE_RESTARTS = PREFIX + "supervisor:restarts"
# Schedules (tasks/schedules/): each schedule's definition (a hash), its claim
# (the newest slot fired, which only moves forward: the claim on a slot) and its
# runs (newest last); the index of every schedule by creation time, names to ids
# (unique names), and the next slot of every enabled schedule (what the active
# scheduler reads). One scheduler at a time holds the lease; every scheduler
# beats in the beacon; the counters behind /metrics.
SCHEDULE_INDEX = PREFIX + "schedules"
SCHEDULE_NAMES = PREFIX + "schedules:names"
SCHEDULES_DUE = PREFIX + "schedules:due"
SCHEDULER_LEASE = PREFIX + "scheduler:lease"
SCHEDULER_BEACON = PREFIX + "schedulers"
METRICS_SCHEDULES = PREFIX + "metrics:schedules"


def schedule(schedule_id: str) -> str:
    return f"{PREFIX}schedule:{schedule_id}"


def schedule_claim(schedule_id: str) -> str:
    return f"{PREFIX}schedule-claim:{schedule_id}"


def schedule_runs(schedule_id: str) -> str:
    return f"{PREFIX}schedule-runs:{schedule_id}"


# Workflows (tasks/workflows/): each workflow's hash (its plan, when it was
# submitted, how it ended); the results of its finished steps by step id (one field
# per distinct finished step); the steps sent or claimed for sending; the claimed
# ones not sent yet, by the step whose return claimed them; the pub/sub channel its
# outcome is published on; its Idempotency-Keys; the counters behind /metrics.
METRICS_WORKFLOWS = PREFIX + "metrics:workflows"
METRICS_WORKFLOW_STEPS = PREFIX + "metrics:workflow-steps"
# Workflow ids scored by submission time (epoch seconds), newest last, trimmed to
# defaults.WORKFLOW_INDEX_MAX_ENTRIES; GET /api/workflows reads it.
WORKFLOW_INDEX = PREFIX + "workflows"


def workflow(workflow_id: str) -> str:
    return f"{PREFIX}workflow:{workflow_id}"


def workflow_results(workflow_id: str) -> str:
    return f"{PREFIX}workflow-results:{workflow_id}"


def workflow_dispatched(workflow_id: str) -> str:
    return f"{PREFIX}workflow-dispatched:{workflow_id}"


def workflow_pending(workflow_id: str) -> str:
    return f"{PREFIX}workflow-pending:{workflow_id}"


def workflow_events(workflow_id: str) -> str:
    return f"{PREFIX}workflow-events:{workflow_id}"


def workflow_idempotency(key: str) -> str:
    return f"{PREFIX}workflow-idem:{key}"
