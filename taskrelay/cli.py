"""The ``taskrelay`` command: run the system, submit work, publish and subscribe."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from taskrelay import channel_commands, schedule_commands, scheduling, workflow_commands
from taskrelay import client as api
from taskrelay.bench import command as bench_command
from taskrelay.cli_options import api_options
from taskrelay.errors import SetupError
from tasks import redis_urls

TERMINAL_STATES = ("SUCCESS", "FAILURE", "REVOKED")


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@click.group()
def main() -> None:
    """taskrelay: Celery tasks and pub/sub fan-out behind a Flask API."""


@main.command()
@click.option(
    "--web-port",
    type=int,
    default=lambda: _env_int("TASKRELAY_WEB_PORT", 5000),
    show_default="5000",
)
@click.option(
    "--flower-port",
    type=int,
    default=lambda: _env_int("TASKRELAY_FLOWER_PORT", 5555),
    show_default="5555",
)
@click.option(
    "--redis-port",
    type=int,
    default=lambda: _env_int("TASKRELAY_REDIS_PORT", 6399),
    show_default="6399",
    help="Port of the embedded Redis (ignored when REDIS_URL is set).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=lambda: _env_int("TASKRELAY_WORKER_CONCURRENCY", 2),
    show_default="2",
    help="Tasks run at once: one task worker process (of one pool child) each.",
)
@click.option(
    "--var-dir",
    default=lambda: os.environ.get("TASKRELAY_VAR_DIR", "var"),
    show_default="var",
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option(
    "--tasks",
    "task_modules",
    metavar="MODULES",
    default=None,
    help="Your task modules, comma-separated (such as mypkg.jobs), for every role; "
    "sets TASKRELAY_TASK_MODULES, which is used as it is when this is not given.",
)
@click.option(
    "--scheduling",
    "scheduling_policy",
    type=click.Choice(scheduling.POLICIES),
    default=lambda: os.environ.get("TASKRELAY_SCHEDULING", scheduling.BATCH),
    show_default=scheduling.BATCH,
    help="Linux scheduling policy of Redis, the workers, the scheduler and Flower: "
    "batch (a process woken by another's write does not preempt it) or normal.",
)
def up(
    web_port: int,
    flower_port: int,
    redis_port: int,
    concurrency: int,
    var_dir: Path,
    task_modules: str | None,
    scheduling_policy: scheduling.Policy,
) -> None:
    """Run Redis (unless REDIS_URL is set), web, worker, relay worker and Flower."""
    from taskrelay.up import System, UpOptions

    options = UpOptions(
        var_dir=var_dir.resolve(),
        web_port=web_port,
        flower_port=flower_port,
        redis_port=redis_port,
        # REDIS_SENTINELS, when set, names the Redis instead of REDIS_URL.
        redis_url=redis_urls.from_environment(os.environ, "") or None,
        worker_concurrency=concurrency,
        task_modules=task_modules,
        scheduling_policy=scheduling_policy,
    )
    try:
        code = System(options, say=lambda line: click.echo(line)).run()
    except SetupError as error:
        raise click.ClickException(str(error)) from None
    sys.exit(code)


@main.command()
@click.argument("task")
@click.argument("args", nargs=-1)
@click.option("--kw", "kwargs", multiple=True, metavar="NAME=VALUE", help="A keyword argument.")
@click.option("--wait", is_flag=True, help="Follow the task to its end, with a progress bar.")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait with --wait.")
@api_options
def submit(
    task: str,
    args: tuple[str, ...],
    kwargs: tuple[str, ...],
    wait: bool,
    timeout: float,
    url: str,
    token: str | None,
) -> None:
    """Submit TASK with ARGS (JSON values or plain strings); print its id."""
    keyword: dict[str, Any] = {}
    for pair in kwargs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--kw")
        keyword[name] = api.parse_value(value)
    client = api.Client(url, token)
    try:
        doc = client.submit(task, [api.parse_value(a) for a in args], keyword)
        click.echo(doc["id"])
        if wait:
            doc = _follow(client, doc["id"], timeout)
            click.echo(json.dumps(_outcome(doc)))
            sys.exit(0 if doc["state"] == "SUCCESS" else 1)
    except api.ApiError as error:
        raise click.ClickException(str(error)) from None
    finally:
        client.close()


def _follow(client: api.Client, task_id: str, timeout_s: float) -> dict[str, Any]:
    last: dict[str, Any] = {}
    with click.progressbar(
        length=100, label=task_id[:8], show_percent=True, file=sys.stderr
    ) as bar:
        shown = 0
        for doc in client.follow_task(task_id, timeout_s):
            last = doc
            percent = _percent(doc)
            bar.label = f"{task_id[:8]} {doc['state']}"
            bar.update(percent - shown)
            shown = percent
            if doc["state"] in TERMINAL_STATES:
                break
    if last.get("state") not in TERMINAL_STATES:
        raise api.ApiError(f"task {task_id} did not finish within {timeout_s:g} s")
    return last


def _percent(doc: dict[str, Any]) -> int:
    if doc["state"] == "SUCCESS":
        return 100
    progress = doc.get("progress") or {}
    current, total = progress.get("current"), progress.get("total")
    if isinstance(current, int | float) and isinstance(total, int | float) and total > 0:
        return max(0, min(100, int(100 * current / total)))
    return 0


def _outcome(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: doc[k] for k in ("id", "state", "result", "error", "retries")}


main.add_command(channel_commands.publish)
main.add_command(channel_commands.subscribe)
main.add_command(bench_command.bench)
main.add_command(schedule_commands.schedule)
main.add_command(workflow_commands.workflow)

if __name__ == "__main__":
    main()
