"""taskrelay's task side: the Celery app factory, the task registry, records and channels.

Importing this package does nothing: the worker's app lives in ``tasks.celery``
(where ``celery -A tasks`` finds it), and task modules are loaded explicitly by
``tasks.task_modules.load``.
"""
