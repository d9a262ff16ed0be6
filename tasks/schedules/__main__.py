"""``python -m tasks.schedules``: run a scheduler; ``... check``: is this host's scheduler alive.

Several schedulers may run against one Redis: one fires, the others stand by. The
check is the compose health check: it passes while a scheduler of this host beat
within ``HEALTHY_WITHIN_S``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
from types import FrameType

import celeryconfig
from tasks import task_modules
from tasks.app_factory import create_celery_app
from tasks.connections import make_client
from tasks.schedules import fire, lease
from tasks.schedules.scheduler import Scheduler, Settings, new_scheduler_id

# A scheduler beats every 2 s; one silent for this long is stuck or gone, in seconds.
HEALTHY_WITHIN_S = 15.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.schedules", description=__doc__)
    parser.add_argument("command", nargs="?", choices=("run", "check"), default="run")
    command = parser.parse_args(argv).command
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    redis_url = celeryconfig.taskrelay_redis_url
    client = make_client(redis_url)
    try:
        if command == "check":
            return 0 if _alive_here(client) else 1
        celery = create_celery_app(
            redis_url,
            broker_url=celeryconfig.broker_url,
            result_backend=celeryconfig.result_backend,
            publish_only=True,
        )
        # The registry a schedule's task is looked up in: the same modules as the workers'.
        task_modules.load_configured(celery.conf)
        scheduler = Scheduler(
            fire.publisher(client, celery, redis_url),
            Settings.from_environment(os.environ),
            new_scheduler_id(),
        )
        stopping = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stopping.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, on_signal)
        scheduler.run(stopping)
        celery.close()
        return 0
    finally:
        client.close()


def _alive_here(client: object) -> bool:
    prefix = f"{socket.gethostname()}:"
    return any(s.startswith(prefix) for s in lease.alive(client, HEALTHY_WITHIN_S))  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
