"""Schedules: registered tasks fired once per slot of a cron expression or an interval.

``model`` (a schedule and its validation), ``slots`` (when it fires), ``store`` (in
Redis), ``fire`` (a slot's claim, record and message, at once), ``lease`` (which
scheduler is active), ``scheduler`` (the role's loop, ``python -m tasks.schedules``),
``metrics`` (counters for /metrics). Importing this package does nothing.
"""
