"""``taskrelay workflow submit FILE.json [--wait]``: a workflow over HTTP, followed live.

The file holds the description ``POST /api/workflows`` takes; ``--wait`` follows the
workflow's events with a progress bar over all its steps, as ``taskrelay submit
--wait`` does for one task.
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any

import click

from taskrelay.cli_options import api_options
from taskrelay.client import ApiError, Client

# How a workflow ends (tasks.workflows.state.OUTCOMES).
ENDED = ("SUCCESS", "FAILURE", "REVOKED")


@click.group()
def workflow() -> None:
    """Chains, groups and chords of registered tasks."""


@workflow.command()
@click.argument("file", type=click.File("r"))
@click.option("--wait", is_flag=True, help="Follow the workflow to its end, with a progress bar.")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait with --wait.")
@api_options
def submit(file: IO[str], wait: bool, timeout: float, url: str, token: str | None) -> None:
    """Submit the workflow described in FILE (JSON; - reads standard input); print its id.

    With --wait, print {"id", "state", "result", "failed_step"} at the end and exit 0
    only on SUCCESS.
    """
    try:
        description = json.load(file)
    except ValueError as error:
        raise click.BadParameter(f"not JSON: {error}", param_hint="FILE") from None
    client = Client(url, token)
    try:
        doc = client.submit_workflow(description)
        click.echo(doc["id"])
        if wait:
            doc = _follow(client, doc, timeout)
            click.echo(json.dumps({k: doc[k] for k in ("id", "state", "result", "failed_step")}))
            sys.exit(0 if doc["state"] == "SUCCESS" else 1)
    except ApiError as error:
        raise click.ClickException(str(error)) from None
    finally:
        client.close()


def _follow(client: Client, accepted: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """The workflow's last document; a bar moves one notch for each step that finished."""
    workflow_id, last = accepted["id"], accepted
    finished: set[int] = set()
    with click.progressbar(
        length=accepted["steps_total"], label=workflow_id[:8], show_pos=True, file=sys.stderr
    ) as bar:
        for name, data in client.follow_workflow(workflow_id, timeout_s):
            if name == "workflow":
                last = data
                bar.label = f"{workflow_id[:8]} {data['state']}"
                bar.render_progress()
            steps = data["steps"] if name == "workflow" else [data]
            done = {s["index"] for s in steps if s["state"] == "SUCCESS"} - finished
            finished |= done
            bar.update(len(done))
            if last["state"] in ENDED:
                break
    if last["state"] not in ENDED:
        raise ApiError(f"workflow {workflow_id} did not end within {timeout_s:g} s")
    return last
