"""The dashboard page and the article's two triggers."""

from __future__ import annotations

import random

from flask import Blueprint, current_app, redirect, render_template, url_for
from werkzeug.wrappers import Response

from webapp import task_submit
from webapp.services import services
from webapp.submission import parse_submission

bp = Blueprint("dashboard", __name__)

# The article's random numbers were in range(9); keep its flavour.
ARTICLE_NUMBER_RANGE = range(9)


@bp.get("/")
def index() -> str:
    return render_template("index.html", flower_url=current_app.config["FLOWER_URL"])


@bp.get("/prodcons")
def prodcons() -> Response:
    """The article's producer trigger: enqueue a random number, then go home."""
    body = {"task": "consume", "args": [random.choice(ARTICLE_NUMBER_RANGE)]}
    submission = parse_submission(body, max_delay_s=current_app.config["MAX_DELAY_S"])
    task_submit.submit(services(), submission, retry_after_s=current_app.config["RETRY_AFTER_S"])
    return redirect(url_for("dashboard.index"))
