"""The baselines tuned for speed: what gunicorn's and Celery's own settings give alone.

The targets compare taskrelay with the 20-line template and with Celery at its
defaults. The rows run from here answer the question each such ratio raises: how
much of it would a user get from settings alone, keeping the baseline's own code?
The same code, served and run the fastest way found on this machine: the web as
taskrelay's is served (webapp/gunicorn_conf.py: two gevent workers), one Celery
worker per core with the solo pool (no hand-over to a child process), a prefetch
of 64, and no heartbeats, gossip or mingle. Results are still stored, as the template's GET and
the drain's wait read them. Acknowledgement stays early, so a crashed worker loses
every task it had prefetched: a reference for speed, not a setup to run.
"""

from __future__ import annotations

from taskrelay.bench.stack import python_module

WORKERS = 2
WORKER_OPTIONS = (
    "--pool",
    "solo",
    "--prefetch-multiplier",
    "64",
    "--without-heartbeat",
    "--without-gossip",
    "--without-mingle",
)


WORKER_SUMMARY = f"{WORKERS} celery workers: solo, prefetch 64, no heartbeat, gossip or mingle"


def worker_argvs(app: str, host: str) -> list[list[str]]:
    """The command lines of the tuned Celery workers of ``app``, named tunedN@host."""
    worker = python_module("celery", "-A", app, "worker")
    return [
        [*worker, "-n", f"tuned{number}@{host}", *WORKER_OPTIONS]
        for number in range(1, WORKERS + 1)
    ]


def describe() -> str:
    return f"web served as taskrelay's, {WORKER_SUMMARY}; early ack"
