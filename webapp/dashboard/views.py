"""The dashboard page and the article's two triggers."""

from __future__ import annotations

import json
import random
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, url_for
from werkzeug.wrappers import Response

from tasks import deadletters, registry
from webapp import auth
from webapp.channels import publish
from webapp.errors import UNREACHABLE
from webapp.services import services
from webapp.tasks import accept, read_model
from webapp.tasks.request import parse_submission

bp = Blueprint("dashboard", __name__)

# The article's random numbers were in range(9); keep its flavour.
ARTICLE_NUMBER_RANGE = range(9)
# How many recent tasks and dead letters the page shows when it is rendered.
DASHBOARD_TASKS = 20
DASHBOARD_DEAD_LETTERS = 20
# The task the submit form offers first: it shows a progress bar moving.
DEFAULT_FORM_TASK = "long_task"

# The page loads its script and styles from this server only and talks to no other
# origin; nothing inline may run, so an injected string can never become code.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


@bp.get("/")
def index() -> Response:
    page = render_template("index.html", **_page_context())
    response = Response(page, mimetype="text/html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Cache-Control"] = "no-store"
    return response


def _page_context() -> dict[str, Any]:
    tasks: list[dict[str, Any]] = []
    dead_letters: list[dict[str, Any]] = []
    reachable = True
    try:
        tasks = read_model.recent(
            services(), state=None, task=None, limit=DASHBOARD_TASKS, scan_max=DASHBOARD_TASKS
        )
        dead_letters = deadletters.newest(services().redis, DASHBOARD_DEAD_LETTERS)
    except UNREACHABLE:
        # The page still renders, says why it is empty and recovers on reload.
        current_app.logger.warning("dashboard rendered without Redis", exc_info=True)
        reachable = False
    specs = [spec.to_json() for spec in registry.all_specs()]
    names = [spec["name"] for spec in specs]
    return {
        "specs": specs,
        "selected_task": DEFAULT_FORM_TASK if DEFAULT_FORM_TASK in names else names[0],
        "tasks": tasks,
        "dead_letters": dead_letters,
        "redis_reachable": reachable,
        "flower_url": current_app.config["FLOWER_URL"],
        "tokens_required": bool(auth.configured_tokens(current_app)),
    }


@bp.app_template_filter("pretty_json")
def pretty_json(value: Any) -> str:
    """JSON for people to read; the template escapes it like any other text."""
    return json.dumps(value, indent=2, ensure_ascii=False)


@bp.app_template_global()
def progress_percent(doc: dict[str, Any]) -> int:
    """How full a task's progress bar is; the script computes the same."""
    if doc.get("state") == "SUCCESS":
        return 100
    progress = doc.get("progress") or {}
    current, total = progress.get("current"), progress.get("total")
    if not isinstance(current, int | float) or not isinstance(total, int | float) or total <= 0:
        return 0
    return max(0, min(100, round(current / total * 100)))


@bp.app_template_global()
def progress_text(doc: dict[str, Any]) -> str:
    message = (doc.get("progress") or {}).get("message")
    percent = f"{progress_percent(doc)}%"
    return f"{percent}, {message}" if message else percent


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


@bp.get("/prodcons")
def prodcons() -> Response:
    """The article's producer trigger: enqueue a random number, then go home."""
    body = {"task": "consume", "args": [random.choice(ARTICLE_NUMBER_RANGE)]}
    submission = parse_submission(body, max_delay_s=current_app.config["MAX_DELAY_S"])
    accept.submit(services(), submission, retry_after_s=current_app.config["RETRY_AFTER_S"])
    return redirect(url_for("dashboard.index"))


# The article's channel, kept so that its subscribers still hear it.
ARTICLE_CHANNEL = "task:pubsub:channel"


@bp.get("/pubsub")
def pubsub() -> Response:
    """The article's publisher trigger: publish a random number, then go home."""
    publish.publish_here(ARTICLE_CHANNEL, random.choice(ARTICLE_NUMBER_RANGE))
    return redirect(url_for("dashboard.index"))
