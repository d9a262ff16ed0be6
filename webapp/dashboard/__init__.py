"""The dashboard page, and the article's two triggers."""

from __future__ import annotations

from flask import Flask

from webapp.dashboard import views


def init_app(app: Flask) -> None:
    app.register_blueprint(views.bp)
