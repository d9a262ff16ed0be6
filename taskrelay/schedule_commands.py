"""``taskrelay schedule add|list|show|pause|resume|run|rm``: schedules over HTTP.

A schedule is named by its id or its name (REF). The scheduler itself is a role of
its own (``python -m tasks.schedules``, started by ``taskrelay up``); these commands
only talk to the API.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from taskrelay.cli_options import api_options
from taskrelay.client import ApiError, Client, parse_keywords, parse_value

F = TypeVar("F", bound=Callable[..., Any])
# Runs `taskrelay schedule show` lists.
SHOWN_RUNS = 10


def _call(url: str, token: str | None, action: Callable[[Client], Any]) -> Any:
    client = Client(url, token)
    try:
        return action(client)
    except ApiError as error:
        raise click.ClickException(str(error)) from None
    finally:
        client.close()


@click.group()
def schedule() -> None:
    """Periodic tasks: fired once per slot by the active scheduler."""


@schedule.command()
@click.argument("name")
@click.argument("task")
@click.argument("args", nargs=-1)
@click.option("--cron", help="5 fields: minute hour day-of-month month day-of-week.")
@click.option("--tz", "timezone", help="IANA time zone of --cron, such as Europe/Berlin (UTC).")
@click.option("--every", "every_s", type=click.IntRange(min=1), help="Interval in seconds.")
@click.option("--kw", "kwargs", multiple=True, metavar="NAME=VALUE", help="A keyword argument.")
@click.option(
    "--misfire",
    type=click.Choice(["run_once", "skip"]),
    help="Slots missed while no scheduler ran: run the newest once (default) or skip them.",
)
@click.option("--start", "start_at", help="First instant, ISO 8601 with a zone.")
@click.option("--end", "end_at", help="Last instant, ISO 8601 with a zone.")
@click.option("--paused", is_flag=True, help="Create it paused.")
@api_options
def add(
    name: str,
    task: str,
    args: tuple[str, ...],
    cron: str | None,
    timezone: str | None,
    every_s: int | None,
    kwargs: tuple[str, ...],
    misfire: str | None,
    start_at: str | None,
    end_at: str | None,
    paused: bool,
    url: str,
    token: str | None,
) -> None:
    """Schedule TASK with ARGS (JSON values or plain strings) as NAME; print its id."""
    if (cron is None) == (every_s is None):
        raise click.UsageError("give either --cron or --every")
    try:
        keywords = parse_keywords(kwargs)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--kw") from None
    optional = {
        "cron": cron,
        "timezone": timezone,
        "every_s": every_s,
        "misfire": misfire,
        "start_at": start_at,
        "end_at": end_at,
    }
    body: dict[str, Any] = {
        "name": name,
        "task": task,
        "args": [parse_value(a) for a in args],
        "kwargs": keywords,
        "enabled": not paused,
        **{field: value for field, value in optional.items() if value is not None},
    }
    created = _call(url, token, lambda client: client.create_schedule(body))
    click.echo(created["id"])


@schedule.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Every document as a JSON line.")
@api_options
def list_schedules(as_json: bool, url: str, token: str | None) -> None:
    """List schedules, newest first: name, timing, state, next fire, last run."""
    found = _call(url, token, lambda client: client.list_schedules())
    for doc in found:
        click.echo(json.dumps(doc) if as_json else _line(doc))


@schedule.command()
@click.argument("ref")
@api_options
def show(ref: str, url: str, token: str | None) -> None:
    """Print a schedule's document and its newest runs as JSON."""

    def read(client: Client) -> dict[str, Any]:
        doc = client.get_schedule(ref)
        return {**doc, "runs": client.schedule_runs(doc["id"], SHOWN_RUNS)}

    click.echo(json.dumps(_call(url, token, read), indent=2))


@schedule.command()
@click.argument("ref")
@api_options
def pause(ref: str, url: str, token: str | None) -> None:
    """Stop firing REF (its slots while paused are not caught up on)."""
    _call(url, token, lambda client: client.update_schedule(ref, {"enabled": False}))
    click.echo(f"paused {ref}")


@schedule.command()
@click.argument("ref")
@api_options
def resume(ref: str, url: str, token: str | None) -> None:
    """Fire REF again from its next slot; print that slot."""
    doc = _call(url, token, lambda client: client.update_schedule(ref, {"enabled": True}))
    upcoming = doc["next_fire_times"][0] if doc["next_fire_times"] else "never (it has ended)"
    click.echo(f"resumed {ref}; next fire {upcoming}")


@schedule.command()
@click.argument("ref")
@api_options
def run(ref: str, url: str, token: str | None) -> None:
    """Run REF's task now, paused or not; print the task's id."""
    fired = _call(url, token, lambda client: client.run_schedule(ref))
    click.echo(fired["task_id"])


@schedule.command()
@click.argument("ref")
@api_options
def rm(ref: str, url: str, token: str | None) -> None:
    """Delete REF and its runs (the tasks it started stay)."""
    _call(url, token, lambda client: client.delete_schedule(ref))
    click.echo(f"deleted {ref}")


def _line(doc: dict[str, Any]) -> str:
    timing = f"cron {doc['cron']} {doc['timezone']}" if doc["cron"] else f"every {doc['every_s']} s"
    state = "enabled" if doc["enabled"] else "paused"
    upcoming = doc["next_fire_times"][0] if doc["next_fire_times"] else "-"
    last = doc["last_run"]
    last_run = f"{last['fired_at']} {last['state']}" if last else "-"
    return "  ".join((doc["name"], timing, state, f"next {upcoming}", f"last {last_run}"))
