"""The dashboard page, a task's page, the workflow view, and the article's two triggers.

The pages are shells: their scripts read and follow everything live over the JSON API,
so the server renders only what the page needs before its first read (the forms, the
registry's names, the dead letters).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, url_for
from werkzeug.wrappers import Response

from tasks import deadletters, records, registry
from tasks.connections import UNREACHABLE
from webapp import auth
from webapp.channels import publish
from webapp.dashboard.pages import page, printable
from webapp.services import services
from webapp.tasks import accept, read_model
from webapp.tasks.request import parse_submission
from webapp.workflows.read_model import WORKFLOW_ID_MAX_CHARS

bp = Blueprint("dashboard", __name__)

# The article's random numbers were in range(9); keep its flavour.
ARTICLE_NUMBER_RANGE = range(9)
# How many dead letters the page shows when it is rendered.
DASHBOARD_DEAD_LETTERS = 20
# What /workflows/<id> and /tasks/<id> answer for an id far longer than any real one.
NO_SUCH_WORKFLOW_PAGE = (
    '<!doctype html><html lang="en"><title>No such workflow</title><p>No such workflow.</p></html>'
)
NO_SUCH_TASK_PAGE = (
    '<!doctype html><html lang="en"><title>No such task</title><p>No such task.</p></html>'
)
# The task table's tabs: a state (empty for every state) and its label, in the
# order a task moves through them.
TASK_TABS = [("", "All")] + [(state, state.capitalize()) for state in records.STATES]
# The task the submit form offers first: it shows a progress bar moving.
DEFAULT_FORM_TASK = "long_task"


@bp.get("/")
def index() -> Response:
    return page(render_template("index.html", **_page_context()))


def _page_context() -> dict[str, Any]:
    dead_letters, dead_letters_read = _read_stored(
        lambda: deadletters.newest(services().redis, DASHBOARD_DEAD_LETTERS)
    )
    specs = [spec.to_json() for spec in registry.all_specs()]
    names = [spec["name"] for spec in specs]
    return {
        **_token_flags(),
        "specs": specs,
        "selected_task": DEFAULT_FORM_TASK if DEFAULT_FORM_TASK in names else names[0],
        "task_tabs": TASK_TABS,
        "dead_letters": dead_letters,
        "redis_reachable": dead_letters_read != UNREACHABLE_REDIS,
        "unreadable_entries": dead_letters_read == UNREADABLE_ENTRY,
        "flower_url": current_app.config["FLOWER_URL"],
    }


def _token_flags() -> dict[str, bool]:
    """What every page's top bar needs: the API token field, and signing out."""
    tokens = auth.tokens_of(current_app)
    return {"tokens_required": bool(tokens.write), "reads_need_token": tokens.reads_closed}


# Why _read_stored found nothing to show.
UNREACHABLE_REDIS = "unreachable"
UNREADABLE_ENTRY = "unreadable"


def _read_stored(read: Callable[[], list[dict[str, Any]]]) -> tuple[list[dict[str, Any]], str]:
    """What `read` finds, or nothing and why: the page renders whatever Redis holds."""
    try:
        return read(), ""
    except UNREACHABLE:
        # The page still renders, says why it is empty and recovers on reload.
        current_app.logger.warning("dashboard rendered without Redis", exc_info=True)
        return [], UNREACHABLE_REDIS
    except ValueError:
        # Only a hand-written entry is not UTF-8 or not JSON (the API and the
        # workers write neither); the page says so instead of failing for everyone.
        current_app.logger.warning("dashboard skipped unreadable entries", exc_info=True)
        return [], UNREADABLE_ENTRY


@bp.app_template_filter("pretty_json")
def pretty_json(value: Any) -> str:
    """JSON for people to read; the template escapes it like any other text."""
    return printable(json.dumps(value, indent=2, ensure_ascii=False))


@bp.app_template_global()
def param_hint(param: dict[str, Any]) -> str:
    """A parameter's type, bounds and default, as the registry declares them."""
    parts = [param["type"]]
    if "minimum" in param and "maximum" in param:
        parts.append(f"from {_number(param['minimum'])} to {_number(param['maximum'])}")
    elif "minimum" in param:
        parts.append(f"at least {_number(param['minimum'])}")
    elif "maximum" in param:
        parts.append(f"at most {_number(param['maximum'])}")
    if "max_length" in param:
        parts.append(f"up to {param['max_length']} long")
    if not param["required"]:
        parts.append(f"default {json.dumps(param.get('default'))}")
    return ", ".join(parts)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@bp.get("/tasks/<task_id>")
def task(task_id: str) -> Response:
    """A task's page; its script reads the task over the API and follows it live."""
    if len(task_id) > read_model.TASK_ID_MAX_CHARS:
        return page(NO_SUCH_TASK_PAGE, 404)
    return page(render_template("task.html", task_id=task_id, **_token_flags()))


@bp.get("/workflows/<workflow_id>")
def workflow(workflow_id: str) -> Response:
    """A workflow drawn as a graph; the page's script reads and follows it over the API."""
    if len(workflow_id) > WORKFLOW_ID_MAX_CHARS:
        return page(NO_SUCH_WORKFLOW_PAGE, 404)
    return page(render_template("workflow.html", workflow_id=workflow_id, **_token_flags()))


@bp.get(auth.PRODCONS_PATH)
def prodcons() -> Response:
    """The article's producer trigger: enqueue a random number, then go home.

    It changes state on a GET, as in the article, so it is guarded like every
    write (webapp/auth.py): a token when tokens are set, and the rate limit.
    """
    body = {"task": "consume", "args": [random.choice(ARTICLE_NUMBER_RANGE)]}
    submission = parse_submission(body, max_delay_s=current_app.config["MAX_DELAY_S"])
    accept.submit(services(), submission, retry_after_s=current_app.config["RETRY_AFTER_S"])
    return redirect(url_for("dashboard.index"))


# The article's channel, kept so that its subscribers still hear it.
ARTICLE_CHANNEL = "task:pubsub:channel"


@bp.get(auth.PUBSUB_PATH)
def pubsub() -> Response:
    """The article's publisher trigger: publish a random number, then go home (guarded too)."""
    publish.publish_here(ARTICLE_CHANNEL, random.choice(ARTICLE_NUMBER_RANGE))
    return redirect(url_for("dashboard.index"))
