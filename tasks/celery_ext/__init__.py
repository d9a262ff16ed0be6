"""Where taskrelay extends Celery and kombu, each module with the upstream behaviour it changes.

- ``transport`` (with ``fetch``, ``fetch.lua``, ``acks``): kombu's Redis transport
  takes a message off its queue and records it as in flight in one script, so a
  killed worker cannot lose it between the two; acknowledgements go once per loop turn.
- ``atomic_publish``: kombu's publish batch as one MULTI/EXEC, so the web writes a
  task's record in the same transaction as its message.
- ``batched_send``: a task message into that open batch through Celery's message
  builder and producer, without the rest of ``send_task``; ``argument_repr`` writes
  its arguments' text as Celery's ``saferepr`` would, by ``repr`` where they agree.
- ``kombu_internals``: the one place that reads kombu's private state, failing loudly.
- ``leases``: a consumer step that keeps the messages a live worker holds from being
  redelivered by kombu's visibility timeout.
- ``liveness``: a consumer step that marks, in Redis, which queues a worker consumes
  (readiness reads it).
- ``relay_sweeper``: a worker step that relays channel messages the broker lost.
- ``repeating``: the base of those steps, a job on the worker's timer.
- ``result_backend``: Celery's Redis result backend whose writes never let a late
  state overwrite a final one, and which runs taskrelay's own writes in the same script.
- ``tracking``: the base class of HTTP tasks (start record, retries, dead letters).
- ``event_batching``: the worker's consumer, publishing task events a few times a
  second in batches instead of once per event-loop turn.
- ``task_log``: keeps Celery's two INFO lines per task out of the worker's log.
- ``steps``: adds the steps above to a worker app (``tasks.celery``).
- ``pool``: the workers' prefork pool (``worker_pool``), Celery's without the event-loop
  calls on its children's pipes that change nothing (a failing ``epoll_ctl`` per loop
  turn and per result message).
"""
