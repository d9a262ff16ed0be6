"""The command lines of taskrelay's roles, one place for ``taskrelay up`` and the tests."""

from __future__ import annotations

import sys

from tasks.queues import RELAY_QUEUE

PYTHON = sys.executable


def web_argv(bind: str) -> list[str]:
    return [
        PYTHON,
        "-m",
        "gunicorn",
        "-c",
        "python:webapp.gunicorn_conf",
        "--bind",
        bind,
        "webapp:create_app()",
    ]


# The relay worker runs its tasks in its main process (``solo``): a relay task is
# one Lua script, far shorter than the lease-renewal interval, so nothing starves,
# and without the prefork pool's hand-over to a child it relays about twice as
# many messages per second. One process, one task at a time: publish order holds.
RELAY_POOL = "solo"


def relay_worker_argv(node_name: str | None = None) -> list[str]:
    return worker_argv(RELAY_QUEUE, concurrency=1, node_name=node_name, pool=RELAY_POOL)


# Gossip makes every worker consume every other worker's events, and mingle asks
# the others for their revoked ids at start-up; taskrelay keeps revokes in Redis
# (tasks/records.py) and uses neither. Heartbeats stay: Flower and readiness use them.
WITHOUT_GOSSIP_AND_MINGLE = ("--without-gossip", "--without-mingle")


def worker_argv(
    queue: str,
    *,
    concurrency: int,
    node_name: str | None = None,
    pool: str = "prefork",
    gossip_and_mingle: bool = False,
) -> list[str]:
    return [
        PYTHON,
        "-m",
        "celery",
        "-A",
        "tasks",
        "worker",
        "-Q",
        queue,
        "-n",
        node_name or f"{queue}@%h",
        "-c",
        str(concurrency),
        "--pool",
        pool,
        *(() if gossip_and_mingle else WITHOUT_GOSSIP_AND_MINGLE),
        "--loglevel",
        "INFO",
    ]


def flower_argv(address: str, port: int) -> list[str]:
    """Flower's command line; its credentials travel in flower_env, never in argv."""
    return [
        PYTHON,
        "-m",
        "celery",
        "-A",
        "tasks",
        "flower",
        f"--address={address}",
        f"--port={port}",
    ]


def flower_env(basic_auth: str) -> dict[str, str]:
    """The environment that puts Flower behind HTTP basic authentication.

    A command line is readable by every local user (``ps``), so the password goes
    through the environment. FLOWER_UNAUTHENTICATED_API is forced off so that an
    inherited setting can never open Flower's API without credentials.
    """
    user, _, password = basic_auth.partition(":")
    if not user or not password or "," in basic_auth:
        raise ValueError("Flower credentials must be one 'user:password' pair")
    return {"FLOWER_BASIC_AUTH": basic_auth, "FLOWER_UNAUTHENTICATED_API": "false"}


# The scheduler (tasks/schedules/scheduler.py): any number may run, one fires, the
# others take over within the lease's bound. `taskrelay up` runs one.
SCHEDULER_MODULE = "tasks.schedules"


def scheduler_argv() -> list[str]:
    return [PYTHON, "-m", SCHEDULER_MODULE]
